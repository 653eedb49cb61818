package causal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func ev(region string, seq uint64, deps Vector) Event[string] {
	return Event[string]{Dot: Dot{region, seq}, Deps: deps, Payload: Dot{region, seq}.String()}
}

func payloads(es []Event[string]) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Payload
	}
	return out
}

func newTestBuffer(t *testing.T, max int) *Buffer[string] {
	t.Helper()
	b, err := NewBuffer[string](BufferConfig{EventsMax: max})
	require.NoError(t, err)
	return b
}

func TestBufferScenarios(t *testing.T) {
	cases := []struct {
		name string
		in   []Event[string]
		want []string // concatenated releases
	}{
		{"in order", []Event[string]{ev("eu", 1, nil), ev("eu", 2, nil), ev("us", 1, Vector{"eu": 2})},
			[]string{"eu:1", "eu:2", "us:1"}},
		{"gap then fill", []Event[string]{ev("eu", 3, nil), ev("eu", 2, nil), ev("eu", 1, nil)},
			[]string{"eu:1", "eu:2", "eu:3"}},
		{"waits for dep", []Event[string]{ev("us", 1, Vector{"eu": 1}), ev("eu", 1, nil)},
			[]string{"eu:1", "us:1"}},
		{"chain across origins", []Event[string]{
			ev("ap", 1, Vector{"us": 1}), ev("us", 1, Vector{"eu": 1}), ev("eu", 1, nil)},
			[]string{"eu:1", "us:1", "ap:1"}},
		{"duplicates", []Event[string]{ev("eu", 2, nil), ev("eu", 2, nil), ev("eu", 1, nil), ev("eu", 1, nil), ev("eu", 2, nil)},
			[]string{"eu:1", "eu:2"}},
		{"deterministic among concurrent", []Event[string]{
			ev("us", 1, Vector{"x": 1}), ev("eu", 1, Vector{"x": 1}), ev("ap", 1, Vector{"x": 1}), ev("x", 1, nil)},
			[]string{"x:1", "ap:1", "eu:1", "us:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuffer(t, 100)
			var out []Event[string]
			for _, e := range tc.in {
				var err error
				out, err = b.Add(out, e)
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, payloads(out))
			require.Zero(t, b.Len())
		})
	}
}

func TestBufferInvalidEvents(t *testing.T) {
	b := newTestBuffer(t, 10)
	for _, e := range []Event[string]{ev("eu", 0, nil), ev("", 1, nil), ev("eu", 2, Vector{"eu": 2}), ev("eu", 2, Vector{"eu": 5})} {
		out, err := b.Add(nil, e)
		require.ErrorIs(t, err, ErrInvalidEvent, "%v", e)
		require.Empty(t, out)
	}
	require.Zero(t, b.Len())
}

func TestBufferFullIsBackpressure(t *testing.T) {
	b := newTestBuffer(t, 2)
	out, err := b.Add(nil, ev("eu", 2, nil))
	require.NoError(t, err)
	out, err = b.Add(out, ev("eu", 3, nil))
	require.NoError(t, err)
	out, err = b.Add(out, ev("eu", 4, nil))
	require.ErrorIs(t, err, ErrBufferFull)
	require.Contains(t, err.Error(), "holding 2 events, max 2; eu:4 waits for eu:1")
	require.Empty(t, out)
	require.Equal(t, 2, b.Len())

	// A duplicate of a held event is still recognised when full.
	_, err = b.Add(out, ev("eu", 3, nil))
	require.NoError(t, err)
	// A deliverable event is always accepted, even when full, so a full
	// buffer never blocks the event that would drain it.
	out, err = b.Add(out, ev("eu", 1, nil))
	require.NoError(t, err)
	require.Equal(t, []string{"eu:1", "eu:2", "eu:3"}, payloads(out))
	out, err = b.Add(out[:0], ev("eu", 4, nil))
	require.NoError(t, err)
	require.Equal(t, []string{"eu:4"}, payloads(out))
	require.Equal(t, Vector{"eu": 4}, b.Applied())
	require.Equal(t, uint64(1), b.Duplicates())
}

func TestBufferStartsFromApplied(t *testing.T) {
	b, err := NewBuffer[string](BufferConfig{Applied: Vector{"eu": 5}, EventsMax: 4})
	require.NoError(t, err)
	out, err := b.Add(nil, ev("eu", 5, nil))
	require.NoError(t, err)
	require.Empty(t, out, "already applied: duplicate")
	out, err = b.Add(nil, ev("us", 1, Vector{"eu": 5}))
	require.NoError(t, err)
	require.Equal(t, []string{"us:1"}, payloads(out))
}

func TestBufferConfigValidate(t *testing.T) {
	require.NoError(t, DefaultBufferConfig().Validate())
	_, err := NewBuffer[int](BufferConfig{EventsMax: 0})
	require.Error(t, err)
	_, err = NewBuffer[int](BufferConfig{EventsMax: 1, Applied: Vector{"": 1}})
	require.ErrorIs(t, err, ErrInvalidRegion)
}

func TestBufferKeepsCopyOfDeps(t *testing.T) {
	b := newTestBuffer(t, 10)
	deps := Vector{"eu": 1}
	_, err := b.Add(nil, Event[string]{Dot: Dot{"us", 1}, Deps: deps})
	require.NoError(t, err)
	deps["eu"] = 9 // caller reuses its map
	out, err := b.Add(nil, ev("eu", 1, nil))
	require.NoError(t, err)
	require.Len(t, out, 2)
}
