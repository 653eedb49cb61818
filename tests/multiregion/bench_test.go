package multiregion

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// BenchmarkAppendForwardedVsLocal measures, in one run on one deployment
// (two regions of one node each, in-process, loopback, every commit
// fsynced), the latency of an append that its home region receives
// directly against one that a node of another region receives and forwards
// to the home: the cost of routing by placement. One client, 1 KiB events;
// ns/op is the pair.
//
//	go test -run '^$' -bench AppendForwardedVsLocal -benchtime 2000x -count 5 ./tests/multiregion/
func BenchmarkAppendForwardedVsLocal(b *testing.B) {
	c, err := Start(Config{Regions: []string{"us-east", "eu-west"}, NodesPerRegion: 1, Dir: b.TempDir(), Seed: 1, Logger: testLogger(b)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.Eventually(b, func() bool {
		n := c.Node("us-east-1")
		return len(n.Placement().FSM().Members()) == 2 && len(c.Node("eu-west-1").Placement().FSM().Members()) == 2
	}, time.Minute, 20*time.Millisecond)
	set, err := c.Placement("us-east-1").SetRules(ctx, connect.NewRequest(&meridianv1.SetRulesRequest{
		Rules:         []*meridianv1.PlacementRule{{Prefix: "us/", HomeRegion: "us-east"}, {Prefix: "eu/", HomeRegion: "eu-west"}},
		DefaultRegion: "us-east",
	}))
	require.NoError(b, err)
	require.Eventually(b, func() bool {
		return c.Node("eu-west-1").Placement().FSM().AppliedIndex() >= set.Msg.GetIndex()
	}, 10*time.Second, 10*time.Millisecond)
	data := make([]byte, 1024)
	client := c.EventStore("us-east-1")
	// Each iteration appends once locally (us/, homed at us-east-1, the
	// node the client talks to) and once forwarded (eu/, homed in eu-west),
	// alternating, so that machine noise hits both alike.
	run := time.Now().UnixNano()
	local, forwarded := fmt.Sprintf("us/bench-%d", run), fmt.Sprintf("eu/bench-%d", run)
	var latLocal, latForwarded []time.Duration
	appendOne := func(entity, want string) time.Duration {
		start := time.Now()
		resp, err := client.Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
			Entity: entity, Events: []*meridianv1.ProposedEvent{{Id: newID(), Type: "Bench", Data: data}},
		}))
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if resp.Msg.GetRegion() != want {
			b.Fatalf("%s appended in %s, want %s", entity, resp.Msg.GetRegion(), want)
		}
		return d
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		latLocal = append(latLocal, appendOne(local, "us-east"))
		latForwarded = append(latForwarded, appendOne(forwarded, "eu-west"))
	}
	b.StopTimer()
	pct := func(lat []time.Duration, p int) time.Duration {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[len(lat)*p/100]
	}
	l50, f50 := pct(latLocal, 50), pct(latForwarded, 50)
	b.ReportMetric(float64(l50.Microseconds()), "local-p50-us")
	b.ReportMetric(float64(pct(latLocal, 99).Microseconds()), "local-p99-us")
	b.ReportMetric(float64(f50.Microseconds()), "fwd-p50-us")
	b.ReportMetric(float64(pct(latForwarded, 99).Microseconds()), "fwd-p99-us")
	b.ReportMetric(float64(f50)/float64(l50), "fwd/local-p50")
}
