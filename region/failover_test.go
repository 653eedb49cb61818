package region

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// retryable reports whether a client may retry an append with the same
// event ids: not served, outcome unknown, overload, deadline.
func retryable(err error) bool {
	switch ConnectError(err).Code() {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted:
		return true
	}
	return false
}

type ackRecord struct {
	entity  string
	version uint64
}

// checkStreams verifies, on every running node, that each of entities'
// streams has versions 1..n without gaps, that no event id appears twice,
// that every acknowledged event is stored at its version, and that all
// nodes hold identical streams.
func checkStreams(t *testing.T, r *raftRegion, entities []string, acked map[string]ackRecord) {
	t.Helper()
	var ref map[string][]string
	for _, i := range r.running() {
		n := r.node(i)
		streams := map[string][]string{}
		where := map[string]ackRecord{}
		for _, e := range entities {
			for k, ev := range readStreamAll(t, n, e) {
				require.Equal(t, uint64(k+1), ev.GetVersion(), "node %d entity %s: gap", i, e)
				_, dup := where[ev.GetId()]
				require.False(t, dup, "node %d: event %s stored twice", i, ev.GetId())
				where[ev.GetId()] = ackRecord{entity: e, version: ev.GetVersion()}
				streams[e] = append(streams[e], ev.GetId())
			}
		}
		for id, a := range acked {
			require.Equal(t, a, where[id], "node %d: acknowledged event %s", i, id)
		}
		if ref == nil {
			ref = streams
			continue
		}
		require.Equal(t, ref, streams, "node %d differs", i)
	}
}

func TestLeaderKilledAndRestartedThreeTimesLosesNoAcknowledgedEvent(t *testing.T) {
	seed := testSeed(t)
	r := newTestRegion(t, 3, func(c *Config) { c.LeaderWaitTimeout = 10 * time.Second })
	r.waitLeader()
	const appenders, entityCount = 16, 50
	entities := make([]string, entityCount)
	for i := range entities {
		entities[i] = testEntity(i)
	}

	var (
		mu      sync.Mutex
		acked   = map[string]ackRecord{}
		unknown atomic.Int64
		nacked  atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(a)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				entity := entities[rng.IntN(entityCount)]
				req := appendRequest(entity, newTestEvent())
				for attempt := 0; ; attempt++ {
					running := r.running()
					n := r.node(running[rng.IntN(len(running))])
					if n == nil {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					resp, err := n.Append(ctx, req)
					cancel()
					if err == nil {
						mu.Lock()
						acked[req.Events[0].GetId()] = ackRecord{entity: entity, version: resp.GetFirstVersion()}
						mu.Unlock()
						nacked.Add(1)
						break
					}
					if !retryable(err) {
						t.Errorf("append %s: %v", entity, err)
						return
					}
					if attempt >= 50 {
						// Given up with the outcome unknown: it may or may
						// not be stored; checkStreams still sees it once at most.
						unknown.Add(1)
						break
					}
					time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
				}
			}
		}()
	}
	waitAcks := func(more int64) {
		target := nacked.Load() + more
		require.Eventually(t, func() bool { return nacked.Load() >= target }, 60*time.Second, 10*time.Millisecond,
			"stalled at %d acks", nacked.Load())
	}
	for kill := range 3 {
		waitAcks(150)
		leader := r.waitLeader()
		t.Logf("kill %d: stopping leader %s at %d acks", kill+1, r.nodes[leader].id, nacked.Load())
		r.stop(leader)
		waitAcks(150)
		r.start(leader)
	}
	waitAcks(100)
	close(stop)
	wg.Wait()
	r.waitLeader()
	r.waitConverged()
	t.Logf("acknowledged %d, gave up %d", nacked.Load(), unknown.Load())
	checkStreams(t, r, entities, acked)
}

func TestNodeDownForTenThousandAppendsCatchesUpBySnapshot(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) {
		// Snapshot and compact often, so the returning node is behind the
		// leader's first log index and must install a snapshot.
		c.SnapshotThreshold = 128
		c.SnapshotInterval = 100 * time.Millisecond
		c.TrailingLogs = 64
	})
	leader := r.waitLeader()
	down := r.follower(leader)
	ctx := testContext(t, 120*time.Second)
	_, err := r.node(leader).Append(ctx, appendRequest("warmup", newTestEvent()))
	require.NoError(t, err)
	r.waitConverged()
	r.stop(down)
	// Everything the down node's log holds (it may hold more than it applied).
	downLast := r.nodes[down].lastIndex

	const appends, workers, entityCount = 10000, 64, 100
	entities := make([]string, entityCount)
	for i := range entities {
		entities[i] = testEntity(i)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1)
				if k > appends {
					return
				}
				req := appendRequest(entities[int(k)%entityCount], newTestEvent())
				for {
					_, err := r.node(leader).Append(ctx, req)
					if err == nil {
						break
					}
					if !assert.True(t, retryable(err), "%v", err) {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d appends in %s", appends, time.Since(start))

	// Neither running node's log still holds what the down node needs, so
	// whichever leads when it returns must send a snapshot.
	for _, i := range r.running() {
		if err := r.node(i).Raft().Snapshot().Error(); !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool {
			first, err := r.node(i).parts.logs.FirstIndex()
			var l raft.Log
			return err == nil && first > downLast+1 && r.node(i).parts.logs.GetLog(downLast+1, &l) != nil
		}, 30*time.Second, 20*time.Millisecond, "node %d did not compact its log", i)
	}

	r.start(down)
	r.waitConverged()
	// Raft records the installed snapshot just after the FSM restored it.
	require.Eventually(t, func() bool {
		return r.node(down).Raft().Stats()["last_snapshot_index"] != "0"
	}, 10*time.Second, 10*time.Millisecond, "caught up without a snapshot: down log end %d", downLast)
	checkStreams(t, r, append(entities, "warmup"), nil)
	// And it serves the same streams over its API.
	for _, e := range entities[:5] {
		resp, err := r.client(down).Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{
			Entity: e, MaxCount: 1000, Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
		}))
		require.NoError(t, err)
		requireSameEvents(t, readStreamAll(t, r.node(leader), e), resp.Msg.GetEvents())
	}

	// The node restarts on what the snapshot install left: a log that raft
	// emptied and restarted above the snapshot (internal/raftlog) and a
	// state machine loaded from the snapshot (Badger versions from the
	// sender), then more appends.
	for i := range 20 {
		_, err := r.node(leader).Append(ctx, appendRequest(entities[i], newTestEvent()))
		require.NoError(t, err)
	}
	r.waitConverged()
	r.stop(down)
	r.start(down)
	for i := range 20 {
		_, err := r.node(leader).Append(ctx, appendRequest(entities[i], newTestEvent()))
		require.NoError(t, err)
	}
	r.waitConverged()
	checkStreams(t, r, append(entities, "warmup"), nil)
}
