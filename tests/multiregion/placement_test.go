package multiregion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/node"
)

var threeRegions = []string{"us-east", "eu-west", "ap-south"}

// exampleRules are meridian dev's rules: each region homes its prefix.
func exampleRules() *meridianv1.SetRulesRequest {
	return &meridianv1.SetRulesRequest{
		Rules: []*meridianv1.PlacementRule{
			{Prefix: "us/", HomeRegion: "us-east", Failover: []string{"eu-west"}},
			{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east"}},
			{Prefix: "ap/", HomeRegion: "ap-south"},
		},
		DefaultRegion: "us-east",
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if lvl := os.Getenv("MERIDIAN_TEST_LOG"); lvl != "" {
		level := slog.LevelWarn
		if lvl == "debug" {
			level = slog.LevelDebug
		}
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startCluster(t *testing.T, nodesPerRegion int) *Cluster {
	t.Helper()
	return startClusterWith(t, nodesPerRegion, nil)
}

// startClusterWith is startCluster with a tweak of every node's config.
func startClusterWith(t *testing.T, nodesPerRegion int, tweak func(*node.Config)) *Cluster {
	t.Helper()
	c, err := Start(Config{Regions: threeRegions, NodesPerRegion: nodesPerRegion, Dir: t.TempDir(), Seed: 1, Logger: testLogger(t), Tweak: tweak})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	waitPlacementComplete(t, c, c.Hosts())
	return c
}

// waitPlacementComplete waits until the placement group has one healthy
// voter per region and every listed host's copy knows every member. On
// failure it says what it saw last.
func waitPlacementComplete(t *testing.T, c *Cluster, hosts []string) {
	t.Helper()
	want := len(c.Hosts())
	var mu sync.Mutex
	var last string
	saw := func(format string, args ...any) {
		mu.Lock()
		last = fmt.Sprintf(format, args...)
		mu.Unlock()
	}
	complete := func() bool {
		leader, ok := c.PlacementLeader()
		if !ok {
			saw("no placement leader")
			return false
		}
		voters := votersByRegion(t, c, leader)
		if len(voters) != len(threeRegions) {
			saw("voters by region (leader %s): %v", leader, voters)
			return false
		}
		for _, vs := range voters {
			if len(vs) != 1 {
				saw("voters by region (leader %s): %v", leader, voters)
				return false
			}
		}
		for _, h := range hosts {
			n := c.Node(h)
			if n == nil {
				saw("%s is down", h)
				return false
			}
			if got := len(n.Placement().FSM().Members()); got != want {
				saw("%s's copy knows %d of %d members (applied index %d)", h, got, want, n.Placement().FSM().AppliedIndex())
				return false
			}
		}
		return true
	}
	if !assert.Eventually(t, complete, 60*time.Second, 50*time.Millisecond) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("placement group incomplete after 60 s: %s", last)
	}
}

// votersByRegion reads the placement configuration on host: region -> voter ids.
func votersByRegion(t *testing.T, c *Cluster, host string) map[string][]string {
	n := c.Node(host)
	if n == nil {
		return nil
	}
	f := n.Placement().Raft().GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	out := map[string][]string{}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage.String() == "Voter" {
			r, _, _ := strings.Cut(string(s.ID), "/")
			out[r] = append(out[r], string(s.ID))
		}
	}
	return out
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func event(typ string) *meridianv1.ProposedEvent {
	return &meridianv1.ProposedEvent{Id: newID(), Type: typ, Data: []byte(`{"n":1}`)}
}

// waitIndex waits until every running host's copy has applied idx.
func waitIndex(t *testing.T, c *Cluster, hosts []string, idx uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, h := range hosts {
			if n := c.Node(h); n == nil || n.Placement().FSM().AppliedIndex() < idx {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "placement index %d not applied everywhere", idx)
}

func TestPlacementRulesPinsAndRoutingAcrossThreeRegions(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t, 2*time.Minute)

	// A change sent to a non-voter in eu-west is forwarded to the leader;
	// once it returns, every node's copy reaches its index (one commit).
	set, err := c.Placement("eu-west-3").SetRules(ctx, connect.NewRequest(exampleRules()))
	require.NoError(t, err)
	waitIndex(t, c, c.Hosts(), set.Msg.GetIndex())
	pin, err := c.Placement("ap-south-2").Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "eu/vip-1", Region: "ap-south"}))
	require.NoError(t, err)
	assert.Greater(t, pin.Msg.GetEpoch(), set.Msg.GetIndex())
	waitIndex(t, c, c.Hosts(), pin.Msg.GetIndex())

	for _, h := range c.Hosts() {
		for entity, want := range map[string]string{"us/a": "us-east", "eu/a": "eu-west", "ap/a": "ap-south", "other": "us-east", "eu/vip-1": "ap-south"} {
			assert.Equal(t, want, c.Node(h).Placement().Lookup(entity).Home, "%s on %s", entity, h)
		}
		got, err := c.Placement(h).GetPlacement(ctx, connect.NewRequest(&meridianv1.GetPlacementRequest{Entity: "eu/vip-1"}))
		require.NoError(t, err)
		assert.Equal(t, meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN, got.Msg.GetSource())
		assert.Len(t, got.Msg.GetHomeEndpoints(), 3)
		assert.GreaterOrEqual(t, got.Msg.GetTable().GetIndex(), pin.Msg.GetIndex())
	}

	// Writes sent to every node of every region land in the home region,
	// at consecutive versions.
	entities := map[string]string{"us/order-1": "us-east", "eu/order-1": "eu-west", "ap/order-1": "ap-south", "eu/vip-1": "ap-south", "misc-1": "us-east"}
	for _, h := range c.Hosts() {
		for entity, home := range entities {
			resp, err := c.EventStore(h).Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{Entity: entity, Events: []*meridianv1.ProposedEvent{event("Placed")}}))
			require.NoError(t, err, "append %s via %s", entity, h)
			assert.Equal(t, home, resp.Msg.GetRegion(), "append %s via %s", entity, h)
			assert.Equal(t, home, resp.Msg.GetOrigin().GetRegion())
		}
	}
	for entity, home := range entities {
		for _, h := range c.Hosts() {
			read, err := c.EventStore(h).Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: entity, Consistency: meridianv1.Consistency_CONSISTENCY_STRONG}))
			require.NoError(t, err)
			require.Len(t, read.Msg.GetEvents(), len(c.Hosts()), "%s read via %s", entity, h)
			assert.Equal(t, home, read.Msg.GetRegion())
			for i, e := range read.Msg.GetEvents() {
				assert.Equal(t, uint64(i+1), e.GetVersion())
				assert.NotZero(t, e.GetEpoch(), "events carry the epoch they were written under")
			}
		}
	}
	// Every region ends up with the same streams (replication), each event
	// once, with the home's origin dots.
	var names []string
	for entity := range entities {
		names = append(names, entity)
	}
	digests := waitConverged(t, c, names, 30*time.Second)
	for entity, home := range entities {
		assert.Equal(t, len(c.Hosts()), strings.Count(digests[entity], "@"+home+"/"), "%s: every event once, ordered by %s", entity, home)
	}

	// Redirect instead of forwarding.
	_, err = c.EventStore("us-east-1").Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
		Entity: "eu/order-2", Events: []*meridianv1.ProposedEvent{event("Placed")}, Routing: meridianv1.Routing_ROUTING_REDIRECT,
	}))
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeFailedPrecondition, ce.Code())
	assert.Contains(t, ce.Message(), `"eu-west"`)
}

