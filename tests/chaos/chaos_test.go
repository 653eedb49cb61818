//go:build chaos && linux

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/internal/nodetls"
)

// Bounds of a run, named so that the whole suite stays inside CI's budget.
const (
	prefix            = "mrdc"
	nodesN            = 3
	apiPort           = 7001
	raftPort          = 7101
	clientsN          = 8
	entitiesN         = 20
	requestTimeout    = 3 * time.Second
	convergeTimeout   = 60 * time.Second
	warmupMinOK       = 50 // ok appends required before the first fault
	scheduleDuration  = 30 * time.Second
	finalWriteTimeout = 60 * time.Second
)

// server is one meridian process in a namespace.
type server struct {
	host Host
	args []string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

type cluster struct {
	t         *testing.T
	topo      *Topology
	bin       string
	dir       string
	nodes     []*server
	client    map[string]meridianv1connect.EventStoreClient
	placement map[string]meridianv1connect.PlacementClient
	// ca issues every node's certificate: the suites run with TLS on every
	// port, as a deployment should (docs/SECURITY.md).
	ca *nodetls.CA
	// http reaches the nodes' APIs over TLS, through the topology, with an
	// admin bearer token from tokenFile (every node's --auth-token-file).
	http      *http.Client
	tokenFile string
}

// url returns a host's API base URL.
func (c *cluster) url(h Host) string { return fmt.Sprintf("https://%s:%d", h.Addr, apiPort) }

func (c *cluster) start(s *server) {
	cmd := c.topo.Command(s.host, c.bin, s.args...)
	logf, err := os.OpenFile(filepath.Join(c.dir, s.host.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(c.t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(c.t, cmd.Start())
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
}

func (c *cluster) running(s *server) bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (c *cluster) signal(s *server, sig syscall.Signal) {
	if c.running(s) {
		_ = s.cmd.Process.Signal(sig)
	}
}

func (c *cluster) kill(s *server) {
	if !c.running(s) {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop asks for a clean shutdown and kills after a bound.
func (c *cluster) stop(s *server) {
	if !c.running(s) {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		c.t.Logf("node %s did not stop within 15s of SIGTERM; killing it", s.host.Name)
		c.kill(s)
	}
}

func (c *cluster) restart(s *server) {
	if !c.running(s) {
		c.start(s)
	}
}

func (c *cluster) status(ctx context.Context, s *server) (*meridianv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := c.client[s.host.Name].Status(ctx, connect.NewRequest(&meridianv1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// leader returns the node that says it leads, or nil.
func (c *cluster) leader(ctx context.Context) *server {
	for _, s := range c.nodes {
		if st, err := c.status(ctx, s); err == nil && st.GetIsLeader() {
			return s
		}
	}
	return nil
}

// httpsClient speaks HTTP/2 over TLS to the nodes, verifying them against
// ca by their IP SANs, and sends the bearer token secret with every call.
func httpsClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), ca *nodetls.CA, secret string) *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Transport: auth.BearerTransport{Secret: secret, Next: &http.Transport{
		Protocols:       &p,
		TLSClientConfig: ca.ClientConfig(),
		DialContext:     dial,
	}}}
}

// newToken writes a token file with one admin token into dir and returns
// the file and the token.
func newToken(t *testing.T, dir string) (string, string) {
	path := filepath.Join(dir, "tokens")
	secret, err := auth.WriteTokenFile(path, auth.Token{Name: "chaos", Role: auth.RoleAdmin})
	require.NoError(t, err)
	return path, secret
}

// tlsArgs issues a certificate for the node that args start (its
// --region and --node-id) with h's address as IP SAN, into dir/tls, and
// returns args with the flags that turn TLS on.
func (c *cluster) tlsArgs(h Host, dir string, args []string) []string {
	flag := func(name string) string {
		for i, a := range args {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
		}
		c.t.Fatalf("node arguments %v lack %s", args, name)
		return ""
	}
	id := nodetls.Identity{Deployment: chaosDeployment, Region: flag("--region"), Node: flag("--node-id")}
	files, err := c.ca.IssueFiles(id, []string{h.Addr}, time.Hour, dir+"-tls", "node")
	require.NoError(c.t, err)
	return append(args, "--tls-cert", files.Cert, "--tls-key", files.Key, "--tls-ca", files.CA, "--auth-token-file", c.tokenFile)
}

// chaosDeployment names the suites' deployment in certificates.
const chaosDeployment = "chaos"

func newCluster(t *testing.T, topo *Topology, bin string) *cluster {
	var peers []string
	for _, h := range topo.Hosts {
		peers = append(peers, fmt.Sprintf("%s=%s:%d=%s:%d", h.Name, h.Addr, raftPort, h.Addr, apiPort))
	}
	return newClusterWith(t, topo, bin, func(_ int, h Host, dir string) []string {
		return []string{"server",
			"--region", "chaos",
			"--node-id", h.Name,
			"--data-dir", dir,
			"--api-addr", fmt.Sprintf("%s:%d", h.Addr, apiPort),
			"--raft-addr", fmt.Sprintf("%s:%d", h.Addr, raftPort),
			"--peers", strings.Join(peers, ","),
			"--bootstrap",
		}
	})
}

// newClusterWith starts one process per host with the arguments args gives
// it (host index, host, data directory).
func newClusterWith(t *testing.T, topo *Topology, bin string, args func(i int, h Host, dir string) []string) *cluster {
	return newClusterStarting(t, topo, bin, args, func(int) bool { return true })
}

// newClusterStarting is newClusterWith where only the hosts startNow picks
// are started; the others wait for c.start.
func newClusterStarting(t *testing.T, topo *Topology, bin string, args func(i int, h Host, dir string) []string, startNow func(i int) bool) *cluster {
	// Not t.TempDir: node logs and data must outlive a failed run.
	dir, err := os.MkdirTemp("", "meridian-chaos-")
	require.NoError(t, err)
	ca, err := nodetls.NewCA(chaosDeployment, time.Hour)
	require.NoError(t, err)
	tokenFile, secret := newToken(t, dir)
	c := &cluster{t: t, topo: topo, bin: bin, dir: dir, client: map[string]meridianv1connect.EventStoreClient{},
		placement: map[string]meridianv1connect.PlacementClient{}, ca: ca, http: httpsClient(topo.DialContext, ca, secret), tokenFile: tokenFile}
	for i, h := range topo.Hosts {
		s := &server{host: h, dir: filepath.Join(c.dir, h.Name)}
		s.args = c.tlsArgs(h, s.dir, args(i, h, s.dir))
		c.nodes = append(c.nodes, s)
		c.client[h.Name] = meridianv1connect.NewEventStoreClient(c.http, c.url(h))
		c.placement[h.Name] = meridianv1connect.NewPlacementClient(c.http, c.url(h))
	}
	for i, s := range c.nodes {
		if startNow(i) {
			c.start(s)
		}
	}
	t.Cleanup(func() {
		c.killAll()
		if t.Failed() {
			t.Logf("node logs and data are kept in %s", c.dir)
			return
		}
		_ = os.RemoveAll(c.dir)
	})
	return c
}

// killAll SIGKILLs every process still running.
func (c *cluster) killAll() {
	for _, s := range c.nodes {
		c.kill(s)
	}
}

func (c *cluster) workload(ctx context.Context, seed uint64, h *history, wg *sync.WaitGroup) {
	c.clients(ctx, seed, h, wg, func(rng *rand.Rand) (*meridianv1.AppendRequest, int) {
		return &meridianv1.AppendRequest{Entity: entityName(rng.IntN(entitiesN))}, 1 + rng.IntN(3)
	})
}

// clients runs clientsN clients that append, each to a random node, until
// ctx ends, recording every append in h. shape draws a request's entity
// (and durability) and how many events it holds; the events get fresh ids.
func (c *cluster) clients(ctx context.Context, seed uint64, h *history, wg *sync.WaitGroup, shape func(*rand.Rand) (*meridianv1.AppendRequest, int)) {
	for cl := range clientsN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(cl)))
			for ctx.Err() == nil {
				s := c.nodes[rng.IntN(len(c.nodes))]
				req, n := shape(rng)
				o := &op{client: cl, node: s.host.Name, entity: req.GetEntity(), expected: -1}
				for range n {
					id := uuid.Must(uuid.NewV7()).String()
					o.ids = append(o.ids, id)
					req.Events = append(req.Events, &meridianv1.ProposedEvent{Id: id, Type: "ChaosEvent", Data: []byte(id)})
				}
				rctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				o.start = time.Now()
				resp, err := c.client[s.host.Name].Append(rctx, connect.NewRequest(req))
				o.end = time.Now()
				cancel()
				if err != nil {
					o.outcome, o.errText = classify(err), err.Error()
					h.add(o)
					select { // do not spin against a dead node
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				o.outcome, o.first, o.last = "ok", resp.Msg.GetFirstVersion(), resp.Msg.GetLastVersion()
				h.add(o)
			}
		}()
	}
}

// step is one action of a nemesis schedule, at an offset from the start.
type step struct {
	at   time.Duration
	name string
	do   func(ctx context.Context, c *cluster, rng *rand.Rand) string
}

func targetLeader(ctx context.Context, c *cluster, rng *rand.Rand) *server {
	if l := c.leader(ctx); l != nil {
		return l
	}
	return c.nodes[rng.IntN(len(c.nodes))]
}

var (
	killLeader = func(ctx context.Context, c *cluster, rng *rand.Rand) string {
		s := targetLeader(ctx, c, rng)
		c.kill(s)
		return "SIGKILL " + s.host.Name
	}
	restartAll = func(_ context.Context, c *cluster, _ *rand.Rand) string {
		var names []string
		for _, s := range c.nodes {
			if !c.running(s) {
				c.restart(s)
				names = append(names, s.host.Name)
			}
		}
		return "restart " + strings.Join(names, ",")
	}
	isolateLeader = func(ctx context.Context, c *cluster, rng *rand.Rand) string {
		s := targetLeader(ctx, c, rng)
		require.NoError(c.t, c.topo.Isolate(s.host))
		return "isolate " + s.host.Name
	}
	heal = func(_ context.Context, c *cluster, _ *rand.Rand) string {
		require.NoError(c.t, c.topo.Heal())
		return "heal"
	}
	oneWayFromLeader = func(ctx context.Context, c *cluster, rng *rand.Rand) string {
		s := targetLeader(ctx, c, rng)
		for _, o := range c.nodes {
			if o != s {
				require.NoError(c.t, c.topo.CutOneWay(s.host, o.host))
			}
		}
		return "one-way cut from " + s.host.Name
	}
	pauseLeader = func(ctx context.Context, c *cluster, rng *rand.Rand) string {
		s := targetLeader(ctx, c, rng)
		c.signal(s, syscall.SIGSTOP)
		return "SIGSTOP " + s.host.Name
	}
	resumeAll = func(_ context.Context, c *cluster, _ *rand.Rand) string {
		for _, s := range c.nodes {
			c.signal(s, syscall.SIGCONT)
		}
		return "SIGCONT all"
	}
	rollingRestart = func(_ context.Context, c *cluster, _ *rand.Rand) string {
		for _, s := range c.nodes {
			c.stop(s)
			c.restart(s)
			time.Sleep(2 * time.Second)
		}
		return "rolling restart"
	}
)

// schedules are the named nemesis schedules; the seed picks targets where
// the leader is unknown and drives the workload.
var schedules = map[string][]step{
	"leader-kill": {
		{5 * time.Second, "kill leader", killLeader},
		{8 * time.Second, "restart", restartAll},
		{14 * time.Second, "kill leader", killLeader},
		{17 * time.Second, "restart", restartAll},
		{22 * time.Second, "kill leader", killLeader},
		{25 * time.Second, "restart", restartAll},
	},
	"partitions": {
		{5 * time.Second, "isolate leader", isolateLeader},
		{12 * time.Second, "heal", heal},
		{16 * time.Second, "one-way cut", oneWayFromLeader},
		{22 * time.Second, "heal", heal},
	},
	"pause-restart": {
		{5 * time.Second, "pause leader", pauseLeader},
		{10 * time.Second, "resume", resumeAll},
		{13 * time.Second, "rolling restart", rollingRestart},
		{23 * time.Second, "kill leader", killLeader},
		{25 * time.Second, "restart", restartAll},
	},
}

func seedFromEnv(t *testing.T) uint64 {
	if s := os.Getenv("MERIDIAN_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "MERIDIAN_CHAOS_SEED must be an unsigned integer")
		return v
	}
	return uint64(time.Now().UnixNano())
}

func buildBinary(t *testing.T) string {
	if bin := os.Getenv("MERIDIAN_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "meridian")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meridiandb/meridian/cmd/meridian").CombinedOutput()
	require.NoError(t, err, "build meridian: %s", out)
	return bin
}

func TestChaos(t *testing.T) {
	require.NoError(t, Requirements())
	bin := buildBinary(t)
	seed := seedFromEnv(t)
	t.Logf("seed %d (replay: MERIDIAN_CHAOS_SEED=%d make chaos)", seed, seed)

	names := []string{"leader-kill", "partitions", "pause-restart"}
	if only := os.Getenv("MERIDIAN_CHAOS_SCHEDULE"); only != "" {
		names = []string{only}
	}
	for _, name := range names {
		sched, ok := schedules[name]
		require.True(t, ok, "unknown schedule %q", name)
		t.Run(name, func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay: MERIDIAN_CHAOS_SEED=%d MERIDIAN_CHAOS_SCHEDULE=%s make chaos", seed, name)
				}
			}()
			runSchedule(t, bin, seed, sched)
		})
	}

	// Nothing is left behind: namespaces (and with them interfaces and
	// iptables rules) and processes.
	nss, err := Namespaces(prefix)
	require.NoError(t, err)
	require.Empty(t, nss, "namespaces left behind")
	left, err := Processes(bin)
	require.NoError(t, err)
	require.Empty(t, left, "meridian processes left behind")
}

