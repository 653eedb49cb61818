package region

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendOnFollowerForwards(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	f := r.follower(leader)
	ctx := testContext(t, 20*time.Second)

	resp, err := r.node(f).Append(ctx, appendRequest("order-1", newTestEvent(), newTestEvent()))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), resp.GetFirstVersion())
	assert.Equal(t, uint64(2), resp.GetLastVersion())
	tok, err := causal.ParseToken(resp.GetSessionToken())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), tok.Get("r1"), "token covers both events")

	// Through the Connect API of the follower, too.
	cresp, err := r.client(f).Append(ctx, connect.NewRequest(&meridianv1.AppendRequest{
		Entity: "order-1", Expected: exact(2), Events: []*meridianv1.ProposedEvent{newTestEvent()}, SessionToken: resp.GetSessionToken(),
	}))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), cresp.Msg.GetLastVersion())

	// A SESSION read with the token on the other follower sees all three.
	other := 3 - leader - f
	rr, err := r.node(other).Read(ctx, &meridianv1.ReadRequest{Entity: "order-1", SessionToken: cresp.Msg.GetSessionToken()})
	require.NoError(t, err)
	require.Len(t, rr.GetEvents(), 3)
	assert.Equal(t, uint64(3), rr.GetHeadVersion())

	// STRONG on a follower is forwarded to the leader.
	rr, err = r.node(f).Read(ctx, &meridianv1.ReadRequest{Entity: "order-1", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG})
	require.NoError(t, err)
	assert.Equal(t, r.nodes[leader].id, rr.GetNode())
	assert.Len(t, rr.GetEvents(), 3)

	st := r.node(f).Status()
	assert.Equal(t, r.nodes[leader].id, st.GetLeader())
	assert.Equal(t, r.peers[leader].APIAddr, st.GetLeaderAddress())
	assert.False(t, st.GetIsLeader())
}

func TestConcurrentSameExpectedVersionExactlyOneWins(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	ctx := testContext(t, 20*time.Second)
	_, err := r.node(leader).Append(ctx, appendRequest("acct-7", newTestEvent()))
	require.NoError(t, err)

	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &meridianv1.AppendRequest{Entity: "acct-7", Expected: exact(1), Events: []*meridianv1.ProposedEvent{newTestEvent()}}
			_, errs[w] = r.client(w%3).Append(ctx, connect.NewRequest(req))
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		var ce *connect.Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, connect.CodeFailedPrecondition, ce.Code(), "%v", err)
		assert.Contains(t, ce.Message(), "current version 2")
		assert.Equal(t, "2", ce.Meta().Get(currentVersionHeader))
		require.Len(t, ce.Details(), 1)
		v, err := ce.Details()[0].Value()
		require.NoError(t, err)
		assert.Equal(t, uint64(2), v.(*meridianv1.StreamHead).GetVersion())
	}
	assert.Equal(t, 1, wins)
}

func TestRestartServesAcknowledgedStateAndWholeRegionRestartLosesNothing(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	ctx := testContext(t, 60*time.Second)
	const entities, perEntity = 10, 20
	var wg sync.WaitGroup
	for e := range entities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perEntity {
				_, err := r.node(leader).Append(ctx, appendRequest(testEntity(e), newTestEvent()))
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	r.waitConverged()
	want := map[string][]*meridianv1.Event{}
	for e := range entities {
		want[testEntity(e)] = readStreamAll(t, r.node(leader), testEntity(e))
		require.Len(t, want[testEntity(e)], perEntity)
	}
	// The last log entry is not a command (as after an election's barrier).
	require.NoError(t, r.node(leader).Raft().Barrier(10*time.Second).Error())
	r.waitConverged()
	for i := range r.nodes {
		r.stop(i)
	}
	for i := range r.nodes {
		r.start(i)
		// Before any leader exists, an EVENTUAL read on the restarted node
		// already serves everything it acknowledged (Badger kept it),
		// without waiting for the read floor (ReadWaitMax is 1s).
		for e := range entities {
			rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			rr, err := r.node(i).Read(rctx, &meridianv1.ReadRequest{Entity: testEntity(e), MaxCount: 1000, Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL})
			cancel()
			require.NoError(t, err)
			requireSameEvents(t, want[testEntity(e)], rr.GetEvents())
		}
	}
	leader = r.waitLeader()
	_, err := r.node(leader).Append(ctx, &meridianv1.AppendRequest{Entity: testEntity(0), Expected: exact(perEntity), Events: []*meridianv1.ProposedEvent{newTestEvent()}})
	require.NoError(t, err, "the stream continues at its version after the restart")
}

func requireSameEvents(t testing.TB, want, got []*meridianv1.Event) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].GetId(), got[i].GetId())
		require.Equal(t, want[i].GetVersion(), got[i].GetVersion())
		require.Equal(t, want[i].GetOrigin().GetSeq(), got[i].GetOrigin().GetSeq())
	}
}