func TestPlacementRejectsBadInputAndAppliesNothing(t *testing.T) {
	c := startCluster(t, 1)
	ctx := ctxFor(t, time.Minute)
	set, err := c.Placement("us-east-1").SetRules(ctx, connect.NewRequest(exampleRules()))
	require.NoError(t, err)
	waitIndex(t, c, c.Hosts(), set.Msg.GetIndex())
	before, err := c.Placement("ap-south-1").ListRules(ctx, connect.NewRequest(&meridianv1.ListRulesRequest{}))
	require.NoError(t, err)

	rules := func(rs ...*meridianv1.PlacementRule) *meridianv1.SetRulesRequest {
		return &meridianv1.SetRulesRequest{Rules: rs, DefaultRegion: "us-east"}
	}
	for _, tc := range []struct {
		name string
		call func(h string) error
		want string
	}{
		{"overlapping rules", func(h string) error {
			_, err := c.Placement(h).SetRules(ctx, connect.NewRequest(rules(
				&meridianv1.PlacementRule{Prefix: "eu/", HomeRegion: "eu-west"},
				&meridianv1.PlacementRule{Prefix: "eu/acct/", HomeRegion: "us-east"})))
			return err
		}, "rules[1]"},
		{"duplicate prefix", func(h string) error {
			_, err := c.Placement(h).SetRules(ctx, connect.NewRequest(rules(
				&meridianv1.PlacementRule{Prefix: "us/", HomeRegion: "us-east"},
				&meridianv1.PlacementRule{Prefix: "us/", HomeRegion: "eu-west"})))
			return err
		}, "rules[1]"},
		{"malformed prefix", func(h string) error {
			_, err := c.Placement(h).SetRules(ctx, connect.NewRequest(rules(&meridianv1.PlacementRule{Prefix: "bad prefix!", HomeRegion: "us-east"})))
			return err
		}, "rules[0]"},
		{"empty rule prefix", func(h string) error {
			_, err := c.Placement(h).SetRules(ctx, connect.NewRequest(rules(&meridianv1.PlacementRule{Prefix: "", HomeRegion: "us-east"})))
			return err
		}, "rules[0]"},
		{"unknown region in a rule", func(h string) error {
			_, err := c.Placement(h).SetRules(ctx, connect.NewRequest(rules(&meridianv1.PlacementRule{Prefix: "mars/", HomeRegion: "mars-1"})))
			return err
		}, "mars-1"},
		{"unknown default region", func(h string) error {
			_, err := c.Placement(h).SetRules(ctx, connect.NewRequest(&meridianv1.SetRulesRequest{DefaultRegion: "nowhere"}))
			return err
		}, "nowhere"},
		{"pin with empty entity", func(h string) error {
			_, err := c.Placement(h).Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "", Region: "us-east"}))
			return err
		}, "entity"},
		{"pin to unknown region", func(h string) error {
			_, err := c.Placement(h).Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "us/x", Region: "nowhere"}))
			return err
		}, "nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, h := range c.Hosts() { // the leader and forwarding followers answer alike
				err := tc.call(h)
				var ce *connect.Error
				require.True(t, errors.As(err, &ce), "via %s: %v", h, err)
				assert.Equal(t, connect.CodeInvalidArgument, ce.Code(), "via %s: %s", h, ce.Message())
				assert.Contains(t, ce.Message(), tc.want, "via %s", h)
			}
		})
	}
	after, err := c.Placement("ap-south-1").ListRules(ctx, connect.NewRequest(&meridianv1.ListRulesRequest{}))
	require.NoError(t, err)
	assert.Equal(t, before.Msg.GetRulesIndex(), after.Msg.GetRulesIndex())
	assert.Equal(t, len(before.Msg.GetRules()), len(after.Msg.GetRules()))
	assert.Zero(t, after.Msg.GetPins(), "no pin was applied")

	// A conditional change against a stale index is refused.
	stale := exampleRules()
	stale.ExpectedIndex = before.Msg.GetRulesIndex() + 1000
	_, err = c.Placement("eu-west-1").SetRules(ctx, connect.NewRequest(stale))
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeFailedPrecondition, ce.Code(), ce.Message())
}

