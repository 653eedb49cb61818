package check

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/history"
)

func threeReplicas(s Streams) Replicas {
	return Replicas{"n1": s, "n2": s, "n3": s}
}

func TestNoLostWrites(t *testing.T) {
	var b hb
	b.app(0, "e", 1, 2, ok, 1, "a", "b")
	b.app(1, "e", 3, 4, ok, 3, "c")
	b.app(1, "e", 5, 6, failed, 0, "never")
	good := Streams{"e": mkStream("a", "b", "c")}

	for _, tc := range []struct {
		name     string
		replicas Replicas
		kinds    []string
		replica  string
	}{
		{"all present", threeReplicas(good), nil, ""},
		{"lost on one node", Replicas{"n1": good, "n2": good, "n3": {"e": mkStream("a", "b")}}, []string{"lost"}, "n3"},
		{"duplicated", Replicas{"n1": good, "n2": {"e": mkStream("a", "b", "c", "c")}}, []string{"duplicated"}, "n2"},
		{"renumbered", Replicas{"n1": {"e": mkStream("c", "a", "b")}}, []string{"renumbered"}, "n1"},
		{"wrong entity", Replicas{"n1": {"e": mkStream("a", "b"), "f": mkStream("c")}}, []string{"wrong-entity"}, "n1"},
		{"no replicas", Replicas{}, []string{"no-replicas"}, ""},
		{"failed append applied", Replicas{"n1": {"e": mkStream("a", "b", "c", "never")}}, []string{"failed-but-present"}, "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := NoLostWrites(b.h, tc.replicas)
			if tc.kinds == nil {
				require.True(t, rep.OK(), rep.String())
				assert.Equal(t, 2, rep.Checked)
				return
			}
			require.False(t, rep.OK())
			assert.Equal(t, tc.kinds, rep.Kinds(), rep.String())
			if tc.replica != "" {
				assert.Equal(t, tc.replica, rep.Violations[0].Replica)
			}
		})
	}
}

func TestConvergence(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas Replicas
		kinds    []string
	}{
		{"identical", threeReplicas(Streams{"e": mkStream("a", "b"), "f": mkStream("c")}), nil},
		{"single replica", Replicas{"n1": {"e": mkStream("a")}}, nil},
		{"behind", Replicas{"n1": {"e": mkStream("a", "b")}, "n2": {"e": mkStream("a")}}, []string{"diverged"}},
		{"ahead", Replicas{"n1": {"e": mkStream("a")}, "n2": {"e": mkStream("a", "b")}}, []string{"diverged"}},
		{"different order", Replicas{"n1": {"e": mkStream("a", "b")}, "n2": {"e": mkStream("b", "a")}}, []string{"diverged"}},
		{"entity missing", Replicas{"n1": {"e": mkStream("a")}, "n2": {}}, []string{"diverged"}},
		{"gap", Replicas{"n1": {"e": []history.EventRef{{ID: "a", Version: 1}, {ID: "b", Version: 3}}}}, []string{"gap"}},
		{"duplicate id", Replicas{"n1": {"e": mkStream("a"), "f": mkStream("a")}}, []string{"duplicate-id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Convergence(tc.replicas)
			if tc.kinds == nil {
				require.True(t, rep.OK(), rep.String())
				return
			}
			require.False(t, rep.OK())
			assert.Equal(t, tc.kinds, rep.Kinds(), rep.String())
		})
	}
}

func TestIdempotency(t *testing.T) {
	retried := func() hb {
		var b hb
		b.app(0, "e", 1, 2, unknown, 0, "a")
		b.app(0, "e", 3, 4, unknown, 0, "a")
		id := b.app(0, "e", 5, 6, ok, 1, "a")
		b.h.Ops[id].Duplicate = true
		return b
	}
	t.Run("retry stored once", func(t *testing.T) {
		b := retried()
		rep := Idempotency(b.h, threeReplicas(Streams{"e": mkStream("a")}))
		require.True(t, rep.OK(), rep.String())
		assert.Equal(t, 1, rep.Checked)
	})
	t.Run("retry stored twice", func(t *testing.T) {
		b := retried()
		rep := Idempotency(b.h, Replicas{"n1": {"e": mkStream("a", "a")}})
		require.False(t, rep.OK())
		assert.Equal(t, []string{"duplicate"}, rep.Kinds(), rep.String())
		assert.Equal(t, []int{0, 1, 2}, rep.Violations[0].Ops)
	})
	t.Run("two acknowledgements at different versions", func(t *testing.T) {
		var b hb
		b.app(0, "e", 1, 2, ok, 1, "a")
		b.app(0, "e", 3, 4, ok, 2, "a")
		rep := Idempotency(b.h, nil)
		require.False(t, rep.OK())
		assert.Equal(t, []string{"retry-applied-twice"}, rep.Kinds(), rep.String())
	})
}

