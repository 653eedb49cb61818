package crdt

import (
	"container/heap"
	"fmt"
	"slices"

	"github.com/meridiandb/meridian/causal"
)

// Event is what Order needs to know about an event: its dot, its deps and
// its HLC, plus a payload carried along.
type Event[T any] struct {
	Dot     causal.Dot
	Deps    causal.Vector
	HLC     causal.Timestamp
	Payload T
}

func (e *Event[T]) meta() Meta { return Meta{Dot: e.Dot, HLC: e.HLC} }

// Order returns events in the deterministic total order of Meridian's
// active-active streams: it extends causal order (an event comes after its
// origin's earlier events and after everything its deps cover), and breaks
// ties between concurrent events by HLC, then region id, then sequence. The
// result depends only on the set of events, not on the input order, so every
// region computes the same order. Events with the same dot are kept once
// (the first). It returns ErrCausalCycle if deps are contradictory.
func Order[T any](events []Event[T]) ([]Event[T], error) {
	// Deduplicate by dot and index each origin's events by sequence.
	byDot := make(map[causal.Dot]int, len(events))
	evs := make([]Event[T], 0, len(events))
	origins := map[string][]int{} // region -> indices into evs, sorted by seq
	for _, e := range events {
		if _, dup := byDot[e.Dot]; dup {
			continue
		}
		byDot[e.Dot] = len(evs)
		origins[e.Dot.Region] = append(origins[e.Dot.Region], len(evs))
		evs = append(evs, e)
	}
	for _, idx := range origins {
		slices.SortFunc(idx, func(a, b int) int { return evs[a].Dot.Compare(evs[b].Dot) })
	}
	// latestAtMost returns the index of origin r's last event with seq <= s.
	latestAtMost := func(r string, s uint64) (int, bool) {
		idx := origins[r]
		i, _ := slices.BinarySearchFunc(idx, s+1, func(j int, t uint64) int {
			return cmpUint(evs[j].Dot.Seq, t)
		})
		if i == 0 {
			return 0, false
		}
		return idx[i-1], true
	}
	// Edges from each event's immediate predecessors: per region, the
	// latest event its deps cover (earlier ones precede that one through
	// the origin chain), and its own origin's previous event.
	succ := make([][]int, len(evs))
	indeg := make([]int, len(evs))
	addEdge := func(from, to int) {
		if slices.Contains(succ[from], to) {
			return
		}
		succ[from] = append(succ[from], to)
		indeg[to]++
	}
	for i := range evs {
		e := &evs[i]
		if p, ok := latestAtMost(e.Dot.Region, e.Dot.Seq-min(e.Dot.Seq, 1)); ok {
			addEdge(p, i)
		}
		for r, s := range e.Deps {
			if r == e.Dot.Region {
				continue // covered by the origin chain, or invalid (a cycle)
			}
			if p, ok := latestAtMost(r, s); ok {
				addEdge(p, i)
			}
		}
		if e.Deps[e.Dot.Region] >= e.Dot.Seq && e.Dot.Seq > 0 {
			return nil, fmt.Errorf("%w: %s depends on its own origin at %d", ErrCausalCycle, e.Dot, e.Deps[e.Dot.Region])
		}
	}
	// Kahn's algorithm, always taking the least ready event by Meta.Compare.
	ready := &readyHeap[T]{evs: evs}
	for i := range evs {
		if indeg[i] == 0 {
			ready.idx = append(ready.idx, i)
		}
	}
	heap.Init(ready)
	out := make([]Event[T], 0, len(evs))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, evs[i])
		for _, j := range succ[i] {
			if indeg[j]--; indeg[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	if len(out) != len(evs) {
		return nil, fmt.Errorf("%w: %d of %d events are on a cycle or after one", ErrCausalCycle, len(evs)-len(out), len(evs))
	}
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type readyHeap[T any] struct {
	evs []Event[T]
	idx []int
}

func (h *readyHeap[T]) Len() int { return len(h.idx) }
func (h *readyHeap[T]) Less(a, b int) bool {
	return h.evs[h.idx[a]].meta().Compare(h.evs[h.idx[b]].meta()) < 0
}
func (h *readyHeap[T]) Swap(a, b int) { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *readyHeap[T]) Push(x any)    { h.idx = append(h.idx, x.(int)) }
func (h *readyHeap[T]) Pop() any {
	n := len(h.idx) - 1
	x := h.idx[n]
	h.idx = h.idx[:n]
	return x
}
