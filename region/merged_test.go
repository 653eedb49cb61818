package region

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
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
			op := aaop(entities[rng.IntN(len(entities))], evs...)
			for i := range evs {
				m, data := randomMerge(rng)
				evs[i].Data = data
				if m.GetEventType() != "" {
					evs[i].Type = m.GetEventType()
				}
				op.Merge = append(op.Merge, m)
			}
			res := r.d.batchAt(at, op)
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
		// The merged state and the conflict feed: the same everywhere, and
		// what crdt's types and the definition of a conflict give.
		wantState, wantConflicts := stateOracle(t, all)
		for _, r := range reps {
			state, _, err := r.f.ReadMergedState(e)
			require.NoError(t, err)
			require.Equal(t, wantState, state, "%s: state in %s", e, r.name)
			require.Equal(t, wantConflicts, conflictSet(t, r.f, e), "%s: conflicts in %s", e, r.name)
		}
		t.Logf("%s: state %s, %d conflicts", e, wantState, len(wantConflicts))
	}
}

// randomMerge picks an event type with its merge rule and data: every op
// kind, on few elements and keys so that writes collide.
func randomMerge(rng *rand.Rand) (*meridianv1.MergeRule, []byte) {
	rule := func(typ string, op meridianv1.MergeOp, target string) *meridianv1.MergeRule {
		return &meridianv1.MergeRule{EventType: typ, Op: op, Target: target}
	}
	elem := []string{"a", "b", "c"}[rng.IntN(3)]
	switch rng.IntN(9) {
	case 0:
		return rule("Counted", meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, "n"), fmt.Appendf(nil, `{"amount": %d}`, rng.IntN(11)-5)
	case 1, 2:
		return rule("Added", meridianv1.MergeOp_MERGE_OP_SET_ADD, "items"), fmt.Appendf(nil, `{"element": %q}`, elem)
	case 3:
		return rule("Removed", meridianv1.MergeOp_MERGE_OP_SET_REMOVE, "items"), fmt.Appendf(nil, `{"element": %q}`, elem)
	case 4:
		return rule("AddrSet", meridianv1.MergeOp_MERGE_OP_LWW_WRITE, "addr"), fmt.Appendf(nil, `{"value": "%s-%d"}`, elem, rng.IntN(100))
	case 5:
		return rule("StatusSet", meridianv1.MergeOp_MERGE_OP_MV_WRITE, "status"), fmt.Appendf(nil, `{"value": %d}`, rng.IntN(100))
	case 6:
		return rule("AttrPut", meridianv1.MergeOp_MERGE_OP_MAP_PUT, "attrs"), fmt.Appendf(nil, `{"key": %q, "value": %d}`, elem, rng.IntN(100))
	case 7:
		return rule("AttrDeleted", meridianv1.MergeOp_MERGE_OP_MAP_DELETE, "attrs"), fmt.Appendf(nil, `{"key": %q}`, elem)
	}
	return &meridianv1.MergeRule{}, []byte(`{"note": 1}`)
}

// conflictSet reads a region's whole conflict feed, a page of 7 at a
// time (pages must join up), as "target/key loser<winner" lines.
func conflictSet(t *testing.T, f *FSM, entity string) []string {
	var out []string
	after := ""
	for {
		page, next, _, err := f.ReadConflicts(entity, after, 7)
		require.NoError(t, err)
		for _, c := range page {
			out = append(out, fmt.Sprintf("%s/%s %s<%s", c.GetTarget(), c.GetKey(), c.GetLoser().GetEventId(), c.GetWinner().GetEventId()))
		}
		if next == "" {
			slices.Sort(out)
			return out
		}
		after = next
	}
}

