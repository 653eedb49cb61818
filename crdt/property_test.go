package crdt

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridiandb/meridian/causal"
	"pgregory.net/rapid"
)

// Property tests. Each rapid.Check runs propertyChecks cases (main_test.go);
// rapid prints the seed of a failing case and -rapid.seed=S replays it.
//
// A case simulates replicas in regions a, b and c. At random steps a
// replica prepares an op from its own state and applies it, or receives an
// op from another replica: any op whose causal past it has applied, or a
// duplicate. Origin sequences have random gaps (other entities' events) and
// wall clocks jump both ways.

var simRegions = []string{"a", "b", "c"}

// model adapts one CRDT type to the simulation.
type model[S, O any] struct {
	fresh   func() S
	clone   func(S) S
	prepare func(t *rapid.T, s S, m Meta) O
	apply   func(S, O) bool
	merge   func(into, from S)
	canon   func(S) string
}

type simOp[O any] struct {
	op    O
	meta  Meta
	preds []int // ops applied at the origin when it prepared this one
}

type replica[S any] struct {
	state   S
	applied []bool
	hlc     *causal.HLC
	clock   *stepClock
}

type stepClock struct{ nanos int64 }

func (c *stepClock) Now() time.Time { return time.Unix(0, c.nanos) }

type sim[S, O any] struct {
	m    model[S, O]
	ops  []simOp[O]
	reps []*replica[S]
	seq  map[string]uint64
}

func newSim[S, O any](m model[S, O]) *sim[S, O] {
	s := &sim[S, O]{m: m, seq: map[string]uint64{}}
	for range simRegions {
		clk := &stepClock{nanos: 100}
		s.reps = append(s.reps, &replica[S]{state: m.fresh(), hlc: causal.NewHLC(clk, 0), clock: clk})
	}
	return s
}

func (s *sim[S, O]) ready(r *replica[S], i int) bool {
	if i < len(r.applied) && r.applied[i] {
		return false
	}
	for _, p := range s.ops[i].preds {
		if p >= len(r.applied) || !r.applied[p] {
			return false
		}
	}
	return true
}

func (s *sim[S, O]) markApplied(r *replica[S], i int) {
	for len(r.applied) <= i {
		r.applied = append(r.applied, false)
	}
	r.applied[i] = true
}

func (s *sim[S, O]) generate(t *rapid.T, ri int) {
	r := s.reps[ri]
	region := simRegions[ri]
	r.clock.nanos += int64(rapid.IntRange(-3, 3).Draw(t, "clock"))
	s.seq[region] += uint64(rapid.IntRange(1, 3).Draw(t, "gap"))
	meta := Meta{Dot: causal.Dot{Region: region, Seq: s.seq[region]}, HLC: r.hlc.Now()}
	op := s.m.prepare(t, r.state, meta)
	var preds []int
	for i, ok := range r.applied {
		if ok {
			preds = append(preds, i)
		}
	}
	s.ops = append(s.ops, simOp[O]{op: op, meta: meta, preds: preds})
	if !s.m.apply(r.state, op) {
		t.Fatalf("fresh op %s reported as duplicate", meta.Dot)
	}
	s.markApplied(r, len(s.ops)-1)
}

