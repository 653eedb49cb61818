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
	"github.com/meridiandb/meridian/replication"
)

// Bounds of the failover tests (RegionTestConfig's lease, the placement
// default maximum clock offset).
const (
	testLease     = 2 * time.Second
	testMaxOffset = 500 * time.Millisecond
	// failoverSlack is issue 12's allowance on top of lease + offset.
	failoverSlack = 3 * time.Second
)

// failoverRules: eu/ fails over to us-east (safe); nv/ is homed in eu-west
// too but never fails over.
func failoverRules() *meridianv1.SetRulesRequest {
	return &meridianv1.SetRulesRequest{DefaultRegion: "us-east", Rules: []*meridianv1.PlacementRule{
		{Prefix: "us/", HomeRegion: "us-east"},
		{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east", "ap-south"}},
		{Prefix: "nv/", HomeRegion: "eu-west", Failover: []string{"us-east"}, FailoverPolicy: meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER},
		{Prefix: "ap/", HomeRegion: "ap-south"},
	}}
}

// startFailoverCluster starts 3 regions of one node each whose survivors
// can be told to hold eu-west's log back (an unreplicated tail).
func startFailoverCluster(t *testing.T, hold *atomic.Bool) *Cluster {
	t.Helper()
	c, err := Start(Config{Regions: threeRegions, NodesPerRegion: 1, Dir: t.TempDir(), Seed: 1, Logger: testLogger(t),
		Tweak: func(nc *node.Config) {
			nc.ReplicationConfig = func(rc *replication.Config) {
				ReplicationTestConfig(rc)
				rc.Knobs = &replication.TestingKnobs{HoldOrigin: func(o string) bool { return o == "eu-west" && hold.Load() }}
			}
			nc.PlacementConfig = func(pc *placement.Config) {
				PlacementTestConfig(pc)
				pc.MaxClockOffset = testMaxOffset
			}
		}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	waitPlacementComplete(t, c, c.Hosts())
	set, err := c.Placement("us-east-1").SetRules(ctxFor(t, 30*time.Second), connect.NewRequest(failoverRules()))
	require.NoError(t, err)
	waitIndex(t, c, c.Hosts(), set.Msg.GetIndex())
	waitRegionLeaders(t, c)
	return c
}

func appendTo(ctx context.Context, c *Cluster, host, entity string, d meridianv1.Durability, k uint32, id string) (*meridianv1.AppendResponse, error) {
	resp, err := c.EventStore(host).Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
		Entity: entity, Events: []*meridianv1.ProposedEvent{{Id: id, Type: "E", Data: []byte(id)}}, Durability: d, MinRegions: k,
	}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// TestFailoverSafeMovesALostRegionsEntitiesAndRecoversItsTail is issue 12's
// whole-region loss with policy safe: eu-west acknowledges MULTI_REGION
// writes (held by a survivor) and then REGION writes the survivors never
// get (its unreplicated tail, which it reports); it is lost. Writes to eu/
// resume in us-east within lease + offset + 3 s; the MULTI_REGION writes
// keep their versions; nv/ (policy never) stays with eu-west and its writes
// fail with a retryable error naming the home's lease. When eu-west returns
// its tail reaches every region and is superseded on arrival: the new home
// appends each tail event again, in order, marked recovered with its
// original version (after its own writes where it wrote, at the same
// versions where it did not); every region converges.
func TestFailoverSafeMovesALostRegionsEntitiesAndRecoversItsTail(t *testing.T) {
	var hold atomic.Bool
	c := startFailoverCluster(t, &hold)
	ctx := ctxFor(t, 3*time.Minute)

	// MULTI_REGION: acknowledged once another region applied it.
	var durable []*meridianv1.AppendResponse
	for i := range 3 {
		r, err := appendTo(ctx, c, "eu-west-1", "eu/a", meridianv1.Durability_DURABILITY_MULTI_REGION, 1, newID())
		require.NoError(t, err, "multi-region append %d", i)
		durable = append(durable, r)
	}
	waitConverged(t, c, []string{"eu/a"}, 30*time.Second)

	// The survivors stop applying eu-west's log: what eu-west acknowledges
	// now (REGION durability) is its unreplicated tail.
	hold.Store(true)
	tail := map[string][]string{}
	for _, e := range []string{"eu/a", "eu/a", "eu/a", "eu/b", "eu/b"} {
		id := newID()
		_, err := appendTo(ctx, c, "eu-west-1", e, meridianv1.Durability_DURABILITY_REGION, 0, id)
		require.NoError(t, err)
		tail[e] = append(tail[e], id)
	}
	// eu-west reports its tail with its lease renewals, before it is lost.
	require.Eventually(t, func() bool {
		regions, err := c.Placement("ap-south-1").ListRegions(ctx, connect.NewRequest(&meridianv1.ListRegionsRequest{}))
		if err != nil {
			return false
		}
		for _, r := range regions.Msg.GetRegions() {
			if r.GetName() == "eu-west" {
				return r.GetLease().GetLease().GetTailEvents() >= 5
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "eu-west's unreplicated tail was not reported")

	require.NoError(t, c.Kill("eu-west-1"))
	lost := time.Now()

	// Writes to eu/ resume in us-east.
	var first *meridianv1.AppendResponse
	require.Eventually(t, func() bool {
		r, err := appendTo(ctxFor(t, 2*time.Second), c, "us-east-1", "eu/a", meridianv1.Durability_DURABILITY_REGION, 0, newID())
		first = r
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "writes to eu/ did not resume")
	resumed := time.Since(lost)
	t.Logf("writes to the lost region's entities resumed in %s after the loss (bound: lease %s + offset %s + %s)",
		resumed.Round(time.Millisecond), testLease, testMaxOffset, failoverSlack)
	assert.LessOrEqual(t, resumed, testLease+testMaxOffset+failoverSlack)
	assert.Equal(t, "us-east", first.GetRegion())
	assert.Equal(t, uint64(4), first.GetFirstVersion(), "the new home continues after the MULTI_REGION writes, on top of the cut")

	// MULTI_REGION writes keep their versions.
	read, err := c.EventStore("ap-south-1").Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "eu/a", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG}))
	require.NoError(t, err)
	require.Len(t, read.Msg.GetEvents(), 4)
	for i, d := range durable {
		assert.Equal(t, d.GetFirstVersion(), read.Msg.GetEvents()[i].GetVersion())
		assert.Equal(t, d.GetOrigin().GetSeq(), read.Msg.GetEvents()[i].GetOrigin().GetSeq())
	}
	p, err := c.Placement("ap-south-1").GetPlacement(ctx, connect.NewRequest(&meridianv1.GetPlacementRequest{Entity: "eu/a"}))
	require.NoError(t, err)
	assert.Equal(t, "us-east", p.Msg.GetHomeRegion())
	assert.Contains(t, p.Msg.GetFailover(), "eu-west", "the lost home joins the end of the failover list")

	// Policy never: nothing moves, writes fail naming the home and its lease.
	pn, err := c.Placement("us-east-1").GetPlacement(ctx, connect.NewRequest(&meridianv1.GetPlacementRequest{Entity: "nv/x"}))
	require.NoError(t, err)
	assert.Equal(t, "eu-west", pn.Msg.GetHomeRegion())
	_, err = appendTo(ctxFor(t, 20*time.Second), c, "us-east-1", "nv/x", meridianv1.Durability_DURABILITY_REGION, 0, newID())
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeUnavailable, ce.Code())
	assert.Contains(t, ce.Message(), `home region "eu-west"`)
	assert.Contains(t, ce.Message(), "lease of eu-west")
	assert.Contains(t, ce.Message(), "expired")

	// eu-west returns; its tail flows.
	hold.Store(false)
	require.NoError(t, c.Restart("eu-west-1"))
	entities := []string{"eu/a", "eu/b"}
	waitConverged(t, c, entities, 60*time.Second)
	var evs []*meridianv1.Event
	require.Eventually(t, func() bool {
		r, err := c.EventStore("us-east-1").Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "eu/a", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG}))
		if err != nil {
			return false
		}
		evs = r.Msg.GetEvents()
		return len(evs) == 7
	}, 30*time.Second, 100*time.Millisecond, "eu-west's tail was not appended again by the new home")
	waitConverged(t, c, entities, 60*time.Second)
	for i, id := range tail["eu/a"] {
		ev := evs[4+i]
		assert.Equal(t, id, ev.GetId())
		assert.True(t, ev.GetRecovered(), "v%d is a recovered event", ev.GetVersion())
		assert.Equal(t, uint64(4+i), ev.GetOriginalVersion())
		assert.Equal(t, "eu-west", ev.GetRecoveredFrom().GetRegion())
		assert.Equal(t, "us-east", ev.GetOrigin().GetRegion())
	}
	rb, err := c.EventStore("ap-south-1").Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "eu/b", Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL}))
	require.NoError(t, err)
	require.Len(t, rb.Msg.GetEvents(), 2)
	for i, ev := range rb.Msg.GetEvents() {
		assert.Equal(t, tail["eu/b"][i], ev.GetId(), "in order")
		assert.Equal(t, uint64(i+1), ev.GetVersion(), "the new home wrote nothing to eu/b: the same versions")
		assert.True(t, ev.GetRecovered(), "appended again by the new home")
		assert.Equal(t, uint64(i+1), ev.GetOriginalVersion())
		assert.Equal(t, "us-east", ev.GetOrigin().GetRegion())
	}
	// The returned region renews and routes eu/ writes to the new home.
	require.Eventually(t, func() bool {
		r, err := appendTo(ctxFor(t, 5*time.Second), c, "eu-west-1", "eu/b", meridianv1.Durability_DURABILITY_REGION, 0, newID())
		return err == nil && r.GetRegion() == "us-east"
	}, 30*time.Second, 100*time.Millisecond)
	_, err = appendTo(ctx, c, "eu-west-1", "nv/x", meridianv1.Durability_DURABILITY_REGION, 0, newID())
	require.NoError(t, err, "nv/ writes resume with their home")
}
