package h2c

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/testserver"
)

// protoStore answers Status and Subscribe and records the HTTP protocol
// version each procedure arrived on.
type protoStore struct {
	meridianv1connect.UnimplementedEventStoreHandler
	mu    sync.Mutex
	proto map[string]int // procedure -> major version of the last call
}

func (s *protoStore) note(procedure string, major int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proto[procedure] = major
}

func (s *protoStore) Status(_ context.Context, _ *connect.Request[meridianv1.StatusRequest]) (*connect.Response[meridianv1.StatusResponse], error) {
	return connect.NewResponse(&meridianv1.StatusResponse{Region: "r"}), nil
}

func (s *protoStore) Subscribe(_ context.Context, _ *connect.Request[meridianv1.SubscribeRequest], st *connect.ServerStream[meridianv1.SubscribeResponse]) error {
	return st.Send(&meridianv1.SubscribeResponse{})
}

// serve starts a server speaking HTTP/1.1 and h2c, as node.Start does.
func serve(t testing.TB) (*protoStore, string) {
	t.Helper()
	store := &protoStore{proto: map[string]int{}}
	path, h := meridianv1connect.NewEventStoreHandler(store)
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store.note(r.URL.Path, r.ProtoMajor)
		h.ServeHTTP(w, r)
	}))
	return store, testserver.Start(t, mux).URL
}

func dialer(ctx context.Context, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
}

func TestClientSendsUnaryOverHTTP1AndStreamsOverH2C(t *testing.T) {
	tests := []struct {
		name       string
		allH2      bool // Options.UnaryOverHTTP1 off
		opts       []connect.ClientOption
		wantUnary  int
		wantStream int
	}{
		{name: "connect", wantUnary: 1, wantStream: 2},
		{name: "connect-json", opts: []connect.ClientOption{connect.WithProtoJSON()}, wantUnary: 1, wantStream: 2},
		{name: "connect-get", opts: []connect.ClientOption{connect.WithHTTPGet()}, wantUnary: 1, wantStream: 2},
		{name: "grpc", opts: []connect.ClientOption{connect.WithGRPC()}, wantUnary: 2, wantStream: 2},
		{name: "nodes: all h2c", allH2: true, wantUnary: 2, wantStream: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, url := serve(t)
			hc := NewClient(dialer, Options{UnaryOverHTTP1: !tc.allH2})
			defer hc.CloseIdleConnections()
			c := meridianv1connect.NewEventStoreClient(hc, url, tc.opts...)
			ctx := context.Background()

			resp, err := c.Status(ctx, connect.NewRequest(&meridianv1.StatusRequest{}))
			require.NoError(t, err)
			assert.Equal(t, "r", resp.Msg.GetRegion())

			st, err := c.Subscribe(ctx, connect.NewRequest(&meridianv1.SubscribeRequest{}))
			require.NoError(t, err)
			require.True(t, st.Receive(), "stream message: %v", st.Err())
			require.NoError(t, st.Close())

			store.mu.Lock()
			defer store.mu.Unlock()
			assert.Equal(t, tc.wantUnary, store.proto[meridianv1connect.EventStoreStatusProcedure], "unary call's HTTP major version")
			assert.Equal(t, tc.wantStream, store.proto[meridianv1connect.EventStoreSubscribeProcedure], "stream's HTTP major version")
		})
	}
}

func TestIsConnectUnary(t *testing.T) {
	tests := []struct {
		method, contentType string
		want                bool
	}{
		{http.MethodPost, "application/proto", true},
		{http.MethodPost, "application/json", true},
		{http.MethodPost, "Application/Proto", true},
		{http.MethodGet, "", true},
		{http.MethodPost, "application/connect+proto", false},
		{http.MethodPost, "application/connect+json", false},
		{http.MethodPost, "application/grpc", false},
		{http.MethodPost, "application/grpc+proto", false},
		{http.MethodPost, "application/grpc-web+proto", false},
		{http.MethodPost, "", false}, // unknown: the multiplexed transport
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.contentType, func(t *testing.T) {
			r, err := http.NewRequest(tc.method, "http://x/p", nil)
			require.NoError(t, err)
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			assert.Equal(t, tc.want, IsConnectUnary(r))
		})
	}
}

