package multiregion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// activeActiveRules are the example rules plus cart/ in active-active mode.
func activeActiveRules() *meridianv1.SetRulesRequest {
	r := exampleRules()
	r.Rules = append(r.Rules, &meridianv1.PlacementRule{
		Prefix: "cart/", HomeRegion: "us-east", Mode: meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE,
		Merge: []*meridianv1.MergeRule{
			{EventType: "ItemAdded", Op: meridianv1.MergeOp_MERGE_OP_SET_ADD, Target: "items"},
			{EventType: "QuantityChanged", Op: meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, Target: "quantity"},
			{EventType: "AddressSet", Op: meridianv1.MergeOp_MERGE_OP_LWW_WRITE, Target: "address"},
		},
	})
	return r
}

// setRulesAndWait sets rules and waits until every host's copy has them in
// effect (a change that switches entities to active-active is a handover:
// it takes effect once every region drained the old home).
func setRulesAndWait(t *testing.T, c *Cluster, req *meridianv1.SetRulesRequest, probe string, mode meridianv1.PlacementMode) {
	t.Helper()
	_, err := c.Placement(c.Hosts()[0]).SetRules(ctxFor(t, 30*time.Second), connect.NewRequest(req))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, h := range c.Running() {
			p := c.Node(h).Placement().Lookup(probe)
			if p.Mode != mode || p.Moving != nil {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "%s not %v on every host", probe, mode)
}

// TestActiveActiveWritesInEveryRegionThroughAPartition: with cart/
// active-active, three regions append to the same carts concurrently, and
// keep doing so while one region is cut off from the others (its lease
// runs out: single-home writes there stop, active-active ones do not).
// After the heal every region holds the same streams (same events, same
// order, versions 1..n), each acknowledged event exactly once, and a
// session that wrote in one region reads its writes in another.
func TestActiveActiveWritesInEveryRegionThroughAPartition(t *testing.T) {
	c := startCluster(t, 1)
	setRulesAndWait(t, c, activeActiveRules(), "cart/1", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE)
	carts := []string{"cart/1", "cart/2"}

	var mu sync.Mutex
	acked := map[string]string{}  // event id -> region that ordered it
	tokens := map[string]string{} // host -> its writer's session token
	added := map[string]int64{}   // cart -> acknowledged quantity increments
	write := func(host string, i int) error {
		cart := carts[i%len(carts)]
		ev := event("ItemAdded")
		switch i % 3 {
		case 0:
			ev.Data = fmt.Appendf(nil, `{"element": "item-%s-%d"}`, host, i)
		case 1:
			ev.Type, ev.Data = "QuantityChanged", fmt.Appendf(nil, `{"amount": %d}`, 1+i%4)
		case 2:
			ev.Type, ev.Data = "AddressSet", fmt.Appendf(nil, `{"value": "%s street %d"}`, host, i)
		}
		mu.Lock()
		token := tokens[host]
		mu.Unlock()
		resp, err := c.EventStore(host).Append(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.AppendRequest{
			Entity: cart, Events: []*meridianv1.ProposedEvent{ev}, SessionToken: token,
		}))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		acked[ev.GetId()] = resp.Msg.GetRegion()
		tokens[host] = resp.Msg.GetSessionToken()
		if ev.GetType() == "QuantityChanged" {
			added[cart] += int64(1 + i%4)
		}
		if resp.Msg.GetRegion() != c.RegionOf(host) {
			return fmt.Errorf("append via %s ordered by %s, not locally", host, resp.Msg.GetRegion())
		}
		return nil
	}
	burst := func(n int) {
		var wg sync.WaitGroup
		errs := make(chan error, len(c.Hosts())*n)
		for _, h := range c.Hosts() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					if err := write(h, i); err != nil {
						errs <- fmt.Errorf("%s: %w", h, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}

	// A subscriber in ap-south follows cart/1 through everything.
	subCtx, stopSub := context.WithCancel(context.Background())
	defer stopSub()
	sub, err := c.EventStore("ap-south-1").Subscribe(subCtx, connect.NewRequest(&meridianv1.SubscribeRequest{
		Target: &meridianv1.SubscribeRequest_Entity{Entity: "cart/1"},
	}))
	require.NoError(t, err)
	var subMu sync.Mutex
	delivered := map[string]int{}
	go func() {
		for sub.Receive() {
			if ev := sub.Msg().GetEvent(); ev != nil {
				subMu.Lock()
				delivered[ev.GetId()]++
				subMu.Unlock()
			}
		}
	}()

	burst(20)
	c.Net.Isolate("ap-south-1")
	cut := time.Now()
	// Long enough for ap-south's home lease to run out (test leases).
	for time.Since(cut) < 4*time.Second {
		burst(2)
		time.Sleep(100 * time.Millisecond)
	}
	// Single-home writes in the isolated region have stopped; its
	// active-active writes have not (burst above).
	_, err = c.EventStore("ap-south-1").Append(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.AppendRequest{
		Entity: "ap/x", Events: []*meridianv1.ProposedEvent{event("E")},
	}))
	require.Error(t, err, "single-home writes stop once the isolated region's lease ran out")
	// BOUNDED reads of an active-active entity in the isolated region: it
	// is seconds behind the others' writes, so a 1 s bound is refused
	// (retryable), while EVENTUAL serves what it has.
	bounded := &meridianv1.ReadStateRequest{Entity: "cart/1", Consistency: meridianv1.Consistency_CONSISTENCY_BOUNDED, MaxStaleness: durationpb.New(time.Second)}
	_, err = c.EventStore("ap-south-1").ReadState(ctxFor(t, 20*time.Second), connect.NewRequest(bounded))
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeUnavailable, ce.Code(), ce.Message())
	assert.Equal(t, "too-stale", ce.Meta().Get("Meridian-Error"), ce.Message())
	_, err = c.EventStore("ap-south-1").ReadState(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.ReadStateRequest{
		Entity: "cart/1", Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
	}))
	require.NoError(t, err)
	c.Net.HealAll()
	burst(5)
	// Healed and caught up, the same bound is served locally.
	require.Eventually(t, func() bool {
		r, err := c.EventStore("ap-south-1").ReadState(ctxFor(t, 20*time.Second), connect.NewRequest(bounded))
		return err == nil && r.Msg.GetRegion() == "ap-south"
	}, 20*time.Second, 100*time.Millisecond, "BOUNDED state read not served in ap-south after the heal")

	digests := waitConverged(t, c, carts, 30*time.Second)
	seen := map[string]int{}
	for _, e := range carts {
		evs := readAllVia(t, c, "us-east-1", e, "")
		for i, ev := range evs {
			assert.Equal(t, uint64(i+1), ev.GetVersion(), "%s: versions are positions 1..n", e)
			assert.True(t, ev.GetActiveActive())
			seen[ev.GetId()]++
		}
		assert.NotEmpty(t, digests[e])
	}
	byRegion := map[string]int{}
	for id, region := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s (ordered by %s) held %d times", id, region, seen[id])
		}
		byRegion[region]++
	}
	assert.Equal(t, len(acked), len(seen), "no event beyond the acknowledged ones")
	t.Logf("%d acknowledged appends, by ordering region %v", len(acked), byRegion)
	assert.Len(t, byRegion, 3, "every region ordered appends")

	// Once writes stop, idle regions' clock ticks reach the others through
	// replication heartbeats, and every event becomes stable everywhere.
	require.Eventually(t, func() bool {
		for _, h := range c.Hosts() {
			for _, e := range carts {
				evs, _, err := c.Node(h).Region().FSM().ReadStream(e, 0, 1000, false)
				if err != nil || len(evs) == 0 || !evs[len(evs)-1].GetStable() {
					return false
				}
			}
		}
		return true
	}, 15*time.Second, 100*time.Millisecond, "events did not all become stable after writes stopped")

	// Every region returns the same merged state and conflict feed, and
	// each cart's quantity is exactly the sum of its acknowledged
	// increments.
	for _, e := range carts {
		var want, wantConflicts string
		for i, h := range c.Hosts() {
			st, err := c.EventStore(h).ReadState(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.ReadStateRequest{Entity: e}))
			require.NoError(t, err)
			cf := conflictFeedVia(t, c, h, e)
			if i == 0 {
				want, wantConflicts = st.Msg.GetState(), cf
				var state struct {
					Quantity int64    `json:"quantity"`
					Items    []string `json:"items"`
				}
				require.NoError(t, json.Unmarshal([]byte(want), &state), want)
				mu.Lock()
				assert.Equal(t, added[e], state.Quantity, "%s: quantity is the sum of the acknowledged increments", e)
				mu.Unlock()
				assert.NotEmpty(t, state.Items)
				t.Logf("%s: %d items, quantity %d, %d conflicts", e, len(state.Items), state.Quantity, strings.Count(cf, "\n"))
				continue
			}
			assert.Equal(t, want, st.Msg.GetState(), "%s: state in %s", e, h)
			assert.Equal(t, wantConflicts, cf, "%s: conflicts in %s", e, h)
		}
	}

	// The subscriber got every event of cart/1 exactly once, although
	// events ordered elsewhere during the cut sorted before ones it had
	// already been sent.
	stream := readAllVia(t, c, "ap-south-1", "cart/1", "")
	require.Eventually(t, func() bool {
		subMu.Lock()
		defer subMu.Unlock()
		return len(delivered) >= len(stream)
	}, 10*time.Second, 50*time.Millisecond, "the subscription did not deliver every event of cart/1")
	subMu.Lock()
	for _, ev := range stream {
		assert.Equal(t, 1, delivered[ev.GetId()], "event %s delivered %d times", ev.GetId(), delivered[ev.GetId()])
	}
	assert.Len(t, delivered, len(stream), "the subscription delivered only the stream's events")
	subMu.Unlock()
	stopSub()

	// A session that wrote in eu-west reads its writes in ap-south.
	mu.Lock()
	token := tokens["eu-west-1"]
	mu.Unlock()
	for _, e := range carts {
		want := strings.Count(digests[e], "@eu-west/")
		got := 0
		for _, ev := range readAllVia(t, c, "ap-south-1", e, token) {
			if ev.GetOrigin().GetRegion() == "eu-west" {
				got++
			}
		}
		assert.Equal(t, want, got, "%s: eu-west's writes read in ap-south", e)
	}
}