// deliver gives replica ri one ready op, or a duplicate; it checks that
// two ready (hence concurrent) ops commute and that duplicates change
// nothing. It returns false if there was nothing to deliver.
func (s *sim[S, O]) deliver(t *rapid.T, ri int, dupOK bool) bool {
	r := s.reps[ri]
	var ready, done []int
	for i := range s.ops {
		if s.ready(r, i) {
			ready = append(ready, i)
		} else if i < len(r.applied) && r.applied[i] {
			done = append(done, i)
		}
	}
	if dupOK && len(done) > 0 && rapid.IntRange(0, 3).Draw(t, "dup?") == 0 {
		i := rapid.SampledFrom(done).Draw(t, "dup")
		before := s.m.canon(r.state)
		if s.m.apply(r.state, s.ops[i].op) {
			t.Fatalf("duplicate %s applied again", s.ops[i].meta.Dot)
		}
		if after := s.m.canon(r.state); after != before {
			t.Fatalf("duplicate %s changed state:\n%s\n%s", s.ops[i].meta.Dot, before, after)
		}
		return true
	}
	if len(ready) == 0 {
		return false
	}
	i := rapid.SampledFrom(ready).Draw(t, "deliver")
	if len(ready) > 1 {
		j := rapid.SampledFrom(ready).Draw(t, "other")
		if j != i {
			ab, ba := s.m.clone(r.state), s.m.clone(r.state)
			s.m.apply(ab, s.ops[i].op)
			s.m.apply(ab, s.ops[j].op)
			s.m.apply(ba, s.ops[j].op)
			s.m.apply(ba, s.ops[i].op)
			if x, y := s.m.canon(ab), s.m.canon(ba); x != y {
				t.Fatalf("concurrent %s and %s do not commute:\n%s\n%s", s.ops[i].meta.Dot, s.ops[j].meta.Dot, x, y)
			}
		}
	}
	if _, err := r.hlc.Update(s.ops[i].meta.HLC); err != nil {
		t.Fatal(err)
	}
	if !s.m.apply(r.state, s.ops[i].op) {
		t.Fatalf("new op %s reported as duplicate", s.ops[i].meta.Dot)
	}
	s.markApplied(r, i)
	return true
}

// run performs a random prefix of generate/deliver steps.
func (s *sim[S, O]) run(t *rapid.T) {
	steps := rapid.IntRange(0, 14).Draw(t, "steps")
	for range steps {
		ri := rapid.IntRange(0, len(s.reps)-1).Draw(t, "replica")
		if rapid.Bool().Draw(t, "generate") || !s.deliver(t, ri, true) {
			s.generate(t, ri)
		}
	}
}

// reference applies the ops with the given indices in generation order (a
// causal order) to a fresh state.
func (s *sim[S, O]) reference(include func(int) bool) S {
	st := s.m.fresh()
	for i, op := range s.ops {
		if include(i) {
			s.m.apply(st, op.op)
		}
	}
	return st
}

func checkConverges[S, O any](t *testing.T, m model[S, O]) { rapid.Check(t, propConverges(m)) }

// FuzzORMapConverges runs the convergence property of the richest type
// under the fuzzer.
func FuzzORMapConverges(f *testing.F) { f.Fuzz(rapid.MakeFuzz(propConverges(ormapModel))) }

func propConverges[S, O any](m model[S, O]) func(*rapid.T) {
	return func(t *rapid.T) {
		s := newSim(m)
		s.run(t)
		for ri := range s.reps {
			for s.deliver(t, ri, false) {
			}
		}
		want := s.m.canon(s.reference(func(int) bool { return true }))
		for ri, r := range s.reps {
			if got := s.m.canon(r.state); got != want {
				t.Fatalf("replica %s diverged after %d ops:\n got %s\nwant %s", simRegions[ri], len(s.ops), got, want)
			}
		}
	}
}

func checkMergeLaws[S, O any](t *testing.T, m model[S, O]) {
	rapid.Check(t, func(t *rapid.T) {
		s := newSim(m)
		s.run(t)
		a, b, c := s.reps[0].state, s.reps[1].state, s.reps[2].state
		merged := func(xs ...S) S {
			out := m.clone(xs[0])
			for _, x := range xs[1:] {
				m.merge(out, x)
			}
			return out
		}
		if x, y := m.canon(merged(a, b)), m.canon(merged(b, a)); x != y {
			t.Fatalf("merge not commutative:\n%s\n%s", x, y)
		}
		if x, y := m.canon(merged(merged(a, b), c)), m.canon(merged(a, merged(b, c))); x != y {
			t.Fatalf("merge not associative:\n%s\n%s", x, y)
		}
		if x, y := m.canon(merged(a, a)), m.canon(a); x != y {
			t.Fatalf("merge not idempotent:\n%s\n%s", x, y)
		}
		union := s.reference(func(i int) bool {
			for _, r := range s.reps[:2] {
				if i < len(r.applied) && r.applied[i] {
					return true
				}
			}
			return false
		})
		if x, y := m.canon(merged(a, b)), m.canon(union); x != y {
			t.Fatalf("merge differs from applying the union of ops:\n%s\n%s", x, y)
		}
	})
}