// BenchmarkUnaryTransport compares one Connect unary call (Status, in
// process, loopback) over this package's client with the same call over
// h2c alone, sequentially and from 64 goroutines:
//
//	go test ./internal/h2c -run '^$' -bench UnaryTransport -benchtime 20000x -count 5
func BenchmarkUnaryTransport(b *testing.B) {
	for _, conc := range []int{1, 64} {
		for _, tr := range []struct {
			name string
			hc   *http.Client
		}{{"h2c", NewClient(dialer, Options{})}, {"split", NewClient(dialer, Options{UnaryOverHTTP1: true})}} {
			b.Run(fmt.Sprintf("%s/callers=%d", tr.name, conc), func(b *testing.B) {
				_, url := serve(b)
				c := meridianv1connect.NewEventStoreClient(tr.hc, url)
				call := func() error {
					_, err := c.Status(context.Background(), connect.NewRequest(&meridianv1.StatusRequest{}))
					return err
				}
				require.NoError(b, call())
				b.ResetTimer()
				if conc == 1 {
					for range b.N {
						if err := call(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(max(conc/runtime.GOMAXPROCS(0), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := call(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// writeCounter counts the writes made on the connections it dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestUnaryCallLeavesInOneWrite checks that a unary call's headers and body
// leave the client in a single write: net/http flushes the headers of a
// body it does not know to be in memory separately, which cost every call
// a second write on the client and a second read on the server.
func TestUnaryCallLeavesInOneWrite(t *testing.T) {
	_, url := serve(t)
	var writes atomic.Int64
	hc := NewClient(func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dialer(ctx, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, writes: &writes}, nil
	}, Options{UnaryOverHTTP1: true})
	es := meridianv1connect.NewEventStoreClient(hc, url)
	// A request with a body (the fake answers Unimplemented, after
	// reading it); a first call dials, later calls reuse the connection
	// and are counted alone.
	req := &meridianv1.AppendRequest{Entity: "order-1", Events: []*meridianv1.ProposedEvent{{Type: "t", Data: make([]byte, 1024)}}}
	call := func() {
		_, err := es.Append(context.Background(), connect.NewRequest(req))
		require.Equal(t, connect.CodeUnimplemented, connect.CodeOf(err), "%v", err)
	}
	call()
	for i := range 5 {
		before := writes.Load()
		call()
		assert.Equal(t, int64(1), writes.Load()-before, "call %d: writes on the wire", i)
	}
}

// TestInMemoryBodyLeavesTheCallersRequestAlone checks that buffering a
// body copies the request and keeps it replayable, and that bodies of
// unknown length or above the bound pass through untouched.
func TestInMemoryBodyLeavesTheCallersRequestAlone(t *testing.T) {
	payload := []byte("an append's protobuf")
	orig, err := http.NewRequest(http.MethodPost, "http://n/p", io.NopCloser(strings.NewReader(string(payload))))
	require.NoError(t, err)
	orig.ContentLength = int64(len(payload))
	origBody := orig.Body
	got, err := inMemoryBody(orig)
	require.NoError(t, err)
	require.NotSame(t, orig, got)
	assert.Equal(t, origBody, orig.Body, "the caller's request keeps its body")
	for range 2 { // the body, then a replay through GetBody
		b, err := io.ReadAll(got.Body)
		require.NoError(t, err)
		assert.Equal(t, payload, b)
		got.Body, err = got.GetBody()
		require.NoError(t, err)
	}

	unknown, err := http.NewRequest(http.MethodPost, "http://n/p", io.NopCloser(strings.NewReader("x")))
	require.NoError(t, err)
	unknown.ContentLength = -1
	same, err := inMemoryBody(unknown)
	require.NoError(t, err)
	assert.Same(t, unknown, same, "a body of unknown length streams")

	big, err := http.NewRequest(http.MethodPost, "http://n/p", io.NopCloser(strings.NewReader("x")))
	require.NoError(t, err)
	big.ContentLength = unaryBodyInMemoryMax + 1
	same, err = inMemoryBody(big)
	require.NoError(t, err)
	assert.Same(t, big, same, "a body above the bound streams")

	short, err := http.NewRequest(http.MethodPost, "http://n/p", io.NopCloser(strings.NewReader("abc")))
	require.NoError(t, err)
	short.ContentLength = 10
	_, err = inMemoryBody(short)
	assert.ErrorContains(t, err, "read request body of 10 bytes")
}
