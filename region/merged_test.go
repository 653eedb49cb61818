package region

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/crdt"
)

func aaop(entity string, evs ...*meridianv1.ProposedEvent) *meridianv1.AppendOp {
	return &meridianv1.AppendOp{Entity: entity, Events: evs, ActiveActive: true}
}

// mergedReplica is one region's state machine in a merged-stream test.
type mergedReplica struct {
	name string
	f    *FSM
	d    *fsmDriver
	skew int64 // this region's clock offset, nanoseconds
}

func openMergedReplica(t *testing.T, name string, regions []string) *mergedReplica {
	t.Helper()
	f, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: name, Logger: fsmTestLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	f.SetRegions(func() []string { return regions })
	return &mergedReplica{name: name, f: f, d: newFSMDriver(t, f)}
}

// ship proposes to r the events of origin's log (as from holds it) after
// what r has applied, from `back` events before that (duplicates), up to max.
func (r *mergedReplica) ship(t *testing.T, from *mergedReplica, back uint64, max int) *ReplicateResult {
	t.Helper()
	next := r.f.ApplyState().GetApplied()[from.name] + 1
	evs, err := from.f.ReadOrigin(from.name, next-min(back, next-1), max)
	require.NoError(t, err)
	if len(evs) == 0 {
		return &ReplicateResult{}
	}
	return r.d.replicate(evs...)
}

// orderOracle is crdt.Order over the events of entity that any replica
// holds: the merged order every region must converge to.
func orderOracle(t *testing.T, evs []*meridianv1.Event) []string {
	t.Helper()
	in := make([]crdt.Event[*meridianv1.Event], 0, len(evs))
	for _, ev := range evs {
		in = append(in, crdt.Event[*meridianv1.Event]{
			Dot:  causal.Dot{Region: ev.GetOrigin().GetRegion(), Seq: ev.GetOrigin().GetSeq()},
			Deps: causal.Vector(ev.GetDeps()), HLC: causal.Timestamp{WallNanos: ev.GetHlc().GetWallNanos(), Logical: ev.GetHlc().GetLogical()},
			Payload: ev,
		})
	}
	out, err := crdt.Order(in)
	require.NoError(t, err)
	ids := make([]string, len(out))
	for i, e := range out {
		ids[i] = e.Payload.GetId()
	}
	return ids
}

// mergedView is what a read returns of a stream, less the region-local
// position: equal views are equal streams.
func mergedView(evs []*meridianv1.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("v%d %s %s:%d %d.%d %v %s", ev.GetVersion(), ev.GetId(), ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq(),
			ev.GetHlc().GetWallNanos(), ev.GetHlc().GetLogical(), causal.Vector(ev.GetDeps()), ev.GetData())
	}
	return out
}

func mergedCases(t *testing.T) int {
	if s := os.Getenv("MERIDIAN_MERGED_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "MERIDIAN_MERGED_CASES")
		return n
	}
	return 12
}

