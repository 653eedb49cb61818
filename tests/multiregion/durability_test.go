package multiregion

import (
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/region"
)

// An append acknowledged with DURABILITY_MULTI_REGION and min_regions = 1
// survives the loss of its whole home region, killed right after the ack.
//
// The links out of the home get 300 ms of latency each way, so the
// placement group runs with WAN timers (the production defaults) and the
// regions with the production lease: a renewal crosses those links.
func TestMultiRegionDurableAppendSurvivesLosingItsHomeRegion(t *testing.T) {
	c := startClusterWith(t, 3, func(nc *node.Config) {
		nc.PlacementConfig = func(pc *placement.Config) {
			PlacementTestConfig(pc)
			d := placement.DefaultConfig()
			pc.HeartbeatTimeout, pc.ElectionTimeout, pc.LeaderLeaseTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout
		}
		nc.RegionConfig = func(rc *region.Config) {
			RegionTestConfig(rc)
			d := region.DefaultConfig()
			rc.LeaseDuration, rc.LeaseRenewInterval = d.LeaseDuration, d.LeaseRenewInterval
		}
	})
	setExampleRules(t, c)
	ctx := ctxFor(t, time.Minute)

	// Slow links out of the home, so that replication visibly takes time:
	// an ack that did not wait for another region would come back before
	// any other region had the event.
	for _, from := range c.HostsOf("us-east") {
		for _, to := range c.Hosts() {
			if c.RegionOf(to) != "us-east" {
				c.Net.SetLatency(from, to, 300*time.Millisecond, 0)
				c.Net.SetLatency(to, from, 300*time.Millisecond, 0)
			}
		}
	}
	var acked []*meridianv1.AppendResponse
	for i := range 5 {
		// Sent to a node of another region: forwarded to the home, which
		// acknowledges only once one other region has applied it.
		resp, err := c.EventStore("eu-west-2").Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
			Entity: "us/durable", Events: []*meridianv1.ProposedEvent{event("Paid")},
			Durability: meridianv1.Durability_DURABILITY_MULTI_REGION, MinRegions: 1,
		}))
		require.NoError(t, err, "append %d", i)
		acked = append(acked, resp.Msg)
	}
	for _, h := range c.HostsOf("us-east") {
		require.NoError(t, c.Kill(h))
	}
	last := acked[len(acked)-1].GetOrigin().GetSeq()
	survivors := 0
	for _, r := range []string{"eu-west", "ap-south"} {
		for _, h := range c.HostsOf(r) {
			if c.Node(h).Region().Applied()["us-east"] >= last {
				survivors++
				events, _, err := c.Node(h).Region().FSM().ReadStream("us/durable", 0, 100, false)
				require.NoError(t, err)
				require.Len(t, events, len(acked), "on %s", h)
				for i, e := range events {
					assert.Equal(t, acked[i].GetOrigin().GetSeq(), e.GetOrigin().GetSeq())
				}
				break
			}
		}
	}
	assert.GreaterOrEqual(t, survivors, 1, "at least min_regions other regions held every acknowledged event when the home died")
}

func TestMultiRegionDurabilityRejectsBadMinRegions(t *testing.T) {
	c := startCluster(t, 1)
	setExampleRules(t, c)
	ctx := ctxFor(t, time.Minute)
	for _, tc := range []struct {
		name  string
		dur   meridianv1.Durability
		k     uint32
		field string
	}{
		{"multi-region without min_regions", meridianv1.Durability_DURABILITY_MULTI_REGION, 0, "min_regions"},
		{"more regions than exist", meridianv1.Durability_DURABILITY_MULTI_REGION, 3, "must be 1 to 2"},
		{"min_regions without multi-region", meridianv1.Durability_DURABILITY_REGION, 1, "min_regions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.EventStore("us-east-1").Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
				Entity: "us/bad", Events: []*meridianv1.ProposedEvent{event("X")}, Durability: tc.dur, MinRegions: tc.k,
			}))
			var ce *connect.Error
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, connect.CodeInvalidArgument, ce.Code())
			assert.Contains(t, ce.Message(), tc.field)
		})
	}
	events, _, err := c.Node("us-east-1").Region().FSM().ReadStream("us/bad", 0, 10, false)
	require.NoError(t, err)
	assert.Empty(t, events)
}