// stateOracle computes the state JSON and the conflict set of a stream
// with crdt's own types, applying the events in the stream's order (a
// causal order), each op with its writer's context, and finds conflicts
// by their definition: two writes of one register or map key, neither of
// whose writers had seen the other.
func stateOracle(t *testing.T, evs []*meridianv1.Event) (string, []string) {
	counter := crdt.NewPNCounter()
	set := crdt.NewORSet[string]()
	lww := crdt.NewLWWRegister[string]()
	mv := crdt.NewMVRegister[string]()
	attrs := crdt.NewORMap[string, string]()
	touched := map[string]bool{}
	type write struct {
		reg string
		ev  *meridianv1.Event
		ctx causal.Vector
	}
	var writes []write
	for _, ev := range evs {
		m := ev.GetMerge()
		if m.GetOp() == meridianv1.MergeOp_MERGE_OP_UNSPECIFIED {
			continue
		}
		meta := crdt.Meta{Dot: causal.Dot{Region: ev.GetOrigin().GetRegion(), Seq: ev.GetOrigin().GetSeq()},
			HLC: causal.Timestamp{WallNanos: ev.GetHlc().GetWallNanos(), Logical: ev.GetHlc().GetLogical()}}
		ctx := causal.Vector(opContext(ev))
		var d struct {
			Amount  int64
			Element string
			Key     string
			Value   json.RawMessage
		}
		require.NoError(t, json.Unmarshal(ev.GetData(), &d))
		touched[m.GetTarget()] = true
		switch m.GetOp() {
		case meridianv1.MergeOp_MERGE_OP_COUNTER_ADD:
			counter.Apply(crdt.CounterOp{Meta: meta, Delta: d.Amount})
		case meridianv1.MergeOp_MERGE_OP_SET_ADD:
			set.Apply(crdt.SetOp[string]{Meta: meta, Context: ctx, Elem: d.Element})
		case meridianv1.MergeOp_MERGE_OP_SET_REMOVE:
			set.Apply(crdt.SetOp[string]{Meta: meta, Context: ctx, Elem: d.Element, Remove: true})
		case meridianv1.MergeOp_MERGE_OP_LWW_WRITE:
			lww.Apply(crdt.RegisterOp[string]{Meta: meta, Context: ctx, Value: string(d.Value)})
			writes = append(writes, write{"addr/", ev, ctx})
		case meridianv1.MergeOp_MERGE_OP_MV_WRITE:
			mv.Apply(crdt.RegisterOp[string]{Meta: meta, Context: ctx, Value: string(d.Value)})
			writes = append(writes, write{"status/", ev, ctx})
		case meridianv1.MergeOp_MERGE_OP_MAP_PUT:
			attrs.Apply(crdt.MapOp[string, string]{Meta: meta, Context: ctx, Key: d.Key, Value: string(d.Value)})
			writes = append(writes, write{"attrs/" + d.Key, ev, ctx})
		case meridianv1.MergeOp_MERGE_OP_MAP_DELETE:
			attrs.Apply(crdt.MapOp[string, string]{Meta: meta, Context: ctx, Key: d.Key, Delete: true})
		}
	}
	var parts []string
	if touched["addr"] {
		v := lww.Value()
		if v == "" {
			v = "null"
		}
		parts = append(parts, `"addr":`+v)
	}
	if touched["attrs"] {
		var kv []string
		for _, k := range attrs.Keys() {
			v, _ := attrs.Get(k)
			kv = append(kv, fmt.Sprintf("%q:%s", k, v))
		}
		parts = append(parts, `"attrs":{`+strings.Join(kv, ",")+`}`)
	}
	if touched["items"] {
		var es []string
		for _, e := range set.Elements() {
			es = append(es, strconv.Quote(e))
		}
		parts = append(parts, `"items":[`+strings.Join(es, ",")+`]`)
	}
	if touched["n"] {
		parts = append(parts, fmt.Sprintf(`"n":%d`, counter.Value()))
	}
	if touched["status"] {
		parts = append(parts, `"status":[`+strings.Join(mv.Values(), ",")+`]`)
	}
	var conflicts []string
	for i, a := range writes {
		for _, b := range writes[:i] {
			if a.reg != b.reg || a.ctx.CoversDot(dotOfEv(b.ev)) || b.ctx.CoversDot(dotOfEv(a.ev)) {
				continue
			}
			// b is earlier in merged order (evs is sorted), so it loses.
			conflicts = append(conflicts, fmt.Sprintf("%s %s<%s", a.reg, b.ev.GetId(), a.ev.GetId()))
		}
	}
	slices.Sort(conflicts)
	return "{" + strings.Join(parts, ",") + "}", conflicts
}

