package multiregion

import (
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// TestRegionLogVectorReadsMoveBetweenRegions reads the region log after a
// vector while writers append through all three regions, moving to the
// next region after every page and continuing with the vector the last
// page returned. Once the writers stop and the regions converge, the
// reader has received every acknowledged event exactly once, each
// region's events in their origin order, and a filtered reader (one
// prefix) exactly the events under it.
func TestRegionLogVectorReadsMoveBetweenRegions(t *testing.T) {
	c := startCluster(t, 1)
	setExampleRules(t, c)
	hosts := c.Hosts()
	ctx := ctxFor(t, 2*time.Minute)

	var mu sync.Mutex
	acked := map[causal.Dot]string{} // dot -> entity
	var writers sync.WaitGroup
	stop := make(chan struct{})
	for i, h := range hosts {
		writers.Add(1)
		go func() {
			defer writers.Done()
			entities := []string{"us/rl-1", "eu/rl-1", "ap/rl-1"}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				e := entities[(n+i)%3]
				resp, err := c.EventStore(h).Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{Entity: e, Events: []*meridianv1.ProposedEvent{event("E")}}))
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				o := resp.Msg.GetOrigin()
				acked[causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}] = e
				mu.Unlock()
			}
		}()
	}

	type reader struct {
		filter *meridianv1.EventFilter
		vector map[string]uint64
		got    map[causal.Dot]int
		last   map[string]uint64 // per origin: the last seq received
	}
	readers := []*reader{{}, {filter: &meridianv1.EventFilter{EntityPrefixes: []string{"eu/"}}}}
	for _, r := range readers {
		r.vector, r.got, r.last = map[string]uint64{}, map[causal.Dot]int{}, map[string]uint64{}
	}
	page := func(r *reader, host string) bool {
		resp, err := c.EventStore(host).ReadLog(ctx, connect.NewRequest(&meridianv1.ReadLogRequest{
			From:     &meridianv1.ReadLogRequest_AfterVector{AfterVector: &meridianv1.VectorStart{Vector: r.vector}},
			MaxCount: 7, Filter: r.filter,
		}))
		require.NoError(t, err)
		for _, e := range resp.Msg.GetEvents() {
			o := e.GetOrigin()
			r.got[causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}]++
			assert.Greater(t, o.GetSeq(), r.last[o.GetRegion()], "origin %s out of order", o.GetRegion())
			r.last[o.GetRegion()] = o.GetSeq()
		}
		r.vector = resp.Msg.GetNextVector()
		return resp.Msg.GetEnd()
	}
	// Read while the writers run, a region per page.
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		for _, r := range readers {
			page(r, hosts[i%len(hosts)])
		}
	}
	close(stop)
	writers.Wait()
	waitConverged(t, c, []string{"us/rl-1", "eu/rl-1", "ap/rl-1"}, 30*time.Second)
	// Drain: every region to its end, still moving between them.
	for _, r := range readers {
		for i, ends := 0, 0; ends < len(hosts); i++ {
			require.Less(t, i, 10000, "the reads do not end")
			if page(r, hosts[i%len(hosts)]) {
				ends++
			} else {
				ends = 0
			}
		}
	}

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, acked)
	for i, r := range readers {
		want := 0
		for dot, entity := range acked {
			if r.filter != nil && entity[:3] != "eu/" {
				assert.Zero(t, r.got[dot], "reader %d: %v of %s is outside the filter", i, dot, entity)
				continue
			}
			want++
			assert.Equal(t, 1, r.got[dot], "reader %d: %v of %s", i, dot, entity)
		}
		assert.Len(t, r.got, want, "reader %d: only acknowledged events", i)
		t.Logf("reader %d: %d events exactly once out of %d acknowledged", i, want, len(acked))
	}
}
