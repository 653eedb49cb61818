package multiregion

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/tests/faultnet"
	"github.com/meridiandb/meridian/tests/nemesis"
)

// envAANemesisDuration overrides the active-active nemesis's fault window.
const envAANemesisDuration = "MERIDIAN_AA_NEMESIS_DURATION"

// aaNemesisDuration is the fault window of a CI run.
const aaNemesisDuration = 20 * time.Second

// aaWrite is one append of the active-active workload.
type aaWrite struct {
	id, cart, typ string
	amount        int64
	acked         bool
}

// TestActiveActiveNemesis: 3 regions x 3 nodes over the wan3 profile;
// six writers (two per region) append to four active-active carts through
// the nodes of their own region (items, quantities, addresses), and read
// their state with their session token in another region, while a seeded
// schedule isolates regions, cuts pairs of them and kills and restarts
// nodes and leaders. After the heal, within 10 s: every region holds the
// same streams, the same state and the same conflict feed; every
// acknowledged append is there exactly once and nothing that was not
// attempted; each cart's quantity is exactly the sum of the increments in
// its stream (all acknowledged ones among them); a session read never
// missed the session's own writes. The seed is logged;
// MERIDIAN_NEMESIS_SEED replays it.
func TestActiveActiveNemesis(t *testing.T) {
	seed, err := nemesis.SeedFromEnv(time.Now().UnixNano())
	require.NoError(t, err)
	dur := aaNemesisDuration
	if d, err := time.ParseDuration(os.Getenv(envAANemesisDuration)); err == nil && d > 0 {
		dur = d
	}
	t.Logf("active-active nemesis seed %d, %s (replay: %s=%d go test ./tests/multiregion -run '^TestActiveActiveNemesis$' -count=1 -v)",
		seed, dur, nemesis.EnvSeed, seed)
	c, err := Start(Config{Regions: threeRegions, NodesPerRegion: 3, Dir: t.TempDir(), Seed: seed, Logger: testLogger(t),
		Tweak: func(nc *node.Config) {
			nc.PlacementConfig = func(pc *placement.Config) {
				PlacementTestConfig(pc)
				pc.StatsInterval = wanStatsInterval
			}
		}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	profile, err := faultnet.ProfileByName("wan3", threeRegions...)
	require.NoError(t, err)
	c.Net.SetProfile(profile)
	waitPlacementComplete(t, c, c.Hosts())
	setRulesAndWait(t, c, activeActiveRules(), "cart/1", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE)
	waitRegionLeaders(t, c)

	sched := GenerateFaults(seed, threeRegions, dur)
	runner := NewFaultRunner(c, t.Logf)
	t.Logf("%s", sched)
	carts := []string{"cart/1", "cart/2", "cart/3", "cart/4"}
	var mu sync.Mutex
	var writes []*aaWrite
	ryw := 0 // session reads in another region that saw the session's write
	runCtx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { runner.Run(runCtx, sched) })
	for w := range 6 {
		region := threeRegions[w%3]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			token := ""
			for i := 0; runCtx.Err() == nil; i++ {
				hosts := c.HostsOf(region)
				host := hosts[rng.IntN(len(hosts))]
				wr := &aaWrite{id: newID(), cart: carts[rng.IntN(len(carts))]}
				ev := &meridianv1.ProposedEvent{Id: wr.id}
				switch k := rng.IntN(4); k {
				case 0, 1:
					wr.typ, ev.Data = "ItemAdded", fmt.Appendf(nil, `{"element": "item-%d"}`, rng.IntN(6))
				case 2:
					wr.amount = 1 + rng.Int64N(3)
					wr.typ, ev.Data = "QuantityChanged", fmt.Appendf(nil, `{"amount": %d}`, wr.amount)
				default:
					wr.typ, ev.Data = "AddressSet", fmt.Appendf(nil, `{"value": "%s-%d"}`, region, i)
				}
				ev.Type = wr.typ
				mu.Lock()
				writes = append(writes, wr)
				mu.Unlock()
				actx, cancel := context.WithTimeout(runCtx, 3*time.Second)
				resp, err := c.EventStore(host).Append(actx, connect.NewRequest(&meridianv1.AppendRequest{
					Entity: wr.cart, Events: []*meridianv1.ProposedEvent{ev}, SessionToken: token,
				}))
				cancel()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				wr.acked = true
				mu.Unlock()
				token = resp.Msg.GetSessionToken()
				if rng.IntN(4) != 0 {
					continue
				}
				// Read-your-writes in another region: a SESSION read either
				// reflects the write or fails; it never answers without it.
				other := threeRegions[(w+1+rng.IntN(2))%3]
				oh := c.HostsOf(other)
				rctx, cancel := context.WithTimeout(runCtx, 3*time.Second)
				st, err := c.EventStore(oh[rng.IntN(len(oh))]).ReadState(rctx, connect.NewRequest(&meridianv1.ReadStateRequest{
					Entity: wr.cart, SessionToken: token,
				}))
				cancel()
				if err != nil {
					continue
				}
				o := resp.Msg.GetOrigin()
				if st.Msg.GetVector()[o.GetRegion()] < o.GetSeq() {
					t.Errorf("session read of %s in %s (%s) misses the session's write %s:%d (vector %v)",
						wr.cart, other, st.Msg.GetNode(), o.GetRegion(), o.GetSeq(), st.Msg.GetVector())
				}
				mu.Lock()
				ryw++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	healedAt, err := runner.Recover()
	require.NoError(t, err, "recover: every node must come back")
	applied := 0
	for _, e := range runner.Events() {
		if e.Err == "" && !e.Step.Heal {
			applied++
		}
	}
	require.Positive(t, applied, "invalid run: no fault applied")

	// Identical streams within 10 s of the heal, then identical state and
	// conflict feeds.
	waitConverged(t, c, carts, time.Until(healedAt.Add(10*time.Second))+time.Second)
	t.Logf("converged %s after the heal", time.Since(healedAt).Round(time.Millisecond))
	attempted := map[string]*aaWrite{}
	acked, unknown := 0, 0
	for _, wr := range writes {
		attempted[wr.id] = wr
		if wr.acked {
			acked++
		} else {
			unknown++
		}
	}
	require.Positive(t, acked)
	seen := map[string]int{}
	for _, e := range carts {
		var sum int64
		for _, ev := range readAllVia(t, c, "us-east-1", e, "") {
			seen[ev.GetId()]++
			wr := attempted[ev.GetId()]
			if wr == nil {
				t.Errorf("%s holds %s, which no writer attempted", e, ev.GetId())
				continue
			}
			sum += wr.amount
		}
		var want, wantConflicts string
		for i, h := range c.Hosts() {
			st, err := c.EventStore(h).ReadState(ctxFor(t, 20*time.Second), connect.NewRequest(&meridianv1.ReadStateRequest{
				Entity: e, Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
			}))
			require.NoError(t, err)
			cf := conflictFeedVia(t, c, h, e)
			if i == 0 {
				want, wantConflicts = st.Msg.GetState(), cf
				var state struct {
					Quantity int64 `json:"quantity"`
				}
				require.NoError(t, json.Unmarshal([]byte(want), &state), want)
				assert.Equal(t, sum, state.Quantity, "%s: quantity is the sum of the increments in its stream", e)
				continue
			}
			assert.Equal(t, want, st.Msg.GetState(), "%s: state on %s", e, h)
			assert.Equal(t, wantConflicts, cf, "%s: conflicts on %s", e, h)
		}
	}
	for _, wr := range writes {
		if wr.acked && seen[wr.id] != 1 {
			t.Errorf("acknowledged %s of %s (%s) held %d times", wr.typ, wr.cart, wr.id, seen[wr.id])
		}
		if seen[wr.id] > 1 {
			t.Errorf("%s held %d times", wr.id, seen[wr.id])
		}
	}
	t.Logf("%d faults applied; %d appends acknowledged, %d failed or unknown (%d of those stored); %d cross-region session reads saw their writes",
		applied, acked, unknown, len(seen)-acked, ryw)
}