func TestStrongReadOnDeposedLeaderIsNotStale(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) { c.LeaderWaitTimeout = 1500 * time.Millisecond })
	old := r.waitLeader()
	ctx := testContext(t, 60*time.Second)
	_, err := r.node(old).Append(ctx, appendRequest("acct-1", newTestEvent()))
	require.NoError(t, err)
	r.waitConverged()

	// Cut the leader off. It still believes it leads for up to the lease
	// timeout; a STRONG read there must not answer from its state.
	r.net.Isolate(r.nodes[old].id)
	readCtx := testContext(t, 10*time.Second)
	rr, err := r.node(old).Read(readCtx, &meridianv1.ReadRequest{Entity: "acct-1", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG})
	require.Error(t, err, "deposed leader answered a STRONG read: %v", rr)
	assert.True(t, errors.Is(err, ErrNotLeader), "%v", err)
	assert.Equal(t, connect.CodeUnavailable, ConnectError(err).Code())

	// The majority elects a new leader and moves on.
	var nl int
	require.Eventually(t, func() bool {
		for _, i := range r.running() {
			if i != old && r.node(i).isLeader() {
				nl = i
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)
	_, err = r.node(nl).Append(ctx, &meridianv1.AppendRequest{Entity: "acct-1", Expected: exact(1), Events: []*meridianv1.ProposedEvent{newTestEvent()}})
	require.NoError(t, err)

	// Still cut off: no STRONG answer, certainly not the stale head 1.
	rr, err = r.node(old).Read(readCtx, &meridianv1.ReadRequest{Entity: "acct-1", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG})
	require.Error(t, err, "isolated node answered a STRONG read: %v", rr)

	// Healed: the old leader forwards STRONG reads and sees the new write.
	r.net.HealAll()
	require.Eventually(t, func() bool {
		rr, err := r.node(old).Read(ctx, &meridianv1.ReadRequest{Entity: "acct-1", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG})
		return err == nil && rr.GetHeadVersion() == 2
	}, 30*time.Second, 50*time.Millisecond)
}

func TestAppendOnPartitionedLeaderIsOutcomeUnknown(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	old := r.waitLeader()
	ctx := testContext(t, 60*time.Second)
	_, err := r.node(old).Append(ctx, appendRequest("acct-2", newTestEvent()))
	require.NoError(t, err)

	r.net.Isolate(r.nodes[old].id)
	ev := newTestEvent()
	req := &meridianv1.AppendRequest{Entity: "acct-2", Events: []*meridianv1.ProposedEvent{ev}}
	// A caller whose deadline ends while its proposal is in Raft learns
	// "outcome unknown" too, as DeadlineExceeded.
	shortErr := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := r.node(old).batcher.submit(sctx, &meridianv1.AppendOp{Entity: "acct-3", Events: []*meridianv1.ProposedEvent{newTestEvent()}})
		shortErr <- err
	}()
	_, err = r.node(old).batcher.submit(ctx, &meridianv1.AppendOp{Entity: "acct-2", Events: req.Events})
	require.Error(t, err)
	t.Logf("append on the cut-off leader: %v", err)
	if serr := <-shortErr; !errors.Is(serr, ErrNotLeader) {
		t.Logf("short-deadline append: %v", serr)
		require.ErrorIs(t, serr, ErrOutcomeUnknown)
		require.ErrorIs(t, serr, context.DeadlineExceeded)
		assert.Equal(t, connect.CodeDeadlineExceeded, ConnectError(serr).Code())
	}
	// Proposed while leader, then leadership was lost: the entry may or may
	// not commit, so the answer is "outcome unknown", never a plain failure.
	// (If Raft had already stepped down, it is "not leader": not proposed.)
	if !errors.Is(err, ErrNotLeader) {
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		ce := ConnectError(err)
		assert.Equal(t, connect.CodeUnavailable, ce.Code())
		assert.Contains(t, ce.Message(), "retrying with the same event ids is safe")
		assert.Equal(t, kindOutcomeUnknown, ce.Meta().Get(errorKindHeader))
	}
	r.net.HealAll()
	// Retrying with the same id is safe: exactly one copy ends up stored.
	leader := r.waitLeader()
	require.Eventually(t, func() bool {
		_, err := r.node(leader).Append(ctx, req)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond)
	r.waitConverged()
	for _, i := range r.running() {
		evs := readStreamAll(t, r.node(i), "acct-2")
		n := 0
		for _, e := range evs {
			if e.GetId() == ev.GetId() {
				n++
			}
		}
		assert.Equal(t, 1, n, "node %d", i)
	}
}

// LogStaleness: zero on the leader, about a heartbeat on a follower in
// touch with it, and growing once the follower is cut off (the Pull
// service sends it with the region's own origin).
func TestLogStalenessGrowsOnAFollowerCutOffFromItsLeader(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	f := r.follower(leader)
	d, ok := r.node(leader).LogStaleness()
	require.True(t, ok)
	assert.Zero(t, d)
	require.Eventually(t, func() bool {
		d, ok := r.node(f).LogStaleness()
		return ok && d < 300*time.Millisecond
	}, 10*time.Second, 10*time.Millisecond, "a follower in touch with its leader")

	r.net.Isolate(r.nodes[f].id)
	cut := time.Now()
	time.Sleep(time.Second)
	d, ok = r.node(f).LogStaleness()
	require.True(t, ok)
	assert.GreaterOrEqual(t, d, time.Since(cut)-300*time.Millisecond, "a cut-off follower's copy ages")

	r.net.HealAll()
	require.Eventually(t, func() bool {
		d, ok := r.node(f).LogStaleness()
		return ok && d < 300*time.Millisecond
	}, 10*time.Second, 10*time.Millisecond, "fresh again after the heal")
}
