package check

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/history"
)

const session = history.Session

// sessionOp sets the session of op id.
func (b *hb) in(id int, s string) int {
	b.h.Ops[id].Session = s
	return id
}

// dotted returns a final stream whose events carry dots and deps.
func dotted(evs ...history.EventRef) []history.EventRef {
	for i := range evs {
		evs[i].Version = uint64(i + 1)
	}
	return evs
}

func TestSessionsAcceptGoodHistories(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(b *hb)
		replicas Replicas
	}{
		{"read your writes", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(0, "e", session, 3, 4, "a")
		}, nil},
		{"concurrent ops of one session constrain nothing", func(b *hb) {
			b.app(0, "e", 1, 5, ok, 1, "a")
			b.read(0, "e", session, 2, 3) // invoked before the write returned
		}, nil},
		{"other sessions may lag", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(1, "e", session, 3, 4)
		}, nil},
		{"eventual reads may lag", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(0, "e", history.Eventual, 3, 4)
		}, nil},
		{"shared session across clients", func(b *hb) {
			b.in(b.app(0, "e", 1, 2, ok, 1, "a"), "s")
			b.in(b.read(1, "e", session, 3, 4, "a"), "s")
		}, nil},
		{"unacknowledged write need not be read", func(b *hb) {
			b.app(0, "e", 1, 2, unknown, 0, "a")
			b.read(0, "e", session, 3, 4)
		}, nil},
		{"causal: observed dep is visible", func(b *hb) {
			b.read(0, "x", session, 1, 2, "x1")
			b.read(0, "y", session, 3, 4, "y1")
		}, Replicas{"us": {
			"x": dotted(history.EventRef{ID: "x1", Origin: history.Dot{Region: "eu", Seq: 1}, Deps: history.Vector{"us": 1}}),
			"y": dotted(history.EventRef{ID: "y1", Origin: history.Dot{Region: "us", Seq: 1}}),
		}}},
		{"monotonic writes across entities through deps", func(b *hb) {
			b.app(0, "x", 1, 2, ok, 1, "x1")
			b.app(0, "y", 3, 4, ok, 1, "y1")
		}, Replicas{"us": {
			"x": dotted(history.EventRef{ID: "x1", Origin: history.Dot{Region: "us", Seq: 1}}),
			"y": dotted(history.EventRef{ID: "y1", Origin: history.Dot{Region: "eu", Seq: 1}, Deps: history.Vector{"us": 1}}),
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			rep := Sessions(b.h, tc.replicas)
			require.True(t, rep.OK(), rep.String())
		})
	}
}

func TestSessionsCatchBadHistories(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(b *hb)
		replicas Replicas
		kind     string
		ops      []int
	}{
		{"stale read after own write", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(0, "e", session, 3, 4)
		}, nil, ReadYourWrites, []int{1, 0}},
		{"own write replaced", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(0, "e", session, 3, 4, "z")
		}, nil, ReadYourWrites, []int{1, 0}},
		{"read goes backwards", func(b *hb) {
			b.app(1, "e", 1, 2, ok, 1, "a")
			b.read(0, "e", session, 3, 4, "a")
			b.read(0, "e", session, 5, 6)
		}, nil, MonotonicReads, []int{2, 1}},
		{"read sees other history", func(b *hb) {
			b.read(0, "e", session, 3, 4, "a")
			b.read(0, "e", session, 5, 6, "b")
		}, nil, MonotonicReads, []int{1, 0}},
		{"writes reordered", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 2, "a")
			b.app(0, "e", 3, 4, ok, 1, "b")
		}, nil, MonotonicWrites, []int{1, 0}},
		{"write ordered before what was read", func(b *hb) {
			b.app(1, "e", 1, 2, ok, 1, "a")
			b.read(0, "e", session, 3, 4, "a")
			b.app(0, "e", 5, 6, ok, 1, "b")
		}, nil, WritesFollowReads, []int{2, 1}},
		{"causal violation: dep invisible", func(b *hb) {
			b.read(0, "x", session, 1, 2, "x1")
			b.read(0, "y", session, 3, 4) // y1 is a dep of x1 but not visible
		}, Replicas{"us": {
			"x": dotted(history.EventRef{ID: "x1", Origin: history.Dot{Region: "eu", Seq: 1}, Deps: history.Vector{"us": 1}}),
			"y": dotted(history.EventRef{ID: "y1", Origin: history.Dot{Region: "us", Seq: 1}}),
		}}, CausalOrder, []int{1, 0}},
		{"monotonic writes across entities: deps miss earlier write", func(b *hb) {
			b.app(0, "x", 1, 2, ok, 1, "x1")
			b.app(0, "y", 3, 4, ok, 1, "y1")
		}, Replicas{"us": {
			"x": dotted(history.EventRef{ID: "x1", Origin: history.Dot{Region: "us", Seq: 1}}),
			"y": dotted(history.EventRef{ID: "y1", Origin: history.Dot{Region: "eu", Seq: 1}, Deps: history.Vector{"ap": 3}}),
		}}, MonotonicWrites, []int{1}},
		{"writes follow reads across entities", func(b *hb) {
			b.read(0, "x", session, 1, 2, "x1")
			b.app(0, "y", 3, 4, ok, 1, "y1")
		}, Replicas{"us": {
			"x": dotted(history.EventRef{ID: "x1", Origin: history.Dot{Region: "ap", Seq: 4}}),
			"y": dotted(history.EventRef{ID: "y1", Origin: history.Dot{Region: "eu", Seq: 1}, Deps: history.Vector{"us": 9}}),
		}}, WritesFollowReads, []int{1}},
		{"token regresses", func(b *hb) {
			id := b.read(0, "e", session, 1, 2)
			b.h.Ops[id].VectorOut = history.Vector{"us": 5}
			id = b.read(0, "e", session, 3, 4)
			b.h.Ops[id].VectorIn = history.Vector{"us": 4}
		}, nil, TokenMonotonic, []int{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			rep := Sessions(b.h, tc.replicas)
			require.False(t, rep.OK(), "bad history accepted")
			assert.Equal(t, []string{tc.kind}, rep.Kinds(), rep.String())
			assert.Equal(t, tc.ops, rep.Violations[0].Ops, rep.String())
			t.Log(rep.String())
		})
	}
}