func TestSubscriptions(t *testing.T) {
	deliver := func(b *hb, client int, at int64, id string, v uint64) {
		b.add(history.Op{Client: client, Kind: history.Delivery, Entity: "e", Call: at, Return: at, Outcome: ok,
			Result: history.Result{Events: []history.EventRef{{ID: id, Version: v}}}})
	}
	final := threeReplicas(Streams{"e": mkStream("a", "b", "c")})
	for _, tc := range []struct {
		name  string
		build func(b *hb)
		kinds []string
	}{
		{"in order", func(b *hb) { deliver(b, 0, 1, "a", 1); deliver(b, 0, 2, "b", 2); deliver(b, 1, 2, "b", 2) }, nil},
		{"gap", func(b *hb) { deliver(b, 0, 1, "a", 1); deliver(b, 0, 2, "c", 3) }, []string{"gap"}},
		{"redelivered", func(b *hb) { deliver(b, 0, 1, "a", 1); deliver(b, 0, 2, "a", 1) }, []string{"redelivered"}},
		{"phantom", func(b *hb) { deliver(b, 0, 1, "x", 1) }, []string{"phantom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			rep := Subscriptions(b.h, final)
			if tc.kinds == nil {
				require.True(t, rep.OK(), rep.String())
				return
			}
			assert.Equal(t, tc.kinds, rep.Kinds(), rep.String())
		})
	}
}

func TestResolveUnknown(t *testing.T) {
	var b hb
	applied := b.app(0, "e", 1, 2, unknown, 0, "a", "b")
	notApplied := b.app(1, "e", 3, 4, unknown, 0, "x")
	pending := b.app(2, "e", 5, 0, history.Pending, 0, "c")
	okOp := b.app(3, "e", 6, 7, ok, 4, "d")
	final := threeReplicas(Streams{"e": mkStream("a", "b", "c", "d")})

	res, rep := ResolveUnknown(b.h, final)
	require.True(t, rep.OK(), rep.String())
	assert.Equal(t, 3, rep.Checked)
	got := res.Ops[applied]
	assert.Equal(t, ok, got.Outcome)
	assert.True(t, got.Resolved)
	assert.Equal(t, uint64(1), got.FirstVersion)
	assert.Equal(t, uint64(2), got.LastVersion)
	assert.Equal(t, failed, res.Ops[notApplied].Outcome)
	assert.True(t, res.Ops[notApplied].Resolved)
	assert.Equal(t, ok, res.Ops[pending].Outcome)
	assert.Equal(t, uint64(3), res.Ops[pending].FirstVersion)
	assert.Equal(t, b.h.Ops[okOp], res.Ops[okOp], "acknowledged ops untouched")
	assert.Equal(t, unknown, b.h.Ops[applied].Outcome, "input history untouched")

	// The resolved history passes every checker.
	_, reports := All(b.h, final, LinOptions{VisualizationDir: t.TempDir()})
	for _, r := range reports {
		assert.True(t, r.OK(), r.String())
	}

	for _, tc := range []struct {
		name     string
		replicas Replicas
	}{
		{"half an append", Replicas{"n1": {"e": mkStream("a")}}},
		{"wrong order", Replicas{"n1": {"e": mkStream("b", "a")}}},
		{"other entity", Replicas{"n1": {"f": mkStream("a", "b")}}},
		{"versions differ between replicas", Replicas{"n1": {"e": mkStream("a", "b")}, "n2": {"e": mkStream("z", "a", "b")}}},
		{"stored twice", Replicas{"n1": {"e": mkStream("a", "b", "a")}}},
		{"another append between them", Replicas{"n1": {"e": mkStream("a", "z", "b")}}},
		{"recovered, out of order", Replicas{"n1": {"e": recovered(mkStream("b", "z", "a"), 0, 2)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			id := b.app(0, "e", 1, 2, unknown, 0, "a", "b")
			res, rep := ResolveUnknown(b.h, tc.replicas)
			require.False(t, rep.OK())
			assert.Equal(t, "partial-append", rep.Violations[0].Kind, rep.String())
			assert.Equal(t, unknown, res.Ops[id].Outcome, "stays unknown")
		})
	}
}

// recovered marks events i of evs as appended again after a failover.
func recovered(evs []history.EventRef, i ...int) []history.EventRef {
	for _, k := range i {
		evs[k].Recovered = true
	}
	return evs
}

// A failover superseded an unknown append's two events and the new home
// appended them again one by one, with another append between them: in
// order, not consecutive, the same in every replica. It took effect.
func TestResolveUnknownAcceptsRecoveredEventsInOrder(t *testing.T) {
	var b hb
	id := b.app(0, "e", 1, 2, unknown, 0, "a", "b")
	res, rep := ResolveUnknown(b.h, threeReplicas(Streams{"e": recovered(mkStream("a", "z", "b"), 0, 2)}))
	require.True(t, rep.OK(), rep.String())
	assert.Equal(t, ok, res.Ops[id].Outcome)
	assert.Equal(t, uint64(1), res.Ops[id].FirstVersion)
	assert.Equal(t, uint64(3), res.Ops[id].LastVersion)
}

// TestAllCatchesLostWriteAfterResolution: an acknowledged write missing
// from the final streams fails the run even though everything else passes.
func TestAllCatchesLostWrite(t *testing.T) {
	var b hb
	b.app(0, "e", 1, 2, ok, 1, "a")
	b.app(0, "e", 3, 4, ok, 2, "b")
	_, reports := All(b.h, threeReplicas(Streams{"e": mkStream("a")}), LinOptions{VisualizationDir: t.TempDir()})
	bad := Failed(reports)
	require.Len(t, bad, 1)
	assert.Equal(t, NameLostWrites, bad[0].Check)
	assert.Len(t, bad[0].Violations, 3, "missing on each of the three replicas")
}