func canonVec(v causal.Vector) string { return v.String() }

var counterModel = model[*PNCounter, CounterOp]{
	fresh: NewPNCounter,
	clone: (*PNCounter).Clone,
	prepare: func(t *rapid.T, s *PNCounter, m Meta) CounterOp {
		return s.Add(m, int64(rapid.IntRange(-3, 3).Draw(t, "delta")))
	},
	apply: (*PNCounter).Apply,
	merge: (*PNCounter).Merge,
	canon: func(s *PNCounter) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%d %s", s.Value(), canonVec(s.seen))
		for _, r := range simRegions {
			fmt.Fprintf(&b, " %s+%d-%d", r, s.inc[r], s.dec[r])
		}
		return b.String()
	},
}

var orsetModel = model[*ORSet[int], SetOp[int]]{
	fresh: NewORSet[int],
	clone: (*ORSet[int]).Clone,
	prepare: func(t *rapid.T, s *ORSet[int], m Meta) SetOp[int] {
		e := rapid.IntRange(0, 2).Draw(t, "elem")
		if rapid.Bool().Draw(t, "remove") {
			return s.Remove(m, e)
		}
		return s.Add(m, e)
	},
	apply: (*ORSet[int]).Apply,
	merge: (*ORSet[int]).Merge,
	canon: func(s *ORSet[int]) string { return canonMap(&s.m) },
}

var mvModel = model[*MVRegister[int], RegisterOp[int]]{
	fresh: NewMVRegister[int],
	clone: (*MVRegister[int]).Clone,
	prepare: func(t *rapid.T, s *MVRegister[int], m Meta) RegisterOp[int] {
		return s.Write(m, rapid.IntRange(0, 3).Draw(t, "value"))
	},
	apply: (*MVRegister[int]).Apply,
	merge: (*MVRegister[int]).Merge,
	canon: func(s *MVRegister[int]) string {
		return fmt.Sprintf("%s %v %v", canonVec(s.seen), s.entries, s.Values())
	},
}

var lwwModel = model[*LWWRegister[int], RegisterOp[int]]{
	fresh: NewLWWRegister[int],
	clone: (*LWWRegister[int]).Clone,
	prepare: func(t *rapid.T, s *LWWRegister[int], m Meta) RegisterOp[int] {
		return s.Write(m, rapid.IntRange(0, 3).Draw(t, "value"))
	},
	apply: (*LWWRegister[int]).Apply,
	merge: (*LWWRegister[int]).Merge,
	canon: func(s *LWWRegister[int]) string {
		w, ok := s.Get()
		return fmt.Sprintf("%s %v %v winner=%v,%v losers=%v", canonVec(s.mv.seen), s.mv.entries, s.Value(), w, ok, s.Losers())
	},
}

var ormapModel = model[*ORMap[int, int], MapOp[int, int]]{
	fresh: NewORMap[int, int],
	clone: (*ORMap[int, int]).Clone,
	prepare: func(t *rapid.T, s *ORMap[int, int], m Meta) MapOp[int, int] {
		k := rapid.IntRange(0, 2).Draw(t, "key")
		if rapid.IntRange(0, 2).Draw(t, "delete?") == 0 {
			return s.Delete(m, k)
		}
		return s.Put(m, k, rapid.IntRange(0, 3).Draw(t, "value"))
	},
	apply: (*ORMap[int, int]).Apply,
	merge: (*ORMap[int, int]).Merge,
	canon: canonMap[int, int],
}

func canonMap[K interface{ ~int }, V any](m *ORMap[K, V]) string {
	var b strings.Builder
	b.WriteString(canonVec(m.seen))
	for _, k := range m.Keys() {
		v, _ := m.Get(k)
		fmt.Fprintf(&b, " %v=%v%v", k, v, m.entries[k])
	}
	return b.String()
}

