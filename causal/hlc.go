package causal

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Timestamp is a hybrid logical clock reading: wall time in nanoseconds since
// the Unix epoch, and a logical counter that orders readings sharing a wall time.
type Timestamp struct {
	WallNanos int64
	Logical   uint32
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u
// (wall time first, then the logical counter).
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.WallNanos < u.WallNanos:
		return -1
	case t.WallNanos > u.WallNanos:
		return 1
	case t.Logical < u.Logical:
		return -1
	case t.Logical > u.Logical:
		return 1
	}
	return 0
}

// Less reports whether t is strictly before u.
func (t Timestamp) Less(u Timestamp) bool { return t.Compare(u) < 0 }

// IsZero reports whether t is the zero timestamp.
func (t Timestamp) IsZero() bool { return t.WallNanos == 0 && t.Logical == 0 }

// Time returns the wall-time part as a time.Time (UTC).
func (t Timestamp) Time() time.Time { return time.Unix(0, t.WallNanos).UTC() }

// String formats t as wall nanoseconds and logical counter, "1700000000000000000.3".
func (t Timestamp) String() string { return fmt.Sprintf("%d.%d", t.WallNanos, t.Logical) }

// next returns the smallest timestamp strictly after t.
func (t Timestamp) next() Timestamp {
	if t.Logical == math.MaxUint32 {
		return Timestamp{WallNanos: t.WallNanos + 1}
	}
	return Timestamp{WallNanos: t.WallNanos, Logical: t.Logical + 1}
}

// WallClock is the source of physical time. Tests inject a manual clock.
type WallClock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the WallClock backed by time.Now.
var SystemClock WallClock = systemClock{}

// HLC is a hybrid logical clock (Kulkarni et al., 2014). Every reading is
// strictly greater than every earlier reading of the same HLC and than every
// remote timestamp passed to Update, whatever the wall clock does. It is safe
// for concurrent use.
type HLC struct {
	clock     WallClock
	maxOffset time.Duration

	mu   sync.Mutex
	last Timestamp
}

// NewHLC returns a clock reading wall time from clock (nil means the system
// clock). A remote timestamp more than maxOffset ahead of the local wall time
// is rejected by Update; maxOffset <= 0 disables that check.
func NewHLC(clock WallClock, maxOffset time.Duration) *HLC {
	if clock == nil {
		clock = SystemClock
	}
	return &HLC{clock: clock, maxOffset: maxOffset}
}

// MaxOffset returns the configured maximum clock offset.
func (c *HLC) MaxOffset() time.Duration { return c.maxOffset }

// Now returns a timestamp strictly greater than any this clock returned or
// received before. When the wall clock jumps backwards, the wall part stays
// and the logical counter advances.
func (c *HLC) Now() Timestamp {
	pt := c.clock.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.last.WallNanos {
		c.last = Timestamp{WallNanos: pt}
	} else {
		c.last = c.last.next()
	}
	return c.last
}

// Last returns the latest timestamp issued or received, without advancing.
func (c *HLC) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Update merges a timestamp received from another node and returns a new
// local timestamp strictly greater than both remote and every earlier
// reading. If remote is more than the maximum offset ahead of the local wall
// clock, Update returns an error wrapping ErrClockOffset and leaves the clock
// unchanged.
func (c *HLC) Update(remote Timestamp) (Timestamp, error) {
	pt := c.clock.Now().UnixNano()
	// The difference of two int64s fits in a uint64 when remote > pt.
	if ahead := uint64(remote.WallNanos) - uint64(pt); c.maxOffset > 0 && remote.WallNanos > pt && ahead > uint64(c.maxOffset) {
		return Timestamp{}, fmt.Errorf("%w: remote %s is %s ahead of local wall time, max %s",
			ErrClockOffset, remote, durationString(ahead), c.maxOffset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.last.WallNanos && pt > remote.WallNanos:
		c.last = Timestamp{WallNanos: pt}
	case remote.Compare(c.last) > 0:
		c.last = remote.next()
	default:
		c.last = c.last.next()
	}
	return c.last, nil
}

// durationString formats nanoseconds that may exceed time.Duration's range.
func durationString(n uint64) string {
	if n > math.MaxInt64 {
		return fmt.Sprintf("%dns", n)
	}
	return time.Duration(n).String()
}
