package multiregion

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/region"
)

func dotOf(e *meridianv1.Event) causal.Dot {
	return causal.Dot{Region: e.GetOrigin().GetRegion(), Seq: e.GetOrigin().GetSeq()}
}

// TestConsumerGroupMovesBetweenRegions consumes a group's events in
// us-east, stops the consumer mid-way, moves the group to eu-west (its
// checkpoint and acked set) and consumes the rest there: every matching
// event is handled exactly once (events leased but not handled when the
// consumer stopped come again in eu-west), and nothing outside the filter.
func TestConsumerGroupMovesBetweenRegions(t *testing.T) {
	c := startCluster(t, 1)
	setExampleRules(t, c)
	var entities []string
	for _, h := range c.Hosts() {
		for i := range 12 {
			e := fmt.Sprintf("%s/grp-%d", []string{"us", "eu", "ap"}[i%3], i%4)
			appendVia(t, c, h, e, "")
			entities = append(entities, e)
		}
	}
	waitConverged(t, c, entities, 30*time.Second)

	sdk := func(host string) *client.Client {
		cl, err := client.New([]string{"http://" + c.APIAddr(host)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	us, eu := sdk("us-east-1"), sdk("eu-west-1")
	ctx := ctxFor(t, time.Minute)
	filter := &meridianv1.EventFilter{EntityPrefixes: []string{"us/", "eu/"}}
	_, err := us.CreateGroup(ctx, &meridianv1.CreateGroupRequest{Name: "billing", Filter: filter})
	require.NoError(t, err)

	handled := map[causal.Dot]int{}
	note := func(e *meridianv1.Event) {
		assert.True(t, strings.HasPrefix(e.GetEntity(), "us/") || strings.HasPrefix(e.GetEntity(), "eu/"), e.GetEntity())
		handled[dotOf(e)]++
	}
	stopCtx, stop := context.WithCancel(ctx)
	var inUS client.ConsumeStats
	require.NoError(t, us.ConsumeGroup(stopCtx, "billing", client.Consume{Batch: 5, Stats: &inUS}, func(_ context.Context, d *meridianv1.Delivery) error {
		note(d.GetEvent())
		if len(handled) == 13 {
			stop() // the rest of this batch is leased, not handled
		}
		return nil
	}))
	require.Len(t, handled, 13)
	assert.Equal(t, uint64(13), inUS.Acked, "a stopping consumer acks what it handled")

	got, err := us.GetGroup(ctx, "billing")
	require.NoError(t, err)
	g := got.GetGroup()
	_, err = eu.CreateGroup(ctx, &meridianv1.CreateGroupRequest{Name: "billing", Filter: g.GetFilter(), Start: g.GetCheckpoint(), Acked: g.GetAcked()})
	require.NoError(t, err)
	var inEU client.ConsumeStats
	require.NoError(t, eu.ConsumeGroup(ctx, "billing", client.Consume{Batch: 5, Stats: &inEU}, func(_ context.Context, d *meridianv1.Delivery) error {
		note(d.GetEvent())
		return nil
	}))

	want := 0
	for _, h := range c.Hosts() {
		events, err := c.Node(h).Region().FSM().ScanLog(region.LogScan{Max: 1000})
		require.NoError(t, err)
		for _, e := range events.Events {
			if o := e.GetOrigin(); o.GetRegion() == c.RegionOf(h) && (strings.HasPrefix(e.GetEntity(), "us/") || strings.HasPrefix(e.GetEntity(), "eu/")) {
				want++
				assert.Equal(t, 1, handled[dotOf(e)], "%v %s", o, e.GetEntity())
			}
		}
	}
	assert.Equal(t, 24, want, "two thirds of 36 appends match")
	assert.Len(t, handled, want)
	assert.Equal(t, uint64(want), inUS.Acked+inEU.Acked)
	assert.Zero(t, inUS.Duplicate+inEU.Duplicate)
}

// TestCompetingConsumersShareAGroup is issue 17's consumer group check on
// a 3-node region: three consumers of one group, one of which takes a
// batch and dies without acking it; the region leader is killed while the
// other two run; events of one entity always fail and are parked after
// the group's max deliveries. Every other event is acked exactly once by
// the group (the acks the consumers count as first add up to the events),
// events handled twice are only those leased when the leader died or held
// by the dead consumer (each counted), every entity's events are first
// handled in version order, and the parked events are listed.
func TestCompetingConsumersShareAGroup(t *testing.T) {
	c := startCluster(t, 3)
	setExampleRules(t, c)
	hosts := c.HostsOf("us-east")
	const total, poisonEvery = 120, 40
	poison := 0
	for i := range total {
		e := fmt.Sprintf("us/cc-%d", i%6)
		if i%poisonEvery == 0 {
			e = "us/cc-poison"
			poison++
		}
		appendVia(t, c, hosts[i%len(hosts)], e, "")
	}
	var endpoints []string
	for _, h := range hosts {
		endpoints = append(endpoints, "http://"+c.APIAddr(h))
	}
	newClient := func() *client.Client {
		cl, err := client.New(endpoints)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	ctx := ctxFor(t, 2*time.Minute)
	admin := newClient()
	const maxInFlight = 6
	_, err := admin.CreateGroup(ctx, &meridianv1.CreateGroupRequest{
		Name: "cc", Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"us/cc-"}},
		Settings: &meridianv1.GroupSettings{AckTimeoutMs: 1000, MaxDeliveries: 2, MaxInFlight: maxInFlight},
	})
	require.NoError(t, err)

	// The consumer that dies: it takes a batch and never acks.
	dead, err := newClient().Fetch(ctx, "cc", "dies", maxInFlight, time.Second)
	require.NoError(t, err)
	require.NotEmpty(t, dead.GetDeliveries())

	var mu sync.Mutex
	handled := map[causal.Dot]int{}
	first := map[string][]uint64{} // entity -> versions in first-handling order
	killed := ""
	kill := func() {
		for _, h := range hosts {
			if n := c.Node(h); n != nil && n.Region().IsLeader() {
				killed = h
				go func() { assert.NoError(t, c.Kill(h)) }()
				return
			}
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	stats := make([]client.ConsumeStats, 2)
	errs := make(chan error, 2)
	for i := range stats {
		cl := newClient()
		go func() {
			errs <- cl.ConsumeGroup(runCtx, "cc", client.Consume{Consumer: fmt.Sprintf("c-%d", i), Batch: 3, Follow: true, Wait: 500 * time.Millisecond, Stats: &stats[i]},
				func(_ context.Context, d *meridianv1.Delivery) error {
					e := d.GetEvent()
					if e.GetEntity() == "us/cc-poison" {
						return errors.New("cannot handle poison")
					}
					mu.Lock()
					defer mu.Unlock()
					if handled[dotOf(e)]++; handled[dotOf(e)] == 1 {
						first[e.GetEntity()] = append(first[e.GetEntity()], e.GetVersion())
					}
					if len(handled) == total/3 && killed == "" {
						kill()
					}
					return nil
				})
		}()
	}
	want := total - poison
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == want
	}, 90*time.Second, 100*time.Millisecond, "every event handled")
	require.Eventually(t, func() bool {
		g, err := admin.GetGroup(ctx, "cc")
		return err == nil && g.GetGroup().GetParkedCount() == uint64(poison)
	}, 30*time.Second, 100*time.Millisecond, "the poison events parked")
	stop()
	for range stats {
		require.NoError(t, <-errs)
	}

	require.NotEmpty(t, killed)
	acked, dup := stats[0].Acked+stats[1].Acked, stats[0].Duplicate+stats[1].Duplicate
	// The group counts each first ack once; a consumer may count fewer (an
	// ack whose answer the leader's death lost is a duplicate on retry).
	assert.LessOrEqual(t, acked, uint64(want))
	assert.GreaterOrEqual(t, acked+dup, uint64(want))
	twice := 0
	for dot, n := range handled {
		if n > 1 {
			twice += n - 1
			t.Logf("%v handled %d times", dot, n)
		}
	}
	// Handled twice: the dead consumer's batch is not counted (it never
	// handled it); what the two live consumers held when the leader died
	// can come again from the new leader.
	assert.LessOrEqual(t, twice, 2*maxInFlight, "duplicates only within the unacked window")
	assert.GreaterOrEqual(t, dup, uint64(twice), "each extra handling ends in a duplicate ack")
	for entity, versions := range first {
		for i := 1; i < len(versions); i++ {
			assert.Less(t, versions[i-1], versions[i], "%s first handled out of order: %v", entity, versions)
		}
	}
	g, err := admin.GetGroup(ctx, "cc")
	require.NoError(t, err)
	assert.Equal(t, uint64(want), g.GetGroup().GetAcks())
	parked, err := admin.ListParked(ctx, "cc", nil, 0)
	require.NoError(t, err)
	require.Len(t, parked.GetParked(), poison)
	for _, p := range parked.GetParked() {
		assert.Equal(t, "us/cc-poison", p.GetEvent().GetEntity())
		assert.Equal(t, "cannot handle poison", p.GetReason())
	}
	t.Logf("killed %s after %d events; %d handled twice, %d duplicate acks; consumers acked %d and %d",
		killed, total/3, twice, dup, stats[0].Acked, stats[1].Acked)
}