func TestPlacementVoterKilledIsReplacedByAnotherNodeOfItsRegion(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t, 2*time.Minute)
	leader, ok := c.PlacementLeader()
	require.True(t, ok)
	// Kill the voter of a region that does not hold the placement leader.
	var victimRegion string
	for _, r := range threeRegions {
		if r != c.RegionOf(leader) {
			victimRegion = r
			break
		}
	}
	voters := votersByRegion(t, c, leader)
	require.Len(t, voters[victimRegion], 1)
	victim := c.HostOf(voters[victimRegion][0])
	require.NotEmpty(t, victim)
	require.NoError(t, c.Kill(victim))

	// The region votes again through another of its nodes, and the dead
	// voter is removed: three voters, one per region.
	require.Eventually(t, func() bool {
		l, ok := c.PlacementLeader()
		if !ok {
			return false
		}
		v := votersByRegion(t, c, l)
		total := 0
		for _, ids := range v {
			total += len(ids)
		}
		return total == 3 && len(v[victimRegion]) == 1 && v[victimRegion][0] != c.ServerID(victim)
	}, 60*time.Second, 50*time.Millisecond, "region %s did not get a new voter", victimRegion)

	// The group keeps its majority: a change commits.
	peers := c.HostsOf(victimRegion)
	set, err := c.Placement(peers[indexNot(peers, victim)]).SetRules(ctx, connect.NewRequest(exampleRules()))
	require.NoError(t, err)
	waitIndex(t, c, c.Running(), set.Msg.GetIndex())

	// The killed node comes back as a non-voter and catches up.
	require.NoError(t, c.Restart(victim))
	require.Eventually(t, func() bool {
		n := c.Node(victim)
		return n.Placement().FSM().AppliedIndex() >= set.Msg.GetIndex() && n.Placement().Lookup("ap/x").Home == "ap-south"
	}, 30*time.Second, 50*time.Millisecond, "restarted node did not catch up")
	require.Eventually(t, func() bool {
		l, ok := c.PlacementLeader()
		if !ok {
			return false
		}
		f := c.Node(l).Placement().Raft().GetConfiguration()
		if f.Error() != nil {
			return false
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == c.ServerID(victim) {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "restarted node did not rejoin the configuration")
}

func indexNot(hosts []string, not string) int {
	for i, h := range hosts {
		if h != not {
			return i
		}
	}
	return 0
}

func TestPlacementSurvivesFullRestart(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t, 3*time.Minute)
	set, err := c.Placement("us-east-2").SetRules(ctx, connect.NewRequest(exampleRules()))
	require.NoError(t, err)
	var last uint64
	for i := range 20 {
		p, err := c.Placement(c.Hosts()[i%len(c.Hosts())]).Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: fmt.Sprintf("us/pinned-%d", i), Region: threeRegions[i%3]}))
		require.NoError(t, err)
		last = p.Msg.GetIndex()
	}
	waitIndex(t, c, c.Hosts(), max(last, set.Msg.GetIndex()))
	type view struct {
		rules string
		homes map[string]string
	}
	snapshot := func(h string) view {
		rules, def, _, _ := c.Node(h).Placement().FSM().Rules()
		v := view{rules: fmt.Sprint(len(rules), def), homes: map[string]string{}}
		for i := range 20 {
			e := fmt.Sprintf("us/pinned-%d", i)
			p := c.Node(h).Placement().Lookup(e)
			v.homes[e] = fmt.Sprintf("%s@%d", p.Home, p.Epoch)
		}
		return v
	}
	want := snapshot("eu-west-1")

	for _, h := range c.Hosts() {
		require.NoError(t, c.Kill(h))
	}
	// Restart in a different order than the first start.
	hosts := c.Hosts()
	sort.Sort(sort.Reverse(sort.StringSlice(hosts)))
	for _, h := range hosts {
		require.NoError(t, c.Restart(h))
	}
	for _, h := range c.Hosts() {
		assert.Equal(t, want, snapshot(h), "table on %s after restart (from disk, before any election)", h)
	}
	waitPlacementComplete(t, c, c.Hosts())
	p, err := c.Placement("ap-south-3").Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "ap/after-restart", Region: "eu-west"}))
	require.NoError(t, err)
	waitIndex(t, c, c.Hosts(), p.Msg.GetIndex())
	resp, err := c.EventStore("us-east-1").Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{Entity: "ap/after-restart", Events: []*meridianv1.ProposedEvent{event("X")}}))
	require.NoError(t, err)
	assert.Equal(t, "eu-west", resp.Msg.GetRegion())
}

