package crdt

import "github.com/meridiandb/meridian/causal"

// RegisterOp writes Value to a register. Context is what the writer's
// replica had applied to this register when the op was prepared: the write
// replaces exactly those earlier writes, and no concurrent one.
type RegisterOp[V any] struct {
	Meta
	Context causal.Vector
	Value   V
}

// MVRegister is a multi-value register: it keeps every write that no later
// write has seen, so concurrent writes all survive until one write that saw
// them all replaces them.
type MVRegister[V any] struct {
	seen    causal.Vector
	entries dotted[V]
}

// NewMVRegister returns an empty register.
func NewMVRegister[V any]() *MVRegister[V] { return &MVRegister[V]{seen: causal.Vector{}} }

// Write prepares, at the origin, an op that writes v and replaces every
// write r holds now. It does not change r.
func (r *MVRegister[V]) Write(m Meta, v V) RegisterOp[V] {
	return RegisterOp[V]{Meta: m, Context: r.seen.Clone(), Value: v}
}

// Apply applies op and reports whether it changed anything (false for a
// duplicate). Ops must be applied in a causal order.
func (r *MVRegister[V]) Apply(op RegisterOp[V]) bool {
	if r.seen.CoversDot(op.Dot) {
		return false
	}
	r.seen.AddDot(op.Dot)
	r.entries = r.entries.without(op.Context).with(Versioned[V]{Meta: op.Meta, Value: op.Value})
	return true
}

// Values returns the concurrent values, ordered by Meta.Compare (HLC, then
// region): deterministic on every replica.
func (r *MVRegister[V]) Values() []V {
	vs := r.entries.ordered()
	out := make([]V, len(vs))
	for i, v := range vs {
		out[i] = v.Value
	}
	return out
}

// Entries returns the concurrent writes with their metadata, ordered by
// Meta.Compare.
func (r *MVRegister[V]) Entries() []Versioned[V] { return r.entries.ordered() }

// Context returns the dots applied so far (a copy).
func (r *MVRegister[V]) Context() causal.Vector { return r.seen.Clone() }

// Merge folds o's state into r.
func (r *MVRegister[V]) Merge(o *MVRegister[V]) {
	r.entries = mergeDotted(r.entries, r.seen, o.entries, o.seen)
	r.seen.MergeFrom(o.seen)
}

// Clone returns a copy of r (values are copied shallowly).
func (r *MVRegister[V]) Clone() *MVRegister[V] {
	return &MVRegister[V]{seen: r.seen.Clone(), entries: append(dotted[V](nil), r.entries...)}
}

// LWWRegister is a last-writer-wins register that discards nothing
// silently: it keeps concurrent writes like an MVRegister, reads the
// greatest by causal order then HLC then region id, and exposes the others
// as Losers for the conflict feed. A loser disappears only when a later
// write that saw it replaces it.
type LWWRegister[V any] struct {
	mv MVRegister[V]
}

// NewLWWRegister returns an empty register.
func NewLWWRegister[V any]() *LWWRegister[V] {
	return &LWWRegister[V]{mv: MVRegister[V]{seen: causal.Vector{}}}
}

// Write prepares, at the origin, an op that writes v (see MVRegister.Write).
func (r *LWWRegister[V]) Write(m Meta, v V) RegisterOp[V] { return r.mv.Write(m, v) }

// Apply applies op and reports whether it changed anything (false for a
// duplicate). Ops must be applied in a causal order.
func (r *LWWRegister[V]) Apply(op RegisterOp[V]) bool { return r.mv.Apply(op) }

// Get returns the winning write; ok is false if nothing was written.
func (r *LWWRegister[V]) Get() (w Versioned[V], ok bool) {
	i := r.mv.entries.winner()
	if i < 0 {
		return w, false
	}
	return r.mv.entries[i], true
}

// Value returns the winning value (the zero V if none).
func (r *LWWRegister[V]) Value() V {
	w, _ := r.Get()
	return w.Value
}

// Losers returns the concurrent writes that lost to the winner, ordered by
// Meta.Compare.
func (r *LWWRegister[V]) Losers() []Versioned[V] {
	all := r.mv.entries.ordered()
	if len(all) == 0 {
		return nil
	}
	return all[:len(all)-1]
}

// Context returns the dots applied so far (a copy).
func (r *LWWRegister[V]) Context() causal.Vector { return r.mv.Context() }

// Merge folds o's state into r.
func (r *LWWRegister[V]) Merge(o *LWWRegister[V]) { r.mv.Merge(&o.mv) }

// Clone returns a copy of r.
func (r *LWWRegister[V]) Clone() *LWWRegister[V] { return &LWWRegister[V]{mv: *r.mv.Clone()} }
