package node

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/internal/h2c"
	"github.com/meridiandb/meridian/region"
)

// fastGossip shortens serf's and memberlist's timers so that a failure is
// detected in about a second on loopback.
func fastGossip(_ string, c *serf.Config) {
	mc := c.MemberlistConfig
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.GossipInterval = 50 * time.Millisecond
	mc.SuspicionMult = 2
	mc.PushPullInterval = 2 * time.Second
	c.ReapInterval = time.Second
}

// gossipNode starts one node of region "test" with a LAN gossip pool;
// bootstrap forms the region with this node alone, join lists API
// addresses to join through.
func gossipNode(t *testing.T, id string, bootstrap bool, join []string, keys ...[]byte) *Node {
	t.Helper()
	return startGossipNode(t, Config{
		Region: "test", NodeID: id, Bootstrap: bootstrap, Join: join, GossipKeys: keys,
	})
}

// startGossipNode starts a node of cfg's region and id on loopback with
// gossip (the WAN pool too when cfg.GossipWANAddr is set) and fast timers.
func startGossipNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.APIAddr, cfg.RaftAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DeadNodeTimeout, cfg.StabilizationTime = time.Second, 300*time.Millisecond
	cfg.GossipConfig, cfg.Logger = fastGossip, testLogger(t)
	nd, err := Start(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nd.Close() })
	return nd
}

// voters returns the voters and non-voters of nd's Raft configuration.
func suffrages(nd *Node) (voters, nonvoters []string) {
	cf := nd.Region().Raft().GetConfiguration()
	if cf.Error() != nil {
		return nil, nil
	}
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		} else {
			nonvoters = append(nonvoters, string(s.ID))
		}
	}
	return voters, nonvoters
}

// leaderOf returns the node that leads the region.
func leaderOf(t *testing.T, nodes ...*Node) *Node {
	t.Helper()
	for _, nd := range nodes {
		if nd.Region().IsLeader() {
			return nd
		}
	}
	t.Fatal("no leader among the nodes")
	return nil
}

// gossipRegion forms a region of n nodes: n1 bootstraps alone, the others
// join through n1's API address only, and all end up voters.
func gossipRegion(t *testing.T, n int) []*Node {
	t.Helper()
	first := gossipNode(t, "n1", true, nil)
	require.Eventually(t, first.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	nodes := []*Node{first}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, gossipNode(t, "n"+string(rune('0'+i)), false, []string{first.Addr()}))
	}
	require.Eventually(t, func() bool {
		voters, nonvoters := suffrages(first)
		return len(voters) == n && len(nonvoters) == 0
	}, 30*time.Second, 50*time.Millisecond, "joined nodes were not all promoted to voters")
	return nodes
}

func TestJoinByOneAddressThenPromoted(t *testing.T) {
	nodes := gossipRegion(t, 3)
	voters, _ := suffrages(nodes[0])
	assert.ElementsMatch(t, []string{"n1", "n2", "n3"}, voters)

	// A joined node forwards writes to the leader it learned from gossip
	// (no static peer list names the leader's API address).
	joined := nodes[2]
	if joined.Region().IsLeader() {
		joined = nodes[1]
	}
	c, err := client.New([]string{joined.URL()})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = c.Append(ctx, "joined-1", []*meridianv1.ProposedEvent{{Type: "Created"}})
	require.NoError(t, err)

	// ListMembers answers from any node: every member alive, roles from
	// the region's configuration.
	resp, err := membershipClient(joined).ListMembers(ctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetMembers(), 3)
	leaders := 0
	for _, m := range resp.Msg.GetMembers() {
		assert.Equal(t, meridianv1.MemberStatus_MEMBER_STATUS_ALIVE, m.GetStatus(), m.GetNode())
		assert.NotEmpty(t, m.GetApiAddress())
		assert.NotEmpty(t, m.GetRaftAddress())
		if m.GetRaftRole() == meridianv1.RaftRole_RAFT_ROLE_LEADER {
			leaders++
		} else {
			assert.Equal(t, meridianv1.RaftRole_RAFT_ROLE_VOTER, m.GetRaftRole(), m.GetNode())
		}
	}
	assert.Equal(t, 1, leaders)
	require.Len(t, resp.Msg.GetRegions(), 1)
	assert.Equal(t, uint32(3), resp.Msg.GetRegions()[0].GetAlive())

	// What the leader's autopilot reads of each node: its term (the
	// leader's), its last log index (the append above is in every log) and
	// when it last heard from the leader.
	leader := leaderOf(t, nodes...).Region().Status()
	require.Positive(t, leader.GetRaftTerm())
	require.NotNil(t, leader.GetRaftLastContact())
	assert.Zero(t, leader.GetRaftLastContact().AsDuration())
	for _, nd := range nodes {
		require.Eventually(t, func() bool {
			st := nd.Region().Status()
			return st.GetRaftTerm() == leader.GetRaftTerm() && st.GetRaftLastIndex() >= leader.GetRaftLastIndex() &&
				st.GetRaftLastContact() != nil && st.GetRaftLastContact().AsDuration() < 5*time.Second
		}, 10*time.Second, 20*time.Millisecond, "node %s reports no Raft progress", nd.cfg.NodeID)
	}
}

