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
// to the home: the cost of routing by placement. One client, 1 KiB events.
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
	for _, bc := range []struct {
		name, prefix string
	}{
		{"local", "us/"},     // us-east-1 is the home
		{"forwarded", "eu/"}, // us-east-1 forwards to eu-west-1
	} {
		b.Run(bc.name, func(b *testing.B) {
			entity := fmt.Sprintf("%sbench-%d", bc.prefix, time.Now().UnixNano())
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				resp, err := client.Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
					Entity: entity, Events: []*meridianv1.ProposedEvent{{Id: newID(), Type: "Bench", Data: data}},
				}))
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if want := map[string]string{"us/": "us-east", "eu/": "eu-west"}[bc.prefix]; resp.Msg.GetRegion() != want {
					b.Fatalf("appended in %s, want %s", resp.Msg.GetRegion(), want)
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
		})
	}
}
