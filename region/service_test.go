package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestConnectErrorCodes(t *testing.T) {
	deadline := fmt.Errorf("%w: %w", ErrOutcomeUnknown, context.DeadlineExceeded)
	tests := []struct {
		name string
		err  error
		code connect.Code
		kind string
		msg  string
	}{
		{"invalid", &InvalidArgumentError{Field: "events[0].id", Reason: "must be a UUID"}, connect.CodeInvalidArgument, kindInvalidArgument, "events[0].id"},
		{"conflict", &VersionConflictError{Entity: "e", Expected: "3", Current: 5}, connect.CodeFailedPrecondition, kindVersionConflict, "current version 5"},
		{"idempotency", fmt.Errorf("%w: id reused", ErrIdempotencyConflict), connect.CodeAlreadyExists, kindIdempotencyConflict, "id reused"},
		{"overloaded", fmt.Errorf("%w: full", ErrOverloaded), connect.CodeResourceExhausted, kindOverloaded, "overloaded"},
		{"not leader", fmt.Errorf("%w: none", ErrNotLeader), connect.CodeUnavailable, kindNotLeader, "not leader"},
		{"outcome unknown", applyError(raft.ErrLeadershipLost), connect.CodeUnavailable, kindOutcomeUnknown, "retrying with the same event ids is safe"},
		{"outcome unknown at deadline", deadline, connect.CodeDeadlineExceeded, kindOutcomeUnknown, "retrying with the same event ids is safe"},
		{"timeout", fmt.Errorf("%w: token", ErrTimeout), connect.CodeUnavailable, kindTimeout, "timeout"},
		{"closed", ErrNodeClosed, connect.CodeUnavailable, kindClosed, "closed"},
		{"deadline", context.DeadlineExceeded, connect.CodeDeadlineExceeded, kindDeadline, "deadline"},
		{"too large", ErrEntryTooLarge, connect.CodeInvalidArgument, kindInvalidArgument, "too large"},
		{"other", errors.New("boom"), connect.CodeInternal, kindInternal, "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ce := ConnectError(tc.err)
			assert.Equal(t, tc.code, ce.Code())
			assert.Equal(t, tc.kind, ce.Meta().Get(errorKindHeader))
			assert.Contains(t, ce.Message(), tc.msg)
			// A forwarding node rebuilds the same region error.
			back := fromConnectError(context.Background(), ce, true)
			if s := kindSentinels[tc.kind]; s != nil {
				assert.ErrorIs(t, back, s)
			}
			again := ConnectError(back)
			assert.Equal(t, ce.Code(), again.Code())
			assert.Equal(t, ce.Message(), again.Message())
		})
	}
}

func TestApplyErrorClassification(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{raft.ErrNotLeader, ErrNotLeader},           // rejected before entering the log
		{raft.ErrEnqueueTimeout, ErrOverloaded},     // never reached the Raft loop
		{raft.ErrLeadershipLost, ErrOutcomeUnknown}, // in the log, may still commit
		{raft.ErrRaftShutdown, ErrOutcomeUnknown},   // may be in the log
		{errors.New("disk"), ErrOutcomeUnknown},
	}
	for _, tc := range tests {
		assert.ErrorIs(t, applyError(tc.err), tc.want, "%v", tc.err)
	}
}

func TestBatcherAnswersOverloadedWhenQueueFull(t *testing.T) {
	// A batcher whose loop is not running: nothing leaves the queue.
	b := &batcher{bytesMax: 1 << 20, queue: make(chan *proposal, 1), stop: make(chan struct{})}
	op := &meridianv1.AppendOp{Entity: "e", Events: []*meridianv1.ProposedEvent{newTestEvent()}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var firstErr error
	go func() { defer wg.Done(); _, firstErr = b.submit(ctx, op) }()
	require.Eventually(t, func() bool { return len(b.queue) == 1 }, 5*time.Second, time.Millisecond)
	_, err := b.submit(context.Background(), op)
	require.ErrorIs(t, err, ErrOverloaded)
	assert.Equal(t, connect.CodeResourceExhausted, ConnectError(err).Code())
	// The queued one was never proposed: its caller gets its context error,
	// not "outcome unknown".
	cancel()
	wg.Wait()
	assert.ErrorIs(t, firstErr, context.Canceled)
	assert.NotErrorIs(t, firstErr, ErrOutcomeUnknown)
}

func TestServiceRejectsBadInput(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) { c.Limits.EventBytesMax = 1 << 10 })
	leader := r.waitLeader()
	c := r.client(r.follower(leader))
	ctx := testContext(t, 20*time.Second)
	big := newTestEvent()
	big.Data = make([]byte, 2<<10)
	badID := newTestEvent()
	badID.Id = "not-a-uuid"
	tests := []struct {
		name  string
		req   *meridianv1.AppendRequest
		field string
	}{
		{"bad entity", appendRequest("/x", newTestEvent()), "entity"},
		{"empty append", appendRequest("e1"), "events"},
		{"event over size limit", appendRequest("e1", big), "1024"},
		{"malformed uuid", appendRequest("e1", badID), "id"},
		{"bad token", &meridianv1.AppendRequest{Entity: "e1", Events: []*meridianv1.ProposedEvent{newTestEvent()}, SessionToken: "!!"}, "session_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Append(ctx, connect.NewRequest(tc.req))
			require.Error(t, err)
			assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
	_, err := c.Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "e1", MaxCount: 5000}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	assert.Contains(t, err.Error(), "max_count")

	// Same id, other content: AlreadyExists. Same id, same content: the
	// original result, marked duplicate.
	ev := newTestEvent()
	first, err := c.Append(ctx, connect.NewRequest(appendRequest("e2", ev)))
	require.NoError(t, err)
	again, err := c.Append(ctx, connect.NewRequest(appendRequest("e2", ev)))
	require.NoError(t, err)
	assert.True(t, again.Msg.GetDuplicate())
	assert.Equal(t, first.Msg.GetFirstVersion(), again.Msg.GetFirstVersion())
	other := &meridianv1.ProposedEvent{Id: ev.GetId(), Type: ev.GetType(), Data: []byte("different")}
	_, err = c.Append(ctx, connect.NewRequest(appendRequest("e2", other)))
	assert.Equal(t, connect.CodeAlreadyExists, connect.CodeOf(err), "%v", err)
}

