package check

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/history"
)

func dot(r string, s uint64) history.Dot { return history.Dot{Region: r, Seq: s} }

// served sets who served op id and the dots of what it returned or wrote,
// in order; it returns id.
func (b *hb) served(id int, region string, dots ...history.Dot) int {
	op := &b.h.Ops[id]
	op.Region = region
	for k := range op.Events {
		if k < len(dots) {
			op.Events[k].Origin = dots[k]
		}
	}
	if op.Kind == history.Append && len(dots) > 0 {
		op.Origin = dots[0]
	}
	return id
}

// tokens sets the vectors op id sent and received.
func (b *hb) tokens(id int, in, out history.Vector) int {
	b.h.Ops[id].VectorIn, b.h.Ops[id].VectorOut = in, out
	return id
}

// threeHomes are final streams of x (home us), y (home ap) and e (home eu):
// x2 depends on e1, y1 on x2.
func threeHomes() Replicas {
	s := Streams{
		"e": dotted(history.EventRef{ID: "e1", Origin: dot("eu", 1)}),
		"x": dotted(history.EventRef{ID: "x1", Origin: dot("us", 1)},
			history.EventRef{ID: "x2", Origin: dot("us", 2), Deps: history.Vector{"eu": 1, "us": 1}}),
		"y": dotted(history.EventRef{ID: "y1", Origin: dot("ap", 1), Deps: history.Vector{"us": 2}}),
	}
	return Replicas{"us-east": s, "eu-west": s, "ap-south": s}
}

func TestCausalClosure(t *testing.T) {
	closed := CausalClosure(threeHomes())
	y1 := closed["ap-south"]["y"][0]
	assert.Equal(t, history.Vector{"us": 2, "eu": 1}, y1.Deps, "y1 follows x2, and through it e1")
	x2 := closed["us-east"]["x"][1]
	assert.Equal(t, history.Vector{"us": 1, "eu": 1}, x2.Deps)
	x1 := closed["us-east"]["x"][0]
	assert.Empty(t, x1.Deps, "nothing before the first event of an origin")
	assert.Empty(t, threeHomes()["ap-south"]["y"][0].Deps["eu"], "the input is not modified")
}

func TestSessionsAcrossRegionsAcceptGoodHistories(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(b *hb)
		replicas Replicas
		// plainFails: Sessions alone (one-level deps) rejects it.
		plainFails bool
	}{
		{"write in us, read it in ap and eu", func(b *hb) {
			b.tokens(b.served(b.app(0, "x", 1, 2, ok, 1, "x1"), "us-east", dot("us", 1)), nil, history.Vector{"us": 1})
			b.tokens(b.served(b.read(0, "x", session, 3, 4, "x1"), "ap-south", dot("us", 1)), history.Vector{"us": 1}, history.Vector{"us": 1})
			b.tokens(b.served(b.read(0, "x", session, 5, 6, "x1"), "eu-west", dot("us", 1)), history.Vector{"us": 1}, history.Vector{"us": 1})
		}, Replicas{"us-east": {"x": dotted(history.EventRef{ID: "x1", Origin: dot("us", 1)})}, "ap-south": {"x": dotted(history.EventRef{ID: "x1", Origin: dot("us", 1)})}}, false},
		{"writes follow reads transitively", func(b *hb) {
			// The session read x (x2 depends on e1), then wrote y in ap with
			// the token it got, which holds x2's dot but not e1's.
			b.tokens(b.served(b.read(0, "x", session, 1, 2, "x1", "x2"), "eu-west", dot("us", 1), dot("us", 2)), nil, history.Vector{"us": 2})
			b.h.Ops[0].Events[1].Deps = history.Vector{"eu": 1, "us": 1}
			b.tokens(b.served(b.app(0, "y", 3, 4, ok, 1, "y1"), "ap-south", dot("ap", 1)), history.Vector{"us": 2}, history.Vector{"us": 2, "ap": 1})
		}, threeHomes(), true},
		{"causal: read in ap after a dep read in us", func(b *hb) {
			b.tokens(b.served(b.read(0, "y", session, 1, 2, "y1"), "us-east", dot("ap", 1)), nil, history.Vector{"ap": 1})
			b.tokens(b.served(b.read(0, "e", session, 3, 4, "e1"), "ap-south", dot("eu", 1)), history.Vector{"ap": 1}, history.Vector{"ap": 1, "eu": 1})
		}, threeHomes(), false},
		{"eventual reads constrain nothing without a token", func(b *hb) {
			b.served(b.read(0, "x", history.Eventual, 1, 2), "ap-south")
		}, threeHomes(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			rep := SessionsAcrossRegions(b.h, tc.replicas)
			require.True(t, rep.OK(), rep.String())
			assert.Equal(t, tc.plainFails, !Sessions(b.h, tc.replicas).OK(), "Sessions alone")
		})
	}
}

