package causal

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// manualClock is a WallClock under test control.
type manualClock struct{ nanos atomic.Int64 }

func newManualClock(nanos int64) *manualClock {
	c := &manualClock{}
	c.nanos.Store(nanos)
	return c
}

func (c *manualClock) Now() time.Time      { return time.Unix(0, c.nanos.Load()) }
func (c *manualClock) Set(nanos int64)     { c.nanos.Store(nanos) }
func (c *manualClock) Add(d time.Duration) { c.nanos.Add(int64(d)) }

func TestTimestampCompare(t *testing.T) {
	cases := []struct {
		name string
		a, b Timestamp
		want int
	}{
		{"equal", Timestamp{5, 1}, Timestamp{5, 1}, 0},
		{"wall before", Timestamp{4, 9}, Timestamp{5, 0}, -1},
		{"wall after", Timestamp{6, 0}, Timestamp{5, 9}, 1},
		{"logical before", Timestamp{5, 1}, Timestamp{5, 2}, -1},
		{"logical after", Timestamp{5, 3}, Timestamp{5, 2}, 1},
		{"zero", Timestamp{}, Timestamp{}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.a.Compare(tc.b))
			assert.Equal(t, -tc.want, tc.b.Compare(tc.a))
			assert.Equal(t, tc.want < 0, tc.a.Less(tc.b))
		})
	}
	assert.True(t, Timestamp{}.IsZero())
	assert.False(t, Timestamp{Logical: 1}.IsZero())
	assert.Equal(t, "5.1", Timestamp{5, 1}.String())
}

func TestHLCNowFollowsWallClock(t *testing.T) {
	clk := newManualClock(1000)
	c := NewHLC(clk, time.Second)
	require.Equal(t, Timestamp{1000, 0}, c.Now())
	require.Equal(t, Timestamp{1000, 1}, c.Now(), "same wall time: logical advances")
	clk.Set(2000)
	require.Equal(t, Timestamp{2000, 0}, c.Now(), "wall advanced: logical resets")
}

func TestHLCBackwardWallJump(t *testing.T) {
	clk := newManualClock(10_000)
	c := NewHLC(clk, time.Second)
	first := c.Now()
	clk.Set(5_000) // wall clock jumps back
	prev := first
	for range 100 {
		ts := c.Now()
		require.Equal(t, 1, ts.Compare(prev), "monotonic after backward jump")
		require.Equal(t, first.WallNanos, ts.WallNanos, "wall part holds")
		prev = ts
	}
	clk.Set(20_000)
	require.Equal(t, Timestamp{20_000, 0}, c.Now(), "catches up once wall passes")
}

func TestHLCLogicalOverflowCarriesIntoWall(t *testing.T) {
	c := NewHLC(newManualClock(1), 0)
	c.last = Timestamp{WallNanos: 7, Logical: ^uint32(0)}
	require.Equal(t, Timestamp{8, 0}, c.Now())
}

func TestHLCUpdate(t *testing.T) {
	cases := []struct {
		name   string
		wall   int64
		last   Timestamp
		remote Timestamp
		want   Timestamp
	}{
		{"wall ahead of both", 100, Timestamp{50, 3}, Timestamp{60, 9}, Timestamp{100, 0}},
		{"remote ahead", 100, Timestamp{50, 3}, Timestamp{150, 9}, Timestamp{150, 10}},
		{"last ahead", 100, Timestamp{200, 3}, Timestamp{150, 9}, Timestamp{200, 4}},
		{"remote equals last wall, higher logical", 100, Timestamp{200, 3}, Timestamp{200, 9}, Timestamp{200, 10}},
		{"remote equals last", 100, Timestamp{200, 3}, Timestamp{200, 3}, Timestamp{200, 4}},
		{"remote equals wall", 100, Timestamp{50, 3}, Timestamp{100, 2}, Timestamp{100, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewHLC(newManualClock(tc.wall), time.Hour)
			c.last = tc.last
			got, err := c.Update(tc.remote)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, 1, got.Compare(tc.remote))
			require.Equal(t, 1, got.Compare(tc.last))
			require.Equal(t, 1, c.Now().Compare(got))
		})
	}
}

func TestHLCUpdateRejectsFarFuture(t *testing.T) {
	clk := newManualClock(int64(time.Hour))
	c := NewHLC(clk, 500*time.Millisecond)
	before := c.Now()

	far := Timestamp{WallNanos: int64(time.Hour + time.Second)}
	_, err := c.Update(far)
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrClockOffset))
	require.Contains(t, err.Error(), "1s ahead")
	require.Contains(t, err.Error(), "max 500ms")
	require.Equal(t, before, c.Last(), "rejected update leaves the clock alone")

	ok := Timestamp{WallNanos: int64(time.Hour + 400*time.Millisecond)}
	got, err := c.Update(ok)
	require.NoError(t, err)
	require.Equal(t, Timestamp{ok.WallNanos, 1}, got, "within max offset: accepted")

	// Extreme values neither overflow nor sneak past the check.
	neg := NewHLC(newManualClock(math.MinInt64+1), time.Second)
	_, err = neg.Update(Timestamp{WallNanos: math.MaxInt64})
	require.ErrorIs(t, err, ErrClockOffset)
	require.Contains(t, err.Error(), "18446744073709551614ns ahead")

	// maxOffset 0 disables the check.
	free := NewHLC(clk, 0)
	_, err = free.Update(Timestamp{WallNanos: int64(100 * time.Hour)})
	require.NoError(t, err)
}

func TestHLCNilClockUsesSystemClock(t *testing.T) {
	c := NewHLC(nil, time.Second)
	before := time.Now().UnixNano()
	ts := c.Now()
	require.GreaterOrEqual(t, ts.WallNanos, before)
	require.LessOrEqual(t, ts.WallNanos, time.Now().UnixNano())
	require.Equal(t, time.Second, c.MaxOffset())
}

// TestHLCConcurrentMonotonic is meant for -race: many goroutines read and
// update one clock whose wall time jumps around; every goroutine sees a
// strictly increasing sequence and all readings are distinct.
func TestHLCConcurrentMonotonic(t *testing.T) {
	clk := newManualClock(1_000_000)
	c := NewHLC(clk, time.Hour)
	const goroutines, per = 8, 2000
	results := make([][]Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]Timestamp, 0, per)
			for i := range per {
				switch i % 7 {
				case 0:
					clk.Add(time.Duration(g%3) - 1) // forwards, still, and backwards
				case 3:
					ts, err := c.Update(Timestamp{WallNanos: clk.nanos.Load() + int64(g), Logical: uint32(i)})
					require.NoError(t, err)
					out = append(out, ts)
					continue
				}
				out = append(out, c.Now())
			}
			results[g] = out
		}()
	}
	wg.Wait()
	seen := make(map[Timestamp]bool, goroutines*per)
	for g, out := range results {
		for i, ts := range out {
			if i > 0 {
				require.Equal(t, 1, ts.Compare(out[i-1]), "goroutine %d reading %d", g, i)
			}
			require.False(t, seen[ts], "duplicate reading %s", ts)
			seen[ts] = true
		}
	}
}