func runSchedule(t *testing.T, bin string, seed uint64, sched []step) {
	topo, err := Setup(prefix, nodesN)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, topo.Teardown()) })
	c := newCluster(t, topo, bin)

	ctx := context.Background()
	require.Eventually(t, func() bool { return c.leader(ctx) != nil }, 30*time.Second, 100*time.Millisecond, "no leader elected")

	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	h := &history{}
	wctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	c.workload(wctx, seed, h, &wg)

	faults := 0
	for _, s := range sched {
		time.Sleep(time.Until(start.Add(s.at)))
		if faults == 0 {
			// Honest run: the cluster did real work before the first fault.
			if n := h.count("ok"); n < warmupMinOK {
				stopLoad()
				wg.Wait()
				t.Fatalf("invalid run: only %d acknowledged appends before the first fault, want at least %d", n, warmupMinOK)
			}
		}
		t.Logf("%6.1fs %s", time.Since(start).Seconds(), s.do(ctx, c, rng))
		faults++
	}
	time.Sleep(time.Until(start.Add(scheduleDuration)))
	stopLoad()
	wg.Wait()

	// Heal everything, then a final write must succeed.
	require.NoError(t, topo.Heal())
	resumeAll(ctx, c, rng)
	restartAll(ctx, c, rng)
	require.Positive(t, faults, "invalid run: no fault was injected")
	c.finalWrite(t, ctx, "chaos/final")

	ok, unknown, failed := h.count("ok"), h.count("unknown"), h.count("failed")
	t.Logf("history: %d ok, %d unknown, %d failed appends", ok, unknown, failed)

	streams := c.converge(t, ctx)
	require.NoError(t, checkHistory(h.ops, streams))
}

