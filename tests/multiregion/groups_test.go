package multiregion

import (
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

var errStopConsumer = errors.New("test: consumer stopped")

// TestConsumerGroupMovesBetweenRegions consumes a group's events in
// us-east, stops it mid-way, creates the group in eu-west at the
// checkpoint us-east stored, and consumes the rest there: every matching
// event is handled exactly once (the page the consumer stopped on was not
// committed and is not counted), and nothing outside the filter.
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
	note := func(page *meridianv1.ReadLogResponse) {
		for _, e := range page.GetEvents() {
			assert.True(t, strings.HasPrefix(e.GetEntity(), "us/") || strings.HasPrefix(e.GetEntity(), "eu/"), e.GetEntity())
			handled[causal.Dot{Region: e.GetOrigin().GetRegion(), Seq: e.GetOrigin().GetSeq()}]++
		}
	}
	pages := 0
	err = us.ConsumeGroup(ctx, "billing", client.Consume{PageMax: 5}, func(page *meridianv1.ReadLogResponse) error {
		if pages == 3 {
			return errStopConsumer // not handled, not committed
		}
		pages++
		note(page)
		return nil
	})
	require.ErrorIs(t, err, errStopConsumer)
	require.Len(t, handled, 15, "three pages of five")

	got, err := us.GetGroup(ctx, "billing")
	require.NoError(t, err)
	assert.Equal(t, uint64(4), got.GetGroup().GetRevision(), "created, then three commits")
	_, err = eu.CreateGroup(ctx, &meridianv1.CreateGroupRequest{Name: "billing", Filter: filter, Start: got.GetGroup().GetCheckpoint()})
	require.NoError(t, err)
	require.NoError(t, eu.ConsumeGroup(ctx, "billing", client.Consume{PageMax: 5}, func(page *meridianv1.ReadLogResponse) error {
		note(page)
		return nil
	}))

	want := 0
	for _, h := range c.Hosts() {
		events, err := c.Node(h).Region().FSM().ScanLog(region.LogScan{Max: 1000})
		require.NoError(t, err)
		for _, e := range events.Events {
			if o := e.GetOrigin(); o.GetRegion() == c.RegionOf(h) && (strings.HasPrefix(e.GetEntity(), "us/") || strings.HasPrefix(e.GetEntity(), "eu/")) {
				want++
				assert.Equal(t, 1, handled[causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}], "%v %s", o, e.GetEntity())
			}
		}
	}
	assert.Equal(t, 24, want, "two thirds of 36 appends match")
	assert.Len(t, handled, want)
}

// TestConsumerGroupSurvivesALeaderChange consumes a group through all
// three nodes of us-east and kills the region leader after two committed
// pages: consumption goes on through the new leader to the end, every
// matching event is handled, and an event is handled twice only within
// the one page whose commit the kill may have cut off.
func TestConsumerGroupSurvivesALeaderChange(t *testing.T) {
	c := startCluster(t, 3)
	setExampleRules(t, c)
	hosts := c.HostsOf("us-east")
	for i := range 60 {
		appendVia(t, c, hosts[i%len(hosts)], fmt.Sprintf("us/lc-%d", i%5), "")
	}
	var endpoints []string
	for _, h := range hosts {
		endpoints = append(endpoints, "http://"+c.APIAddr(h))
	}
	cl, err := client.New(endpoints)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	ctx := ctxFor(t, 2*time.Minute)
	_, err = cl.CreateGroup(ctx, &meridianv1.CreateGroupRequest{Name: "lc", Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"us/lc-"}}})
	require.NoError(t, err)

	const pageMax = 7
	handled := map[causal.Dot]int{}
	pages := 0
	killed := ""
	err = cl.ConsumeGroup(ctx, "lc", client.Consume{PageMax: pageMax}, func(page *meridianv1.ReadLogResponse) error {
		for _, e := range page.GetEvents() {
			handled[causal.Dot{Region: e.GetOrigin().GetRegion(), Seq: e.GetOrigin().GetSeq()}]++
		}
		pages++
		if pages == 3 && killed == "" {
			for _, h := range hosts {
				if n := c.Node(h); n != nil && n.Region().IsLeader() {
					killed = h
					require.NoError(t, c.Kill(h))
					break
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, killed, "no region leader found to kill")
	assert.Len(t, handled, 60, "every matching event handled")
	twice := 0
	for dot, n := range handled {
		assert.LessOrEqual(t, n, 2, "%v handled %d times", dot, n)
		if n == 2 {
			twice++
		}
	}
	assert.LessOrEqual(t, twice, pageMax, "duplicates only within the page whose commit the kill cut off")
	t.Logf("killed %s after 3 pages; %d events handled twice", killed, twice)
}

// TestTwoConsumersOfOneGroupTakeTurns runs two ConsumeGroup consumers of
// one group at once. Their commits race: the loser of each race gets
// Aborted, reads the group again and goes on from the winner's
// checkpoint. Both end, every event is handled at least once, and the
// group's checkpoint covers every event.
func TestTwoConsumersOfOneGroupTakeTurns(t *testing.T) {
	c := startCluster(t, 1)
	setExampleRules(t, c)
	for i := range 90 {
		appendVia(t, c, "us-east-1", fmt.Sprintf("us/tw-%d", i%6), "")
	}
	ctx := ctxFor(t, time.Minute)
	newClient := func() *client.Client {
		cl, err := client.New([]string{"http://" + c.APIAddr("us-east-1")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	a, b := newClient(), newClient()
	_, err := a.CreateGroup(ctx, &meridianv1.CreateGroupRequest{Name: "tw", Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"us/tw-"}}})
	require.NoError(t, err)

	var mu sync.Mutex
	handled := map[causal.Dot]int{}
	consume := func(cl *client.Client) error {
		return cl.ConsumeGroup(ctx, "tw", client.Consume{PageMax: 4}, func(page *meridianv1.ReadLogResponse) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range page.GetEvents() {
				handled[causal.Dot{Region: e.GetOrigin().GetRegion(), Seq: e.GetOrigin().GetSeq()}]++
			}
			return nil
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- consume(a) }()
	go func() { errs <- consume(b) }()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	assert.Len(t, handled, 90, "every event handled at least once")
	g, err := a.GetGroup(ctx, "tw")
	require.NoError(t, err)
	applied := c.Node("us-east-1").Region().Applied()
	assert.Equal(t, applied["us-east"], g.GetGroup().GetCheckpoint()["us-east"], "the checkpoint covers every event")
	twice := 0
	for _, n := range handled {
		if n > 1 {
			twice++
		}
	}
	t.Logf("%d of 90 events handled by both consumers; group at revision %d", twice, g.GetGroup().GetRevision())
}