func dotOfEv(ev *meridianv1.Event) causal.Dot {
	return causal.Dot{Region: ev.GetOrigin().GetRegion(), Seq: ev.GetOrigin().GetSeq()}
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

// TestClocksMoveTheStabilityWatermark: an idle origin's ClockTick and the
// clocks its heartbeats carry make earlier events stable; a clock whose seq
// this region has not applied yet says nothing and is ignored.
func TestClocksMoveTheStabilityWatermark(t *testing.T) {
	regions := []string{"eu", "us"}
	eu := openMergedReplica(t, "eu", regions)
	us := openMergedReplica(t, "us", regions)
	us.d.batchAt(testBase+1000, aaop("cart/1", pev(1, "Added", "us-1")))
	eu.d.batchAt(testBase+2000, aaop("cart/1", pev(2, "Added", "eu-1")))
	eu.ship(t, us, 0, 10)
	stableOf := func() []bool {
		evs, _ := fsmReadAll(t, eu.f, "cart/1")
		out := make([]bool, len(evs))
		for i, ev := range evs {
			out[i] = ev.GetStable()
		}
		return out
	}
	require.Equal(t, []bool{true, false}, stableOf(), "us has stamped up to its own event only")

	// us idles: its leader ticks, raising its last HLC without an event.
	us.d.index++
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_CLOCK_TICK, &meridianv1.ClockTick{Hlc: &meridianv1.Hlc{WallNanos: testBase + 5000}})
	require.NoError(t, err)
	us.f.Apply(us.d.entry0(data))
	c := us.f.Clock("us")
	assert.Equal(t, uint64(1), c.GetSeq())
	assert.Equal(t, testBase+5000, c.GetHlc().GetWallNanos(), "a tick raises the region's own clock")

	// A clock ahead of what eu applied of us is ignored.
	ahead := &meridianv1.OriginClock{Origin: "us", Seq: 2, Hlc: c.GetHlc()}
	eu.d.replicateClocks(ahead)
	assert.Equal(t, []bool{true, false}, stableOf())
	// The heartbeat's clock, at a seq eu has applied, moves the watermark.
	eu.d.replicateClocks(c)
	assert.Equal(t, []bool{true, true}, stableOf())
	assert.Equal(t, testBase+5000, eu.f.Clock("us").GetHlc().GetWallNanos())
}

func (d *fsmDriver) replicateClocks(clocks ...*meridianv1.OriginClock) {
	d.t.Helper()
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_REPLICATE_BATCH, &meridianv1.ReplicateBatch{Clocks: clocks})
	require.NoError(d.t, err)
	d.index++
	d.f.Apply(d.entry0(data))
}