func TestSessionReadWaitsForTokenThenFails(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) { c.ReadWaitMax = 200 * time.Millisecond })
	leader := r.waitLeader()
	ctx := testContext(t, 20*time.Second)
	resp, err := r.node(leader).Append(ctx, appendRequest("s1", newTestEvent()))
	require.NoError(t, err)
	// A follower serves a read with the writer's token once it covers it.
	f := r.follower(leader)
	rr, err := r.node(f).Read(ctx, &meridianv1.ReadRequest{Entity: "s1", SessionToken: resp.GetSessionToken()})
	require.NoError(t, err)
	require.Len(t, rr.GetEvents(), 1)
	tok, err := causal.ParseToken(rr.GetSessionToken())
	require.NoError(t, err)
	assert.Equal(t, resp.GetOrigin().GetSeq(), tok.Get("r1"))
	// A token from the future is never served with older data: the follower
	// forwards, the leader waits, then a clear retryable error.
	future := causal.FormatToken(causal.Vector{"r1": 1 << 40})
	_, err = r.node(f).Read(ctx, &meridianv1.ReadRequest{Entity: "s1", SessionToken: future})
	require.ErrorIs(t, err, ErrTimeout)
	assert.Equal(t, connect.CodeUnavailable, ConnectError(err).Code())
}

// TestReadTokenCoversHead: a read reports head_version, so its token covers
// the head event even when the page returned stops short of it; a later
// session read of that token can then never report an older head
// (tests/README.md #2).
func TestReadTokenCoversHead(t *testing.T) {
	r := newTestRegion(t, 1, nil)
	leader := r.waitLeader()
	ctx := testContext(t, 20*time.Second)
	other, err := r.node(leader).Append(ctx, appendRequest("other", newTestEvent()))
	require.NoError(t, err)
	evs := make([]*meridianv1.ProposedEvent, 5)
	for i := range evs {
		evs[i] = newTestEvent()
	}
	resp, err := r.node(leader).Append(ctx, appendRequest("head", evs...))
	require.NoError(t, err)
	headSeq := resp.GetOrigin().GetSeq() + 4 // the fifth event's dot
	_, err = r.node(leader).Append(ctx, appendRequest("other", newTestEvent()))
	require.NoError(t, err)

	cases := []struct {
		name string
		req  *meridianv1.ReadRequest
	}{
		{"forward page short of the head", &meridianv1.ReadRequest{Entity: "head", MaxCount: 2}},
		{"forward page from the middle", &meridianv1.ReadRequest{Entity: "head", FromVersion: 2, MaxCount: 1}},
		{"backward page ending before the head", &meridianv1.ReadRequest{Entity: "head", FromVersion: 3, MaxCount: 2, Direction: meridianv1.Direction_DIRECTION_BACKWARD}},
		{"eventual", &meridianv1.ReadRequest{Entity: "head", MaxCount: 1, Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL}},
		{"strong", &meridianv1.ReadRequest{Entity: "head", MaxCount: 1, Consistency: meridianv1.Consistency_CONSISTENCY_STRONG}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rr, err := r.node(leader).Read(ctx, tc.req)
			require.NoError(t, err)
			require.Equal(t, uint64(5), rr.GetHeadVersion())
			tok, err := causal.ParseToken(rr.GetSessionToken())
			require.NoError(t, err)
			assert.Equal(t, headSeq, tok.Get("r1"), "token must cover the head event's dot, and only up to it")
			assert.Less(t, other.GetOrigin().GetSeq(), tok.Get("r1"))
		})
	}
}