func TestSessionsAcrossRegionsCatchBadHistories(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(b *hb)
		replicas Replicas
		kind     string
		// plainMisses: Sessions alone (one-level deps, no token coverage)
		// does not see it.
		plainMisses bool
	}{
		{"read-your-writes: written in us, stale in ap", func(b *hb) {
			b.tokens(b.served(b.app(0, "x", 1, 2, ok, 1, "x1"), "us-east", dot("us", 1)), nil, history.Vector{"us": 1})
			b.tokens(b.served(b.read(0, "x", session, 3, 4), "ap-south"), history.Vector{"us": 1}, history.Vector{"us": 1})
		}, Replicas{"us-east": {"x": dotted(history.EventRef{ID: "x1", Origin: dot("us", 1)})}}, ReadYourWrites, false},
		{"monotonic reads: two events in us, one in eu", func(b *hb) {
			b.tokens(b.served(b.read(0, "x", session, 1, 2, "x1", "x2"), "us-east", dot("us", 1), dot("us", 2)), nil, history.Vector{"us": 2})
			b.tokens(b.served(b.read(0, "x", session, 3, 4, "x1"), "eu-west", dot("us", 1)), history.Vector{"us": 2}, history.Vector{"us": 2})
		}, threeHomes(), MonotonicReads, false},
		{"monotonic writes: a write in ap does not follow one in us", func(b *hb) {
			b.tokens(b.served(b.app(0, "x", 1, 2, ok, 1, "x1"), "us-east", dot("us", 1)), nil, history.Vector{"us": 1})
			b.tokens(b.served(b.app(0, "y", 3, 4, ok, 1, "y1"), "ap-south", dot("ap", 1)), history.Vector{"us": 1}, history.Vector{"us": 1, "ap": 1})
		}, Replicas{"r": {
			"x": dotted(history.EventRef{ID: "x1", Origin: dot("us", 1)}),
			"y": dotted(history.EventRef{ID: "y1", Origin: dot("ap", 1), Deps: history.Vector{"eu": 7}}), // deps lost the token
		}}, MonotonicWrites, false},
		{"writes-follow-reads: a write in eu does not follow a read of us", func(b *hb) {
			b.tokens(b.served(b.read(0, "x", session, 1, 2, "x1"), "us-east", dot("us", 1)), nil, history.Vector{"us": 1})
			b.tokens(b.served(b.app(0, "e", 3, 4, ok, 1, "e1"), "eu-west", dot("eu", 1)), history.Vector{"us": 1}, history.Vector{"us": 1, "eu": 1})
		}, Replicas{"r": {
			"x": dotted(history.EventRef{ID: "x1", Origin: dot("us", 1)}),
			"e": dotted(history.EventRef{ID: "e1", Origin: dot("eu", 1), Deps: history.Vector{"ap": 2}}), // deps lost the token
		}}, WritesFollowReads, false},
		{"causal order, transitively: y1 -> x2 -> e1, e read without e1", func(b *hb) {
			b.tokens(b.served(b.read(0, "y", session, 1, 2, "y1"), "us-east", dot("ap", 1)), nil, history.Vector{"ap": 1})
			b.tokens(b.served(b.read(0, "e", session, 3, 4), "ap-south"), history.Vector{"ap": 1}, history.Vector{"ap": 1})
		}, threeHomes(), CausalOrder, true},
		{"token coverage: the token from an eventual read is not honoured", func(b *hb) {
			b.tokens(b.served(b.read(0, "x", history.Eventual, 1, 2, "x1", "x2"), "us-east", dot("us", 1), dot("us", 2)), nil, history.Vector{"us": 2})
			b.tokens(b.served(b.read(0, "x", session, 3, 4, "x1"), "eu-west", dot("us", 1)), history.Vector{"us": 2}, history.Vector{"us": 2})
		}, threeHomes(), CausalOrder, true},
		{"token coverage, transitively: a token with y1 needs e1", func(b *hb) {
			b.tokens(b.served(b.read(0, "e", session, 1, 2), "ap-south"), history.Vector{"ap": 1}, history.Vector{"ap": 1})
		}, threeHomes(), CausalOrder, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			rep := SessionsAcrossRegions(b.h, tc.replicas)
			require.False(t, rep.OK(), "bad history accepted")
			assert.Contains(t, rep.Kinds(), tc.kind, rep.String())
			assert.Equal(t, tc.plainMisses, Sessions(b.h, tc.replicas).OK(), "Sessions alone")
			t.Log(rep.String())
		})
	}
}