// TestMergePayloadsThatDoNotFitTheirOpAreRefused: each op's data shape is
// checked at apply (as at the node's edge): InvalidArgument naming the
// data field and the shape wanted, and nothing of the append is written.
func TestMergePayloadsThatDoNotFitTheirOpAreRefused(t *testing.T) {
	d := newFSMDriver(t, newTestFSM(t))
	rule := func(op meridianv1.MergeOp) *meridianv1.MergeRule {
		return &meridianv1.MergeRule{EventType: "T", Op: op, Target: "x"}
	}
	for _, tc := range []struct {
		op    meridianv1.MergeOp
		data  string
		field string
	}{
		{meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, `{"amount": 1.5}`, "events[1].data.amount"},
		{meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, `{"amount": 99999999999999999999}`, "events[1].data.amount"},
		{meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, `{"n": 1}`, "events[1].data.amount"},
		{meridianv1.MergeOp_MERGE_OP_SET_ADD, `{"element": 3}`, "events[1].data.element"},
		{meridianv1.MergeOp_MERGE_OP_SET_REMOVE, `{"element": ""}`, "events[1].data.element"},
		{meridianv1.MergeOp_MERGE_OP_LWW_WRITE, `{"val": 1}`, "events[1].data.value"},
		{meridianv1.MergeOp_MERGE_OP_MV_WRITE, `[1, 2]`, "events[1].data"},
		{meridianv1.MergeOp_MERGE_OP_MAP_PUT, `{"key": "k"}`, "events[1].data.value"},
		{meridianv1.MergeOp_MERGE_OP_MAP_DELETE, `not json`, "events[1].data"},
		{meridianv1.MergeOp_MERGE_OP_MAP_PUT, `{"key": "k", "value": 1} {}`, "events[1].data"},
	} {
		ok := &meridianv1.ProposedEvent{Id: eid(1), Type: "T", Data: []byte(`{"amount": 1, "element": "e", "value": 1, "key": "k"}`)}
		bad := &meridianv1.ProposedEvent{Id: eid(2), Type: "T", Data: []byte(tc.data)}
		op := aaop("cart/1", ok, bad)
		op.Merge = []*meridianv1.MergeRule{rule(tc.op), rule(tc.op)}
		r := d.one(op)
		var inv *InvalidArgumentError
		require.ErrorAs(t, r.Err, &inv, "%v %s", tc.op, tc.data)
		assert.Equal(t, tc.field, inv.Field, "%v %s", tc.op, tc.data)
		assert.Contains(t, inv.Reason, payloadShape(tc.op))
	}
	evs, _ := fsmReadAll(t, d.f, "cart/1")
	assert.Empty(t, evs, "nothing of a refused append is written")
	state, _, err := d.f.ReadMergedState("cart/1")
	require.NoError(t, err)
	assert.Equal(t, "{}", state)
	// A merge rule for another type than its event's is refused too.
	op := aaop("cart/1", &meridianv1.ProposedEvent{Id: eid(3), Type: "Other", Data: []byte(`{"amount": 1}`)})
	op.Merge = []*meridianv1.MergeRule{rule(meridianv1.MergeOp_MERGE_OP_COUNTER_ADD)}
	var inv *InvalidArgumentError
	require.ErrorAs(t, d.one(op).Err, &inv)
	assert.Equal(t, "events[0].merge.event_type", inv.Field)
}

// TestStaleSingleHomeEventIsSupersededInAMergedStream: a single-home event
// of an era before the stream became merged (a lost home's tail that
// arrives late) is kept out of the merged stream, as superseded and queued
// for recovery, in whichever order it meets the merged events.
func TestStaleSingleHomeEventIsSupersededInAMergedStream(t *testing.T) {
	regions := []string{"eu", "us"}
	r := openMergedReplica(t, "eu", regions)
	// us ordered v1 under epoch 3, then the prefix went active-active at
	// epoch 9 and eu wrote merged events after having applied us:1.
	v1 := &meridianv1.Event{Entity: "cart/1", Version: 1, Id: eid(1), Type: "T", Data: []byte("v1"),
		Origin: &meridianv1.Dot{Region: "us", Seq: 1}, Hlc: &meridianv1.Hlc{WallNanos: testBase + 1}, Epoch: 3}
	require.Equal(t, 1, r.d.replicate(v1).Applied)
	op := aaop("cart/1", pev(2, "T", "aa"))
	op.Epoch = 9
	op.Deps = map[string]uint64{"us": 1}
	r.d.mustAppend(op)
	// us's tail, v2 under epoch 3, arrives afterwards.
	tail := &meridianv1.Event{Entity: "cart/1", Version: 2, Id: eid(3), Type: "T", Data: []byte("tail"),
		Origin: &meridianv1.Dot{Region: "us", Seq: 2}, Hlc: &meridianv1.Hlc{WallNanos: testBase + 2}, Epoch: 3, Deps: map[string]uint64{"us": 1}}
	res := r.d.replicate(tail)
	assert.Equal(t, 1, res.Applied)
	require.Len(t, res.Superseded, 1, "%+v", res)
	evs, head := fsmReadAll(t, r.f, "cart/1")
	assert.Equal(t, uint64(2), head, "the tail is not in the stream")
	assert.Equal(t, []string{"v1", "aa"}, []string{string(evs[0].GetData()), string(evs[1].GetData())})
	rec, err := r.f.Recoveries(10)
	require.NoError(t, err)
	require.Len(t, rec, 1, "queued for its entity's home to append again")
	assert.Equal(t, eid(3), rec[0].GetId())
}
