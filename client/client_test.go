package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/testserver"
)

// fakeStore is an in-memory EventStoreHandler: one stream per entity,
// idempotent by event id, with scripted failures.
type fakeStore struct {
	meridianv1connect.UnimplementedEventStoreHandler

	mu       sync.Mutex
	streams  map[string][]*meridianv1.Event
	byID     map[string]*meridianv1.AppendResponse
	appends  []*meridianv1.AppendRequest // every Append request received
	reads    []*meridianv1.ReadRequest
	subs     []*meridianv1.SubscribeRequest
	logReads []*meridianv1.ReadLogRequest
	tokenN   int
	// failAfterApply makes the next n Appends apply and then answer
	// Unavailable (outcome unknown), as a leader that lost leadership would.
	failAfterApply int
	// failWith makes every Append, Read and Status answer this error before applying.
	failWith error
	// subscribeFailAfter makes a Subscribe stream fail with Unavailable after
	// sending this many events (0: never).
	subscribeFailAfter int
}

func newFakeStore() *fakeStore {
	return &fakeStore{streams: map[string][]*meridianv1.Event{}, byID: map[string]*meridianv1.AppendResponse{}}
}

func (f *fakeStore) nextToken() string {
	f.tokenN++
	return fmt.Sprintf("tok-%d", f.tokenN)
}

func (f *fakeStore) Append(_ context.Context, req *connect.Request[meridianv1.AppendRequest]) (*connect.Response[meridianv1.AppendResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := req.Msg
	f.appends = append(f.appends, m)
	if f.failWith != nil {
		return nil, f.failWith
	}
	if len(m.Events) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("events: at least 1"))
	}
	if prev, ok := f.byID[m.Events[0].Id]; ok {
		dup := &meridianv1.AppendResponse{FirstVersion: prev.FirstVersion, LastVersion: prev.LastVersion, SessionToken: prev.SessionToken, Duplicate: true}
		return f.answer(dup)
	}
	stream := f.streams[m.Entity]
	head := uint64(len(stream))
	if exp, ok := m.GetExpected().GetKind().(*meridianv1.ExpectedVersion_Exact); ok && exp.Exact != head {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("expected version %d, current %d", exp.Exact, head))
	}
	for _, pe := range m.Events {
		stream = append(stream, &meridianv1.Event{Entity: m.Entity, Version: uint64(len(stream)) + 1, Id: pe.Id, Type: pe.Type, Data: pe.Data})
	}
	f.streams[m.Entity] = stream
	resp := &meridianv1.AppendResponse{FirstVersion: head + 1, LastVersion: uint64(len(stream)), SessionToken: f.nextToken()}
	f.byID[m.Events[0].Id] = resp
	return f.answer(resp)
}

// answer returns resp, or loses it while failAfterApply lasts.
func (f *fakeStore) answer(resp *meridianv1.AppendResponse) (*connect.Response[meridianv1.AppendResponse], error) {
	if f.failAfterApply > 0 {
		f.failAfterApply--
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("region: outcome unknown: retrying with the same event ids is safe"))
	}
	return connect.NewResponse(resp), nil
}

func (f *fakeStore) Read(_ context.Context, req *connect.Request[meridianv1.ReadRequest]) (*connect.Response[meridianv1.ReadResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, req.Msg)
	if f.failWith != nil {
		return nil, f.failWith
	}
	stream := f.streams[req.Msg.Entity]
	from := max(req.Msg.FromVersion, 1)
	var out []*meridianv1.Event
	for _, e := range stream {
		if e.Version >= from {
			out = append(out, e)
		}
	}
	return connect.NewResponse(&meridianv1.ReadResponse{Events: out, HeadVersion: uint64(len(stream)), SessionToken: f.nextToken()}), nil
}

