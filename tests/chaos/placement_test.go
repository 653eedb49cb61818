//go:build chaos && linux

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Bounds of TestChaosPlacement.
const (
	placementPrefix   = "mrdp"
	placementPort     = 7201
	placementDuration = 40 * time.Second
	churnEvery        = 300 * time.Millisecond
	// mrEntities are entities of safe rules (MULTI_REGION appends, 1
	// other region); the rest are of the never rule (REGION appends).
	mrEntities = 15
)

// failoverWitness is an entity of eu/ that the churn never moves.
var failoverWitness = placementEntity(1)

// placementRegions name the three processes' regions, in host order.
var placementRegions = []string{"us-east", "eu-west", "ap-south"}

// placementEntity names entity i: us/, eu/ and ap/ (safe rules) first, then
// nv/ (never).
func placementEntity(i int) string {
	if i < mrEntities {
		return fmt.Sprintf("%s/c%02d", []string{"us", "eu", "ap"}[i%3], i)
	}
	return fmt.Sprintf("nv/c%02d", i)
}

// TestChaosPlacement is issue 12's multi-process test: three real `meridian
// server` processes, one region each, in network namespaces, one placement
// group. Eight clients append through random regions (entities of safe
// rules with MULTI_REGION durability, of a never rule with REGION) while
// pins and unpins move random entities every 300 ms; meanwhile eu-west is
// SIGKILLed (its safe rules fail over once its 6 s lease expired) and
// restarted, ap-south is isolated with iptables and healed, and us-east is
// cut one way. After the heal every region serves identical streams, and no
// acknowledged append is lost, duplicated or renumbered.
func TestChaosPlacement(t *testing.T) {
	c, topo, seed := startRegionsChaos(t, placementPrefix)
	ctx := context.Background()

	// Rules, once every region has joined the placement group.
	rules := &meridianv1.SetRulesRequest{DefaultRegion: "us-east", Rules: []*meridianv1.PlacementRule{
		{Prefix: "us/", HomeRegion: "us-east", Failover: []string{"ap-south", "eu-west"}},
		{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east", "ap-south"}},
		{Prefix: "ap/", HomeRegion: "ap-south", Failover: []string{"us-east", "eu-west"}},
		{Prefix: "nv/", HomeRegion: "eu-west", FailoverPolicy: meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER},
	}}
	c.setRules(t, rules)
	// The schedule kills a region: the placement group survives that only
	// once every region votes in it.
	c.waitVoterPerRegion(t)

	h := &history{}
	wctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	c.regionsWorkload(wctx, seed, h, &wg)
	churned := c.churn(wctx, seed, &wg)
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	eu, ap, us := c.nodes[1], c.nodes[2], c.nodes[0]

	at(4 * time.Second)
	require.GreaterOrEqual(t, h.count("ok"), warmupMinOK, "invalid run: too few acknowledged appends before the first fault")
	c.kill(eu)
	killed := time.Now()
	t.Logf("%6.1fs SIGKILL %s (region eu-west)", time.Since(start).Seconds(), eu.host.Name)
	at(18 * time.Second)
	// eu/ (policy safe) failed over: writes to an entity the churn leaves
	// alone were accepted elsewhere while eu-west was down.
	var resumed time.Duration
	for _, o := range h.snapshot() {
		if o.outcome == "ok" && o.entity == failoverWitness && o.start.After(killed) && (resumed == 0 || o.end.Sub(killed) < resumed) {
			resumed = o.end.Sub(killed)
		}
	}
	require.Positive(t, resumed, "no write to %s was accepted while eu-west was down: no failover", failoverWitness)
	t.Logf("writes to %s resumed %s after eu-west was killed (lease 6s + offset 500ms + a renewal interval)", failoverWitness, resumed.Round(time.Millisecond))
	c.restart(eu)
	t.Logf("%6.1fs restart %s", time.Since(start).Seconds(), eu.host.Name)
	at(22 * time.Second)
	require.NoError(t, topo.Isolate(ap.host))
	t.Logf("%6.1fs isolate %s (region ap-south)", time.Since(start).Seconds(), ap.host.Name)
	at(30 * time.Second)
	require.NoError(t, topo.Heal())
	for _, o := range c.nodes {
		if o != us {
			require.NoError(t, topo.CutOneWay(us.host, o.host))
		}
	}
	t.Logf("%6.1fs heal; one-way cut from %s (region us-east)", time.Since(start).Seconds(), us.host.Name)
	at(placementDuration - 4*time.Second)
	require.NoError(t, topo.Heal())
	at(placementDuration)
	stopLoad()
	wg.Wait()
	t.Logf("%d placement changes accepted", churned.Load())

	// A final write to every entity, through any region, must succeed.
	for e := range mrEntities + 5 {
		c.finalWrite(t, ctx, placementEntity(e))
	}
	ok, unknown, failed := h.count("ok"), h.count("unknown"), h.count("failed")
	t.Logf("history: %d ok, %d unknown, %d failed appends", ok, unknown, failed)
	streams := c.convergeEntities(t, ctx, mrEntities+5, placementEntity)
	require.NoError(t, checkHistory(h.ops, streams))

	c.stopAll(t)
}

// startRegionsChaos starts the multi-region chaos deployment of test t: one
// process per region in network namespaces named prefix, torn down when t
// ends. It logs the seed with its replay command.
func startRegionsChaos(t *testing.T, prefix string) (*cluster, *Topology, uint64) {
	require.NoError(t, Requirements())
	bin := buildBinary(t)
	seed := seedFromEnv(t)
	t.Logf("seed %d (replay: MERIDIAN_CHAOS_SEED=%d go test -tags chaos -run '^%s$' -v ./tests/chaos/)", seed, seed, t.Name())
	topo, err := Setup(prefix, len(placementRegions))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, topo.Teardown()) })
	return newRegionsCluster(t, topo, bin), topo, seed
}