// readAllVia reads entity's whole stream through host's API (SESSION with
// token), page by page, checking that host's region served every page.
func readAllVia(t *testing.T, c *Cluster, host, entity, token string) []*meridianv1.Event {
	t.Helper()
	var out []*meridianv1.Event
	for {
		read, err := c.EventStore(host).Read(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.ReadRequest{
			Entity: entity, SessionToken: token, FromVersion: uint64(len(out) + 1), MaxCount: 1000,
		}))
		require.NoError(t, err)
		require.Equal(t, c.RegionOf(host), read.Msg.GetRegion())
		out = append(out, read.Msg.GetEvents()...)
		if len(read.Msg.GetEvents()) == 0 || uint64(len(out)) >= read.Msg.GetHeadVersion() {
			return out
		}
	}
}

// conflictFeedVia reads entity's whole conflict feed through host, page by
// page, one line per conflict.
func conflictFeedVia(t *testing.T, c *Cluster, host, entity string) string {
	t.Helper()
	var b strings.Builder
	after := ""
	for {
		resp, err := c.EventStore(host).ReadConflicts(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.ReadConflictsRequest{
			Entity: entity, After: after, MaxCount: 50,
		}))
		require.NoError(t, err)
		for _, cf := range resp.Msg.GetConflicts() {
			fmt.Fprintf(&b, "%s[%s] %s<%s\n", cf.GetTarget(), cf.GetKey(), cf.GetLoser().GetEventId(), cf.GetWinner().GetEventId())
		}
		if after = resp.Msg.GetNextPageToken(); after == "" {
			return b.String()
		}
	}
}

