package crdt

import (
	"github.com/meridiandb/meridian/causal"
)

// Meta identifies the event that carries an op: its dot, and the HLC the
// origin stamped on it. Every op has one.
type Meta struct {
	Dot causal.Dot
	HLC causal.Timestamp
}

// Compare is the deterministic tiebreak between concurrent events: HLC, then
// region id, then sequence. It returns -1, 0 or +1. It is only meaningful
// between events that are not causally ordered; Order applies causal order
// first.
func (m Meta) Compare(o Meta) int {
	if c := m.HLC.Compare(o.HLC); c != 0 {
		return c
	}
	return m.Dot.Compare(o.Dot)
}

// Versioned is a value with the meta of the op that wrote it.
type Versioned[V any] struct {
	Meta
	Value V
}

// dotted is a set of versioned values, sorted by dot: the concurrent writes
// of a register or of a map key. It is kept sorted so that equal states have
// equal representations.
type dotted[V any] []Versioned[V]

// without returns s minus the entries whose dot ctx covers (the writes the
// op's author had seen). It reuses s's backing array.
func (s dotted[V]) without(ctx causal.Vector) dotted[V] {
	out := s[:0]
	for _, e := range s {
		if !ctx.CoversDot(e.Dot) {
			out = append(out, e)
		}
	}
	clear(s[len(out):])
	return out
}

// with inserts e keeping s sorted by dot.
func (s dotted[V]) with(e Versioned[V]) dotted[V] {
	i := len(s)
	for i > 0 && s[i-1].Dot.Compare(e.Dot) > 0 {
		i--
	}
	s = append(s, Versioned[V]{})
	copy(s[i+1:], s[i:])
	s[i] = e
	return s
}

// mergeDotted is the state merge of two dotted sets whose owners have seen
// aSeen and bSeen: an entry survives if both have it, or if the side without
// it has not seen its dot (so it did not remove it, it just has not got it).
func mergeDotted[V any](a dotted[V], aSeen causal.Vector, b dotted[V], bSeen causal.Vector) dotted[V] {
	out := make(dotted[V], 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Dot.Compare(b[j].Dot) < 0):
			if !bSeen.CoversDot(a[i].Dot) {
				out = append(out, a[i])
			}
			i++
		case i == len(a) || a[i].Dot.Compare(b[j].Dot) > 0:
			if !aSeen.CoversDot(b[j].Dot) {
				out = append(out, b[j])
			}
			j++
		default: // same dot: same write
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// winner returns the index of the greatest entry by Meta.Compare (-1 if empty).
func (s dotted[V]) winner() int {
	w := -1
	for i := range s {
		if w < 0 || s[i].Meta.Compare(s[w].Meta) > 0 {
			w = i
		}
	}
	return w
}

// ordered returns a copy of s sorted by Meta.Compare ascending (so the LWW
// winner is last).
func (s dotted[V]) ordered() []Versioned[V] {
	out := make([]Versioned[V], len(s))
	copy(out, s)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Meta.Compare(out[j-1].Meta) < 0; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