func TestSubscribeCatchesUpThenGoesLive(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) { c.SubscribePageMax = 64 })
	leader := r.waitLeader()
	f := r.follower(leader)
	ctx := testContext(t, 30*time.Second)
	for range 3 {
		evs := make([]*meridianv1.ProposedEvent, 100)
		for i := range evs {
			evs[i] = newTestEvent()
		}
		_, err := r.node(leader).Append(ctx, appendRequest("sub-1", evs...))
		require.NoError(t, err)
	}
	r.waitConverged()

	got := make(chan *meridianv1.SubscribeResponse, 1024)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- r.node(f).Subscribe(sctx, &meridianv1.SubscribeRequest{
			Target:             &meridianv1.SubscribeRequest_Entity{Entity: "sub-1"},
			CheckpointInterval: durationpb.New(50 * time.Millisecond),
		}, func(m *meridianv1.SubscribeResponse) error {
			got <- m
			return nil
		})
	}()
	next := uint64(1)
	caughtUp := false
	recv := func() *meridianv1.SubscribeResponse {
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
			return nil
		}
	}
	for !caughtUp || next <= 300 {
		m := recv()
		if e := m.GetEvent(); e != nil {
			require.Equal(t, next, e.GetVersion())
			next++
			continue
		}
		require.Equal(t, next, m.GetCheckpoint().GetNextPosition())
		caughtUp = m.GetCheckpoint().GetCaughtUp()
	}
	// Live: new appends arrive without resubscribing, then a checkpoint.
	_, err := r.node(leader).Append(ctx, appendRequest("sub-1", newTestEvent(), newTestEvent()))
	require.NoError(t, err)
	for next <= 302 {
		if e := recv().GetEvent(); e != nil {
			require.Equal(t, next, e.GetVersion())
			next++
		}
	}
	for {
		if cp := recv().GetCheckpoint(); cp != nil {
			assert.Equal(t, uint64(303), cp.GetNextPosition())
			tok, err := causal.ParseToken(cp.GetSessionToken())
			require.NoError(t, err)
			assert.Equal(t, uint64(302), tok.Get("r1"))
			break
		}
	}
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)

	// The whole region log from its end, over the Connect API.
	stream, err := r.client(f).Subscribe(ctx, connect.NewRequest(&meridianv1.SubscribeRequest{
		Target: &meridianv1.SubscribeRequest_All{All: true}, FromEnd: true,
	}))
	require.NoError(t, err)
	defer stream.Close()
	require.True(t, stream.Receive(), "%v", stream.Err())
	require.True(t, stream.Msg().GetCheckpoint().GetCaughtUp())
	assert.Equal(t, uint64(303), stream.Msg().GetCheckpoint().GetNextPosition())
	_, err = r.node(leader).Append(ctx, appendRequest("sub-2", newTestEvent()))
	require.NoError(t, err)
	for stream.Receive() {
		if e := stream.Msg().GetEvent(); e != nil {
			assert.Equal(t, "sub-2", e.GetEntity())
			assert.Equal(t, uint64(303), e.GetPosition())
			break
		}
	}
	require.NoError(t, stream.Err())
}

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Region, base.NodeID, base.DataDir, base.RaftAddr = "r1", "n1", "/tmp/x", "127.0.0.1:1"
	base.Peers = []Peer{{ID: "n1", RaftAddr: "127.0.0.1:1"}}
	base.Bootstrap = true
	require.NoError(t, base.Validate())
	tests := []struct {
		name  string
		edit  func(c *Config)
		field string
	}{
		{"region", func(c *Config) { c.Region = "" }, "Region"},
		{"node id", func(c *Config) { c.NodeID = "" }, "NodeID"},
		{"bootstrap without self", func(c *Config) { c.Peers = []Peer{{ID: "n2", RaftAddr: "a:1"}} }, "Peers"},
		{"duplicate peer", func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) }, "duplicate"},
		{"batch ops", func(c *Config) { c.BatchOpsMax = 0 }, "BatchOpsMax"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "LeaderLeaseTimeout"},
		{"snapshot threshold", func(c *Config) { c.SnapshotThreshold = 0 }, "SnapshotThreshold"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Peers = append([]Peer(nil), base.Peers...)
			tc.edit(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

// recordHandler keeps the records it handles.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestHCLogAdapterExpandsFormats(t *testing.T) {
	h := &recordHandler{}
	l := logadapt.HCLog(slog.New(h), "raft")
	l.Info("Entering follower state", "follower", hclog.Fmt("%v", "n1"), "leader-address", "a:1")
	l.Warn("heartbeat timeout reached, starting election", "last-leader", hclog.Fmt("%s/%d", "n2", 7))
	l.Error("failed to %s peer %d", "contact", 3)
	l.Named("snap").Debug("x", "err", errors.New("boom"))
	require.Len(t, h.records, 4)
	attrs := func(r slog.Record) map[string]string {
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		return m
	}
	assert.Equal(t, "entering follower state", h.records[0].Message)
	assert.Equal(t, "n1", attrs(h.records[0])["follower"])
	assert.Equal(t, slog.LevelWarn, h.records[1].Level)
	assert.Equal(t, "n2/7", attrs(h.records[1])["last-leader"])
	assert.Equal(t, "failed to contact peer 3", h.records[2].Message)
	assert.Equal(t, "boom", attrs(h.records[3])["err"])
	assert.True(t, strings.HasPrefix(h.records[3].Message, "x"))
}
