// Package clock is an injectable wall clock for Meridian's tests. A node
// reads time through a causal.WallClock; giving each node its own *Clock lets
// a test skew, drift, jump or freeze one node's clock, which the kernel
// cannot do to one process from outside.
//
// Guarantees (TestClock):
//   - with no fault set, Now follows the system clock;
//   - Skew sets a fixed offset, Jump adds to it (forward or backward), Drift
//     makes the clock run faster or slower from the moment it is set, Freeze
//     stops it and Advance moves a frozen (or manual) clock;
//   - Now never carries a monotonic reading, so durations computed from it
//     see the jumps, exactly like differences of wall-clock readings would.
//
// It does not make the Go runtime's timers (time.Sleep, time.After) follow the
// skewed clock: only code that reads time through the clock sees the fault.
package clock

import (
	"sync"
	"time"
)

// Clock is a wall clock with injectable faults. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	// real is the underlying time source.
	real func() time.Time
	// The clock reads anchor + (real() - realAnchor) * rate + offset, or
	// frozenAt when frozen.
	anchor     time.Time
	realAnchor time.Time
	rate       float64
	offset     time.Duration
	frozen     bool
	frozenAt   time.Time
}

// New returns a clock that follows the system clock until a fault is set.
func New() *Clock { return newWith(time.Now) }

// NewManual returns a frozen clock at start that moves only with Advance.
func NewManual(start time.Time) *Clock {
	c := newWith(time.Now)
	c.frozen, c.frozenAt = true, start.Round(0)
	return c
}

func newWith(real func() time.Time) *Clock {
	now := real()
	return &Clock{real: real, anchor: now, realAnchor: now, rate: 1}
}

// nowLocked returns the clock's reading; c.mu must be held.
func (c *Clock) nowLocked() time.Time {
	if c.frozen {
		return c.frozenAt
	}
	elapsed := c.real().Sub(c.realAnchor)
	if c.rate != 1 {
		elapsed = time.Duration(float64(elapsed) * c.rate)
	}
	return c.anchor.Add(elapsed).Add(c.offset).Round(0)
}

// Now returns the clock's current reading (implements causal.WallClock).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

// Offset returns how far the clock is from what it would read without faults
// (for a drifting clock, at this moment).
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked().Sub(c.real().Round(0))
}

// Skew sets the clock to read real time + d (d may be negative), keeping
// any drift rate.
func (c *Clock) Skew(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebaseLocked()
	c.offset = d - c.anchor.Sub(c.realAnchor)
}

// Jump moves the clock by d at once (an NTP step; negative jumps go back).
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.frozenAt = c.frozenAt.Add(d)
		return
	}
	c.offset += d
}

// Drift makes the clock advance rate seconds per real second from now on
// (1.001 gains 1 ms per second). Rate must be positive.
func (c *Clock) Drift(rate float64) {
	if rate <= 0 {
		panic("clock: drift rate must be positive")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebaseLocked()
	c.rate = rate
}

// Freeze stops the clock at its current reading.
func (c *Clock) Freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		c.frozenAt = c.nowLocked()
		c.frozen = true
	}
}

// Unfreeze lets a frozen clock run again from where it stopped (it stays
// behind real time by however long it was frozen, plus any Advance).
func (c *Clock) Unfreeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		return
	}
	now := c.real()
	c.anchor, c.realAnchor, c.offset, c.frozen = c.frozenAt, now, 0, false
}

// Advance moves a frozen clock forward by d; on a running clock it is Jump.
func (c *Clock) Advance(d time.Duration) { c.Jump(d) }

// Reset removes every fault: the clock follows the system clock again.
func (c *Clock) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.real()
	c.anchor, c.realAnchor, c.rate, c.offset, c.frozen = now, now, 1, 0, false
}

// rebaseLocked folds elapsed time at the current rate into the anchor, so a
// rate change applies from now on. c.mu must be held.
func (c *Clock) rebaseLocked() {
	if c.frozen {
		return
	}
	now := c.real()
	cur := c.nowLocked().Add(-c.offset)
	c.anchor, c.realAnchor = cur, now
}

// Set holds one clock per node, created on first use.
type Set struct {
	mu     sync.Mutex
	clocks map[string]*Clock
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{clocks: map[string]*Clock{}} }

// For returns node's clock.
func (s *Set) For(node string) *Clock {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clocks[node]
	if !ok {
		c = New()
		s.clocks[node] = c
	}
	return c
}

// ResetAll removes every fault from every clock.
func (s *Set) ResetAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clocks {
		c.Reset()
	}
}
