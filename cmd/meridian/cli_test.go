package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/testserver"
)

// The binary built by the binary tests, shared by all of them.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// fakeStore is a minimal in-memory EventStoreHandler for the client
// commands' unit tests; the real region is exercised by the binary tests.
type fakeStore struct {
	meridianv1connect.UnimplementedEventStoreHandler
	mu      sync.Mutex
	streams map[string][]*meridianv1.Event
	last    *meridianv1.AppendRequest
	lastLog *meridianv1.ReadLogRequest
}

// ReadLog records the request and answers two events of a page that
// continues, with a next vector for vector reads.
func (f *fakeStore) ReadLog(_ context.Context, req *connect.Request[meridianv1.ReadLogRequest]) (*connect.Response[meridianv1.ReadLogResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLog = req.Msg
	resp := &meridianv1.ReadLogResponse{
		Events: []*meridianv1.Event{
			{Entity: "orders/1", Version: 3, Type: "OrderPlaced", Position: 41, Origin: &meridianv1.Dot{Region: "us-east", Seq: 9}},
			{Entity: "orders/2", Version: 1, Type: "OrderPlaced", Position: 44, Origin: &meridianv1.Dot{Region: "eu-west", Seq: 5}},
		},
		NextPosition: 45, LastPosition: 90, Region: "local", Node: "n2",
	}
	if req.Msg.GetAfterVector() != nil {
		resp.NextVector = map[string]uint64{"us-east": 9, "eu-west": 5}
	}
	return connect.NewResponse(resp), nil
}

func (f *fakeStore) Append(_ context.Context, req *connect.Request[meridianv1.AppendRequest]) (*connect.Response[meridianv1.AppendResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := req.Msg
	f.last = m
	head := uint64(len(f.streams[m.Entity]))
	switch k := m.GetExpected().GetKind().(type) {
	case *meridianv1.ExpectedVersion_Exact:
		if k.Exact != head {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("region: wrong expected version: entity %s expected %d, current %d", m.Entity, k.Exact, head))
		}
	case *meridianv1.ExpectedVersion_NoStream_:
		if head != 0 {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("region: wrong expected version: entity %s expected no stream, current %d", m.Entity, head))
		}
	}
	for _, pe := range m.Events {
		f.streams[m.Entity] = append(f.streams[m.Entity], &meridianv1.Event{
			Entity: m.Entity, Version: uint64(len(f.streams[m.Entity])) + 1, Id: pe.Id, Type: pe.Type, Data: pe.Data,
			ContentType: pe.ContentType, Metadata: pe.Metadata, Origin: &meridianv1.Dot{Region: "local", Seq: 7},
		})
	}
	return connect.NewResponse(&meridianv1.AppendResponse{FirstVersion: head + 1, LastVersion: uint64(len(f.streams[m.Entity])),
		Origin: &meridianv1.Dot{Region: "local", Seq: 7}, SessionToken: "TOKEN1", Region: "local"}), nil
}

func (f *fakeStore) Read(_ context.Context, req *connect.Request[meridianv1.ReadRequest]) (*connect.Response[meridianv1.ReadResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.streams[req.Msg.Entity]
	return connect.NewResponse(&meridianv1.ReadResponse{Events: s, HeadVersion: uint64(len(s)), SessionToken: req.Msg.SessionToken, Region: "local", Node: "n2"}), nil
}

func (f *fakeStore) Status(context.Context, *connect.Request[meridianv1.StatusRequest]) (*connect.Response[meridianv1.StatusResponse], error) {
	return connect.NewResponse(&meridianv1.StatusResponse{Region: "local", Node: "n1", Leader: "n1", IsLeader: true, RaftState: "Leader", AppliedIndex: 3}), nil
}

func (f *fakeStore) Subscribe(ctx context.Context, req *connect.Request[meridianv1.SubscribeRequest], stream *connect.ServerStream[meridianv1.SubscribeResponse]) error {
	f.mu.Lock()
	s := append([]*meridianv1.Event(nil), f.streams[req.Msg.GetEntity()]...)
	f.mu.Unlock()
	for _, e := range s {
		if err := stream.Send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Event{Event: e}}); err != nil {
			return err
		}
	}
	if err := stream.Send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Checkpoint{Checkpoint: &meridianv1.Checkpoint{NextPosition: uint64(len(s)) + 1, CaughtUp: true}}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func startFake(t *testing.T) (*fakeStore, string) {
	t.Helper()
	f := &fakeStore{streams: map[string][]*meridianv1.Event{}}
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewEventStoreHandler(f))
	srv := testserver.Start(t, mux)
	return f, srv.URL
}

