package multiregion

import (
	"context"
	"errors"
	"sync/atomic"
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

// A MULTI_REGION append whose events a failover superseded is never
// acknowledged at the versions it no longer has. eu-west commits the
// append while the survivors hold its log back, and is then cut off until
// eu/ fails over to us-east, which writes eu/m's first version itself. On
// the heal eu-west's log reaches the survivors, which supersede the event
// on arrival: their applied vectors pass its dot, but us-east appends it
// again (marked recovered) at version 2. Counting applied vectors, the
// home acknowledged it at version 1 (TestChaosPlacement caught that); now
// it answers, as soon as it learns of its failover, that the write is not
// replicated, and a retry with the same id returns the version the event
// has in every region.
func TestMultiRegionAckNeverCountsASupersededEvent(t *testing.T) {
	var hold atomic.Bool
	c := startFailoverCluster(t, &hold)
	ctx := ctxFor(t, 3*time.Minute)

	hold.Store(true)
	id := newID()
	type result struct {
		resp *meridianv1.AppendResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		r, err := appendTo(actx, c, "eu-west-1", "eu/m", meridianv1.Durability_DURABILITY_MULTI_REGION, 1, id)
		done <- result{r, err}
	}()
	require.Eventually(t, func() bool {
		events, _, err := c.Node("eu-west-1").Region().FSM().ReadStream("eu/m", 0, 10, false)
		return err == nil && len(events) == 1
	}, 10*time.Second, 10*time.Millisecond, "eu-west did not commit the append")

	c.Net.Isolate("eu-west-1")
	var mine *meridianv1.AppendResponse
	require.Eventually(t, func() bool {
		r, err := appendTo(ctxFor(t, 2*time.Second), c, "us-east-1", "eu/m", meridianv1.Durability_DURABILITY_REGION, 0, newID())
		mine = r
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "eu/ did not fail over to us-east")
	require.Equal(t, "us-east", mine.GetRegion())
	require.Equal(t, uint64(1), mine.GetFirstVersion(), "the cut must leave eu-west's event out")

	hold.Store(false)
	c.Net.HealAll()
	res := <-done
	if res.err == nil {
		t.Errorf("acknowledged at version %d as %s:%d, after a failover superseded it", res.resp.GetFirstVersion(),
			res.resp.GetOrigin().GetRegion(), res.resp.GetOrigin().GetSeq())
	} else {
		// eu-west learns its failover and rolls the event out of its own
		// stream: the wait ends then, not at its deadline.
		assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(res.err), "%v", res.err)
		assert.Contains(t, res.err.Error(), "a failover of this region superseded them")
	}

	// The retry returns the event's place, identical in every region.
	var again *meridianv1.AppendResponse
	require.Eventually(t, func() bool {
		r, err := appendTo(ctxFor(t, 5*time.Second), c, "ap-south-1", "eu/m", meridianv1.Durability_DURABILITY_MULTI_REGION, 1, id)
		again = r
		return err == nil
	}, time.Minute, 100*time.Millisecond, "the retry never succeeded")
	// Either the new home had appended the event again (the retry is a
	// duplicate of that copy, marked recovered) or the retry got there
	// first (and the recovery is a no-op): version 2 either way.
	assert.Equal(t, uint64(2), again.GetFirstVersion())
	assert.Equal(t, "us-east", again.GetOrigin().GetRegion())
	waitConverged(t, c, []string{"eu/m"}, 30*time.Second)
	for _, h := range c.Hosts() {
		events, _, err := c.Node(h).Region().FSM().ReadStream("eu/m", 0, 10, false)
		require.NoError(t, err)
		require.Len(t, events, 2, "on %s", h)
		assert.Equal(t, id, events[1].GetId(), "on %s", h)
		assert.Equal(t, again.GetOrigin().GetSeq(), events[1].GetOrigin().GetSeq(), "on %s", h)
		if events[1].GetRecovered() {
			assert.True(t, again.GetDuplicate(), "on %s: the recovered copy was there first, the retry must be its duplicate", h)
		}
	}
}