// ReadLog records the request and answers an empty page with a fresh
// session token and a next vector.
func (f *fakeStore) ReadLog(_ context.Context, req *connect.Request[meridianv1.ReadLogRequest]) (*connect.Response[meridianv1.ReadLogResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logReads = append(f.logReads, req.Msg)
	if f.failWith != nil {
		return nil, f.failWith
	}
	return connect.NewResponse(&meridianv1.ReadLogResponse{End: true, SessionToken: f.nextToken(), NextVector: map[string]uint64{"local": 3}}), nil
}

func (f *fakeStore) Status(context.Context, *connect.Request[meridianv1.StatusRequest]) (*connect.Response[meridianv1.StatusResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return nil, f.failWith
	}
	return connect.NewResponse(&meridianv1.StatusResponse{Region: "local", Node: "n1", Leader: "n1", IsLeader: true}), nil
}

func (f *fakeStore) Subscribe(ctx context.Context, req *connect.Request[meridianv1.SubscribeRequest], stream *connect.ServerStream[meridianv1.SubscribeResponse]) error {
	f.mu.Lock()
	f.subs = append(f.subs, req.Msg)
	nsubs := len(f.subs)
	events := append([]*meridianv1.Event(nil), f.streams[req.Msg.GetEntity()]...)
	failAfter := f.subscribeFailAfter
	f.mu.Unlock()
	sent := 0
	for _, e := range events {
		if e.Version < req.Msg.FromPosition {
			continue
		}
		if failAfter > 0 && sent == failAfter {
			if nsubs%2 == 0 {
				// As a node that is closing cancels its streams.
				return connect.NewError(connect.CodeCanceled, context.Canceled)
			}
			return connect.NewError(connect.CodeUnavailable, errors.New("node shutting down"))
		}
		if err := stream.Send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Event{Event: e}}); err != nil {
			return err
		}
		sent++
	}
	if err := stream.Send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Checkpoint{
		Checkpoint: &meridianv1.Checkpoint{NextPosition: uint64(len(events)) + 1, CaughtUp: true, SessionToken: "sub-tok"}}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// startFake serves f over h2c on 127.0.0.1 and returns its URL.
func startFake(t *testing.T, f meridianv1connect.EventStoreHandler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewEventStoreHandler(f))
	srv := testserver.Start(t, mux)
	return srv.URL
}

// fastRetry keeps retry tests quick.
func fastRetry(attempts int) RetryPolicy {
	p := DefaultRetryPolicy()
	p.MaxAttempts = attempts
	p.InitialBackoff = time.Millisecond
	p.MaxBackoff = 5 * time.Millisecond
	p.AttemptTimeout = 5 * time.Second
	return p
}

func newTestClient(t *testing.T, endpoints []string, opts ...Option) *Client {
	t.Helper()
	c, err := New(endpoints, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAppendGeneratesUUIDv7(t *testing.T) {
	f := newFakeStore()
	c := newTestClient(t, []string{startFake(t, f)})
	events := []*meridianv1.ProposedEvent{{Type: "A"}, {Type: "B", Id: "0190a0b0-0000-7000-8000-000000000001"}}
	resp, err := c.Append(testCtx(t), "order-1", events)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), resp.FirstVersion)
	assert.Equal(t, uint64(2), resp.LastVersion)
	id, err := uuid.Parse(events[0].Id)
	require.NoError(t, err, "generated id is written back into the event")
	assert.Equal(t, uuid.Version(7), id.Version())
	assert.Equal(t, "0190a0b0-0000-7000-8000-000000000001", events[1].Id, "a given id is kept")
}

func TestAppendRejectsMalformedID(t *testing.T) {
	f := newFakeStore()
	c := newTestClient(t, []string{startFake(t, f)})
	_, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A", Id: "not-a-uuid"}})
	require.ErrorIs(t, err, ErrInvalidEventID)
	assert.Empty(t, f.appends, "nothing sent")
}

func TestAppendRetriesWithSameIDs(t *testing.T) {
	f := newFakeStore()
	f.failAfterApply = 2 // applied, then the answer is lost twice
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(5)))
	resp, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}, {Type: "B"}})
	require.NoError(t, err)
	assert.True(t, resp.Duplicate, "the retry got the original result")
	assert.Equal(t, uint64(1), resp.FirstVersion)
	require.Len(t, f.appends, 3)
	for _, req := range f.appends[1:] {
		require.Len(t, req.Events, 2)
		assert.Equal(t, f.appends[0].Events[0].Id, req.Events[0].Id)
		assert.Equal(t, f.appends[0].Events[1].Id, req.Events[1].Id)
	}
	assert.Len(t, f.streams["order-1"], 2, "applied exactly once")
}

func TestFailoverToNextEndpoint(t *testing.T) {
	// The first endpoint refuses connections: a listener that was closed.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	f := newFakeStore()
	live := startFake(t, f)
	c := newTestClient(t, []string{deadURL, live}, WithRetryPolicy(fastRetry(4)))
	resp, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), resp.LastVersion)
	// The client stays on the endpoint that works.
	_, err = c.Read(testCtx(t), "order-1")
	require.NoError(t, err)
	assert.Len(t, f.reads, 1)
	assert.Len(t, f.appends, 1)
}

func TestRetryIsBounded(t *testing.T) {
	f := newFakeStore()
	f.failWith = connect.NewError(connect.CodeUnavailable, errors.New("no leader"))
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(3)))
	_, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.Error(t, err)
	assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
	assert.True(t, IsOutcomeUnknown(err))
	assert.Len(t, f.appends, 3)
}