// runCLI runs one command line in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(`{"from":"stdin"}`), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIAppendReadStatus(t *testing.T) {
	f, url := startFake(t)
	ctx := t.Context()
	ep := "--endpoint=" + url

	code, out, errOut := runCLI(t, ctx, "append", "order-42", "--type", "OrderPlaced", "--data", `{"total": 10}`, "--meta", "user=ann", ep)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `^appended order-42 v1  id=[0-9a-f-]{36} origin=local/7\nsession token: TOKEN1\n$`, out)
	assert.Equal(t, "application/json", f.last.Events[0].ContentType)
	assert.Equal(t, map[string]string{"user": "ann"}, f.last.Events[0].Metadata)

	file := filepath.Join(t.TempDir(), "paid.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"paid":true}`), 0o600))
	code, out, errOut = runCLI(t, ctx, "append", "order-42", "--type", "OrderPaid", "--data", "@"+file, "--expect", "1", "--json", ep)
	require.Equal(t, 0, code, errOut)
	var resp meridianv1.AppendResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &resp), out)
	assert.Equal(t, uint64(2), resp.LastVersion)

	code, _, errOut = runCLI(t, ctx, "append", "order-42", "--data", "@-", "--id", "0190a0b0-0000-7000-8000-000000000001", ep)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `{"from":"stdin"}`, string(f.last.Events[0].Data))
	assert.Equal(t, "0190a0b0-0000-7000-8000-000000000001", f.last.Events[0].Id)

	code, _, errOut = runCLI(t, ctx, "append", "order-42", "--durability", "multi-region", "--min-regions", "2", ep)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, meridianv1.Durability_DURABILITY_MULTI_REGION, f.last.GetDurability())
	assert.Equal(t, uint32(2), f.last.GetMinRegions())

	code, out, errOut = runCLI(t, ctx, "read", "order-42", "--token", "TOKEN1", ep)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	assert.Regexp(t, `^order-42 v1  OrderPlaced  \{"total":10\}  id=\S+ origin=local/7 user="ann"$`, lines[0])
	assert.Contains(t, lines[1], `order-42 v2  OrderPaid  {"paid":true}`)
	assert.Equal(t, "(4 events, head version 4, served by local/n2)", lines[4])
	assert.Equal(t, "session token: TOKEN1", lines[5])

	code, out, errOut = runCLI(t, ctx, "read", "order-42", "--json", ep)
	require.Equal(t, 0, code, errOut)
	var rr meridianv1.ReadResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &rr))
	assert.Len(t, rr.Events, 4)

	code, out, errOut = runCLI(t, ctx, "status", ep)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "ENDPOINT")
	assert.Regexp(t, `local\s+n1\s+Leader\s+n1\s+3`, out)
}

func TestCLILog(t *testing.T) {
	f, url := startFake(t)
	ctx := t.Context()
	ep := "--endpoint=" + url

	code, out, errOut := runCLI(t, ctx, "log", "--from", "40", "--limit", "2", "--prefix", "orders/", "--type", "OrderPlaced", "--type", "OrderPaid", ep)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, uint64(40), f.lastLog.GetPosition())
	assert.Equal(t, uint32(2), f.lastLog.GetMaxCount())
	assert.Equal(t, []string{"orders/"}, f.lastLog.GetFilter().GetEntityPrefixes())
	assert.Equal(t, []string{"OrderPlaced", "OrderPaid"}, f.lastLog.GetFilter().GetEventTypes())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Regexp(t, `^#41 orders/1 v3  OrderPlaced .* origin=us-east/9$`, lines[0])
	assert.Equal(t, "(2 events, next position 45, last position 90, served by local/n2)", lines[2])

	code, out, errOut = runCLI(t, ctx, "log", "--after", "us-east=4, eu-west=2", ep)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, map[string]uint64{"us-east": 4, "eu-west": 2}, f.lastLog.GetAfterVector().GetVector())
	assert.Contains(t, out, "continue with: --after eu-west=5,us-east=9\n")

	code, _, errOut = runCLI(t, ctx, "log", "--after", "", ep)
	require.Equal(t, 0, code, errOut)
	require.NotNil(t, f.lastLog.GetAfterVector(), "an empty --after is the empty vector: from the start, portably")

	code, _, errOut = runCLI(t, ctx, "log", "--backward", ep)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, meridianv1.Direction_DIRECTION_BACKWARD, f.lastLog.GetDirection())

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"log", "--after", "us-east", ep}, "want REGION=SEQ pairs"},
		{[]string{"log", "--after", "us-east=1,us-east=2", ep}, "region us-east given twice"},
		{[]string{"log", "--after", "a=1", "--from", "3", ep}, "give one"},
		{[]string{"log", "extra", ep}, "takes no arguments"},
		{[]string{"tail", "x", "--prefix", "orders/", ep}, "use it with --all"},
	} {
		code, _, errOut := runCLI(t, ctx, bad.args...)
		assert.Equal(t, 2, code, "%v: %s", bad.args, errOut)
		assert.Contains(t, errOut, bad.want)
	}
}