// finalWrite requires that one append to entity succeeds through some node
// of c within finalWriteTimeout: after the faults, the cluster must take
// writes again (a run where it cannot is invalid, not a pass).
func (c *cluster) finalWrite(t *testing.T, ctx context.Context, entity string) {
	t.Helper()
	final := &meridianv1.AppendRequest{Entity: entity, Events: []*meridianv1.ProposedEvent{{Id: uuid.Must(uuid.NewV7()).String(), Type: "Final"}}}
	require.Eventually(t, func() bool {
		for _, s := range c.nodes {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			_, err := c.client[s.host.Name].Append(rctx, connect.NewRequest(final))
			cancel()
			if err == nil {
				return true
			}
		}
		return false
	}, finalWriteTimeout, 200*time.Millisecond, "invalid run: the final write to %s did not succeed", entity)
}

// converge waits until every node serves identical streams of every entity
// and returns them.
func (c *cluster) converge(t *testing.T, ctx context.Context) map[string][]string {
	return c.convergeEntities(t, ctx, entitiesN, entityName)
}

// convergeEntities waits until every node serves identical streams of
// entities 0..n-1 (named by name) and returns them.
func (c *cluster) convergeEntities(t *testing.T, ctx context.Context, n int, name func(int) string) map[string][]string {
	var lastErr error
	deadline := time.Now().Add(convergeTimeout)
	for time.Now().Before(deadline) {
		last := map[string]map[string][]string{}
		lastErr = nil
		for _, s := range c.nodes {
			st := map[string][]string{}
			for e := range n {
				ids, err := c.readAll(ctx, s, name(e))
				if err != nil {
					lastErr = err
					break
				}
				st[name(e)] = ids
			}
			last[s.host.Name] = st
		}
		if lastErr == nil {
			diff := compareStreams(last)
			if diff == "" {
				return last[c.nodes[0].host.Name]
			}
			lastErr = fmt.Errorf("%s", diff)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("streams did not converge within %s: %v", convergeTimeout, lastErr)
	return nil
}

// readAll reads an entity's whole stream from one node (EVENTUAL: the node's
// own state) and checks that versions are 1..n without gaps.
func (c *cluster) readAll(ctx context.Context, s *server, entity string) ([]string, error) {
	var ids []string
	from := uint64(1)
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := c.client[s.host.Name].Read(rctx, connect.NewRequest(&meridianv1.ReadRequest{
			Entity: entity, FromVersion: from, MaxCount: 500,
			Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
		}))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read %s from %s: %w", entity, s.host.Name, err)
		}
		for _, ev := range resp.Msg.GetEvents() {
			if ev.GetVersion() != uint64(len(ids)+1) {
				return nil, fmt.Errorf("node %s entity %s: version %d where %d was expected (gap or reorder)", s.host.Name, entity, ev.GetVersion(), len(ids)+1)
			}
			ids = append(ids, ev.GetId())
		}
		if len(resp.Msg.GetEvents()) == 0 || uint64(len(ids)) >= resp.Msg.GetHeadVersion() {
			return ids, nil
		}
		from = uint64(len(ids) + 1)
	}
}