// deadEndpoint is the URL of a loopback port nothing listens on: a dial
// there is refused.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	return "http://" + ln.Addr().String()
}

// requireDeadlineAfterRefusal: the call ended on the caller's deadline and
// still says what the last complete attempt hit, a refused connection.
func requireDeadlineAfterRefusal(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "connection refused")
}

// TestDeadlineDuringRetriesKeepsLastError: when the caller's deadline ends
// while the client waits to retry, the error still says what the last
// attempt hit (here a refused connection), not only "deadline exceeded";
// the CLI's "no node answers" hint depends on it.
func TestDeadlineDuringRetriesKeepsLastError(t *testing.T) {
	dead := deadEndpoint(t)
	p := DefaultRetryPolicy()
	p.InitialBackoff, p.MaxBackoff = 200*time.Millisecond, 200*time.Millisecond
	c := newTestClient(t, []string{dead}, WithRetryPolicy(p))
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	_, err := c.Read(ctx, "order-1")
	requireDeadlineAfterRefusal(t, err)
}

// TestDeadlineDuringAttemptKeepsLastError: the caller's deadline ends while
// an attempt is in flight (the second endpoint hangs); the error still names
// what the previous, complete attempt hit.
func TestDeadlineDuringAttemptKeepsLastError(t *testing.T) {
	dead := deadEndpoint(t)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })
	c := newTestClient(t, []string{dead, hang.URL}, WithRetryPolicy(fastRetry(5)))
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	_, err := c.Read(ctx, "order-1")
	requireDeadlineAfterRefusal(t, err)
}

func kindError(code connect.Code, kind, msg string) *connect.Error {
	ce := connect.NewError(code, errors.New(msg))
	ce.Meta().Set(errorKindHeader, kind)
	return ce
}

// TestRefusedBeforeRaftIsNotOutcomeUnknown: an Append that every node
// refused before proposing it (here: no leader reachable, as across a
// partition from the home region) provably took no effect, although its
// code is Unavailable like an outcome-unknown answer.
func TestRefusedBeforeRaftIsNotOutcomeUnknown(t *testing.T) {
	f := newFakeStore()
	f.failWith = kindError(connect.CodeUnavailable, "not-leader", "no node of home region \"us-east\" answers")
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(3)))
	_, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.Error(t, err)
	assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
	assert.False(t, IsOutcomeUnknown(err), "%v", err)
	assert.Len(t, f.appends, 3)
}

// TestUnreachableNodesAreNotOutcomeUnknown: no connection, no request.
func TestUnreachableNodesAreNotOutcomeUnknown(t *testing.T) {
	dead := deadEndpoint(t)
	c := newTestClient(t, []string{dead}, WithRetryPolicy(fastRetry(3)))
	_, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection refused")
	assert.False(t, IsOutcomeUnknown(err), "%v", err)
}

// TestOutcomeUnknownSurvivesLaterRefusals: one attempt whose outcome is
// unknown makes the whole call's outcome unknown, whatever later attempts
// answered.
func TestOutcomeUnknownSurvivesLaterRefusals(t *testing.T) {
	unknown, refusing := newFakeStore(), newFakeStore()
	unknown.failWith = kindError(connect.CodeUnavailable, "outcome-unknown", "leadership lost")
	refusing.failWith = kindError(connect.CodeUnavailable, "not-leader", "not leader")
	c := newTestClient(t, []string{startFake(t, unknown), startFake(t, refusing)}, WithRetryPolicy(fastRetry(2)))
	_, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not leader", "the last attempt's error is the one returned")
	assert.True(t, IsOutcomeUnknown(err))
	assert.Len(t, unknown.appends, 1)
	assert.Len(t, refusing.appends, 1)
}

func TestNoRetryOnFailedPrecondition(t *testing.T) {
	f := newFakeStore()
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(5)))
	_, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}}, ExpectVersion(3))
	require.Error(t, err)
	assert.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(err))
	assert.False(t, IsOutcomeUnknown(err))
	assert.Len(t, f.appends, 1)
}

