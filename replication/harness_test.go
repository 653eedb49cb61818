package replication

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/tests/faultnet"
)

// testSeed returns MERIDIAN_SEED if set, else a fresh seed, and logs it.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("MERIDIAN_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	t.Logf("seed %d (MERIDIAN_SEED=%d replays it)", seed, seed)
	return seed
}

// testLogger returns a logger writing to the test log at Debug when
// MERIDIAN_TEST_LOG is set, else a discarding one.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MERIDIAN_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// testConfig is DefaultConfig with test-sized timers.
func testConfig(t testing.TB, region string, network Network) Config {
	cfg := DefaultConfig()
	cfg.Region = region
	cfg.Network = network
	cfg.Logger = testLogger(t)
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.StreamIdleTimeout = 500 * time.Millisecond
	cfg.StallTimeout = 500 * time.Millisecond
	cfg.CallTimeout = time.Second
	cfg.BackoffMin = 10 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	cfg.DepsPollInterval = 20 * time.Millisecond
	cfg.DirectoryRefresh = 100 * time.Millisecond
	return cfg
}

// world is a set of regions, each one fake region (LogSource + Applier)
// served by a real Service over real Connect on 127.0.0.1, every
// connection through a faultnet host named after the region.
type world struct {
	t   testing.TB
	net *faultnet.Net
	dir *fakeDirectory
	rs  map[string]*testRegion
}

type testRegion struct {
	name    string
	fake    *fakeRegion
	host    *faultnet.Host
	lead    *fakeLeadership
	svc     *Service
	srv     *http.Server
	addr    string
	shipper *Shipper
	cfg     Config

	// activePulls counts Pull handlers running at this region's server;
	// pullReqs records every PullRequest it received.
	activePulls atomic.Int64
	mu          sync.Mutex
	pullReqs    []*meridianv1.PullRequest
	// handler, when set, serves Pull instead of svc (fault injection).
	handler meridianv1connect.ReplicationHandler
}

func (r *testRegion) PullRequests() []*meridianv1.PullRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*meridianv1.PullRequest(nil), r.pullReqs...)
}

// Pull implements meridianv1connect.ReplicationHandler, counting streams.
func (r *testRegion) Pull(ctx context.Context, req *connect.Request[meridianv1.PullRequest], st *connect.ServerStream[meridianv1.PullResponse]) error {
	r.activePulls.Add(1)
	defer r.activePulls.Add(-1)
	r.mu.Lock()
	r.pullReqs = append(r.pullReqs, req.Msg)
	h := r.handler
	r.mu.Unlock()
	if h != nil {
		return h.Pull(ctx, req, st)
	}
	return r.svc.Pull(ctx, req, st)
}

type worldOptions struct {
	seed int64
	// config adjusts a region's Config before its Service and Shipper start.
	config func(region string, cfg *Config)
	// noShipper leaves Shipper nil (service-only tests).
	noShipper bool
	// follower starts the regions' leadership as not leading.
	follower bool
}

func newWorld(t testing.TB, names []string, opts worldOptions) *world {
	t.Helper()
	w := &world{t: t, net: faultnet.New(opts.seed), dir: newFakeDirectory(), rs: map[string]*testRegion{}}
	t.Cleanup(func() { _ = w.net.Close() })
	for _, name := range names {
		r := &testRegion{name: name, fake: newFakeRegion(name), host: w.net.Host(name), lead: newFakeLeadership(!opts.follower)}
		r.cfg = testConfig(t, name, r.host)
		if opts.config != nil {
			opts.config(name, &r.cfg)
		}
		svc, err := NewService(r.cfg, r.fake)
		require.NoError(t, err)
		r.svc = svc
		ln, err := r.host.Listen("127.0.0.1:0")
		require.NoError(t, err)
		r.addr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle(meridianv1connect.NewReplicationHandler(r))
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		r.srv = &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = r.srv.Serve(ln) }()
		t.Cleanup(func() {
			svc.Close()
			_ = r.srv.Close()
		})
		w.dir.Set(name, r.addr)
		w.rs[name] = r
	}
	if !opts.noShipper {
		for _, name := range names {
			w.startShipper(name)
		}
	}
	return w
}

func (w *world) startShipper(name string) {
	r := w.rs[name]
	s, err := NewShipper(r.cfg, Deps{Log: r.fake, Applier: r.fake, Leadership: r.lead, Directory: w.dir})
	require.NoError(w.t, err)
	r.svc.SetOriginStaleness(func(origin string) (time.Duration, bool) {
		if origin == name {
			return 0, true // a fake region is its own log
		}
		return s.OriginStaleness(origin)
	})
	r.shipper = s
	w.t.Cleanup(func() { _ = s.Close() })
}

// client returns a Replication client of region name's server, dialling
// from host from.
func (w *world) client(from, name string) meridianv1connect.ReplicationClient {
	pc := newPullClient(w.net.Host(from), time.Second)
	w.t.Cleanup(pc.close)
	return pc.client(w.rs[name].addr)
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// never checks that cond stays false for d, polling every 10ms.
func never(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("%s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converged reports whether every region holds every origin's whole log.
func (w *world) converged() bool {
	for _, o := range w.rs {
		want := o.fake.Applied()[o.name]
		for _, r := range w.rs {
			if r.fake.Applied()[o.name] != want {
				return false
			}
		}
	}
	return true
}

// checkReplicas is the closing validation of every shipper test: each
// region's copy of each origin's log is the origin's log, event for event,
// each applied once, in an order that respects deps, and apply never had
// to stop a proposal.
func (w *world) checkReplicas() {
	t := w.t
	t.Helper()
	for _, r := range w.rs {
		require.Empty(t, r.fake.Violations(), "region %s was proposed events out of causal order", r.name)
		seen := map[string]bool{}
		applied := map[string]uint64{}
		byID := map[string]*meridianv1.Event{}
		for _, o := range w.rs {
			for _, ev := range o.fake.Log(o.name) {
				byID[ev.GetId()] = ev
			}
		}
		for _, id := range r.fake.Order() {
			require.False(t, seen[id], "region %s applied %s twice", r.name, id)
			seen[id] = true
			ev := byID[id]
			require.NotNil(t, ev, "region %s applied unknown event %s", r.name, id)
			for dr, d := range ev.GetDeps() {
				require.LessOrEqual(t, d, applied[dr], "region %s applied %s before its dep %s/%d", r.name, id, dr, d)
			}
			applied[ev.GetOrigin().GetRegion()] = ev.GetOrigin().GetSeq()
		}
		for _, o := range w.rs {
			want, got := o.fake.Log(o.name), r.fake.Log(o.name)
			require.Len(t, got, len(want), "region %s's copy of %s", r.name, o.name)
			for i := range want {
				require.Equal(t, want[i].GetId(), got[i].GetId(), "region %s's copy of %s at %d", r.name, o.name, i+1)
			}
		}
	}
}

func isCode(err error, code connect.Code) bool {
	var ce *connect.Error
	return errors.As(err, &ce) && ce.Code() == code
}
