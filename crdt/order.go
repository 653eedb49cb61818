package crdt

import (
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
	// the origin chain), and its own origin's previous event. Stored
	// flat: edges[k] = (from, to).
	type edge struct{ from, to int32 }
	edges := make([]edge, 0, 2*len(evs))
	indeg := make([]int32, len(evs))
	for i := range evs {
		e := &evs[i]
		if e.Dot.Seq > 0 && e.Deps[e.Dot.Region] >= e.Dot.Seq {
			return nil, fmt.Errorf("%w: %s depends on its own origin at %d", ErrCausalCycle, e.Dot, e.Deps[e.Dot.Region])
		}
		first := len(edges)
		add := func(p int) {
			for _, x := range edges[first:] {
				if x.from == int32(p) {
					return
				}
			}
			edges = append(edges, edge{int32(p), int32(i)})
			indeg[i]++
		}
		if p, ok := latestAtMost(e.Dot.Region, e.Dot.Seq-min(e.Dot.Seq, 1)); ok {
			add(p)
		}
		for r, s := range e.Deps {
			if r == e.Dot.Region {
				continue // covered by the origin chain
			}
			if p, ok := latestAtMost(r, s); ok {
				add(p)
			}
		}
	}
	// Successor lists in compressed form: succ[start[i]:start[i+1]].
	start := make([]int32, len(evs)+1)
	for _, x := range edges {
		start[x.from+1]++
	}
	for i := range evs {
		start[i+1] += start[i]
	}
	succ := make([]int32, len(edges))
	fill := append([]int32(nil), start[:len(evs)]...)
	for _, x := range edges {
		succ[fill[x.from]] = x.to
		fill[x.from]++
	}
	// Kahn's algorithm, always taking the least ready event by Meta.Compare.
	ready := readyHeap[T]{evs: evs}
	for i := range evs {
		if indeg[i] == 0 {
			ready.push(int32(i))
		}
	}
	out := make([]Event[T], 0, len(evs))
	for len(ready.idx) > 0 {
		i := ready.pop()
		out = append(out, evs[i])
		for _, j := range succ[start[i]:start[i+1]] {
			if indeg[j]--; indeg[j] == 0 {
				ready.push(j)
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

// readyHeap is a binary min-heap of event indices by Meta.Compare.
type readyHeap[T any] struct {
	evs []Event[T]
	idx []int32
}

func (h *readyHeap[T]) less(a, b int) bool {
	x, y := &h.evs[h.idx[a]], &h.evs[h.idx[b]]
	return x.meta().Compare(y.meta()) < 0
}

func (h *readyHeap[T]) push(i int32) {
	h.idx = append(h.idx, i)
	for c := len(h.idx) - 1; c > 0; {
		p := (c - 1) / 2
		if !h.less(c, p) {
			break
		}
		h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
		c = p
	}
}

func (h *readyHeap[T]) pop() int32 {
	top := h.idx[0]
	n := len(h.idx) - 1
	h.idx[0] = h.idx[n]
	h.idx = h.idx[:n]
	for p := 0; ; {
		c := 2*p + 1
		if c >= n {
			break
		}
		if c+1 < n && h.less(c+1, c) {
			c++
		}
		if !h.less(c, p) {
			break
		}
		h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
		p = c
	}
	return top
}
