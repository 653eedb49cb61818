package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryServerExportsTraces: `meridian server --otlp-endpoint` sends
// its spans over OTLP/HTTP; a collector stand-in on loopback receives the
// append's server span and its Raft commit span (flushed at exit at the
// latest).
func TestBinaryServerExportsTraces(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	var received bytes.Buffer
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			mu.Lock()
			received.Write(b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	base := freePortRange(t, 2, 0)
	api := fmt.Sprintf("127.0.0.1:%d", base)
	srv := startProc(t, bin, nil, "server", "--data-dir", t.TempDir(), "--bootstrap",
		"--api-addr", api, "--raft-addr", fmt.Sprintf("127.0.0.1:%d", base+1),
		"--otlp-endpoint", collector.URL, "--trace-sample-ratio", "1")
	require.Eventually(t, func() bool {
		code, _, _ := runBin(t, bin, "append", "traced", "--type", "T", "--endpoint", api, "--timeout", "2s")
		return code == 0
	}, 30*time.Second, 200*time.Millisecond, "server never took an append\n%s", srv.err)
	srv.interrupt(t)
	mu.Lock()
	defer mu.Unlock()
	got := received.String()
	assert.True(t, strings.Contains(got, "meridian.v1.EventStore/Append"), "no Append span exported")
	assert.True(t, strings.Contains(got, "region.raft_commit"), "no Raft commit span exported")
	assert.True(t, strings.Contains(got, "meridian"), "no service name")
}

func TestTraceSampleRatioBounds(t *testing.T) {
	_, err := newTracerProvider(t.Context(), "127.0.0.1:4318", 1.5, "r", "n")
	require.Error(t, err)
	assert.True(t, isUsageError(err))
}
