package history

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	const clients, each = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := r.Invoke(c, "", Append, "e", Input{EventIDs: []string{"x"}})
				switch i % 3 {
				case 0:
					r.OK(id, Result{FirstVersion: 1, LastVersion: 1})
				case 1:
					r.Fail(id, errors.New("refused"), Result{Conflict: true})
				default:
					r.Unknown(id, errors.New("timeout"))
				}
			}
			r.Deliver(c, "", "e", EventRef{ID: "x", Version: 1}, Result{Node: "n1"})
		}()
	}
	wg.Wait()
	h := r.History()
	require.Len(t, h.Ops, clients*each+clients)
	for i, op := range h.Ops {
		assert.Equal(t, i, op.ID)
		assert.NotEqual(t, Pending, op.Outcome)
		assert.GreaterOrEqual(t, op.Return, op.Call)
		assert.Positive(t, op.Call)
	}
	assert.Equal(t, clients*17, h.Count(Append, OK))
	assert.Equal(t, clients*17, h.Count(Append, Failed))
	assert.Equal(t, clients*16, h.Count(Append, Unknown))
	assert.Equal(t, clients, h.Count(Delivery, OK))
}

func TestRecorderPanicsOnDoubleCompletion(t *testing.T) {
	r := NewRecorder()
	id := r.Invoke(0, "", Read, "e", Input{})
	r.OK(id, Result{})
	assert.Panics(t, func() { r.OK(id, Result{}) })
	assert.Panics(t, func() { r.OK(99, Result{}) })
}

func TestPendingAndPrecedes(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { now = now.Add(time.Millisecond); return now }
	r := NewRecorderClock(clock)
	a := r.Invoke(0, "s", Append, "e", Input{})
	r.OK(a, Result{})
	b := r.Invoke(1, "s", Read, "e", Input{})
	h := r.History()
	assert.True(t, h.Ops[a].Precedes(&h.Ops[b]))
	assert.False(t, h.Ops[b].Precedes(&h.Ops[a]), "a pending op precedes nothing")
	assert.Equal(t, Pending, h.Ops[b].Outcome)
	assert.Equal(t, "s", h.Ops[b].SessionID())
	assert.Equal(t, "client-3", (&Op{Client: 3}).SessionID())
}

func TestDumpLoadRoundTrip(t *testing.T) {
	r := NewRecorder()
	r.SetRun(42, "leader-kill")
	id := r.Invoke(0, "", Append, "order-1", Input{EventIDs: []string{"a", "b"}, Expected: Expected{Kind: ExpectExact, Version: 3}, TokenIn: "t0", VectorIn: Vector{"us": 1}})
	r.OK(id, Result{FirstVersion: 4, LastVersion: 5, Origin: Dot{"us", 7}, TokenOut: "t1", VectorOut: Vector{"us": 8}, Region: "us", Node: "us-1"})
	id = r.Invoke(1, "", Read, "order-1", Input{Consistency: Strong})
	r.OK(id, Result{Head: 5, Events: []EventRef{{ID: "a", Version: 4, Origin: Dot{"us", 7}, Deps: Vector{"us": 6}}}})
	h := r.History()
	p, err := h.Dump(filepath.Join(t.TempDir(), "sub"), "history.json")
	require.NoError(t, err)
	back, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, h, back)
	assert.Equal(t, []string{"order-1"}, back.Entities())
	_, err = Load(filepath.Join(t.TempDir(), "missing.json"))
	require.Error(t, err)
}

func TestExpectedMatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Expected
		head uint64
		want bool
	}{
		{"any empty", Expected{}, 0, true},
		{"any", Expected{}, 9, true},
		{"no stream ok", Expected{Kind: ExpectNoStream}, 0, true},
		{"no stream bad", Expected{Kind: ExpectNoStream}, 1, false},
		{"exists ok", Expected{Kind: ExpectExists}, 1, true},
		{"exists bad", Expected{Kind: ExpectExists}, 0, false},
		{"exact ok", Expected{Kind: ExpectExact, Version: 3}, 3, true},
		{"exact bad", Expected{Kind: ExpectExact, Version: 3}, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, tc.e.Matches(tc.head)) })
	}
}

func TestVector(t *testing.T) {
	v := Vector{"us": 3, "eu": 1}
	assert.True(t, v.Covers(Vector{"us": 3}))
	assert.False(t, v.Covers(Vector{"ap": 1}))
	assert.True(t, v.CoversDot(Dot{"eu", 1}))
	assert.False(t, v.CoversDot(Dot{"eu", 2}))
	assert.False(t, v.CoversDot(Dot{}))
	assert.Equal(t, Vector{"us": 3, "eu": 4, "ap": 1}, v.Merge(Vector{"eu": 4, "ap": 1}))
	assert.Equal(t, Vector{"us": 3, "eu": 1}, v, "merge does not mutate")
}