func TestCLIErrors(t *testing.T) {
	_, url := startFake(t)
	ctx := t.Context()
	ep := "--endpoint=" + url
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "version conflict", args: []string{"append", "x", "--expect", "5", ep}, wantCode: 1,
			wantErr: "error: failed_precondition: region: wrong expected version: entity x expected 5, current 0\n"},
		{name: "bad expect", args: []string{"append", "x", "--expect", "soon", ep}, wantCode: 2, wantErr: `--expect "soon"`},
		{name: "bad json", args: []string{"append", "x", "--data", "{nope", ep}, wantCode: 2, wantErr: "not valid JSON"},
		{name: "bad durability", args: []string{"append", "x", "--durability", "planet", ep}, wantCode: 2, wantErr: `--durability "planet": want region or multi-region`},
		{name: "min regions without multi-region", args: []string{"append", "x", "--min-regions", "2", ep}, wantCode: 2, wantErr: "--min-regions needs --durability multi-region"},
		{name: "zero min regions", args: []string{"append", "x", "--durability", "multi-region", "--min-regions", "0", ep}, wantCode: 2, wantErr: "--min-regions 0"},
		{name: "missing entity", args: []string{"read", ep}, wantCode: 2, wantErr: "expected ENTITY"},
		{name: "bad consistency", args: []string{"read", "x", "--consistency", "psychic", ep}, wantCode: 2, wantErr: "--consistency"},
		{name: "bounded without staleness", args: []string{"read", "x", "--consistency", "bounded", ep}, wantCode: 2, wantErr: "--consistency bounded needs --max-staleness"},
		{name: "staleness without bounded", args: []string{"read", "x", "--max-staleness", "2s", ep}, wantCode: 2, wantErr: "--max-staleness applies only to --consistency bounded"},
		{name: "tail both", args: []string{"tail", "x", "--all", ep}, wantCode: 2, wantErr: "either ENTITY or --all"},
		{name: "unknown flag", args: []string{"read", "x", "--nope", ep}, wantCode: 2, wantErr: "unknown flag"},
		{name: "bad id", args: []string{"append", "x", "--id", "123", ep}, wantCode: 2, wantErr: "invalid event id"},
		{name: "other scheme", args: []string{"read", "x", "--endpoint", "ftp://127.0.0.1:1"}, wantCode: 2, wantErr: "want http://host:port or https://host:port"},
		{name: "unreadable CA", args: []string{"read", "x", "--tls-ca", "/nonexistent/ca.pem"}, wantCode: 2, wantErr: "--tls-ca"},
		{name: "client cert without key", args: []string{"read", "x", "--tls-client-cert", "c.pem"}, wantCode: 2, wantErr: "--tls-client-cert and --tls-client-key go together"},
		{name: "no endpoint", args: []string{"status", "--endpoint", " , "}, wantCode: 2, wantErr: "no endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, ctx, tt.args...)
			assert.Equal(t, tt.wantCode, code, errOut)
			assert.Contains(t, errOut, tt.wantErr)
		})
	}
}

func TestCLIUnreachableEndpointHint(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	code, _, errOut := runCLI(t, t.Context(), "read", "x", "--endpoint", url, "--timeout", "2s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: unavailable:")
	assert.Contains(t, errOut, "hint: no Meridian node answers at "+url)
}

func TestCLITailStopsCleanlyOnCancel(t *testing.T) {
	_, url := startFake(t)
	ep := "--endpoint=" + url
	code, _, _ := runCLI(t, t.Context(), "append", "t", "--type", "A", ep)
	require.Equal(t, 0, code)
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"tail", "t", ep}, nil, &out, &errb) }()
	require.Eventually(t, func() bool { return strings.Contains(errb.String(), "caught up") }, 10*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errb.String())
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop after cancel")
	}
	assert.Contains(t, out.String(), "t v1  A  (no data)")
}

// syncBuffer is a bytes.Buffer safe for one writer and one polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
