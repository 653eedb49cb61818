package region

import (
	"fmt"

	"connectrpc.com/connect"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func lifecycleOp(entity string, n int, typ, data string) *meridianv1.AppendOp {
	return &meridianv1.AppendOp{Entity: entity, Events: []*meridianv1.ProposedEvent{pev(n, typ, data)}}
}

func versionsOf(evs []*meridianv1.Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.GetVersion())
	}
	return out
}

// TestApplyStreamLifecycle is the state machine's table of lifecycle
// events: each metadata field and delete mode, what reads return after it
// (forward and backward) and what appends do.
func TestApplyStreamLifecycle(t *testing.T) {
	type step struct {
		typ, data string
		err       error
	}
	plain := step{typ: "Placed", data: "x"}
	for _, tc := range []struct {
		name              string
		steps             []step
		forward, backward []uint64
		truncate, tomb    uint64
		custom            map[string]string
	}{
		{"no lifecycle", []step{plain, plain, plain}, []uint64{1, 2, 3}, []uint64{3, 2, 1}, 0, 0, nil},
		{"max_count", []step{plain, plain, plain, {typ: TypeStreamMetadata, data: `{"maxCount": 2}`}, plain},
			[]uint64{4, 5}, []uint64{5, 4}, 0, 0, nil},
		{"truncate_before", []step{plain, plain, plain, {typ: TypeStreamMetadata, data: `{"truncateBefore": 3, "custom": {"owner": "billing"}}`}},
			[]uint64{3, 4}, []uint64{4, 3}, 3, 0, map[string]string{"owner": "billing"}},
		{"truncate_before never moves back", []step{plain, {typ: TypeStreamMetadata, data: `{"truncateBefore": 3}`}, plain, {typ: TypeStreamMetadata, data: `{"truncateBefore": 1}`}},
			[]uint64{3, 4}, []uint64{4, 3}, 3, 0, nil},
		{"soft delete, then appends go on", []step{plain, plain, {typ: TypeStreamDeleted}, plain, plain},
			[]uint64{4, 5}, []uint64{5, 4}, 4, 0, nil},
		{"soft delete of the whole stream", []step{plain, plain, {typ: TypeStreamDeleted}},
			[]uint64{}, []uint64{}, 4, 0, nil},
		{"hard delete refuses appends", []step{plain, plain, {typ: TypeStreamTombstone}, {typ: "Placed", data: "y", err: ErrStreamDeleted}},
			[]uint64{}, []uint64{}, 4, 3, nil},
		{"a $metadata that does not parse is a plain event at apply", []step{plain, {typ: TypeStreamMetadata, data: "not json"}},
			[]uint64{1, 2}, []uint64{2, 1}, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newFSMDriver(t, f)
			for i, s := range tc.steps {
				r := d.one(lifecycleOp("orders/1", i+1, s.typ, s.data))
				if s.err != nil {
					require.ErrorIs(t, r.Err, s.err, "step %d", i)
				} else {
					require.NoError(t, r.Err, "step %d", i)
				}
			}
			fwd, head, err := f.ReadStreamWithHead("orders/1", 0, 100, false)
			require.NoError(t, err)
			assert.Equal(t, tc.forward, versionsOf(fwd), "forward")
			bwd, _, err := f.ReadStreamWithHead("orders/1", 0, 100, true)
			require.NoError(t, err)
			assert.Equal(t, tc.backward, versionsOf(bwd), "backward")
			assert.Equal(t, tc.truncate, head.GetTruncateBefore())
			assert.Equal(t, tc.tomb, head.GetTombstone())
			assert.Equal(t, tc.custom, head.GetMetadata().GetCustom())
			// Reads from a hidden version start at the first visible one.
			if len(tc.forward) > 0 {
				from1, _, err := f.ReadStreamWithHead("orders/1", 1, 1, false)
				require.NoError(t, err)
				assert.Equal(t, tc.forward[:1], versionsOf(from1))
			}
		})
	}

	t.Run("a retry of an append made before the tombstone gets its result", func(t *testing.T) {
		f := newTestFSM(t)
		d := newFSMDriver(t, f)
		first := d.mustAppend(lifecycleOp("orders/2", 1, "Placed", "x"))
		d.mustAppend(lifecycleOp("orders/2", 2, TypeStreamTombstone, ""))
		retry := d.one(lifecycleOp("orders/2", 1, "Placed", "x"))
		require.NoError(t, retry.Err)
		assert.Equal(t, first.GetFirstVersion(), retry.Resp.GetFirstVersion())
	})

	t.Run("max_age hides events stamped before it", func(t *testing.T) {
		f := newTestFSM(t)
		d := newFSMDriver(t, f)
		old := time.Now().Add(-time.Hour).UnixNano()
		for i := range 3 {
			_ = d.batchAt(old+int64(i), lifecycleOp("orders/3", i+1, "Placed", "x"))
		}
		d.batchAt(time.Now().UnixNano(), lifecycleOp("orders/3", 4, "Placed", "x"))
		d.batchAt(time.Now().UnixNano(), lifecycleOp("orders/3", 5, TypeStreamMetadata, `{"maxAgeMs": 60000}`))
		evs, _, err := f.ReadStreamWithHead("orders/3", 0, 100, false)
		require.NoError(t, err)
		assert.Equal(t, []uint64{4, 5}, versionsOf(evs))
	})

	t.Run("an append refuses lifecycle events it cannot take", func(t *testing.T) {
		for _, op := range []*meridianv1.AppendOp{
			lifecycleOp("orders/4", 1, TypeStreamMetadata, `{"maxCount": "many"}`),
			lifecycleOp("orders/4", 1, TypeStreamDeleted, "data"),
			{Entity: "orders/4", Events: []*meridianv1.ProposedEvent{pev(1, TypeStreamTombstone, ""), pev(2, "Placed", "x")}},
			{Entity: "cart/1", ActiveActive: true, Events: []*meridianv1.ProposedEvent{pev(3, TypeStreamDeleted, "")}},
		} {
			err := ValidateAppend(op, DefaultLimits())
			assert.ErrorIs(t, err, ErrInvalidArgument, "%v", op)
			assert.ErrorContains(t, err, "events[")
		}
	})
}

