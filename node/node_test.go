package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/region"
	"github.com/meridiandb/meridian/tests/faultnet"
)

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startRegion starts n nodes of region "test" through Start on ephemeral
// 127.0.0.1 ports and waits until they agree on a leader.
func startRegion(t testing.TB, n int) []*Node {
	t.Helper()
	return startRegionOn(t, n, func(string) region.Network { return region.TCP })
}

// startRegionOn is startRegion with each node's network chosen by node id.
func startRegionOn(t testing.TB, n int, network func(id string) region.Network) []*Node {
	t.Helper()
	peers := make([]region.Peer, n)
	for i := range peers {
		peers[i] = region.Peer{ID: "n" + strconv.Itoa(i+1), RaftAddr: freeAddr(t), APIAddr: freeAddr(t)}
	}
	nodes := make([]*Node, n)
	for i, p := range peers {
		nd, err := Start(t.Context(), Config{
			Region: "test", NodeID: p.ID, DataDir: t.TempDir(),
			APIAddr: p.APIAddr, RaftAddr: p.RaftAddr, Peers: peers, Bootstrap: true,
			Network: network(p.ID), Logger: testLogger(t),
		})
		require.NoError(t, err)
		nodes[i] = nd
		t.Cleanup(func() { assert.NoError(t, nd.Close()) })
	}
	require.Eventually(t, func() bool {
		leader := nodes[0].Region().Status().GetLeader()
		for _, nd := range nodes {
			if l := nd.Region().Status().GetLeader(); l == "" || l != leader {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "no leader agreed on")
	return nodes
}

// followerOf returns a node that is not the leader.
func followerOf(t testing.TB, nodes []*Node) *Node {
	t.Helper()
	for _, nd := range nodes {
		if !nd.Region().Status().GetIsLeader() {
			return nd
		}
	}
	t.Fatalf("no follower among %d nodes", len(nodes))
	return nil
}

func TestStartThreeNodeRegion(t *testing.T) {
	nodes := startRegion(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	follower := followerOf(t, nodes)

	t.Run("append via a follower", func(t *testing.T) {
		c, err := client.New([]string{follower.URL()})
		require.NoError(t, err)
		defer c.Close()
		resp, err := c.Append(ctx, "order-1", []*meridianv1.ProposedEvent{{Type: "OrderPlaced", Data: []byte(`{"n":1}`)}, {Type: "OrderPaid"}})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), resp.FirstVersion)
		assert.Equal(t, uint64(2), resp.LastVersion)
		assert.NotEmpty(t, resp.SessionToken)

		read, err := c.Read(ctx, "order-1", client.WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG))
		require.NoError(t, err)
		require.Len(t, read.Events, 2)
		assert.Equal(t, "OrderPaid", read.Events[1].Type)

		// Every node applies it (eventual reads are local).
		for _, nd := range nodes {
			rc, err := client.New([]string{nd.URL()})
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				r, err := rc.Read(ctx, "order-1", client.WithConsistency(meridianv1.Consistency_CONSISTENCY_EVENTUAL))
				return err == nil && len(r.Events) == 2
			}, 10*time.Second, 20*time.Millisecond, "node %s", nd.Addr())
			_ = rc.Close()
		}
	})

	t.Run("gRPC protocol", func(t *testing.T) {
		c, err := client.New([]string{follower.URL()}, client.WithGRPC())
		require.NoError(t, err)
		defer c.Close()
		st, err := c.Status(ctx)
		require.NoError(t, err)
		assert.Equal(t, "test", st.Region)
		assert.NotEmpty(t, st.Leader)
	})

	t.Run("health serving", func(t *testing.T) {
		for _, service := range []string{"", meridianv1connect.EventStoreName} {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, follower.URL()+"/grpc.health.v1.Health/Check",
				strings.NewReader(`{"service":"`+service+`"}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			assert.Equal(t, http.StatusOK, res.StatusCode, string(body))
			// connect's copy of health.proto prefixes the enum value names.
			assert.Contains(t, []string{`{"status":"SERVING"}`, `{"status":"SERVING_STATUS_SERVING"}`}, strings.TrimSpace(string(body)))
		}
	})

	t.Run("small responses are not compressed", func(t *testing.T) {
		// A Connect client accepts gzip by default; below compressMinBytes
		// the server answers plain anyway (compressing cost more than it saves).
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			follower.URL()+meridianv1connect.EventStoreStatusProcedure, strings.NewReader(`{}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		assert.Empty(t, res.Header.Get("Content-Encoding"))
		assert.Contains(t, string(body), `"region":"test"`)
	})

	t.Run("reflection lists the service", func(t *testing.T) {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		hc := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
		defer hc.CloseIdleConnections()
		stream := grpcreflect.NewClient(hc, follower.URL()).NewStream(ctx)
		names, err := stream.ListServices()
		require.NoError(t, err)
		_, _ = stream.Close()
		var got []string
		for _, n := range names {
			got = append(got, string(n))
		}
		assert.Contains(t, got, meridianv1connect.EventStoreName)
		assert.Contains(t, got, grpchealth.HealthV1ServiceName)
		stream = grpcreflect.NewClient(hc, follower.URL()).NewStream(ctx)
		files, err := stream.FileContainingSymbol(meridianv1connect.EventStoreName)
		require.NoError(t, err)
		assert.NotEmpty(t, files)
		_, _ = stream.Close()
	})

	// Last: it stops the follower.
	t.Run("close ends subscriptions and the client resumes elsewhere", func(t *testing.T) {
		var others []string
		for _, nd := range nodes {
			if nd != follower {
				others = append(others, nd.URL())
			}
		}
		c, err := client.New(append([]string{follower.URL()}, others...))
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Append(ctx, "sub-1", []*meridianv1.ProposedEvent{{Type: "A"}})
		require.NoError(t, err)

		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		got := make(chan uint64, 16)
		go func() {
			defer close(got)
			for msg, err := range c.Subscribe(sctx, client.Subscription{Entity: "sub-1"}) {
				if err != nil {
					t.Logf("subscribe: %v", err)
					return
				}
				if e := msg.GetEvent(); e != nil {
					got <- e.Version
				}
			}
		}()
		require.Equal(t, uint64(1), <-got)

		closed := make(chan error, 1)
		go func() { closed <- follower.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("Close blocked by an open subscription")
		}

		w, err := client.New(others)
		require.NoError(t, err)
		defer w.Close()
		_, err = w.Append(ctx, "sub-1", []*meridianv1.ProposedEvent{{Type: "B"}})
		require.NoError(t, err)
		select {
		case v := <-got:
			assert.Equal(t, uint64(2), v, "resumed after version 1, no duplicate")
		case <-time.After(20 * time.Second):
			t.Fatal("subscription did not resume on another node")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.DataDir = "/tmp/x"
		return c
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "default with data dir", mutate: func(*Config) {}},
		{name: "no region", mutate: func(c *Config) { c.Region = "" }, wantErr: "Region"},
		{name: "no node id", mutate: func(c *Config) { c.NodeID = "" }, wantErr: "NodeID"},
		{name: "no data dir", mutate: func(c *Config) { c.DataDir = "" }, wantErr: "DataDir"},
		{name: "bad api addr", mutate: func(c *Config) { c.APIAddr = "7001" }, wantErr: "APIAddr"},
		{name: "advertise port 0", mutate: func(c *Config) { c.APIAdvertise = "127.0.0.1:0" }, wantErr: "APIAdvertise"},
		{name: "duplicate peer", mutate: func(c *Config) {
			c.Peers = []region.Peer{{ID: "n1", RaftAddr: "a:1"}, {ID: "n1", RaftAddr: "b:1"}}
		}, wantErr: "duplicate"},
		{name: "bootstrap without self", mutate: func(c *Config) {
			c.Bootstrap = true
			c.Peers = []region.Peer{{ID: "n2", RaftAddr: "a:1"}}
		}, wantErr: "do not include"},
		{name: "shutdown timeout", mutate: func(c *Config) { c.ShutdownTimeout = time.Hour }, wantErr: "ShutdownTimeout"},
		{name: "bootstrap alone", mutate: func(c *Config) { c.Bootstrap = true; c.Peers = nil }},
		{name: "bad gossip addr", mutate: func(c *Config) { c.GossipAddr = "7301" }, wantErr: "GossipAddr"},
		{name: "gossip advertise port 0", mutate: func(c *Config) { c.GossipAdvertise = "10.0.0.1:0" }, wantErr: "GossipAdvertise"},
		{name: "gossip key length", mutate: func(c *Config) { c.GossipKeys = [][]byte{[]byte("short")} }, wantErr: "16, 24 or 32"},
		{name: "negative dead time", mutate: func(c *Config) { c.DeadNodeTimeout = -time.Second }, wantErr: "DeadNodeTimeout"},
		{name: "unknown state compression", mutate: func(c *Config) { c.StateCompression = "lz4" }, wantErr: "StateCompression"},
		{name: "zstd state compression", mutate: func(c *Config) { c.StateCompression = region.CompressionZSTD }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestClientFailsOverWhenLeaderIsolated cuts the leader off from its peers
// while a client appends through it: the client must end up on the new
// leader, and the event must exist exactly once on every node after healing,
// whatever the isolated leader did with the first attempt.
func TestClientFailsOverWhenLeaderIsolated(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("MERIDIAN_TEST_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	t.Logf("faultnet seed %d (MERIDIAN_TEST_SEED)", seed)
	fn := faultnet.New(seed)
	nodes := startRegionOn(t, 3, func(id string) region.Network { return fn.Host(id) })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var leader *Node
	var endpoints []string
	for _, nd := range nodes {
		if nd.Region().Status().GetIsLeader() {
			leader = nd
		}
	}
	require.NotNil(t, leader)
	endpoints = append(endpoints, leader.URL())
	for _, nd := range nodes {
		if nd != leader {
			endpoints = append(endpoints, nd.URL())
		}
	}
	policy := client.DefaultRetryPolicy()
	policy.MaxAttempts = 30
	policy.MaxElapsed = 40 * time.Second
	policy.AttemptTimeout = 3 * time.Second
	c, err := client.New(endpoints, client.WithRetryPolicy(policy))
	require.NoError(t, err)
	defer c.Close()

	fn.Isolate(leader.Region().Status().GetNode())
	events := []*meridianv1.ProposedEvent{{Type: "WrittenDuringIsolation"}}
	resp, err := c.Append(ctx, "iso-1", events)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), resp.LastVersion)
	fn.HealAll()

	for _, nd := range nodes {
		rc, err := client.New([]string{nd.URL()})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			r, err := rc.Read(ctx, "iso-1", client.WithConsistency(meridianv1.Consistency_CONSISTENCY_EVENTUAL))
			return err == nil && len(r.Events) == 1 && r.Events[0].Id == events[0].Id
		}, 30*time.Second, 50*time.Millisecond, "node %s", nd.Addr())
		_ = rc.Close()
	}
}

// TestStartPassesStateCompressionToTheRegion: Config.StateCompression
// reaches the region's configuration; left empty, the region's default
// (none) stays.
func TestStartPassesStateCompressionToTheRegion(t *testing.T) {
	for _, tt := range []struct{ set, want region.Compression }{
		{set: region.CompressionZSTD, want: region.CompressionZSTD},
		{set: "", want: region.CompressionNone},
	} {
		var got region.Compression
		addr := freeAddr(t)
		nd, err := Start(t.Context(), Config{
			Region: "test", NodeID: "n1", DataDir: t.TempDir(), APIAddr: freeAddr(t), RaftAddr: addr,
			Peers: []region.Peer{{ID: "n1", RaftAddr: addr}}, Bootstrap: true, Logger: testLogger(t),
			StateCompression: tt.set,
			RegionConfig:     func(c *region.Config) { got = c.StateCompression },
		})
		require.NoError(t, err)
		require.NoError(t, nd.Close())
		assert.Equal(t, tt.want, got, "StateCompression %q", tt.set)
	}
}