// TestSwitchToActiveActiveUnderLoad: carts are written through every
// region while their prefix switches from single-home (the default region
// orders them) to active-active, and back. Writes in flight during a
// handover wait for the flip (or fail Unavailable, writing nothing, and are
// retried with their ids); nothing acknowledged is lost or written twice;
// every region ends with the same streams: the single-home events at their
// versions, then the active-active ones, ordered where they were sent, then
// the single-home ones again, ordered by the default region after all of
// them.
func TestSwitchToActiveActiveUnderLoad(t *testing.T) {
	c := startCluster(t, 1)
	setExampleRules(t, c)
	waitRegionLeaders(t, c)
	carts := []string{"cart/1", "cart/2", "cart/3"}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mu sync.Mutex
	acked := map[string]bool{}
	var retried int
	var longest time.Duration
	var wg sync.WaitGroup
	for _, h := range c.Hosts() {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				ev := event("ItemAdded")
				ev.Data = fmt.Appendf(nil, `{"element": "%s-%d"}`, h, i)
				start := time.Now()
				for attempt := 0; ; attempt++ {
					rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := c.EventStore(h).Append(rctx, connect.NewRequest(&meridianv1.AppendRequest{
						Entity: carts[i%len(carts)], Events: []*meridianv1.ProposedEvent{ev},
					}))
					cancel()
					if err == nil {
						break
					}
					if connect.CodeOf(err) != connect.CodeUnavailable || attempt >= 20 {
						t.Errorf("append via %s: %v (attempt %d)", h, err, attempt)
						return
					}
					mu.Lock()
					retried++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				acked[ev.GetId()] = true
				longest = max(longest, time.Since(start))
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	switched := time.Now()
	setRulesAndWait(t, c, activeActiveRules(), "cart/1", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE)
	t.Logf("switch to active-active took effect everywhere %s after it was asked for", time.Since(switched).Round(time.Millisecond))
	time.Sleep(time.Second)
	switched = time.Now()
	setRulesAndWait(t, c, exampleRules(), "cart/1", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME)
	t.Logf("switch back to single-home took effect everywhere %s after it was asked for", time.Since(switched).Round(time.Millisecond))
	time.Sleep(time.Second)
	stop()
	wg.Wait()

	waitConverged(t, c, carts, 30*time.Second)
	seen := map[string]int{}
	origins := map[string]bool{}
	for _, e := range carts {
		evs := readAllVia(t, c, "eu-west-1", e, "")
		phase := 0 // 0 single-home, 1 active-active, 2 single-home again
		for i, ev := range evs {
			seen[ev.GetId()]++
			assert.Equal(t, uint64(i+1), ev.GetVersion())
			switch {
			case ev.GetActiveActive():
				assert.LessOrEqual(t, phase, 1, "%s v%d: an active-active event after the switch back", e, ev.GetVersion())
				phase = 1
				origins[ev.GetOrigin().GetRegion()] = true
			default:
				if phase == 1 {
					phase = 2
				}
				assert.Equal(t, "us-east", ev.GetOrigin().GetRegion(), "single-home events are ordered by the default region")
			}
		}
		assert.Equal(t, 2, phase, "%s: single-home, active-active, single-home again", e)
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s held %d times", id, seen[id])
		}
	}
	assert.Equal(t, len(acked), len(seen), "no event beyond the acknowledged ones")
	assert.Len(t, origins, 3, "after the flip every region orders its own appends")
	t.Logf("%d appends, %d retried after Unavailable, longest append (with retries) %s", len(acked), retried, longest.Round(time.Millisecond))
}