// TestLifecycleIsTheSameInEveryRegion: two home regions write streams
// with random appends, truncations, soft and hard deletes; a third region
// and each other apply the shipped events in random causal orders (each
// origin's events in sequence, origins interleaved at random). Every
// region then returns the same events and heads for every stream; a
// failover rollback of a tail that held a lifecycle event is in
// TestRollbackRecomputesTheLifecycle.
func TestLifecycleIsTheSameInEveryRegion(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			open := func(region string) (*FSM, *fsmDriver) {
				f, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: region, Logger: fsmTestLogger()})
				require.NoError(t, err)
				t.Cleanup(func() { _ = f.Close() })
				return f, newFSMDriver(t, f)
			}
			homes := map[string]*fsmDriver{}
			fsms := map[string]*FSM{}
			for _, r := range []string{"us", "ap", "eu"} {
				fsms[r], homes[r] = open(r)
			}
			entities := map[string][]string{"us": {"us/1", "us/2"}, "ap": {"ap/1", "ap/2"}}
			n := 0
			for range 60 {
				origin := []string{"us", "ap"}[rng.IntN(2)]
				entity := entities[origin][rng.IntN(2)]
				n++
				var typ, data string
				switch k := rng.IntN(10); {
				case k == 0:
					typ = TypeStreamDeleted
				case k == 1:
					typ = TypeStreamTombstone
				case k == 2:
					typ, data = TypeStreamMetadata, fmt.Sprintf(`{"maxCount": %d}`, rng.IntN(4))
				case k == 3:
					typ, data = TypeStreamMetadata, fmt.Sprintf(`{"truncateBefore": %d}`, rng.IntN(8))
				default:
					typ, data = "Placed", fmt.Sprint(n)
				}
				r := homes[origin].one(lifecycleOp(entity, n, typ, data))
				if r.Err != nil {
					require.ErrorIs(t, r.Err, ErrStreamDeleted)
				}
			}
			// Ship each origin's log to the two other regions, interleaved at random.
			originLog := func(origin string) []*meridianv1.Event {
				evs, err := fsms[origin].ReadOrigin(origin, 1, 1000)
				require.NoError(t, err)
				return evs
			}
			logs := map[string][]*meridianv1.Event{"us": originLog("us"), "ap": originLog("ap")}
			for _, dst := range []string{"us", "ap", "eu"} {
				next := map[string]int{}
				for next["us"] < len(logs["us"]) || next["ap"] < len(logs["ap"]) {
					o := []string{"us", "ap"}[rng.IntN(2)]
					if o == dst || next[o] >= len(logs[o]) {
						o = map[string]string{"us": "ap", "ap": "us"}[o]
					}
					if o == dst || next[o] >= len(logs[o]) {
						break
					}
					k := min(1+rng.IntN(3), len(logs[o])-next[o])
					res := homes[dst].replicate(logs[o][next[o] : next[o]+k]...)
					require.Empty(t, res.Stopped, "replicate to %s", dst)
					next[o] += k
				}
			}
			for _, list := range entities {
				for _, e := range list {
					want, wantHead, err := fsms["eu"].ReadStreamWithHead(e, 0, 1000, false)
					require.NoError(t, err)
					for _, r := range []string{"us", "ap"} {
						got, head, err := fsms[r].ReadStreamWithHead(e, 0, 1000, false)
						require.NoError(t, err)
						assert.Equal(t, versionsOf(want), versionsOf(got), "%s in %s", e, r)
						assert.Equal(t, wantHead.GetTruncateBefore(), head.GetTruncateBefore(), "%s in %s", e, r)
						assert.Equal(t, wantHead.GetTombstone(), head.GetTombstone(), "%s in %s", e, r)
						assert.Equal(t, wantHead.GetMetadata().GetMaxCount(), head.GetMetadata().GetMaxCount(), "%s in %s", e, r)
					}
				}
			}
		})
	}
}

