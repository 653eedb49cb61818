package crdt

import "github.com/meridiandb/meridian/causal"

// CounterOp adds Delta (positive or negative) to a PNCounter. Counter ops
// commute, so they need no causal context beyond their dot.
type CounterOp struct {
	Meta
	Delta int64
}

// PNCounter is an operation-based positive-negative counter. Increments and
// decrements are kept per origin region, so that two replica states can
// also be merged (pointwise maximum).
type PNCounter struct {
	seen causal.Vector
	inc  map[string]uint64
	dec  map[string]uint64
}

// NewPNCounter returns a zero counter.
func NewPNCounter() *PNCounter {
	return &PNCounter{seen: causal.Vector{}, inc: map[string]uint64{}, dec: map[string]uint64{}}
}

// Add prepares, at the origin, an op that adds delta. It does not change c:
// apply the op when its event is applied.
func (c *PNCounter) Add(m Meta, delta int64) CounterOp { return CounterOp{Meta: m, Delta: delta} }

// Apply applies op and reports whether it changed anything (false for a
// duplicate). Ops must be applied in a causal order.
func (c *PNCounter) Apply(op CounterOp) bool {
	if c.seen.CoversDot(op.Dot) {
		return false
	}
	c.seen.AddDot(op.Dot)
	if op.Delta >= 0 {
		c.inc[op.Dot.Region] += uint64(op.Delta)
	} else {
		c.dec[op.Dot.Region] += uint64(-(op.Delta + 1)) + 1 // no overflow at MinInt64
	}
	return true
}

// Value returns the sum of all applied deltas (wrapping on overflow).
func (c *PNCounter) Value() int64 {
	var v uint64
	for _, n := range c.inc {
		v += n
	}
	for _, n := range c.dec {
		v -= n
	}
	return int64(v)
}

// Context returns the dots applied so far, as a vector (a copy).
func (c *PNCounter) Context() causal.Vector { return c.seen.Clone() }

// Merge folds o's state into c: afterwards c reflects every op either had
// applied.
func (c *PNCounter) Merge(o *PNCounter) {
	c.seen.MergeFrom(o.seen)
	for r, n := range o.inc {
		c.inc[r] = max(c.inc[r], n)
	}
	for r, n := range o.dec {
		c.dec[r] = max(c.dec[r], n)
	}
}

// Clone returns an independent copy of c.
func (c *PNCounter) Clone() *PNCounter {
	d := NewPNCounter()
	d.Merge(c)
	return d
}