func TestSessionTokenTracking(t *testing.T) {
	f := newFakeStore()
	c := newTestClient(t, []string{startFake(t, f)}, WithSessionToken("saved"))
	ctx := testCtx(t)
	_, err := c.Append(ctx, "a", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.NoError(t, err)
	assert.Equal(t, "saved", f.appends[0].SessionToken)
	assert.Equal(t, "tok-1", c.SessionToken())
	_, err = c.Read(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "tok-1", f.reads[0].SessionToken)
	_, err = c.Append(ctx, "a", []*meridianv1.ProposedEvent{{Type: "B"}})
	require.NoError(t, err)
	assert.Equal(t, "tok-2", f.appends[1].SessionToken)
	assert.Equal(t, "tok-3", c.SessionToken())
}

func TestReadOptions(t *testing.T) {
	f := newFakeStore()
	c := newTestClient(t, []string{startFake(t, f)})
	_, err := c.Read(testCtx(t), "a", FromVersion(5), Limit(7), Backward(), WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG))
	require.NoError(t, err)
	got := f.reads[0]
	assert.Equal(t, uint64(5), got.FromVersion)
	assert.Equal(t, uint32(7), got.MaxCount)
	assert.Equal(t, meridianv1.Direction_DIRECTION_BACKWARD, got.Direction)
	assert.Equal(t, meridianv1.Consistency_CONSISTENCY_STRONG, got.Consistency)
}

func TestSubscribeResumes(t *testing.T) {
	f := newFakeStore()
	f.subscribeFailAfter = 2
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(5)))
	ctx := testCtx(t)
	for i := range 5 {
		_, err := c.Append(ctx, "s", []*meridianv1.ProposedEvent{{Type: fmt.Sprint("E", i)}})
		require.NoError(t, err)
	}
	var versions []uint64
	caughtUp := false
	for msg, err := range c.Subscribe(ctx, Subscription{Entity: "s"}) {
		require.NoError(t, err)
		if e := msg.GetEvent(); e != nil {
			versions = append(versions, e.Version)
		}
		if cp := msg.GetCheckpoint(); cp != nil && cp.CaughtUp {
			caughtUp = true
			break
		}
	}
	assert.True(t, caughtUp)
	assert.Equal(t, []uint64{1, 2, 3, 4, 5}, versions, "no duplicates, no gaps across the reconnects")
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.subs, 3)
	assert.Equal(t, uint64(3), f.subs[1].FromPosition)
	assert.Equal(t, uint64(5), f.subs[2].FromPosition)
	assert.Equal(t, "sub-tok", c.SessionToken())
}

// TestReadLogCarriesTheSession checks that ReadLog sends the client's
// session token unless the request has its own, leaves the caller's
// request alone, and keeps the token it gets back.
func TestReadLogCarriesTheSession(t *testing.T) {
	f := newFakeStore()
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(3)))
	ctx := testCtx(t)
	_, err := c.Append(ctx, "s", []*meridianv1.ProposedEvent{{Type: "E"}})
	require.NoError(t, err)
	written := c.SessionToken()
	req := &meridianv1.ReadLogRequest{Filter: &meridianv1.EventFilter{EventTypes: []string{"E"}}}
	resp, err := c.ReadLog(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{"local": 3}, resp.GetNextVector())
	assert.Empty(t, req.GetSessionToken(), "the caller's request is not changed")
	assert.NotEqual(t, written, resp.GetSessionToken())
	assert.Equal(t, resp.GetSessionToken(), c.SessionToken(), "the answer's token is kept")
	_, err = c.ReadLog(ctx, &meridianv1.ReadLogRequest{SessionToken: "mine"})
	require.NoError(t, err)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.logReads, 2)
	assert.Equal(t, written, f.logReads[0].GetSessionToken())
	assert.Equal(t, []string{"E"}, f.logReads[0].GetFilter().GetEventTypes())
	assert.Equal(t, "mine", f.logReads[1].GetSessionToken())
}