// TestRollbackRecomputesTheLifecycle: the lost home "lost" ordered x
// v1..v4 under epoch 5, v3 a $deleted; the failover's heir had v1..v2 and
// ordered its own v3, v4 under epoch 9. In every delivery order the lost
// v3 (and its soft delete) is superseded: every region ends with nothing
// hidden, as the heir has it.
func TestRollbackRecomputesTheLifecycle(t *testing.T) {
	l1 := forkEvent("lost", 1, 1, 5, nil, nil)
	l2 := forkEvent("lost", 2, 2, 5, dotOf(l1), nil)
	l2.Type, l2.Data = TypeStreamMetadata, []byte(`{"custom": {"k": "v"}}`)
	l3 := forkEvent("lost", 3, 3, 5, dotOf(l2), nil)
	l3.Type, l3.Data = TypeStreamDeleted, nil
	l4 := forkEvent("lost", 4, 4, 5, dotOf(l3), nil)
	h1 := forkEvent("heir", 1, 3, 9, dotOf(l2), nil)
	h2 := forkEvent("heir", 2, 4, 9, dotOf(h1), nil)
	for name, entries := range map[string][][]*meridianv1.Event{
		"lost tail first": {{l1, l2, l3, l4}, {h1, h2}},
		"heir first":      {{l1, l2}, {h1, h2}, {l3, l4}},
		"interleaved":     {{l1, l2, l3}, {h1}, {l4}, {h2}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newFSMDriver(t, f)
			for _, e := range entries {
				d.replicate(e...)
			}
			evs, head, err := f.ReadStreamWithHead("x", 0, 100, false)
			require.NoError(t, err)
			assert.Equal(t, []uint64{1, 2, 3, 4}, versionsOf(evs))
			assert.Zero(t, head.GetTruncateBefore(), "the superseded $deleted no longer hides anything")
			assert.Equal(t, map[string]string{"k": "v"}, head.GetMetadata().GetCustom(), "v2's metadata stays")
		})
	}
}

// TestReclaimTurnsHiddenEventsIntoStubs: after a soft delete, Reclaim
// drops the data of the hidden events (not of the $deleted itself), never
// beyond what the lifecycle hides; the stubs keep their places in the
// origin log, ship to another region and apply there in order, and reads
// in both regions return the same events.
func TestReclaimTurnsHiddenEventsIntoStubs(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	payload := string(make([]byte, 1024))
	for i := range 5 {
		d.mustAppend(lifecycleOp("orders/r", i+1, "Placed", payload))
	}
	d.mustAppend(lifecycleOp("orders/r", 6, TypeStreamDeleted, ""))
	d.mustAppend(lifecycleOp("orders/r", 7, "Placed", "kept"))

	cands, err := f.ReclaimCandidates(time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, cands, 1)
	assert.Equal(t, uint64(7), cands[0].GetBelow())

	reclaim := func(below uint64) *ReclaimResult {
		data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_RECLAIM, &meridianv1.Reclaim{Entity: "orders/r", Below: below, UnixNanos: time.Now().UnixNano()})
		require.NoError(t, err)
		d.index++
		r, ok := f.Apply(d.entry0(data)).(*ReclaimResult)
		require.True(t, ok)
		require.NoError(t, r.Err)
		return r
	}
	r := reclaim(100) // clamped to what the lifecycle hides
	assert.Equal(t, 5, r.Events)
	assert.Equal(t, uint64(5*1024), r.Bytes)
	assert.Equal(t, uint64(7), r.Below)
	assert.Equal(t, 0, reclaim(100).Events, "nothing left to reclaim")
	st := f.ApplyState()
	assert.Equal(t, uint64(5), st.GetReclaimedEvents())
	assert.Equal(t, uint64(5*1024), st.GetReclaimedBytes())
	cands, err = f.ReclaimCandidates(time.Now(), 10)
	require.NoError(t, err)
	assert.Empty(t, cands)

	evs, _, err := f.ReadStreamWithHead("orders/r", 0, 100, false)
	require.NoError(t, err)
	assert.Equal(t, []uint64{7}, versionsOf(evs))
	origin, err := f.ReadOrigin(testRegion, 1, 100)
	require.NoError(t, err)
	require.Len(t, origin, 7, "stubs keep their places in the origin log")
	for i, ev := range origin {
		stub := i < 5
		assert.Equal(t, stub, ev.GetReclaimed(), "v%d", ev.GetVersion())
		if ev.GetType() == "Placed" {
			assert.Equal(t, stub, len(ev.GetData()) == 0, "v%d", ev.GetVersion())
		}
	}

	other, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: "us-east", Logger: fsmTestLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	res := newFSMDriver(t, other).replicate(origin...)
	require.Empty(t, res.Stopped)
	assert.Equal(t, 7, res.Applied)
	evs2, head2, err := other.ReadStreamWithHead("orders/r", 0, 100, false)
	require.NoError(t, err)
	assert.Equal(t, versionsOf(evs), versionsOf(evs2))
	assert.Equal(t, uint64(7), head2.GetTruncateBefore())
}