func membershipClient(nd *Node) meridianv1connect.MembershipClient {
	return meridianv1connect.NewMembershipClient(h2c.NewClient(region.TCP.Dial, h2c.Options{}), nd.URL())
}

func TestDeadNodeRemovedWhileAppendsRun(t *testing.T) {
	nodes := gossipRegion(t, 3)
	leader := leaderOf(t, nodes...)
	var victim *Node
	for _, nd := range nodes {
		if nd != leader {
			victim = nd
			break
		}
	}

	c, err := client.New([]string{leader.URL()})
	require.NoError(t, err)
	defer c.Close()
	var (
		acked   atomic.Int64
		failed  atomic.Int64
		stop    = make(chan struct{})
		writers sync.WaitGroup
	)
	writers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_, err := c.Append(ctx, "dead-node", []*meridianv1.ProposedEvent{{Type: "Tick"}})
			cancel()
			if err != nil {
				failed.Add(1)
				continue
			}
			acked.Add(1)
		}
	})

	require.NoError(t, victim.Close()) // no gossip leave: to the others it fails
	require.Eventually(t, func() bool {
		voters, nonvoters := suffrages(leader)
		return len(voters) == 2 && len(nonvoters) == 0
	}, 30*time.Second, 50*time.Millisecond, "the dead node was not removed")
	voters, _ := suffrages(leader)
	assert.NotContains(t, voters, victim.cfg.NodeID)

	// The region keeps committing with two voters.
	before := acked.Load()
	require.Eventually(t, func() bool { return acked.Load() > before+10 }, 10*time.Second, 20*time.Millisecond)
	close(stop)
	writers.Wait()
	assert.Zero(t, failed.Load(), "appends failed while a follower died")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	head, err := c.Read(ctx, "dead-node", client.Backward(), client.Limit(1),
		client.WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG))
	require.NoError(t, err)
	require.Len(t, head.Events, 1)
	assert.Equal(t, uint64(acked.Load()), head.Events[0].GetVersion(), "the stream holds exactly the acknowledged appends")
}

func TestLeaveRemovesTheNode(t *testing.T) {
	nodes := gossipRegion(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// The leader leaves: it hands on leadership first.
	leaving := leaderOf(t, nodes...)
	resp, err := membershipClient(leaving).Leave(ctx, connect.NewRequest(&meridianv1.LeaveRequest{}))
	require.NoError(t, err)
	assert.True(t, resp.Msg.GetRemoved())
	select {
	case <-leaving.Left():
	default:
		t.Fatal("Left not closed after a successful leave")
	}
	var rest []*Node
	for _, nd := range nodes {
		if nd != leaving {
			rest = append(rest, nd)
		}
	}
	require.Eventually(t, func() bool {
		voters, nonvoters := suffrages(rest[0])
		return len(voters) == 2 && len(nonvoters) == 0
	}, 10*time.Second, 50*time.Millisecond)
	voters, _ := suffrages(rest[0])
	assert.NotContains(t, voters, leaving.cfg.NodeID)

	// The last two: one may leave, the last voter may not.
	_, err = membershipClient(rest[0]).Leave(ctx, connect.NewRequest(&meridianv1.LeaveRequest{}))
	require.NoError(t, err)
	_, err = membershipClient(rest[1]).Leave(ctx, connect.NewRequest(&meridianv1.LeaveRequest{}))
	require.Error(t, err)
	assert.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(err))
	assert.Contains(t, err.Error(), "only voter")
}