func TestPropPNCounterConverges(t *testing.T)   { checkConverges(t, counterModel) }
func TestPropPNCounterMergeLaws(t *testing.T)   { checkMergeLaws(t, counterModel) }
func TestPropORSetConverges(t *testing.T)       { checkConverges(t, orsetModel) }
func TestPropORSetMergeLaws(t *testing.T)       { checkMergeLaws(t, orsetModel) }
func TestPropMVRegisterConverges(t *testing.T)  { checkConverges(t, mvModel) }
func TestPropMVRegisterMergeLaws(t *testing.T)  { checkMergeLaws(t, mvModel) }
func TestPropLWWRegisterConverges(t *testing.T) { checkConverges(t, lwwModel) }
func TestPropLWWRegisterMergeLaws(t *testing.T) { checkMergeLaws(t, lwwModel) }
func TestPropORMapConverges(t *testing.T)       { checkConverges(t, ormapModel) }
func TestPropORMapMergeLaws(t *testing.T)       { checkMergeLaws(t, ormapModel) }

// TestPropOrderIsDeterministicLinearExtension: Order gives the same result
// for any input permutation (with duplicates), and every event comes after
// its whole causal past, even when HLCs disagree with causality.
func TestPropOrderIsDeterministicLinearExtension(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newSim(counterModel)
		s.run(t)
		evs := make([]Event[int], len(s.ops))
		for i, op := range s.ops {
			deps := causal.Vector{}
			for _, p := range op.preds {
				deps.AddDot(s.ops[p].meta.Dot)
			}
			// HLCs drawn at random, not causally consistent, so that only
			// Order's edges can put causes first.
			hlc := causal.Timestamp{WallNanos: rapid.Int64Range(0, 3).Draw(t, "hlc")}
			evs[i] = Event[int]{Dot: op.meta.Dot, Deps: deps, HLC: hlc, Payload: i}
		}
		in := rapid.Permutation(evs).Draw(t, "perm")
		if len(evs) > 0 {
			in = append(in, evs[rapid.IntRange(0, len(evs)-1).Draw(t, "dup")])
		}
		a, err := Order(evs)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Order(in)
		if err != nil {
			t.Fatal(err)
		}
		pos := make([]int, len(evs))
		for i := range a {
			if a[i].Dot != b[i].Dot {
				t.Fatalf("order depends on input order at %d: %s vs %s", i, a[i].Dot, b[i].Dot)
			}
			pos[a[i].Payload] = i
		}
		if len(a) != len(evs) || len(b) != len(evs) {
			t.Fatalf("got %d and %d events, want %d", len(a), len(b), len(evs))
		}
		for i, op := range s.ops {
			for _, p := range op.preds {
				if pos[p] > pos[i] {
					t.Fatalf("%s ordered before its cause %s", op.meta.Dot, s.ops[p].meta.Dot)
				}
			}
		}
	})
}

// TestPropLWWWinnerIsLastInOrder: when HLCs are causally consistent (as
// Meridian keeps them: every region updates its HLC with each event it
// applies), the LWW winner is the last write of the deterministic Order, so
// replaying the stream in Order and keeping the last write agrees with
// LWWRegister.
func TestPropLWWWinnerIsLastInOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newSim(lwwModel)
		s.run(t)
		for s.deliver(t, 0, false) {
		}
		w, ok := s.reps[0].state.Get()
		if !ok {
			if len(s.ops) != 0 {
				t.Fatalf("no winner after %d writes", len(s.ops))
			}
			return
		}
		evs := make([]Event[int], len(s.ops))
		for i, op := range s.ops {
			deps := causal.Vector{}
			for _, p := range op.preds {
				deps.AddDot(s.ops[p].meta.Dot)
			}
			evs[i] = Event[int]{Dot: op.meta.Dot, Deps: deps, HLC: op.meta.HLC, Payload: i}
		}
		ordered, err := Order(evs)
		if err != nil {
			t.Fatal(err)
		}
		if last := ordered[len(ordered)-1]; last.Dot != w.Dot {
			t.Fatalf("LWW winner %s, last in Order %s", w.Dot, last.Dot)
		}
	})
}
