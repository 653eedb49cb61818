package clock

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/causal"
)

// The clock is what nodes read time through.
var _ causal.WallClock = (*Clock)(nil)

// fake is a controllable "real" time source.
type fake struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fake) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fake) pass(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestClock(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, c *Clock, real *fake)
	}{
		{"follows real time", func(t *testing.T, c *Clock, real *fake) {
			real.pass(time.Second)
			assert.Equal(t, epoch.Add(time.Second), c.Now())
			assert.Zero(t, c.Offset())
		}},
		{"skew ahead and behind", func(t *testing.T, c *Clock, real *fake) {
			c.Skew(250 * time.Millisecond)
			assert.Equal(t, epoch.Add(250*time.Millisecond), c.Now())
			real.pass(time.Second)
			assert.Equal(t, epoch.Add(1250*time.Millisecond), c.Now())
			c.Skew(-time.Second)
			assert.Equal(t, epoch, c.Now())
			assert.Equal(t, -time.Second, c.Offset())
		}},
		{"jump forward and back", func(t *testing.T, c *Clock, real *fake) {
			c.Jump(time.Hour)
			assert.Equal(t, epoch.Add(time.Hour), c.Now())
			c.Jump(-2 * time.Hour)
			assert.Equal(t, epoch.Add(-time.Hour), c.Now())
			real.pass(time.Minute)
			assert.Equal(t, epoch.Add(-59*time.Minute), c.Now())
		}},
		{"drift", func(t *testing.T, c *Clock, real *fake) {
			real.pass(time.Second)
			c.Drift(2)
			real.pass(time.Second)
			assert.Equal(t, epoch.Add(3*time.Second), c.Now())
			c.Skew(0)
			assert.Equal(t, epoch.Add(2*time.Second), c.Now())
			real.pass(time.Second)
			assert.Equal(t, epoch.Add(4*time.Second), c.Now(), "drift kept after skew")
		}},
		{"freeze advance unfreeze", func(t *testing.T, c *Clock, real *fake) {
			c.Freeze()
			real.pass(time.Second)
			assert.Equal(t, epoch, c.Now())
			c.Advance(10 * time.Millisecond)
			assert.Equal(t, epoch.Add(10*time.Millisecond), c.Now())
			c.Unfreeze()
			real.pass(time.Second)
			assert.Equal(t, epoch.Add(1010*time.Millisecond), c.Now())
		}},
		{"reset", func(t *testing.T, c *Clock, real *fake) {
			c.Skew(time.Hour)
			c.Drift(3)
			c.Freeze()
			c.Reset()
			real.pass(time.Second)
			assert.Equal(t, epoch.Add(time.Second), c.Now())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := &fake{t: epoch}
			c := newWith(real.now)
			tc.run(t, c, real)
		})
	}
}

func TestSystemClockAndSet(t *testing.T) {
	c := New()
	before := time.Now()
	now := c.Now()
	assert.WithinDuration(t, before, now, time.Second)
	c.Skew(time.Hour)
	assert.WithinDuration(t, time.Now().Add(time.Hour), c.Now(), time.Second)
	// No monotonic reading: differences see the skew, like wall clocks.
	assert.Greater(t, c.Now().Sub(now), 59*time.Minute)

	m := NewManual(epoch)
	assert.Equal(t, epoch, m.Now())
	m.Advance(time.Second)
	assert.Equal(t, epoch.Add(time.Second), m.Now())

	s := NewSet()
	require.Same(t, s.For("n1"), s.For("n1"))
	s.For("n1").Jump(time.Hour)
	assert.WithinDuration(t, time.Now(), s.For("n2").Now(), time.Second)
	s.ResetAll()
	assert.WithinDuration(t, time.Now(), s.For("n1").Now(), time.Second)
	assert.Panics(t, func() { c.Drift(0) })
}
