package replication

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// chaosHandler serves Pull badly but within what a puller must survive:
// random page sizes, pages resent (duplicate messages), pages that start
// before where the stream was (overlap), and streams that end at random.
type chaosHandler struct {
	region string
	src    LogSource
	seed   uint64
	n      atomic.Uint64
}

func (h *chaosHandler) Pull(ctx context.Context, req *connect.Request[meridianv1.PullRequest], st *connect.ServerStream[meridianv1.PullResponse]) error {
	rng := rand.New(rand.NewPCG(h.seed, h.n.Add(1)))
	origin, next := req.Msg.GetOrigin(), req.Msg.GetFromSeq()
	for {
		from := next
		if rng.IntN(8) == 0 {
			from = max(1, next-uint64(rng.IntN(6))) // overlap
		}
		events, err := h.src.ReadOrigin(origin, from, 1+rng.IntN(20))
		if err != nil {
			return connect.NewError(connect.CodeUnavailable, err)
		}
		msg := &meridianv1.PullResponse{Events: events, Applied: h.src.Applied(), SourceRegion: h.region}
		for range 1 + rng.IntN(2) { // sometimes twice
			if err := st.Send(msg); err != nil {
				return err
			}
		}
		if n := len(events); n > 0 {
			next = max(next, events[n-1].GetOrigin().GetSeq()+1)
		}
		if rng.IntN(40) == 0 {
			return connect.NewError(connect.CodeUnavailable, errors.New("chaos: stream ended"))
		}
		if len(events) == 0 {
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// writeConcurrently makes every region append n events, each depending on
// everything its region has applied (a writer whose session token is the
// region's vector), at random short intervals.
func (w *world) writeConcurrently(seed int64, n int) {
	var wg sync.WaitGroup
	i := uint64(0)
	for _, r := range w.rs {
		i++
		rng := rand.New(rand.NewPCG(uint64(seed), i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				r.fake.AppendSeen(rng.IntN(64))
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
}

func TestShipperExactlyOnceUnderReconnectsAndDuplicates(t *testing.T) {
	seed := testSeed(t)
	names := []string{"a", "b", "c"}
	w := newWorld(t, names, worldOptions{seed: seed})
	// a serves through the chaos handler; every link resets connections
	// now and then and loses some dials.
	w.rs["a"].mu.Lock()
	w.rs["a"].handler = &chaosHandler{region: "a", src: w.rs["a"].fake, seed: uint64(seed)}
	w.rs["a"].mu.Unlock()
	for _, x := range names {
		for _, y := range names {
			if x != y {
				w.net.SetLoss(x, y, 0.2, 0.01)
			}
		}
	}
	w.writeConcurrently(seed, 300)
	eventually(t, 30*time.Second, "every region to hold every log", w.converged)
	w.checkReplicas()
	var reqs int
	for _, r := range w.rs {
		reqs += len(r.PullRequests())
	}
	t.Logf("%d pull streams opened", reqs)
	require.Greater(t, reqs, 6, "the faults should have forced reconnects")
}

func TestShipperNeverProposesOutOfCausalOrder(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	names := []string{"a", "b", "c", "d"}
	w := newWorld(t, names, worldOptions{seed: seed, config: func(_ string, c *Config) {
		c.BatchEventsMax = 16 // many batches, many interleavings
	}})
	for _, r := range w.rs {
		r.fake.setDelay(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	// Writers depend on a random subset of what their region applied, so
	// deps cross origins in every direction.
	var wg sync.WaitGroup
	for i, name := range names {
		r := w.rs[name]
		wrng := rand.New(rand.NewPCG(uint64(seed), uint64(i+1)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				deps := map[string]uint64{}
				for o, seq := range r.fake.Applied() {
					if wrng.IntN(2) == 0 && seq > 0 {
						deps[o] = 1 + wrng.Uint64N(seq)
					}
				}
				r.fake.Append(deps, 0)
				time.Sleep(time.Duration(wrng.IntN(1500)) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	eventually(t, 30*time.Second, "every region to hold every log", w.converged)
	w.checkReplicas()
}

func TestShipperWaitsForDepsOfAnotherOrigin(t *testing.T) {
	w := newWorld(t, []string{"a", "b", "c"}, worldOptions{noShipper: true})
	a, b, c := w.rs["a"], w.rs["b"], w.rs["c"]
	for range 5 {
		b.fake.Append(nil, 0)
	}
	// a has applied b's events, and its writers depend on them.
	_, err := a.fake.Replicate(context.Background(), b.fake.Log("b"))
	require.NoError(t, err)
	for range 5 {
		a.fake.AppendSeen(0)
	}
	require.Equal(t, uint64(5), a.fake.Log("a")[0].GetDeps()["b"])
	// Nobody serves b's log to c yet.
	a.fake.setRefuse("b", true)
	b.fake.setRefuse("b", true)
	w.startShipper("c")

	eventually(t, 10*time.Second, "c to hold a's events, blocked on b", func() bool {
		l := lagOf(c.shipper, "a")
		return l.GetKnown() == 5 && l.GetLagEvents() == 5 && l.GetLag().AsDuration() > 0 && l.GetSource() == "a"
	})
	never(t, 300*time.Millisecond, "c applied a's events before b's", func() bool { return c.fake.Applied()["a"] > 0 })

	b.fake.setRefuse("b", false)
	eventually(t, 10*time.Second, "c to apply b's then a's events", func() bool {
		v := c.fake.Applied()
		return v["a"] == 5 && v["b"] == 5
	})
	require.Empty(t, c.fake.Violations())
	order := c.fake.Order()
	require.Equal(t, []string{"b/1", "b/2", "b/3", "b/4", "b/5", "a/1", "a/2", "a/3", "a/4", "a/5"}, order)
	eventually(t, 5*time.Second, "lag zero once caught up", func() bool {
		l := lagOf(c.shipper, "a")
		return l.GetLagEvents() == 0 && l.GetLag().AsDuration() == 0
	})
}

func lagOf(s *Shipper, origin string) *meridianv1.OriginLag {
	for _, l := range s.Lag() {
		if l.GetOrigin() == origin {
			return l
		}
	}
	return nil
}

func TestShipperRoutesAroundNonTransitivePartition(t *testing.T) {
	seed := testSeed(t)
	w := newWorld(t, []string{"a", "b", "c"}, worldOptions{seed: seed})
	a, b := w.rs["a"], w.rs["b"]
	a.fake.Append(nil, 0)
	b.fake.Append(nil, 0)
	eventually(t, 10*time.Second, "initial convergence", w.converged)

	// a and b cannot talk; both reach c.
	w.net.Partition("a", "b")
	for range 50 {
		a.fake.AppendSeen(0)
		b.fake.AppendSeen(0)
	}
	eventually(t, 20*time.Second, "a's events to reach b through c, and b's to reach a", func() bool {
		return b.fake.Applied()["a"] == 51 && a.fake.Applied()["b"] == 51
	})
	assert.Equal(t, "c", lagOf(b.shipper, "a").GetSource())
	assert.Equal(t, "c", lagOf(a.shipper, "b").GetSource())
	eventually(t, 10*time.Second, "convergence", w.converged)
	w.checkReplicas()

	// Healed, the origin is preferred again once a stream ends; either way
	// the logs keep flowing.
	w.net.Heal("a", "b")
	a.fake.AppendSeen(0)
	eventually(t, 10*time.Second, "convergence after heal", w.converged)
	w.checkReplicas()
}

func TestShipperPendingStaysBounded(t *testing.T) {
	const (
		eventsMax = 200
		bytesMax  = 32 << 10
	)
	var mu sync.Mutex
	maxEvents, maxBytes := 0, 0
	w := newWorld(t, []string{"a", "b"}, worldOptions{noShipper: true, config: func(region string, c *Config) {
		c.BatchEventsMax = 50
		c.PendingEventsMax = eventsMax
		c.MessageBytesMax = 8 << 10
		c.PendingBytesMax = bytesMax
		c.Knobs = &TestingKnobs{OnPending: func(_ string, events, bytes int) {
			mu.Lock()
			maxEvents, maxBytes = max(maxEvents, events), max(maxBytes, bytes)
			mu.Unlock()
		}}
	}})
	a, b := w.rs["a"], w.rs["b"]
	for range 2000 {
		a.fake.Append(nil, 40)
	}
	b.fake.setDelay(10 * time.Millisecond) // a slow Raft group
	w.startShipper("b")
	eventually(t, 30*time.Second, "b to apply a's log", func() bool { return b.fake.Applied()["a"] == 2000 })
	mu.Lock()
	defer mu.Unlock()
	t.Logf("max pending: %d events, %d bytes; %d proposals", maxEvents, maxBytes, b.fake.Proposals())
	assert.LessOrEqual(t, maxEvents, eventsMax)
	assert.LessOrEqual(t, maxBytes, bytesMax)
	assert.Greater(t, maxEvents, eventsMax/2, "pending should have filled: the applier is the bottleneck")
	w.checkReplicas()
}

func TestShipperFollowsLeadership(t *testing.T) {
	w := newWorld(t, []string{"a", "b"}, worldOptions{noShipper: true})
	a, b := w.rs["a"], w.rs["b"]
	b.lead.Set(false)
	w.startShipper("b")
	for range 20 {
		a.fake.Append(nil, 0)
	}
	never(t, 300*time.Millisecond, "a follower pulled", func() bool {
		return a.activePulls.Load() > 0 || b.fake.Applied()["a"] > 0
	})

	b.lead.Set(true)
	eventually(t, 10*time.Second, "the leader to pull a's log", func() bool { return b.fake.Applied()["a"] == 20 })
	require.Equal(t, uint64(1), a.PullRequests()[0].GetFromSeq())

	b.lead.Set(false)
	eventually(t, 5*time.Second, "streams to stop on losing leadership", func() bool { return a.activePulls.Load() == 0 })
	proposals := b.fake.Proposals()
	opened := len(a.PullRequests())
	for range 20 {
		a.fake.Append(nil, 0)
	}
	never(t, 300*time.Millisecond, "a follower pulled or proposed", func() bool {
		return a.activePulls.Load() > 0 || len(a.PullRequests()) > opened || b.fake.Proposals() > proposals
	})

	// Regained: resume from the applied vector, nothing pulled twice.
	b.lead.Set(true)
	eventually(t, 10*time.Second, "the new term to resume", func() bool { return b.fake.Applied()["a"] == 40 })
	reqs := a.PullRequests()
	require.Equal(t, uint64(21), reqs[opened].GetFromSeq())
	b.lead.Set(false)
	eventually(t, 5*time.Second, "streams to stop", func() bool { return a.activePulls.Load() == 0 })
	require.Empty(t, b.fake.Violations())
	assert.Len(t, b.fake.Order(), 40, "each event applied once")
}

func TestShipperLag(t *testing.T) {
	w := newWorld(t, []string{"a", "b"}, worldOptions{noShipper: true})
	a, b := w.rs["a"], w.rs["b"]
	b.fake.mu.Lock()
	b.fake.notLeader = true // proposals fail: events stay pending
	b.fake.mu.Unlock()
	for range 10 {
		a.fake.Append(nil, 0)
	}
	w.startShipper("b")
	eventually(t, 10*time.Second, "lag to show 10 events behind, pulling from a", func() bool {
		l := lagOf(b.shipper, "a")
		return l.GetApplied() == 0 && l.GetKnown() == 10 && l.GetLagEvents() == 10 && l.GetLag().AsDuration() > 0 && l.GetSource() == "a"
	})
	b.fake.mu.Lock()
	b.fake.notLeader = false
	b.fake.mu.Unlock()
	eventually(t, 10*time.Second, "lag to clear", func() bool {
		l := lagOf(b.shipper, "a")
		return l.GetApplied() == 10 && l.GetKnown() == 10 && l.GetLagEvents() == 0 && l.GetLag().AsDuration() == 0 && l.GetSource() == "a"
	})
	// Only other origins, sorted.
	var origins []string
	for _, l := range b.shipper.Lag() {
		origins = append(origins, l.GetOrigin())
	}
	assert.Equal(t, []string{"a"}, origins)
}

// A region that joins the directory gets a puller as soon as the directory
// says it changed: the refresh is an hour away.
func TestShipperPicksUpRegionsThatJoin(t *testing.T) {
	w := newWorld(t, []string{"a", "b", "c"}, worldOptions{noShipper: true})
	w.dir.mu.Lock()
	delete(w.dir.endpoints, "c")
	w.dir.mu.Unlock()
	w.rs["a"].cfg.DirectoryRefresh = time.Hour
	w.startShipper("a")
	w.rs["c"].fake.Append(nil, 0)
	never(t, 300*time.Millisecond, "a pulled a region not in the directory", func() bool { return w.rs["a"].fake.Applied()["c"] > 0 })
	w.dir.Set("c", w.rs["c"].addr)
	eventually(t, 5*time.Second, "a to pull the region that joined", func() bool { return w.rs["a"].fake.Applied()["c"] == 1 })
}

// silentDirectory never announces a change: only DirectoryRefresh finds
// the regions that joined.
type silentDirectory struct{ *fakeDirectory }

func (silentDirectory) Changed() <-chan struct{} { return nil }

func TestShipperFindsJoinedRegionsByRefreshWithoutWakeUps(t *testing.T) {
	w := newWorld(t, []string{"a", "b", "c"}, worldOptions{noShipper: true})
	w.dir.mu.Lock()
	delete(w.dir.endpoints, "c")
	w.dir.mu.Unlock()
	r := w.rs["a"]
	s, err := NewShipper(r.cfg, Deps{Log: r.fake, Applier: r.fake, Leadership: r.lead, Directory: silentDirectory{w.dir}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	w.rs["c"].fake.Append(nil, 0)
	w.dir.Set("c", w.rs["c"].addr)
	eventually(t, 5*time.Second, "a to pull the region that joined", func() bool { return r.fake.Applied()["c"] == 1 })
}

func TestShipperClosesWhileLeading(t *testing.T) {
	w := newWorld(t, []string{"a", "b"}, worldOptions{})
	w.rs["a"].fake.Append(nil, 0)
	eventually(t, 10*time.Second, "convergence", w.converged)
	done := make(chan struct{})
	go func() {
		_ = w.rs["b"].shipper.Close()
		_ = w.rs["b"].shipper.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	eventually(t, 5*time.Second, "b's streams to end", func() bool { return w.rs["a"].activePulls.Load() == 0 })
}

// A region that pulls an origin's log through another region is as stale as
// that region's copy, not only as old as its last message: when the origin
// is cut off from everyone, the region in the middle keeps sending
// heartbeats, and its growing staleness must show at the end of the chain
// (BOUNDED reads rely on it). Once the middle's copy is staler than
// StallTimeout, the end of the chain tries the origin itself; after the
// heal both are fresh again without waiting out OriginRetryInterval.
func TestShipperStalenessIncludesTheSourcesOwn(t *testing.T) {
	w := newWorld(t, []string{"a", "b", "c"}, worldOptions{seed: testSeed(t)})
	a, b, c := w.rs["a"], w.rs["b"], w.rs["c"]
	a.fake.Append(nil, 0)
	eventually(t, 10*time.Second, "initial convergence", w.converged)
	staleness := func(s *Shipper, origin string) (time.Duration, bool) {
		st := lagOf(s, origin).GetStaleness()
		return st.AsDuration(), st != nil
	}

	w.net.Partition("a", "b")
	a.fake.AppendSeen(0)
	eventually(t, 10*time.Second, "b to pull a's log through c and see it fresh", func() bool {
		d, ok := staleness(b.shipper, "a")
		return lagOf(b.shipper, "a").GetSource() == "c" && b.fake.Applied()["a"] == 2 && ok && d < 200*time.Millisecond
	})

	// Now a reaches nobody; c still talks to b.
	w.net.Partition("a", "c")
	cut := time.Now()
	eventually(t, 10*time.Second, "c's staleness for a to pass 300ms", func() bool {
		d, ok := staleness(c.shipper, "a")
		return ok && d > 300*time.Millisecond
	})
	require.Equal(t, "c", lagOf(b.shipper, "a").GetSource(), "b still pulls a's log through c")
	d, ok := staleness(b.shipper, "a")
	require.True(t, ok)
	assert.Greater(t, d, 200*time.Millisecond, "b's view of a is as old as c's, though c's heartbeats are fresh")
	if d, ok := staleness(b.shipper, "c"); assert.True(t, ok) {
		assert.Less(t, d, 300*time.Millisecond, "c itself is heard from")
	}
	never(t, time.Second, "b to claim a fresh view of a while a is cut off", func() bool {
		d, ok := staleness(b.shipper, "a")
		return ok && d < time.Since(cut)-300*time.Millisecond
	})

	w.net.HealAll()
	healed := time.Now()
	eventually(t, 5*time.Second, "b and c to see a fresh again", func() bool {
		db, okb := staleness(b.shipper, "a")
		dc, okc := staleness(c.shipper, "a")
		return okb && okc && db < 200*time.Millisecond && dc < 200*time.Millisecond
	})
	t.Logf("fresh again %s after the heal", time.Since(healed).Round(time.Millisecond))
	a.fake.AppendSeen(0)
	eventually(t, 10*time.Second, "convergence after heal", w.converged)
	w.checkReplicas()
}

// TestShipperRecordsOriginClocksFromHeartbeats: an idle origin's clock
// reaches the other region through heartbeats and is recorded once the
// region has applied the origin's log as far as the clock says, and again
// only when it moves (ADR 0005: stability of active-active events).
func TestShipperRecordsOriginClocksFromHeartbeats(t *testing.T) {
	w := newWorld(t, []string{"a", "b"}, worldOptions{})
	a, b := w.rs["a"], w.rs["b"]
	a.fake.Append(nil, 0)
	a.fake.Append(nil, 0)
	idle := &meridianv1.Hlc{WallNanos: time.Now().Add(time.Hour).UnixNano()}
	a.fake.mu.Lock()
	a.fake.ownClock = idle
	a.fake.mu.Unlock()
	eventually(t, 10*time.Second, "b to record a's idle clock", func() bool {
		c := b.fake.Clock("a")
		return c.GetSeq() == 2 && c.GetHlc().GetWallNanos() == idle.GetWallNanos()
	})
	b.fake.mu.Lock()
	calls, violations := b.fake.clockCalls, slices.Clone(b.fake.violations)
	b.fake.mu.Unlock()
	assert.Empty(t, violations, "a clock is recorded only once its seq is applied")
	// Nothing moves: no more Raft entries for it.
	time.Sleep(10 * a.cfg.HeartbeatInterval)
	b.fake.mu.Lock()
	assert.Equal(t, calls, b.fake.clockCalls, "an unchanged clock is not recorded again")
	b.fake.mu.Unlock()
}