// TestSubscribeSendsItsFilterOnEveryConnection checks that a filtered
// subscription keeps its filter when it reconnects.
func TestSubscribeSendsItsFilterOnEveryConnection(t *testing.T) {
	f := newFakeStore()
	f.subscribeFailAfter = 1
	c := newTestClient(t, []string{startFake(t, f)}, WithRetryPolicy(fastRetry(5)))
	ctx := testCtx(t)
	for range 3 {
		_, err := c.Append(ctx, "s", []*meridianv1.ProposedEvent{{Type: "E"}})
		require.NoError(t, err)
	}
	filter := &meridianv1.EventFilter{EventTypes: []string{"E"}}
	for msg, err := range c.Subscribe(ctx, Subscription{Entity: "s", Filter: filter}) {
		require.NoError(t, err)
		if cp := msg.GetCheckpoint(); cp != nil && cp.CaughtUp {
			break
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.subs, 3)
	for _, s := range f.subs {
		assert.Equal(t, []string{"E"}, s.GetFilter().GetEventTypes())
	}
}

func TestSubscribeNonRetryableErrorIsYielded(t *testing.T) {
	srv := startFake(t, meridianv1connect.UnimplementedEventStoreHandler{})
	c := newTestClient(t, []string{srv}, WithRetryPolicy(fastRetry(2)))
	var got error
	for _, err := range c.Subscribe(testCtx(t), Subscription{All: true}) {
		got = err
	}
	assert.Equal(t, connect.CodeUnimplemented, connect.CodeOf(got))
}

func TestGRPCProtocolOverH2C(t *testing.T) {
	c := newTestClient(t, []string{startFake(t, newFakeStore())}, WithGRPC())
	st, err := c.Status(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, "local", st.Region)
}

// TestDefaultTransportUnaryOverHTTP1 checks the SDK's default transport
// (ADR 0003): Connect unary calls arrive over HTTP/1.1, the Subscribe stream
// and gRPC calls over HTTP/2.
func TestDefaultTransportUnaryOverHTTP1(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{} // procedure -> HTTP major version
	mux := http.NewServeMux()
	path, h := meridianv1connect.NewEventStoreHandler(newFakeStore())
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			key = "grpc " + key
		}
		mu.Lock()
		seen[key] = r.ProtoMajor
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	srv := testserver.Start(t, mux)

	ctx := testCtx(t)
	c := newTestClient(t, []string{srv.URL})
	_, err := c.Append(ctx, "s", []*meridianv1.ProposedEvent{{Type: "E"}})
	require.NoError(t, err)
	_, err = c.Read(ctx, "s")
	require.NoError(t, err)
	for msg, err := range c.Subscribe(ctx, Subscription{Entity: "s"}) {
		require.NoError(t, err)
		if cp := msg.GetCheckpoint(); cp != nil && cp.CaughtUp {
			break
		}
	}
	g := newTestClient(t, []string{srv.URL}, WithGRPC())
	_, err = g.Status(ctx)
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{
		meridianv1connect.EventStoreAppendProcedure:           1,
		meridianv1connect.EventStoreReadProcedure:             1,
		meridianv1connect.EventStoreSubscribeProcedure:        2,
		"grpc " + meridianv1connect.EventStoreStatusProcedure: 2,
	}, seen)
}

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string
		opts      []Option
		wantErr   error
		want      []string
	}{
		{name: "host port", endpoints: []string{"127.0.0.1:7001"}, want: []string{"http://127.0.0.1:7001"}},
		{name: "url with slash", endpoints: []string{"http://127.0.0.1:7001/"}, want: []string{"http://127.0.0.1:7001"}},
		{name: "none", wantErr: ErrNoEndpoints},
		{name: "https", endpoints: []string{"https://x:1", "y:2"}, want: []string{"https://x:1", "https://y:2"}},
		{name: "host port with TLS", endpoints: []string{"x:1", "http://y:2"}, opts: []Option{WithTLS(&tls.Config{})}, want: []string{"https://x:1", "http://y:2"}},
		{name: "other scheme", endpoints: []string{"ftp://x:1"}, wantErr: ErrInvalidEndpoint},
		{name: "zero attempts", endpoints: []string{"x:1"}, opts: []Option{WithRetryPolicy(RetryPolicy{MaxElapsed: time.Second, InitialBackoff: 1, MaxBackoff: 1})}, wantErr: ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.endpoints, tt.opts...)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Endpoints())
		})
	}
}

// hangingStore never answers Append: a node stuck behind a partition.
type hangingStore struct {
	meridianv1connect.UnimplementedEventStoreHandler
	mu  sync.Mutex
	ids []string
}

func (h *hangingStore) Append(ctx context.Context, req *connect.Request[meridianv1.AppendRequest]) (*connect.Response[meridianv1.AppendResponse], error) {
	h.mu.Lock()
	h.ids = append(h.ids, req.Msg.Events[0].Id)
	h.mu.Unlock()
	<-ctx.Done()
	return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
}

func TestAttemptTimeoutMovesToNextEndpoint(t *testing.T) {
	hung := &hangingStore{}
	f := newFakeStore()
	p := fastRetry(4)
	p.AttemptTimeout = 200 * time.Millisecond
	c := newTestClient(t, []string{startFake(t, hung), startFake(t, f)}, WithRetryPolicy(p))
	start := time.Now()
	resp, err := c.Append(testCtx(t), "order-1", []*meridianv1.ProposedEvent{{Type: "A"}})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, uint64(1), resp.LastVersion)
	hung.mu.Lock()
	defer hung.mu.Unlock()
	require.Len(t, hung.ids, 1)
	assert.Equal(t, hung.ids[0], f.appends[0].Events[0].Id, "the retry on the next node carries the same id")
}