// stopAll kills every process and requires that none of c's binary is
// left running.
func (c *cluster) stopAll(t *testing.T) {
	c.killAll()
	var left []int
	var err error
	require.Eventually(t, func() bool {
		left, err = Processes(c.bin)
		return err == nil && len(left) == 0
	}, 10*time.Second, 100*time.Millisecond, "meridian processes left behind: %v", left)
}

// setRules sets the placement rules through the first process, retrying
// until every region has joined the placement group (a minute at most).
func (c *cluster) setRules(t *testing.T, rules *meridianv1.SetRulesRequest) {
	require.Eventually(t, func() bool {
		rctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		_, err := c.placement[c.nodes[0].host.Name].SetRules(rctx, connect.NewRequest(rules))
		if err != nil {
			t.Logf("set rules: %v", err)
		}
		return err == nil
	}, 60*time.Second, time.Second, "rules could not be set (regions not joined?)")
}

// waitVoterPerRegion waits until the first process's placement member
// lists a voter in every region (a minute at most). A member joins as a
// non-voter and is promoted once autopilot finds it healthy; until then
// losing a region can cost the group its majority.
func (c *cluster) waitVoterPerRegion(t *testing.T) {
	var last string
	formed := assert.Eventually(t, func() bool {
		rctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		resp, err := c.placement[c.nodes[0].host.Name].ListRegions(rctx, connect.NewRequest(&meridianv1.ListRegionsRequest{}))
		if err != nil {
			last = err.Error()
			return false
		}
		voting := 0
		for _, r := range resp.Msg.GetRegions() {
			if len(r.GetVoters()) > 0 {
				voting++
			}
		}
		last = fmt.Sprintf("%d of %d regions have a voter", voting, len(placementRegions))
		return voting == len(placementRegions)
	}, 60*time.Second, 250*time.Millisecond)
	if !formed {
		t.Fatalf("placement group not formed within a minute: %s", last)
	}
}

// newRegionsCluster starts one process per host, each its own region.
func newRegionsCluster(t *testing.T, topo *Topology, bin string) *cluster {
	c := newClusterWith(t, topo, bin, func(i int, h Host, dir string) []string {
		args := []string{"server",
			"--region", placementRegions[i],
			"--node-id", "n1",
			"--data-dir", dir,
			"--api-addr", fmt.Sprintf("%s:%d", h.Addr, apiPort),
			"--raft-addr", fmt.Sprintf("%s:%d", h.Addr, raftPort),
			"--placement-addr", fmt.Sprintf("%s:%d", h.Addr, placementPort),
			"--peers", fmt.Sprintf("n1=%s:%d=%s:%d", h.Addr, raftPort, h.Addr, apiPort),
			"--bootstrap",
		}
		if i == 0 {
			return append(args, "--placement-bootstrap")
		}
		return append(args, "--join", fmt.Sprintf("%s:%d", topo.Hosts[0].Addr, apiPort))
	})
	return c
}

func (c *cluster) regionsWorkload(ctx context.Context, seed uint64, h *history, wg *sync.WaitGroup) {
	c.clients(ctx, seed, h, wg, func(rng *rand.Rand) (*meridianv1.AppendRequest, int) {
		e := rng.IntN(mrEntities + 5)
		req := &meridianv1.AppendRequest{Entity: placementEntity(e)}
		if e < mrEntities {
			req.Durability, req.MinRegions = meridianv1.Durability_DURABILITY_MULTI_REGION, 1
		}
		return req, 1 + rng.IntN(2)
	})
}

// churn pins and unpins random entities through random regions every
// churnEvery until ctx ends; it counts the changes accepted.
func (c *cluster) churn(ctx context.Context, seed uint64, wg *sync.WaitGroup) *counter {
	n := &counter{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 0xc4))
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(churnEvery):
			}
			s := c.nodes[rng.IntN(len(c.nodes))]
			pc := c.placement[s.host.Name]
			entity := placementEntity(rng.IntN(mrEntities + 5))
			if entity == failoverWitness {
				continue // its home is the rule's: the failover check reads it
			}
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			var err error
			if rng.IntN(2) == 0 {
				_, err = pc.Pin(rctx, connect.NewRequest(&meridianv1.PinRequest{Entity: entity, Region: placementRegions[rng.IntN(len(placementRegions))]}))
			} else {
				_, err = pc.Unpin(rctx, connect.NewRequest(&meridianv1.UnpinRequest{Entity: entity}))
			}
			cancel()
			if err == nil {
				n.add()
			}
		}
	}()
	return n
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }

func (c *counter) Load() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
