package replication

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func ev(origin string, seq uint64, deps map[string]uint64) *meridianv1.Event {
	return &meridianv1.Event{Id: fmt.Sprintf("%s/%d", origin, seq), Origin: &meridianv1.Dot{Region: origin, Seq: seq}, Deps: deps}
}

func evs(origin string, from, to uint64) []*meridianv1.Event {
	var out []*meridianv1.Event
	for s := from; s <= to; s++ {
		out = append(out, ev(origin, s, nil))
	}
	return out
}

func sizesOf(events []*meridianv1.Event) []int {
	out := make([]int, len(events))
	for i, e := range events {
		out[i] = proto.Size(e)
	}
	return out
}

func TestNextBatch(t *testing.T) {
	withDeps := func(es []*meridianv1.Event, i int, deps map[string]uint64) []*meridianv1.Event {
		es[i].Deps = deps
		return es
	}
	for _, tc := range []struct {
		name      string
		events    []*meridianv1.Event
		applied   map[string]uint64
		eventsMax int
		bytesMax  int
		want      int
		blocked   string
	}{
		{name: "all ready", events: evs("a", 1, 5), applied: map[string]uint64{}, want: 5},
		{name: "continues applied", events: evs("a", 4, 6), applied: map[string]uint64{"a": 3}, want: 3},
		{name: "head not next", events: evs("a", 5, 6), applied: map[string]uint64{"a": 3}, want: 0, blocked: "next of a is 4, holding 5"},
		{name: "events max", events: evs("a", 1, 10), applied: map[string]uint64{}, eventsMax: 4, want: 4},
		{name: "bytes max keeps the first", events: evs("a", 1, 3), applied: map[string]uint64{}, bytesMax: 1, want: 1},
		{name: "head blocked on other origin", events: withDeps(evs("a", 1, 3), 0, map[string]uint64{"b": 2}), applied: map[string]uint64{"b": 1}, want: 0, blocked: "a/1 depends on b/2"},
		{name: "stops before blocked", events: withDeps(evs("a", 1, 3), 2, map[string]uint64{"b": 2}), applied: map[string]uint64{"b": 1}, want: 2},
		{name: "dep covered", events: withDeps(evs("a", 1, 3), 2, map[string]uint64{"b": 2}), applied: map[string]uint64{"b": 2}, want: 3},
		{name: "own previous in batch", events: withDeps(evs("a", 1, 3), 2, map[string]uint64{"a": 2}), applied: map[string]uint64{}, want: 3},
		{name: "own dep ahead never goes", events: withDeps(evs("a", 1, 3), 1, map[string]uint64{"a": 3}), applied: map[string]uint64{}, want: 1},
		{name: "other origin in list", events: append(evs("a", 1, 2), ev("b", 3, nil)), applied: map[string]uint64{}, want: 2},
		{name: "empty", events: nil, applied: map[string]uint64{}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			em, bm := tc.eventsMax, tc.bytesMax
			if em == 0 {
				em = 256
			}
			if bm == 0 {
				bm = 1 << 20
			}
			n, blocked := nextBatch("a", tc.events, sizesOf(tc.events), tc.applied, em, bm)
			assert.Equal(t, tc.want, n)
			assert.Equal(t, tc.blocked, blocked)
		})
	}
}