// TestPlacementChangeWaitsForALeaderAfterRestart: a change sent to a member
// that knows no leader yet (the whole group was just restarted) waits for
// an election instead of failing with "knows no leader" (a flake of
// TestPlacementSurvivesFullRestart found it: the change reached a member
// between the election and its first heartbeat).
func TestPlacementChangeWaitsForALeaderAfterRestart(t *testing.T) {
	c := startCluster(t, 1)
	ctx := ctxFor(t, time.Minute)
	set, err := c.Placement("us-east-1").SetRules(ctx, connect.NewRequest(exampleRules()))
	require.NoError(t, err)
	waitIndex(t, c, c.Hosts(), set.Msg.GetIndex())
	// The member restarted last has normally heard from no leader yet; on a
	// slow machine a heartbeat may beat the check, so the restart is tried
	// a few times before the test gives up on its precondition.
	last := c.Hosts()[len(c.Hosts())-1]
	var leader raft.ServerID
	for attempt := range 3 {
		for _, h := range c.Hosts() {
			require.NoError(t, c.Kill(h))
		}
		for _, h := range c.Hosts() {
			require.NoError(t, c.Restart(h))
		}
		if _, leader = c.Node(last).Placement().Raft().LeaderWithID(); leader == "" {
			break
		}
		t.Logf("attempt %d: %s already knew leader %s after the restart; restarting again", attempt+1, last, leader)
	}
	require.Empty(t, leader, "%s knew a leader right after each of 3 restarts: the test needs a member that does not", last)

	p, err := c.Placement(last).Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "us/after-restart", Region: "ap-south"}))
	require.NoError(t, err, "a change to a member without a known leader waits for one")
	waitIndex(t, c, c.Hosts(), p.Msg.GetIndex())
	assert.Equal(t, "ap-south", c.Node("us-east-1").Placement().Lookup("us/after-restart").Home)
}

