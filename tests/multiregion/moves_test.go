package multiregion

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/tests/faultnet"

	"github.com/meridiandb/meridian/tests/check"
	"github.com/meridiandb/meridian/tests/history"
	"github.com/meridiandb/meridian/tests/nemesis"
)

// TestPlacementChangesUnderLoadKeepOneChainPerEntity is the fenced-homes
// issue's first scenario, with every region up: sessions append to and read
// 18 entities through random regions while pins and unpins move random
// entities between regions every 300 ms. Afterwards every acknowledged
// append is stored once at its version in every region, no two events share
// a version, the streams are identical everywhere, and the history is
// linearizable per entity across its home changes.
func TestPlacementChangesUnderLoadKeepOneChainPerEntity(t *testing.T) {
	seed, err := nemesis.SeedFromEnv(time.Now().UnixNano())
	require.NoError(t, err)
	const dur = 10 * time.Second
	t.Logf("seed %d (replay: %s=%d go test ./tests/multiregion -run '^TestPlacementChangesUnderLoadKeepOneChainPerEntity$' -count=1 -v)",
		seed, nemesis.EnvSeed, seed)
	c, err := Start(Config{Regions: threeRegions, NodesPerRegion: 1, Dir: t.TempDir(), Seed: seed, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	waitPlacementComplete(t, c, c.Hosts())
	setExampleRules(t, c)
	waitRegionLeaders(t, c)

	rec := history.NewRecorder()
	rec.SetRun(seed, "moves")
	hop := DefaultHop(seed)
	hop.Sessions, hop.EntitiesPerHome, hop.ReadShare = 8, 6, 0.3
	wl := NewHopWorkload(c, hop, rec)
	churn := NewChurn(c, ChurnConfig{Seed: seed, Interval: 300 * time.Millisecond, Entities: wl.Entities()})
	artefacts := filepath.Join(os.TempDir(), fmt.Sprintf("meridian-moves-%d", seed))
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "placement changes (seed %d):\n", seed)
		for _, e := range churn.Events() {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		if p, err := rec.History().Dump(artefacts, "history.json"); err == nil {
			fmt.Fprintf(&b, "history: %s\n", p)
		}
		t.Log(b.String())
	})

	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { churn.Run(ctx) })
	wl.Run(ctx)
	wg.Wait()
	quietAt := time.Now()
	require.Positive(t, churn.OK(), "invalid run: no placement change succeeded")

	finalWrites(t, c, rec, wl)
	entities := wl.Entities()
	regionsIn, _, last := waitConvergence(t, c, entities, quietAt)
	require.Empty(t, last, "did not converge within %s", convergeWaitMax)
	t.Logf("%d placement changes (%d ok); regions converged %s after the load stopped",
		len(churn.Events()), churn.OK(), regionsIn.Round(time.Millisecond))

	checkRun(t, c, rec, entities, artefacts, dur, nil)
}

// errShape matches what varies between errors of one kind: quoted names
// and numbers.
var errShape = regexp.MustCompile(`"[^"]*"|[0-9]+`)

// logFailures logs how many appends failed or ended unknown, by the start
// of their error text (what a reader of a run wants to know first).
func logFailures(t *testing.T, h history.History) {
	t.Helper()
	byErr := map[string]int{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != history.Append || op.Outcome == history.OK {
			continue
		}
		e := errShape.ReplaceAllString(op.Error, "N")
		if len(e) > 100 {
			e = e[:100]
		}
		byErr[string(op.Outcome)+": "+e]++
	}
	keys := make([]string, 0, len(byErr))
	for k := range byErr {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return byErr[keys[i]] > byErr[keys[j]] })
	for i, k := range keys {
		if i == 10 {
			break
		}
		t.Logf("  %5d x %s", byErr[k], k)
	}
}

// envMoveProfile names a faultnet latency profile (wan3) for
// TestPlannedMoveUnderSteadyLoad; unset: loopback.
const envMoveProfile = "MERIDIAN_MOVE_PROFILE"