// TestLeaderReclaimsDeletedStreams: the region leader reclaims a
// soft-deleted stream's events on its own, every replica applies it, and
// Status reports the events and bytes.
func TestLeaderReclaimsDeletedStreams(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) { c.ReclaimInterval = 50 * time.Millisecond })
	leader := r.waitLeader()
	ctx := testContext(t, 30*time.Second)
	es := r.client(leader)
	for i := range 4 {
		_, err := es.Append(ctx, connect.NewRequest(appendRequest("orders/gone", pev(i+1, "Placed", "0123456789"))))
		require.NoError(t, err)
	}
	_, err := es.Append(ctx, connect.NewRequest(appendRequest("orders/gone", pev(5, TypeStreamDeleted, ""))))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, i := range r.running() {
			st := r.node(i).Status()
			if st.GetReclaimedEvents() != 4 || st.GetReclaimedBytes() != 4*10 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "every replica reclaimed the 4 hidden events")
	resp, err := es.Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "orders/gone"}))
	require.NoError(t, err)
	assert.Empty(t, resp.Msg.GetEvents())
	assert.Equal(t, uint64(6), resp.Msg.GetTruncateBefore())
}

// TestReclaimStaysWithinTheStream: a truncate_before above the head hides
// the stream as it is; reclaim stops at the head (it used to read past it
// and stop apply on every replica), goes on in batches across appends
// (the head keeps reclaimed_below), and never proposes the same range twice.
func TestReclaimStaysWithinTheStream(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	reclaim := func(below uint64) *ReclaimResult {
		data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_RECLAIM, &meridianv1.Reclaim{Entity: "s", Below: below, UnixNanos: time.Now().UnixNano()})
		require.NoError(t, err)
		d.index++
		r, ok := f.Apply(d.entry0(data)).(*ReclaimResult)
		require.True(t, ok)
		require.NoError(t, r.Err)
		return r
	}
	n := 0
	for range 15 {
		op := &meridianv1.AppendOp{Entity: "s"}
		for range 100 {
			n++
			op.Events = append(op.Events, pev(n, "Placed", "0123456789"))
		}
		d.mustAppend(op)
	}
	d.mustAppend(lifecycleOp("s", 5000, TypeStreamMetadata, `{"truncateBefore": 100000}`)) // v1501
	cands, err := f.ReclaimCandidates(time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, cands, 1)
	assert.Equal(t, uint64(1502), cands[0].GetBelow(), "the floor stops at the head")
	assert.Equal(t, 1000, reclaim(100000).Events, "one batch")
	d.mustAppend(lifecycleOp("s", 5001, "Placed", "x")) // v1502, hidden too
	r := reclaim(100000)
	assert.Equal(t, 501, r.Events, "the rest, and the new event; not the $metadata")
	assert.Equal(t, uint64(1503), r.Below)
	assert.Equal(t, 0, reclaim(100000).Events)
	cands, err = f.ReclaimCandidates(time.Now(), 10)
	require.NoError(t, err)
	assert.Empty(t, cands)
	assert.Equal(t, uint64(1501), f.ApplyState().GetReclaimedEvents())
	evs, head, err := f.ReadStreamWithHead("s", 0, 100, false)
	require.NoError(t, err)
	assert.Empty(t, evs)
	assert.Equal(t, uint64(1502), head.GetVersion())
}