// TestPlacementMinorityRegionPartitionedKeepsRoutingWithItsLastCopy: a
// region cut off from the placement majority keeps its last copy of the
// table and reports how stale it is; it stops ordering its own entities'
// writes once its home lease runs out (fenced homes), and resumes after the
// heal; the majority commits changes meanwhile.
func TestPlacementMinorityRegionPartitionedKeepsRoutingWithItsLastCopy(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t, 3*time.Minute)
	set, err := c.Placement("us-east-1").SetRules(ctx, connect.NewRequest(exampleRules()))
	require.NoError(t, err)
	waitIndex(t, c, c.Hosts(), set.Msg.GetIndex())

	// Cut ap-south off from both other regions. If it held the placement
	// leader, the majority elects another.
	minority := c.HostsOf("ap-south")
	var majority []string
	for _, h := range c.Hosts() {
		if c.RegionOf(h) != "ap-south" {
			majority = append(majority, h)
		}
	}
	c.Net.PartitionGroups(minority, majority)

	// Rule changes still commit on the majority side.
	changed := exampleRules()
	changed.Rules[0].HomeRegion = "eu-west" // us/ moves to eu-west
	changed.Rules[0].Failover = []string{"us-east"}
	var idx uint64
	require.Eventually(t, func() bool {
		resp, err := c.Placement("eu-west-2").SetRules(ctx, connect.NewRequest(changed))
		if err != nil {
			t.Logf("set rules on the majority side: %v", err)
			return false
		}
		idx = resp.Msg.GetIndex()
		return true
	}, 30*time.Second, 100*time.Millisecond, "majority could not commit")
	waitIndex(t, c, majority, idx)
	for _, h := range majority {
		assert.Equal(t, "eu-west", c.Node(h).Placement().Lookup("us/x").Home)
	}

	// The minority keeps routing with its last copy, and says how stale it is.
	require.Eventually(t, func() bool {
		got, err := c.Placement("ap-south-2").GetPlacement(ctx, connect.NewRequest(&meridianv1.GetPlacementRequest{Entity: "us/x"}))
		return err == nil && got.Msg.GetTable().GetStaleness().AsDuration() > 2*time.Second
	}, 30*time.Second, 100*time.Millisecond, "staleness not reported")
	for _, h := range minority {
		got, err := c.Placement(h).GetPlacement(ctx, connect.NewRequest(&meridianv1.GetPlacementRequest{Entity: "us/x"}))
		require.NoError(t, err)
		assert.Equal(t, "us-east", got.Msg.GetHomeRegion(), "the minority's copy predates the change")
		assert.Less(t, got.Msg.GetTable().GetIndex(), idx)
		assert.Greater(t, got.Msg.GetTable().GetStaleness().AsDuration(), time.Second)
		// Its own entities took writes only while its home lease held: the
		// lease has run out by now (it cannot be renewed without the
		// placement majority), so they are refused, retryably, with nothing
		// written.
		_, err = c.EventStore(h).Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{Entity: "ap/local-" + h, Events: []*meridianv1.ProposedEvent{event("X")}}))
		var ce *connect.Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, connect.CodeUnavailable, ce.Code())
		assert.Equal(t, "lease-expired", ce.Meta().Get("Meridian-Error"), ce.Message())
	}
	reach := map[string]bool{}
	require.Eventually(t, func() bool {
		regions, err := c.Placement("ap-south-1").ListRegions(ctx, connect.NewRequest(&meridianv1.ListRegionsRequest{}))
		if err != nil {
			return false
		}
		reach = map[string]bool{}
		for _, r := range regions.Msg.GetRegions() {
			reach[r.GetName()] = r.GetReachable()
		}
		return !reach["eu-west"] && !reach["us-east"]
	}, 30*time.Second, 100*time.Millisecond, "ListRegions on the minority still reports the others reachable")
	assert.Equal(t, map[string]bool{"ap-south": true, "eu-west": false, "us-east": false}, reach)

	// After the heal the minority catches up, renews its lease and takes
	// its own writes again.
	c.Net.HealAll()
	waitIndex(t, c, minority, idx)
	for _, h := range minority {
		assert.Equal(t, "eu-west", c.Node(h).Placement().Lookup("us/x").Home)
		resp, err := c.EventStore(h).Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{Entity: "ap/local-" + h, Events: []*meridianv1.ProposedEvent{event("X")}}))
		require.NoError(t, err)
		assert.Equal(t, "ap-south", resp.Msg.GetRegion())
		assert.Equal(t, uint64(1), resp.Msg.GetFirstVersion(), "nothing was written while the lease was out")
	}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