func TestWrongGossipKeyNeverJoins(t *testing.T) {
	keyA := []byte("0123456789abcdef0123456789abcdef")
	keyB := []byte("fedcba9876543210fedcba9876543210")
	first := gossipNode(t, "n1", true, nil, keyA)
	require.Eventually(t, first.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	good := gossipNode(t, "n2", false, []string{first.Addr()}, keyA)
	bad := gossipNode(t, "n3", false, []string{first.Addr()}, keyB)
	plain := gossipNode(t, "n4", false, []string{first.Addr()})

	require.Eventually(t, func() bool {
		voters, _ := suffrages(first)
		return len(voters) == 2
	}, 20*time.Second, 50*time.Millisecond, "the node with the right key did not join")
	// Give the others the same time again and several join attempts.
	time.Sleep(3 * gossipJoinRetry)
	voters, nonvoters := suffrages(first)
	assert.ElementsMatch(t, []string{"n1", "n2"}, voters)
	assert.Empty(t, nonvoters)
	for _, nd := range []*Node{first, good} {
		names := map[string]bool{}
		for _, m := range nd.gossip.lan.Members() {
			names[m.Name] = true
		}
		assert.Equal(t, map[string]bool{memberName("test", "n1"): true, memberName("test", "n2"): true}, names, "members seen by %s", nd.cfg.NodeID)
	}
	for _, nd := range []*Node{bad, plain} {
		assert.Equal(t, 1, nd.gossip.lan.NumNodes(), "%s sees only itself", nd.cfg.NodeID)
	}
}

func TestGossipKeyRotation(t *testing.T) {
	keyA := []byte("0123456789abcdef0123456789abcdef")
	keyB := []byte("fedcba9876543210fedcba9876543210")
	first := gossipNode(t, "n1", true, nil, keyA)
	require.Eventually(t, first.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	second := gossipNode(t, "n2", false, []string{first.Addr()}, keyA)
	require.Eventually(t, func() bool { return first.gossip.lan.NumNodes() == 2 }, 10*time.Second, 20*time.Millisecond)

	// Round 1: B decrypts everywhere; round 2: B encrypts everywhere;
	// round 3: A is gone.
	for _, keys := range [][][]byte{{keyA, keyB}, {keyB, keyA}, {keyB}} {
		for _, nd := range []*Node{first, second} {
			require.NoError(t, nd.SetGossipKeys(keys))
		}
	}
	// The pool still works: a failure is still detected and a new node
	// with only B joins; one with only A does not.
	withB := gossipNode(t, "n3", false, []string{first.Addr()}, keyB)
	withA := gossipNode(t, "n4", false, []string{first.Addr()}, keyA)
	require.Eventually(t, func() bool { return first.gossip.lan.NumNodes() == 3 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(3 * gossipJoinRetry)
	assert.Equal(t, 3, second.gossip.lan.NumNodes())
	assert.Equal(t, 3, withB.gossip.lan.NumNodes())
	assert.Equal(t, 1, withA.gossip.lan.NumNodes(), "a node with the retired key joined")

	require.ErrorIs(t, first.SetGossipKeys([][]byte{[]byte("short")}), ErrInvalidConfig)
	require.ErrorIs(t, first.SetGossipKeys(nil), ErrInvalidConfig)
	plain := gossipNode(t, "n5", false, nil)
	require.ErrorIs(t, plain.SetGossipKeys([][]byte{keyA}), ErrGossipPlaintext)
}

func TestClientDiscoversRegionEndpoints(t *testing.T) {
	nodes := gossipRegion(t, 3)
	given := nodes[0]
	if given.Region().IsLeader() {
		given = nodes[1]
	}
	c, err := client.New([]string{given.URL()})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	eps, err := c.DiscoverEndpoints(ctx)
	require.NoError(t, err)
	want := []string{given.URL()} // the given endpoint stays first
	for _, nd := range nodes {
		if nd != given {
			want = append(want, nd.URL())
		}
	}
	assert.Equal(t, given.URL(), eps[0])
	assert.ElementsMatch(t, want, eps)

	// The only endpoint the client was given goes away; calls fail over to
	// the discovered ones.
	require.NoError(t, given.Close())
	_, err = c.Append(ctx, "discovered-1", []*meridianv1.ProposedEvent{{Type: "Created"}})
	require.NoError(t, err)

	// A node without gossip answers Unimplemented; the endpoints stay.
	plain := startRegion(t, 1)[0]
	pc, err := client.New([]string{plain.URL()})
	require.NoError(t, err)
	defer pc.Close()
	eps, err = pc.DiscoverEndpoints(ctx)
	require.Error(t, err)
	assert.Equal(t, connect.CodeUnimplemented, connect.CodeOf(err))
	assert.Equal(t, []string{plain.URL()}, eps)
}

// TestRegionsMeetInTheWANPoolOnly runs two regions with LAN and WAN pools
// (no placement group: gossip alone). A node of the second region joins
// through the first region's node: it enters its own region's LAN pool
// (through the WAN listing) and the WAN pool, never the first region's LAN
// pool; every node lists both regions with their health.
func TestRegionsMeetInTheWANPoolOnly(t *testing.T) {
	wan := func(c Config) Config { c.GossipWANAddr = "127.0.0.1:0"; return c }
	a1 := startGossipNode(t, wan(Config{Region: "a", NodeID: "n1", Bootstrap: true}))
	b1 := startGossipNode(t, wan(Config{Region: "b", NodeID: "n1", Bootstrap: true, Join: []string{a1.Addr()}}))
	require.Eventually(t, func() bool { return b1.Region().IsLeader() && a1.gossip.wan.NumNodes() == 2 }, 20*time.Second, 20*time.Millisecond)
	b2 := startGossipNode(t, wan(Config{Region: "b", NodeID: "n2", Join: []string{a1.Addr()}}))
	require.Eventually(t, func() bool {
		voters, _ := suffrages(b1)
		return len(voters) == 2
	}, 20*time.Second, 50*time.Millisecond, "b/n2 did not join region b through region a's node")

	assert.Equal(t, 1, a1.gossip.lan.NumNodes(), "region a's LAN pool holds only region a")
	assert.Equal(t, 2, b1.gossip.lan.NumNodes())
	assert.Equal(t, 3, b2.gossip.wan.NumNodes())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := membershipClient(a1).ListMembers(ctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetMembers(), 3)
	require.Len(t, resp.Msg.GetRegions(), 2)
	for _, h := range resp.Msg.GetRegions() {
		assert.True(t, h.GetReachable(), h.GetRegion())
	}
	for _, m := range resp.Msg.GetMembers() {
		assert.NotEmpty(t, m.GetGossipAddress(), "%s/%s", m.GetRegion(), m.GetNode())
		assert.NotEmpty(t, m.GetGossipWanAddress(), "%s/%s", m.GetRegion(), m.GetNode())
		if m.GetRegion() == "b" {
			assert.Equal(t, meridianv1.RaftRole_RAFT_ROLE_UNSPECIFIED, m.GetRaftRole(), "another region's Raft roles are not a's to report")
		}
	}

	// A LAN join across regions is refused by the region's pool.
	var bLAN string
	for _, m := range resp.Msg.GetMembers() {
		if m.GetRegion() == "b" && m.GetNode() == "n1" {
			bLAN = m.GetGossipAddress()
		}
	}
	require.Error(t, a1.gossip.joinLAN([]string{bLAN}))
	assert.Equal(t, 1, a1.gossip.lan.NumNodes())
	assert.Equal(t, 2, b1.gossip.lan.NumNodes())

	// Region b's nodes stop: region a reports b unreachable.
	require.NoError(t, b2.Close())
	require.NoError(t, b1.Close())
	require.Eventually(t, func() bool {
		resp, err := membershipClient(a1).ListMembers(ctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
		if err != nil {
			return false
		}
		for _, h := range resp.Msg.GetRegions() {
			if h.GetRegion() == "b" {
				return !h.GetReachable() && h.GetAlive() == 0
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "region b never reported unreachable")
}

// TestReconnectAddressOfAMember joins a member by "name/host:port", the
// address serf uses to reconnect to a failed member after a partition.
// memberlist reads the name up to the first slash: a slash in the member
// name made every reconnect fail with "no such host".
func TestReconnectAddressOfAMember(t *testing.T) {
	first := gossipNode(t, "n1", true, nil)
	second := gossipNode(t, "n2", true, nil) // its own region of one: not joined
	require.Equal(t, 1, first.gossip.lan.NumNodes())
	local := second.gossip.lan.LocalMember()
	addr := local.Name + "/" + net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	_, err := first.gossip.lan.Join([]string{addr}, true)
	require.NoError(t, err, "join by %q", addr)
	assert.Equal(t, 2, first.gossip.lan.NumNodes())
}
