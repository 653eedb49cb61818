//go:build chaos && linux

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Bounds of TestChaosActiveActive.
const (
	aaPrefix  = "mrda"
	aaCut     = 30 * time.Second // issue 13: a region cut off for 30 s
	aaCarts   = 4
	aaWriters = 2 // per region
)

// aaOp is one append of the active-active workload.
type aaOp struct {
	id, cart, region string
	amount           int64
	acked            bool
	at               time.Time
}

// TestChaosActiveActive is issue 13's multi-process test: three real
// `meridian server` processes, one region each, with cart/ active-active
// (items merge as a set, quantities as a counter, addresses as an LWW
// register). Two clients per region append to four carts through their own
// region's process, before, during and after a 30 s iptables isolation of
// ap-south. Every region keeps taking writes through the cut; after the
// heal every region holds the same streams and the same merged state,
// every acknowledged append once, and each cart's quantity is exactly the
// sum of the increments in its stream.
func TestChaosActiveActive(t *testing.T) {
	c, topo, seed := startRegionsChaos(t, aaPrefix)
	ctx := context.Background()

	rules := &meridianv1.SetRulesRequest{DefaultRegion: "us-east", Rules: []*meridianv1.PlacementRule{{
		Prefix: "cart/", HomeRegion: "us-east", Mode: meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE,
		Merge: []*meridianv1.MergeRule{
			{EventType: "ItemAdded", Op: meridianv1.MergeOp_MERGE_OP_SET_ADD, Target: "items"},
			{EventType: "QuantityChanged", Op: meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, Target: "quantity"},
			{EventType: "AddressSet", Op: meridianv1.MergeOp_MERGE_OP_LWW_WRITE, Target: "address"},
		},
	}}}
	c.setRules(t, rules)
	require.Eventually(t, func() bool {
		for _, s := range c.nodes {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			p, err := c.placement[s.host.Name].GetPlacement(rctx, connect.NewRequest(&meridianv1.GetPlacementRequest{Entity: "cart/1"}))
			cancel()
			if err != nil || p.Msg.GetMode() != meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE || p.Msg.GetChange() != nil {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "cart/ is not active-active on every process")

	var mu sync.Mutex
	var ops []*aaOp
	wctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for ri, s := range c.nodes {
		for w := range aaWriters {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(ri*10+w)))
				for i := 0; wctx.Err() == nil; i++ {
					op := &aaOp{id: uuid.Must(uuid.NewV7()).String(), cart: fmt.Sprintf("cart/%d", rng.IntN(aaCarts)), region: placementRegions[ri]}
					ev := &meridianv1.ProposedEvent{Id: op.id}
					switch rng.IntN(3) {
					case 0:
						ev.Type, ev.Data = "ItemAdded", fmt.Appendf(nil, `{"element": "item-%d"}`, rng.IntN(20))
					case 1:
						op.amount = 1 + rng.Int64N(3)
						ev.Type, ev.Data = "QuantityChanged", fmt.Appendf(nil, `{"amount": %d}`, op.amount)
					default:
						ev.Type, ev.Data = "AddressSet", fmt.Appendf(nil, `{"value": "%s-%d"}`, op.region, i)
					}
					rctx, cancel := context.WithTimeout(wctx, requestTimeout)
					_, err := c.client[s.host.Name].Append(rctx, connect.NewRequest(&meridianv1.AppendRequest{Entity: op.cart, Events: []*meridianv1.ProposedEvent{ev}}))
					cancel()
					mu.Lock()
					op.acked, op.at = err == nil, time.Now()
					ops = append(ops, op)
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	ap := c.nodes[2]
	time.Sleep(3 * time.Second)
	require.NoError(t, topo.Isolate(ap.host))
	cutAt := time.Now()
	t.Logf("isolate %s (region ap-south) for %s", ap.host.Name, aaCut)
	time.Sleep(aaCut)
	require.NoError(t, topo.Heal())
	healAt := time.Now()
	t.Logf("heal")
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()
	stoppedAt := time.Now()

	// Every region took writes through the cut.
	during := map[string]int{}
	attempted := map[string]*aaOp{}
	acked := 0
	for _, op := range ops {
		attempted[op.id] = op
		if op.acked {
			acked++
			if op.at.After(cutAt.Add(time.Second)) && op.at.Before(healAt) {
				during[op.region]++
			}
		}
	}
	t.Logf("%d appends, %d acknowledged; acknowledged during the cut, by region: %v", len(ops), acked, during)
	for _, r := range placementRegions {
		assert.Positive(t, during[r], "region %s took no active-active write during the cut", r)
	}

	cart := func(i int) string { return fmt.Sprintf("cart/%d", i) }
	streams := c.convergeEntities(t, ctx, aaCarts, cart)
	t.Logf("streams identical in every region %s after the load stopped (reads of every stream included)", time.Since(stoppedAt).Round(time.Millisecond))
	seen := map[string]int{}
	for e := range aaCarts {
		var sum int64
		for _, id := range streams[cart(e)] {
			seen[id]++
			op := attempted[id]
			if op == nil {
				t.Errorf("%s holds %s, which no client attempted", cart(e), id)
				continue
			}
			sum += op.amount
		}
		var want string
		for i, s := range c.nodes {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			st, err := c.client[s.host.Name].ReadState(rctx, connect.NewRequest(&meridianv1.ReadStateRequest{
				Entity: cart(e), Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
			}))
			cancel()
			require.NoError(t, err)
			if i == 0 {
				want = st.Msg.GetState()
				var state struct {
					Quantity int64 `json:"quantity"`
				}
				require.NoError(t, json.Unmarshal([]byte(want), &state), want)
				assert.Equal(t, sum, state.Quantity, "%s: quantity is the sum of its stream's increments", cart(e))
				continue
			}
			assert.Equal(t, want, st.Msg.GetState(), "%s: state on %s", cart(e), s.host.Name)
		}
	}
	for _, op := range ops {
		if op.acked && seen[op.id] != 1 {
			t.Errorf("acknowledged append %s to %s via %s held %d times", op.id, op.cart, op.region, seen[op.id])
		}
		if seen[op.id] > 1 {
			t.Errorf("%s held %d times", op.id, seen[op.id])
		}
	}

	c.stopAll(t)
}