// TestNextBatchIsWhatApplyTakes: on random pending lists and vectors, the
// batch is exactly the longest prefix that region's apply rules (here the
// fake region's, written apart) take in full, up to the limits.
func TestNextBatchIsWhatApplyTakes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		origins := []string{"a", "b", "c"}
		applied := map[string]uint64{}
		for _, o := range origins {
			applied[o] = rapid.Uint64Range(0, 5).Draw(t, "applied_"+o)
		}
		start := applied["a"] + rapid.Uint64Range(0, 2).Draw(t, "start_offset") + 1
		count := rapid.IntRange(0, 12).Draw(t, "count")
		var events []*meridianv1.Event
		for i := range count {
			seq := start + uint64(i)
			deps := map[string]uint64{}
			if seq > 1 {
				deps["a"] = seq - 1
			}
			for _, o := range origins[1:] {
				if rapid.Bool().Draw(t, fmt.Sprintf("has_dep_%d_%s", i, o)) {
					deps[o] = rapid.Uint64Range(1, 7).Draw(t, fmt.Sprintf("dep_%d_%s", i, o))
				}
			}
			events = append(events, ev("a", seq, deps))
		}
		eventsMax := rapid.IntRange(1, 12).Draw(t, "events_max")
		n, _ := nextBatch("a", events, sizesOf(events), applied, eventsMax, 1<<20)

		r := newFakeRegion("x")
		for o, seq := range applied {
			r.logs[o] = evs(o, 1, seq)
		}
		got, err := r.Replicate(t.Context(), events[:n])
		require.NoError(t, err)
		require.Equal(t, n, got, "apply must take the whole batch")
		require.Empty(t, r.violations)
		if n < len(events) && n < eventsMax {
			// Maximal: the next event does not qualify.
			got, err := r.Replicate(t.Context(), events[n:n+1])
			require.NoError(t, err)
			require.Zero(t, got, "event %d would have gone too", n)
		}
	})
}

func TestPendingAddAndDrop(t *testing.T) {
	p := &pending{origin: "a"}
	n, err := p.add(evs("a", 1, 3), 0)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	// A duplicate message and an overlapping one add only what is new.
	n, err = p.add(evs("a", 2, 5), 0)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, uint64(1), p.head())
	assert.Equal(t, uint64(5), p.tail())
	assert.Equal(t, eventsBytes(evs("a", 1, 5)), p.bytes)
	// A gap is refused.
	_, err = p.add(evs("a", 7, 8), 0)
	require.ErrorIs(t, err, ErrGap)

	require.NoError(t, p.dropApplied(3))
	assert.Equal(t, 2, p.len())
	assert.Equal(t, uint64(4), p.head())
	assert.Equal(t, eventsBytes(evs("a", 4, 5)), p.bytes)
	require.NoError(t, p.dropApplied(9))
	assert.Zero(t, p.len())
	assert.Zero(t, p.bytes)

	// Nothing held: what applied covers is skipped, the rest must continue it.
	n, err = p.add(evs("a", 8, 11), 9)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, uint64(10), p.head())
	// A regressed applied vector is a gap.
	require.ErrorIs(t, p.dropApplied(5), ErrGap)
}

func TestPendingFits(t *testing.T) {
	p := &pending{origin: "a"}
	assert.True(t, p.fits(1000, 1<<30, 10, 10), "an empty pending takes any one message")
	_, err := p.add(evs("a", 1, 8), 0)
	require.NoError(t, err)
	assert.True(t, p.fits(2, 0, 10, 1<<20))
	assert.False(t, p.fits(3, 0, 10, 1<<20))
	assert.False(t, p.fits(1, 1<<20, 10, 1<<20))
}

func TestContinues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		next    uint64
		events  []*meridianv1.Event
		want    uint64
		wantErr bool
	}{
		{name: "exact", next: 3, events: evs("a", 3, 5), want: 6},
		{name: "heartbeat", next: 3, want: 3},
		{name: "overlap", next: 3, events: evs("a", 1, 4), want: 5},
		{name: "pure duplicate", next: 6, events: evs("a", 3, 5), want: 6},
		{name: "gap", next: 3, events: evs("a", 4, 5), wantErr: true},
		{name: "not consecutive", next: 3, events: append(evs("a", 3, 3), ev("a", 5, nil)), wantErr: true},
		{name: "other origin", next: 1, events: evs("b", 1, 1), wantErr: true},
		{name: "seq zero", next: 1, events: []*meridianv1.Event{ev("a", 0, nil)}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := continues("a", tc.next, tc.events)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrBadStream)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