// TestPlannedMoveUnderSteadyLoad is issue 12's planned move under load:
// 500 appends/s to 10 entities of eu/ through random regions while the
// rule eu/ moves from eu-west to us-east and back. No acknowledged write is
// lost or renumbered, the streams converge, and the test reports each
// move's duration and the write pause it caused (the longest an append to
// the moved entities waited while the move was in progress).
func TestPlannedMoveUnderSteadyLoad(t *testing.T) {
	const (
		rate     = 500 // appends per second, all clients together
		clients  = 64
		entities = 10
	)
	var c *Cluster
	if name := os.Getenv(envMoveProfile); name != "" {
		// A WAN profile needs WAN-sized placement timers (and the
		// production lease): renewals and reports cross it.
		c = startClusterWith(t, 1, func(nc *node.Config) {
			nc.PlacementConfig = func(pc *placement.Config) {
				PlacementTestConfig(pc)
				d := placement.DefaultConfig()
				pc.HeartbeatTimeout, pc.ElectionTimeout, pc.LeaderLeaseTimeout, pc.StatsInterval = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout, d.StatsInterval
			}
		})
		profile, err := faultnet.ProfileByName(name, threeRegions...)
		require.NoError(t, err)
		c.Net.SetProfile(profile)
		t.Logf("latency profile %s", profile.Name)
	} else {
		c = startCluster(t, 1)
	}
	setExampleRules(t, c)
	waitRegionLeaders(t, c)
	rec := history.NewRecorder()
	names := make([]string, entities)
	for i := range names {
		names[i] = fmt.Sprintf("eu/steady-%d", i)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	type sample struct {
		start, end time.Time
		ok         bool
	}
	var mu sync.Mutex
	var samples []sample
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	work := make(chan int, rate)
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			for i := range work {
				entity := names[i%entities]
				host := c.Hosts()[i%len(c.Hosts())]
				id := newID()
				op := rec.Invoke(cl, "", history.Append, entity, history.Input{EventIDs: []string{id}})
				s := sample{start: time.Now()}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := c.EventStore(host).Append(rctx, connect.NewRequest(&meridianv1.AppendRequest{
					Entity: entity, Events: []*meridianv1.ProposedEvent{{Id: id, Type: "Steady"}},
				}))
				cancel()
				s.end = time.Now()
				if err != nil {
					if out, _, _, _ := classifyAppend(err); out == history.Failed {
						rec.Fail(op, err, history.Result{Node: host})
					} else {
						rec.Unknown(op, err)
					}
				} else {
					s.ok = true
					rec.OK(op, history.Result{FirstVersion: resp.Msg.GetFirstVersion(), LastVersion: resp.Msg.GetLastVersion(), Region: resp.Msg.GetRegion(), Node: host})
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		defer close(work)
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case work <- i:
			default: // the clients fall behind: the offered rate is not met
			}
		}
	})

	type moveRun struct {
		to              string
		from, until     time.Time
		duration, pause time.Duration
	}
	var moves []moveRun
	for _, to := range []string{"us-east", "eu-west", "us-east", "eu-west"} {
		time.Sleep(2 * time.Second)
		m := moveRun{to: to, from: time.Now()}
		resp, err := c.Placement("ap-south-1").Move(ctxFor(t, 30*time.Second), connect.NewRequest(&meridianv1.MoveRequest{
			Target: &meridianv1.MoveRequest_Prefix{Prefix: "eu/"}, Region: to,
		}))
		require.NoError(t, err, "move eu/ to %s", to)
		m.until = time.Now()
		m.duration = resp.Msg.GetChange().GetDuration().AsDuration()
		require.NotNil(t, resp.Msg.GetChange(), "the move moved something")
		moves = append(moves, m)
	}
	time.Sleep(time.Second)
	stop()
	wg.Wait()

	var all []time.Duration
	for i := range moves {
		m := &moves[i]
		for _, s := range samples {
			// An append that was in flight at any time during the move.
			if s.ok && s.start.Before(m.until) && s.end.After(m.from) {
				m.pause = max(m.pause, s.end.Sub(s.start))
			}
		}
	}
	okN := 0
	for _, s := range samples {
		if s.ok {
			okN++
			all = append(all, s.end.Sub(s.start))
		}
	}
	slices.Sort(all)
	elapsed := samples[len(samples)-1].end.Sub(samples[0].start)
	t.Logf("%d appends acknowledged in %s (%.0f/s offered %d/s); append latency p50 %s, p99 %s",
		okN, elapsed.Round(time.Millisecond), float64(okN)/elapsed.Seconds(), rate,
		all[len(all)/2].Round(time.Microsecond), all[len(all)*99/100].Round(time.Microsecond))
	for _, m := range moves {
		t.Logf("move eu/ to %s: %s by the leaders' clocks (%s for the caller); longest append in flight during it: %s",
			m.to, m.duration.Round(time.Millisecond), m.until.Sub(m.from).Round(time.Millisecond), m.pause.Round(time.Millisecond))
	}

	waitConverged(t, c, names, 30*time.Second)
	replicas, err := c.Replicas(names)
	require.NoError(t, err)
	h := rec.History()
	resolved, res := check.ResolveUnknown(h, replicas)
	logFailures(t, h)
	reports := []check.Report{res, check.NoLostWrites(resolved, replicas), check.Convergence(replicas), check.Idempotency(resolved, replicas)}
	for _, r := range reports {
		t.Log(r.String())
	}
	require.Empty(t, check.Failed(reports), "checkers found violations")
}
