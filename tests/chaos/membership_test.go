//go:build chaos && linux

package chaos

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// Bounds of the membership run.
const (
	membershipPrefix = "mrdm"
	gossipPort       = 7301
	gossipWANPort    = 7302
	// membershipDeadTime is the servers' --dead-node-timeout.
	membershipDeadTime = 5 * time.Second
	// membershipWait bounds each membership change's visibility in a
	// region (a join promoted, a leave or a dead node removed).
	membershipWait = 45 * time.Second
	// wanWait bounds how long the WAN pool takes to report a region cut
	// off (node's WAN timers: about 6 to 20 s), or back after the heal
	// (serf retries failed members every 30 s).
	wanWait = time.Minute
)

// membershipLayout is the region and join address (host index, -1: none) of
// each host: eu-west/n1 forms the deployment; us-east and ap-south form
// their regions and join through it; eu-west/n2 and n3 join by one address
// (one of them another region's node); eu-west/n4 (host 5) starts later.
var membershipLayout = []struct {
	region, node string
	join         int
}{
	{"eu-west", "n1", -1}, {"us-east", "n1", 0}, {"ap-south", "n1", 0},
	{"eu-west", "n2", 0}, {"eu-west", "n3", 2}, {"eu-west", "n4", 1},
}

// TestChaosMembership is issue 15's multi-process test: regions formed from
// one --join address each, with gossip over real UDP and TCP between
// network namespaces. While clients append to entities homed in eu-west,
// a fourth eu-west node joins and is promoted, one leaves gracefully (its
// process exits), one is SIGKILLed and removed after the dead time; then
// ap-south is cut off and the WAN gossip pool reports it unreachable, then
// reachable after the heal. No acknowledged append may be lost.
func TestChaosMembership(t *testing.T) {
	require.NoError(t, Requirements())
	bin := buildBinary(t)
	seed := seedFromEnv(t)
	t.Logf("seed %d (replay: MERIDIAN_CHAOS_SEED=%d go test -tags chaos -run '^%s$' -v ./tests/chaos/)", seed, seed, t.Name())
	topo, err := Setup(membershipPrefix, len(membershipLayout))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, topo.Teardown()) })
	keyFile := filepath.Join(t.TempDir(), "gossip.keys")
	require.NoError(t, os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString([]byte("chaos-gossip-key-0123456789abcde"))+"\n"), 0o600))

	c := newClusterStarting(t, topo, bin, func(i int, h Host, dir string) []string {
		l := membershipLayout[i]
		args := []string{"server", "--region", l.region, "--node-id", l.node, "--data-dir", dir,
			"--api-addr", fmt.Sprintf("%s:%d", h.Addr, apiPort),
			"--raft-addr", fmt.Sprintf("%s:%d", h.Addr, raftPort),
			"--placement-addr", fmt.Sprintf("%s:%d", h.Addr, placementPort),
			"--gossip-addr", fmt.Sprintf("%s:%d", h.Addr, gossipPort),
			"--gossip-wan-addr", fmt.Sprintf("%s:%d", h.Addr, gossipWANPort),
			"--gossip-key-file", keyFile,
			"--dead-node-timeout", membershipDeadTime.String(), "--stabilization-time", "1s",
		}
		if l.node == "n1" {
			args = append(args, "--bootstrap")
		}
		if l.join < 0 {
			return append(args, "--placement-bootstrap")
		}
		return append(args, "--join", fmt.Sprintf("%s:%d", topo.Hosts[l.join].Addr, apiPort))
	}, func(i int) bool { return i < 5 })
	members := map[string]meridianv1connect.MembershipClient{}
	for _, h := range topo.Hosts {
		members[h.Name] = meridianv1connect.NewMembershipClient(c.http, c.url(h))
	}
	eu1, ap1, eu2, eu3, eu4 := c.nodes[0], c.nodes[2], c.nodes[3], c.nodes[4], c.nodes[5]

	// euVoters is eu-west's voters as eu-west/n1 sees them (nil if it
	// does not answer); reachable is each region's gossip health.
	list := func(s *server) *meridianv1.ListMembersResponse {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		resp, err := members[s.host.Name].ListMembers(ctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
		if err != nil {
			return nil
		}
		return resp.Msg
	}
	euVoters := func() []string {
		resp := list(eu1)
		if resp == nil {
			return nil
		}
		var out []string
		for _, m := range resp.GetMembers() {
			if m.GetRegion() == "eu-west" && (m.GetRaftRole() == meridianv1.RaftRole_RAFT_ROLE_VOTER || m.GetRaftRole() == meridianv1.RaftRole_RAFT_ROLE_LEADER) {
				out = append(out, m.GetNode())
			}
		}
		sort.Strings(out)
		return out
	}
	waitVoters := func(want []string, what string) {
		var got []string
		require.Eventually(t, func() bool {
			got = euVoters()
			return fmt.Sprint(got) == fmt.Sprint(want)
		}, membershipWait, 250*time.Millisecond, "%s: eu-west voters %v, want %v", what, got, want)
	}
	reachable := func(region string) (bool, bool) {
		resp := list(eu1)
		if resp == nil {
			return false, false
		}
		for _, h := range resp.GetRegions() {
			if h.GetRegion() == region {
				return h.GetReachable(), true
			}
		}
		return false, true
	}

	waitVoters([]string{"n1", "n2", "n3"}, "joins by one address")
	c.setRules(t, &meridianv1.SetRulesRequest{DefaultRegion: "eu-west"})

	h := &history{}
	wctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c.workload(wctx, seed, h, &wg)
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	time.Sleep(3 * time.Second)
	require.GreaterOrEqual(t, h.count("ok"), warmupMinOK, "invalid run: too few acknowledged appends before the first change")

	c.start(eu4)
	logf("start eu-west/n4, joining through us-east/n1")
	waitVoters([]string{"n1", "n2", "n3", "n4"}, "a node added while writes run")
	logf("eu-west/n4 promoted")

	ctx, cancel := context.WithTimeout(context.Background(), membershipWait)
	resp, err := members[eu2.host.Name].Leave(ctx, connect.NewRequest(&meridianv1.LeaveRequest{}))
	cancel()
	require.NoError(t, err)
	require.True(t, resp.Msg.GetRemoved())
	require.Eventually(t, func() bool { return !c.running(eu2) }, 30*time.Second, 100*time.Millisecond, "eu-west/n2's process did not exit after it left")
	waitVoters([]string{"n1", "n3", "n4"}, "a graceful leave")
	logf("eu-west/n2 left; its process exited")

	c.kill(eu3)
	killed := time.Now()
	logf("SIGKILL eu-west/n3")
	waitVoters([]string{"n1", "n4"}, "a dead node")
	require.GreaterOrEqual(t, time.Since(killed), membershipDeadTime, "removed before the dead time")
	logf("eu-west/n3 removed %s after the kill (dead time %s)", time.Since(killed).Round(100*time.Millisecond), membershipDeadTime)

	require.NoError(t, topo.Isolate(ap1.host))
	logf("isolate ap-south")
	require.Eventually(t, func() bool { r, ok := reachable("ap-south"); return ok && !r }, wanWait, 250*time.Millisecond, "ap-south never reported unreachable")
	logf("ap-south reported unreachable by the WAN pool")
	require.NoError(t, topo.Heal())
	require.Eventually(t, func() bool { r, ok := reachable("ap-south"); return ok && r }, wanWait, 250*time.Millisecond, "ap-south never reported reachable again")
	logf("heal; ap-south reachable again")

	time.Sleep(2 * time.Second)
	stopLoad()
	wg.Wait()

	// Check against the nodes still in the deployment.
	live := *c
	live.nodes = nil
	for _, s := range c.nodes {
		if c.running(s) {
			live.nodes = append(live.nodes, s)
		}
	}
	for e := range entitiesN {
		live.finalWrite(t, context.Background(), entityName(e))
	}
	ok, unknown, failed := h.count("ok"), h.count("unknown"), h.count("failed")
	t.Logf("history: %d ok, %d unknown, %d failed appends", ok, unknown, failed)
	streams := live.converge(t, context.Background())
	require.NoError(t, checkHistory(h.ops, streams))
	c.stopAll(t)
}
