package node

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

// BenchmarkReadLast10OverAPI reads the last 10 events of a 100-event stream
// from a follower over the Connect API, all in one process: the API layer's
// cost on top of region's in-process BenchmarkNodeRead (the multi-process
// figure is tests/perf BenchmarkRegionReadLast10).
func BenchmarkReadLast10OverAPI(b *testing.B) {
	nodes := startRegion(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	follower := followerOf(b, nodes)
	c, err := client.New([]string{follower.URL()})
	require.NoError(b, err)
	defer c.Close()
	evs := make([]*meridianv1.ProposedEvent, 100)
	for i := range evs {
		evs[i] = &meridianv1.ProposedEvent{Type: "BenchEvent", Data: make([]byte, 1024)}
	}
	_, err = c.Append(ctx, "bench-read", evs)
	require.NoError(b, err)
	opts := []client.ReadOption{
		client.WithConsistency(meridianv1.Consistency_CONSISTENCY_EVENTUAL),
		client.Backward(), client.Limit(10),
	}
	require.Eventually(b, func() bool {
		r, err := c.Read(ctx, "bench-read", opts...)
		return err == nil && len(r.Events) == 10
	}, 10*time.Second, 10*time.Millisecond)
	b.ResetTimer()
	for b.Loop() {
		r, err := c.Read(ctx, "bench-read", opts...)
		if err != nil || len(r.Events) != 10 {
			b.Fatalf("read: %v (%d events)", err, len(r.Events))
		}
	}
}

// BenchmarkStatusOverAPI is the smallest unary call through the SDK: the
// floor under every other API benchmark in this package.
func BenchmarkStatusOverAPI(b *testing.B) {
	nodes := startRegion(b, 1)
	c, err := client.New([]string{nodes[0].URL()})
	require.NoError(b, err)
	defer c.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
