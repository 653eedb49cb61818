package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/causal"
)

// limitedNode starts a one-node region with small HTTP limits.
func limitedNode(t *testing.T, l HTTPLimits) *Node {
	t.Helper()
	nd, err := Start(t.Context(), Config{
		Region: "test", NodeID: "n1", DataDir: t.TempDir(), Bootstrap: true,
		APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Logger: testLogger(t), HTTPLimits: l,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = nd.Close() })
	require.Eventually(t, nd.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	return nd
}

// closedWithin waits until the server closes conn (after an answer or
// not) and returns how long that took; it fails the test if the server
// keeps the connection open for d and 5 s more.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(d + 5*time.Second))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the server kept the connection open past %s (it sent %q)", d+5*time.Second, got)
	}
	return time.Since(start)
}

func TestHTTPLimits(t *testing.T) {
	const short = 300 * time.Millisecond
	nd := limitedNode(t, HTTPLimits{
		ReadHeaderTimeout: short, UnaryReadTimeout: short, HeaderBytesMax: 4 << 10, RequestBytesMax: 1 << 10,
	})
	status := "/" + meridianv1connect.EventStoreName + "/Status"

	t.Run("headers that never end", func(t *testing.T) {
		conn, err := net.Dial("tcp", nd.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n", status)
		require.NoError(t, err)
		took := closedWithin(t, conn, short)
		assert.Less(t, took, short+3*time.Second)
	})
	t.Run("a body that never ends", func(t *testing.T) {
		conn, err := net.Dial("tcp", nd.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", status)
		require.NoError(t, err)
		took := closedWithin(t, conn, short)
		assert.Less(t, took, short+3*time.Second)
	})
	t.Run("headers too large", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, nd.URL()+status, strings.NewReader("{}"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Padding", strings.Repeat("x", 16<<10))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
	t.Run("message too large", func(t *testing.T) {
		c := meridianv1connect.NewEventStoreClient(http.DefaultClient, nd.URL())
		_, err := c.Append(t.Context(), connect.NewRequest(&meridianv1.AppendRequest{
			Entity: "big", Events: []*meridianv1.ProposedEvent{{Type: "T", Data: make([]byte, 2<<10)}},
		}))
		assert.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err), "%v", err)
		resp, err := nd.region.Read(t.Context(), &meridianv1.ReadRequest{Entity: "big"})
		require.NoError(t, err)
		assert.Empty(t, resp.GetEvents(), "nothing of a refused message is applied")
	})
	t.Run("a slow call is not cut by the body's deadline", func(t *testing.T) {
		// A session read whose token covers an origin this region never
		// heard of waits (up to 1 s) for it, well past UnaryReadTimeout,
		// then answers Unavailable naming the origin: its own answer, not
		// a call cancelled when the body's deadline passed.
		c := meridianv1connect.NewEventStoreClient(http.DefaultClient, nd.URL())
		start := time.Now()
		_, err := c.Read(t.Context(), connect.NewRequest(&meridianv1.ReadRequest{
			Entity: "x", SessionToken: causal.FormatToken(causal.Vector{"elsewhere": 5}),
		}))
		assert.Greater(t, time.Since(start), 3*short)
		assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "elsewhere")
	})
}