// TestMergedStreamsConvergeInEveryDeliveryOrder is the property of
// active-active streams: for random histories written concurrently in 3 to
// 5 regions (skewed clocks, some jumping back), delivered to every region
// in random causal orders with duplicates, every region ends with the same
// stream for every entity, byte for byte apart from its local positions,
// and that stream is crdt.Order of its events. Along the way, an event a
// read reported stable keeps its version in every later read and in the
// final order. MERIDIAN_MERGED_CASES sets the number of cases;
// MERIDIAN_MERGED_SEED replays one.
func TestMergedStreamsConvergeInEveryDeliveryOrder(t *testing.T) {
	seeds := []uint64{}
	if s := os.Getenv("MERIDIAN_MERGED_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "MERIDIAN_MERGED_SEED")
		seeds = append(seeds, seed)
	} else {
		base := uint64(time.Now().UnixNano())
		for i := range mergedCases(t) {
			seeds = append(seeds, base+uint64(i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("replay: MERIDIAN_MERGED_SEED=%d go test ./region -run '^TestMergedStreamsConvergeInEveryDeliveryOrder$' -count=1 -v", seed)
			mergedHistory(t, rand.New(rand.NewPCG(seed, seed^0x5eed)))
		})
	}
}

func mergedHistory(t *testing.T, rng *rand.Rand) {
	names := []string{"ap", "eu", "sa", "us", "za"}[:3+rng.IntN(3)]
	reps := make([]*mergedReplica, len(names))
	for i, n := range names {
		reps[i] = openMergedReplica(t, n, names)
		reps[i].skew = rng.Int64N(int64(40*time.Millisecond)) - int64(20*time.Millisecond)
	}
	entities := []string{"cart/1", "cart/2"}
	// stableSeen[entity][version] = id: what some read reported stable.
	stableSeen := map[string]map[uint64]string{}
	checkStable := func(r *mergedReplica, entity string) {
		evs, _ := fsmReadAll(t, r.f, entity)
		seen := stableSeen[entity]
		if seen == nil {
			seen = map[uint64]string{}
			stableSeen[entity] = seen
		}
		prefix := true
		for _, ev := range evs {
			if !ev.GetStable() {
				prefix = false
				continue
			}
			require.True(t, prefix, "%s in %s: stable event at v%d after an unstable one", entity, r.name, ev.GetVersion())
			if id, ok := seen[ev.GetVersion()]; ok {
				require.Equal(t, id, ev.GetId(), "%s in %s: stable version %d changed", entity, r.name, ev.GetVersion())
			}
			seen[ev.GetVersion()] = ev.GetId()
		}
	}
	wall := testBase
	next := 1
	for step := 0; step < 150; step++ {
		r := reps[rng.IntN(len(reps))]
		wall += int64(rng.IntN(3)) * int64(time.Millisecond)
		switch k := rng.IntN(10); {
		case k < 4:
			// An append of 1 to 3 events; sometimes this region's clock
			// jumps back.
			n := 1 + rng.IntN(3)
			evs := make([]*meridianv1.ProposedEvent, n)
			for i := range evs {
				evs[i] = pev(next, "Added", fmt.Sprintf("%s-%d", r.name, next))
				next++
			}
			at := wall + r.skew
			if rng.IntN(8) == 0 {
				at -= int64(50 * time.Millisecond)
			}
			res := r.d.batchAt(at, aaop(entities[rng.IntN(len(entities))], evs...))
			require.NoError(t, res[0].Err)
		case k < 9:
			from := reps[rng.IntN(len(reps))]
			if from != r {
				r.ship(t, from, uint64(rng.IntN(3)), 1+rng.IntN(5))
			}
		default:
			checkStable(r, entities[rng.IntN(len(entities))])
		}
	}
	// Deliver everything everywhere.
	for round := 0; ; round++ {
		require.Less(t, round, 1000, "delivery did not quiesce")
		moved := 0
		for _, r := range reps {
			for _, from := range reps {
				if from != r {
					moved += r.ship(t, from, 0, ReadCountMax).Applied
				}
			}
		}
		if moved == 0 {
			break
		}
	}
	for _, e := range entities {
		var want []string
		var all []*meridianv1.Event
		for i, r := range reps {
			evs, head := fsmReadAll(t, r.f, e)
			require.Equal(t, uint64(len(evs)), head, "%s in %s", e, r.name)
			if i == 0 {
				want, all = mergedView(evs), evs
				ids := make([]string, len(evs))
				for j, ev := range evs {
					ids[j] = ev.GetId()
					require.Equal(t, uint64(j+1), ev.GetVersion())
				}
				require.Equal(t, orderOracle(t, evs), ids, "%s: the stored order is not crdt.Order", e)
				continue
			}
			require.Equal(t, want, mergedView(evs), "%s differs between %s and %s", e, reps[0].name, r.name)
			checkStable(r, e)
		}
		t.Logf("%s: %d events from %d regions, %d versions seen stable", e, len(all), len(reps), len(stableSeen[e]))
		for v, id := range stableSeen[e] {
			require.Equal(t, id, all[v-1].GetId(), "%s: v%d was reported stable with another event", e, v)
		}
	}
}

func TestMergedAppendRefusesExpectedVersionsButAny(t *testing.T) {
	d := newFSMDriver(t, newTestFSM(t))
	for _, ex := range []*meridianv1.ExpectedVersion{expNoStream(), expStreamExists(), expExact(0), expExact(3)} {
		op := aaop("cart/1", pev(1, "Added", "x"))
		op.Expected = ex
		r := d.one(op)
		var inv *InvalidArgumentError
		require.ErrorAs(t, r.Err, &inv, "%v", ex)
		assert.Equal(t, "expected", inv.Field)
		assert.Contains(t, inv.Reason, "active-active")
	}
	evs, head := fsmReadAll(t, d.f, "cart/1")
	assert.Empty(t, evs, "a refused append wrote nothing")
	assert.Zero(t, head)
	for _, ex := range []*meridianv1.ExpectedVersion{nil, expAny()} {
		op := aaop("cart/1", pev(2+len(evs), "Added", "x"))
		op.Expected = ex
		require.NoError(t, d.one(op).Err)
		evs, _ = fsmReadAll(t, d.f, "cart/1")
	}
	assert.Len(t, evs, 2)
}

// TestMergedStreamKeepsItsSingleHomePrefix: a stream written single-home
// first and active-active afterwards keeps its first versions (e/) and
// continues in merged order; reads of any window, forward and backward,
// agree with the whole stream.
func TestMergedStreamKeepsItsSingleHomePrefix(t *testing.T) {
	regions := []string{"eu", "us"}
	eu := openMergedReplica(t, "eu", regions)
	us := openMergedReplica(t, "us", regions)
	for i := 1; i <= 3; i++ {
		eu.d.mustAppend(aop("cart/1", expExact(uint64(i-1)), pev(i, "Added", fmt.Sprint(i))))
	}
	us.ship(t, eu, 0, 10)
	// Concurrent active-active appends, us stamped earlier than eu.
	us.d.batchAt(testBase+int64(time.Second), aaop("cart/1", pev(10, "Added", "us-a"), pev(11, "Added", "us-b")))
	eu.d.batchAt(testBase+2*int64(time.Second), aaop("cart/1", pev(20, "Added", "eu-a")))
	us.ship(t, eu, 0, 10)
	eu.ship(t, us, 0, 10)
	var whole []*meridianv1.Event
	for _, r := range []*mergedReplica{eu, us} {
		evs, head := fsmReadAll(t, r.f, "cart/1")
		require.Equal(t, uint64(6), head)
		if whole == nil {
			whole = evs
		}
		require.Equal(t, mergedView(whole), mergedView(evs), r.name)
	}
	ids := []string{}
	for _, ev := range whole {
		ids = append(ids, string(ev.GetData()))
	}
	assert.Equal(t, []string{"1", "2", "3", "us-a", "us-b", "eu-a"}, ids)
	assert.False(t, whole[0].GetActiveActive())
	assert.True(t, whole[3].GetActiveActive())
	for from := uint64(0); from <= 7; from++ {
		for n := 1; n <= 7; n++ {
			fw, _, err := eu.f.ReadStream("cart/1", from, n, false)
			require.NoError(t, err)
			start := max(from, 1)
			if start <= 6 {
				assert.Equal(t, mergedView(whole[start-1:min(6, start-1+uint64(n))]), mergedView(fw), "forward from %d max %d", from, n)
			}
			bw, _, err := eu.f.ReadStream("cart/1", from, n, true)
			require.NoError(t, err)
			top := from
			if top == 0 || top > 6 {
				top = 6
			}
			want := []*meridianv1.Event{}
			for v := top; v >= 1 && len(want) < n; v-- {
				want = append(want, whole[v-1])
			}
			assert.Equal(t, mergedView(want), mergedView(bw), "backward from %d max %d", from, n)
		}
	}
}

// TestMergedEventsAreStableOnceEveryRegionStampedPastThem: stability
// follows the regions' watermarks, and a region never heard from keeps
// everything unstable.
func TestMergedEventsAreStableOnceEveryRegionStampedPastThem(t *testing.T) {
	regions := []string{"eu", "us", "ap"}
	eu := openMergedReplica(t, "eu", regions)
	us := openMergedReplica(t, "us", regions)
	ap := openMergedReplica(t, "ap", regions)
	eu.d.batchAt(testBase+1000, aaop("cart/1", pev(1, "Added", "eu-1")))
	us.d.batchAt(testBase+2000, aaop("cart/1", pev(2, "Added", "us-1")))
	eu.ship(t, us, 0, 10)
	stable := func(r *mergedReplica) []bool {
		evs, _ := fsmReadAll(t, r.f, "cart/1")
		out := make([]bool, len(evs))
		for i, ev := range evs {
			out[i] = ev.GetStable()
		}
		return out
	}
	assert.Equal(t, []bool{false, false}, stable(eu), "ap has sent nothing")
	// ap writes another entity after both (its clock is ahead).
	ap.d.batchAt(testBase+3000, aaop("other", pev(3, "Added", "ap-1")))
	eu.ship(t, ap, 0, 10)
	assert.Equal(t, []bool{true, true}, stable(eu), "every region stamped past both")
	// A region's own later append does not make others' events stable.
	eu.d.batchAt(testBase+9000, aaop("cart/1", pev(4, "Added", "eu-2")))
	assert.Equal(t, []bool{true, true, false}, stable(eu))
	// Without SetRegions a region is alone: everything it holds is stable.
	solo := openMergedReplica(t, "eu", nil)
	solo.f.SetRegions(nil)
	solo.d.batchAt(testBase, aaop("cart/1", pev(1, "Added", "x")))
	assert.Equal(t, []bool{true}, stable(solo))
}

// TestMergedAppendRetryIsIdempotent: a retried active-active append gets
// the original result, in its region and in one it was shipped to.
func TestMergedAppendRetryIsIdempotent(t *testing.T) {
	regions := []string{"eu", "us"}
	eu := openMergedReplica(t, "eu", regions)
	us := openMergedReplica(t, "us", regions)
	op := aaop("cart/1", pev(1, "Added", "a"), pev(2, "Added", "b"))
	first := eu.d.mustAppend(op)
	again := eu.d.mustAppend(aaop("cart/1", pev(1, "Added", "a"), pev(2, "Added", "b")))
	assert.True(t, again.GetDuplicate())
	assert.Equal(t, first.GetOrigin().GetSeq(), again.GetOrigin().GetSeq())
	us.ship(t, eu, 0, 10)
	r := us.d.one(aaop("cart/1", pev(1, "Added", "a")))
	require.NoError(t, r.Err)
	assert.True(t, r.Resp.GetDuplicate(), "the id is known in the region it was shipped to")
	evs, _ := fsmReadAll(t, us.f, "cart/1")
	assert.Len(t, evs, 2)
	// The same id with other content is a conflict.
	r = us.d.one(aaop("cart/1", pev(1, "Added", "other")))
	assert.True(t, errors.Is(r.Err, ErrIdempotencyConflict), "%v", r.Err)
}

// TestMergedKeysSortInCrdtOrder: a/ keys sort by HLC (negative walls
// included), then origin, then seq, and round-trip through ParseKey.
func TestMergedKeysSortInCrdtOrder(t *testing.T) {
	ks := []Key{
		{Kind: KeyMerged, Name: "c", Wall: -5, Logical: 9, Origin: "zz", N: 1},
		{Kind: KeyMerged, Name: "c", Wall: 0, Logical: 0, Origin: "a", N: 7},
		{Kind: KeyMerged, Name: "c", Wall: 10, Logical: 0, Origin: "b", N: 2},
		{Kind: KeyMerged, Name: "c", Wall: 10, Logical: 1, Origin: "a", N: 1},
		{Kind: KeyMerged, Name: "c", Wall: 11, Logical: 0, Origin: "a", N: 3},
		{Kind: KeyMerged, Name: "c", Wall: 11, Logical: 0, Origin: "ab", N: 1},
		{Kind: KeyMerged, Name: "c", Wall: 11, Logical: 0, Origin: "b", N: 1},
	}
	for i, k := range ks {
		b := k.Encode()
		got, err := ParseKey(b)
		require.NoError(t, err)
		assert.Equal(t, k, got)
		if i > 0 {
			m1 := crdt.Meta{Dot: causal.Dot{Region: ks[i-1].Origin, Seq: ks[i-1].N}, HLC: causal.Timestamp{WallNanos: ks[i-1].Wall, Logical: ks[i-1].Logical}}
			m2 := crdt.Meta{Dot: causal.Dot{Region: k.Origin, Seq: k.N}, HLC: causal.Timestamp{WallNanos: k.Wall, Logical: k.Logical}}
			require.Equal(t, -1, m1.Compare(m2), "test data out of order at %d", i)
			assert.Less(t, string(ks[i-1].Encode()), string(b), "key %d sorts before key %d", i-1, i)
		}
	}
	r, err := decodeRef(mergedRef(ks[2].Encode()))
	require.NoError(t, err)
	assert.Equal(t, "c", r.Entity)
	assert.Equal(t, ks[2].Encode(), r.Merged)
}
