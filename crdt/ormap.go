package crdt

import (
	"cmp"
	"slices"

	"github.com/meridiandb/meridian/causal"
)

// MapOp puts Value at Key, or removes Key if Delete is set. Context is what
// the writer's replica had applied to the map when the op was prepared: the
// op replaces or removes exactly the writes of Key it had seen.
type MapOp[K cmp.Ordered, V any] struct {
	Meta
	Context causal.Vector
	Key     K
	Value   V
	Delete  bool
}

// ORMap is an observed-remove map of multi-value registers. A key is present
// while it holds a write that no delete has seen, so a put concurrent with a
// delete wins (add-wins). Each key's value is a register: Get reads it
// last-writer-wins, Values reads all concurrent writes.
type ORMap[K cmp.Ordered, V any] struct {
	seen    causal.Vector
	entries map[K]dotted[V]
}

// NewORMap returns an empty map.
func NewORMap[K cmp.Ordered, V any]() *ORMap[K, V] {
	return &ORMap[K, V]{seen: causal.Vector{}, entries: map[K]dotted[V]{}}
}

// Put prepares, at the origin, an op that writes v at k. It does not change m.
func (m *ORMap[K, V]) Put(meta Meta, k K, v V) MapOp[K, V] {
	return MapOp[K, V]{Meta: meta, Context: m.seen.Clone(), Key: k, Value: v}
}

// Delete prepares, at the origin, an op that removes k as far as this
// replica has seen it. It does not change m.
func (m *ORMap[K, V]) Delete(meta Meta, k K) MapOp[K, V] {
	return MapOp[K, V]{Meta: meta, Context: m.seen.Clone(), Key: k, Delete: true}
}

// Apply applies op and reports whether it changed anything (false for a
// duplicate). Ops must be applied in a causal order.
func (m *ORMap[K, V]) Apply(op MapOp[K, V]) bool {
	if m.seen.CoversDot(op.Dot) {
		return false
	}
	m.seen.AddDot(op.Dot)
	e := m.entries[op.Key].without(op.Context)
	if !op.Delete {
		e = e.with(Versioned[V]{Meta: op.Meta, Value: op.Value})
	}
	if len(e) == 0 {
		delete(m.entries, op.Key)
	} else {
		m.entries[op.Key] = e
	}
	return true
}

// Get returns k's value, last-writer-wins among concurrent writes.
func (m *ORMap[K, V]) Get(k K) (v V, ok bool) {
	e := m.entries[k]
	if i := e.winner(); i >= 0 {
		return e[i].Value, true
	}
	return v, false
}

// Values returns k's concurrent writes ordered by Meta.Compare (the LWW
// winner last); more than one means a conflict.
func (m *ORMap[K, V]) Values(k K) []Versioned[V] { return m.entries[k].ordered() }

// Has reports whether k is present.
func (m *ORMap[K, V]) Has(k K) bool { return len(m.entries[k]) > 0 }

// Keys returns the present keys, sorted.
func (m *ORMap[K, V]) Keys() []K {
	ks := make([]K, 0, len(m.entries))
	for k := range m.entries {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Len returns the number of present keys.
func (m *ORMap[K, V]) Len() int { return len(m.entries) }

// Context returns the dots applied so far (a copy).
func (m *ORMap[K, V]) Context() causal.Vector { return m.seen.Clone() }

// Merge folds o's state into m.
func (m *ORMap[K, V]) Merge(o *ORMap[K, V]) {
	for k, oe := range o.entries {
		if e := mergeDotted(m.entries[k], m.seen, oe, o.seen); len(e) > 0 {
			m.entries[k] = e
		} else {
			delete(m.entries, k)
		}
	}
	for k, e := range m.entries {
		if _, ok := o.entries[k]; !ok {
			if e = mergeDotted(e, m.seen, nil, o.seen); len(e) > 0 {
				m.entries[k] = e
			} else {
				delete(m.entries, k)
			}
		}
	}
	m.seen.MergeFrom(o.seen)
}

// Clone returns a copy of m (values are copied shallowly).
func (m *ORMap[K, V]) Clone() *ORMap[K, V] {
	c := &ORMap[K, V]{seen: m.seen.Clone(), entries: make(map[K]dotted[V], len(m.entries))}
	for k, e := range m.entries {
		c.entries[k] = append(dotted[V](nil), e...)
	}
	return c
}

// SetOp adds Elem to an ORSet, or removes it if Remove is set. Context is as
// for MapOp.
type SetOp[E cmp.Ordered] struct {
	Meta
	Context causal.Vector
	Elem    E
	Remove  bool
}

// ORSet is an observed-remove set with add-wins semantics: a remove takes
// away only the adds its author had seen, so an add concurrent with a remove
// survives. It is an ORMap with empty values.
type ORSet[E cmp.Ordered] struct {
	m ORMap[E, struct{}]
}

// NewORSet returns an empty set.
func NewORSet[E cmp.Ordered]() *ORSet[E] { return &ORSet[E]{m: *NewORMap[E, struct{}]()} }

// Add prepares, at the origin, an op that adds e. It does not change s.
func (s *ORSet[E]) Add(meta Meta, e E) SetOp[E] {
	return SetOp[E]{Meta: meta, Context: s.m.seen.Clone(), Elem: e}
}

// Remove prepares, at the origin, an op that removes e as far as this
// replica has seen it. It does not change s.
func (s *ORSet[E]) Remove(meta Meta, e E) SetOp[E] {
	return SetOp[E]{Meta: meta, Context: s.m.seen.Clone(), Elem: e, Remove: true}
}

// Apply applies op and reports whether it changed anything (false for a
// duplicate). Ops must be applied in a causal order.
func (s *ORSet[E]) Apply(op SetOp[E]) bool {
	return s.m.Apply(MapOp[E, struct{}]{Meta: op.Meta, Context: op.Context, Key: op.Elem, Delete: op.Remove})
}

// Has reports whether e is in the set.
func (s *ORSet[E]) Has(e E) bool { return s.m.Has(e) }

// Elements returns the members, sorted.
func (s *ORSet[E]) Elements() []E { return s.m.Keys() }

// Len returns the number of members.
func (s *ORSet[E]) Len() int { return s.m.Len() }

// Context returns the dots applied so far (a copy).
func (s *ORSet[E]) Context() causal.Vector { return s.m.Context() }

// Merge folds o's state into s.
func (s *ORSet[E]) Merge(o *ORSet[E]) { s.m.Merge(&o.m) }

// Clone returns a copy of s.
func (s *ORSet[E]) Clone() *ORSet[E] { return &ORSet[E]{m: *s.m.Clone()} }
