package node

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

// TestTraceOfAForwardedAppend: an append sent to region b for an entity
// homed in region a is one trace: b's server span, its forward to the
// home, the forwarding call, a's server span continuing it, and a's Raft
// commit under that; a MULTI_REGION append has its wait as a span.
func TestTraceOfAForwardedAppend(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	start := func(regionName string, join []string) *Node {
		return startGossipNode(t, Config{
			Region: regionName, NodeID: "n1", Bootstrap: true, Join: join,
			PlacementRaftAddr: "127.0.0.1:0", PlacementBootstrap: len(join) == 0,
			TracerProvider: tp,
		})
	}
	a := start("a", nil)
	require.Eventually(t, a.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	b := start("b", []string{a.Addr()})
	require.Eventually(t, func() bool { return len(b.Placement().FSM().Regions()) == 2 && len(a.Placement().FSM().Regions()) == 2 },
		30*time.Second, 50*time.Millisecond)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.New([]string{b.URL()})
	require.NoError(t, err)
	defer c.Close()
	// traced/ is homed in a; b orders nothing of it.
	_, err = c.SetRules(ctx, []*meridianv1.PlacementRule{{Prefix: "traced/", HomeRegion: "a"}}, "b", 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := c.Append(ctx, "traced/1", []*meridianv1.ProposedEvent{{Type: "Created"}})
		return err == nil && r.GetRegion() == "a"
	}, 10*time.Second, 50*time.Millisecond, "b never routed traced/1 to its home a")

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var bServer, aServer, forward, forwardCall, commit sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, s := range rec.Ended() {
		switch {
		case s.Name() == "region.forward_to_home":
			forward = s
		case s.Name() == "region.raft_commit":
			commit = s
		}
	}
	if forward == nil {
		for _, s := range rec.Ended() {
			t.Logf("span %s kind %s parent %s", s.Name(), s.SpanKind(), s.Parent().SpanID())
		}
	}
	require.NotNil(t, forward, "b's forward to the home region is a span")
	require.NotNil(t, commit, "a's Raft commit is a span")
	parent := func(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan { return byID[s.Parent().SpanID()] }
	bServer = parent(forward)
	require.NotNil(t, bServer)
	assert.Equal(t, "meridian.v1.EventStore/Append", bServer.Name())
	assert.Equal(t, trace.SpanKindServer, bServer.SpanKind())
	aServer = parent(commit)
	require.NotNil(t, aServer, "a's commit is under a's server span")
	assert.Equal(t, trace.SpanKindServer, aServer.SpanKind())
	forwardCall = parent(aServer)
	require.NotNil(t, forwardCall, "a's server span continues the forwarding call's")
	assert.Equal(t, trace.SpanKindClient, forwardCall.SpanKind())
	assert.Equal(t, forward.SpanContext().SpanID(), forwardCall.Parent().SpanID(), "the call is made under b's forward span")
	for _, s := range []sdktrace.ReadOnlySpan{bServer, forward, forwardCall, aServer, commit} {
		assert.Equal(t, bServer.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s is in the append's trace", s.Name())
	}

	// MULTI_REGION: the wait for b is a span of its own.
	ac, err := client.New([]string{a.URL()})
	require.NoError(t, err)
	defer ac.Close()
	_, err = ac.Append(ctx, "traced/2", []*meridianv1.ProposedEvent{{Type: "Created"}},
		client.WithDurability(meridianv1.Durability_DURABILITY_MULTI_REGION, 1))
	require.NoError(t, err)
	found := false
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, s := range rec.Ended() {
		if s.Name() == "region.multi_region_wait" {
			found = true
			p, ok := byID[s.Parent().SpanID()]
			require.True(t, ok, "the wait's parent span was recorded")
			assert.Equal(t, "meridian.v1.EventStore/Append", p.Name())
		}
	}
	assert.True(t, found, "the MULTI_REGION wait is a span")
}
