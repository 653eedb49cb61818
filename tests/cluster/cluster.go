package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/h2c"
	"github.com/meridiandb/meridian/internal/testport"
	"github.com/meridiandb/meridian/region"
	"github.com/meridiandb/meridian/tests/check"
	"github.com/meridiandb/meridian/tests/clock"
	"github.com/meridiandb/meridian/tests/faultnet"
	"github.com/meridiandb/meridian/tests/history"
	"github.com/meridiandb/meridian/tests/nemesis"
)

// ErrNotRunning: the node is killed.
var ErrNotRunning = errors.New("cluster: node not running")

// Cluster limits.
const (
	// openRetryFor bounds retries of Open and Listen on a restart, while the
	// previous incarnation's sockets are released.
	openRetryFor = 10 * time.Second
	// readPageMax is the page size when reading final streams.
	readPageMax = 1000
	// clientDialTimeout bounds a client's dial to a node's API.
	clientDialTimeout = 2 * time.Second
)

// Config describes an in-process region.
type Config struct {
	// Region names the region; nodes are named <Region>-1 .. <Region>-N, so
	// faultnet profiles group them by region.
	Region string
	// Nodes is the number of nodes (voters).
	Nodes int
	// Seed seeds the fault network.
	Seed int64
	// Dir holds one data directory per node.
	Dir string
	// Logger receives node logs; nil discards them.
	Logger *slog.Logger
	// Tweak adjusts each node's region.Config (timeouts, limits).
	Tweak func(*region.Config)
}

// member is one node: its identity, directory and current incarnation.
type member struct {
	id   string
	dir  string
	peer region.Peer
	node *region.Node // nil while killed
	srv  *http.Server
	// broken is set when Open panicked: whatever it had opened (Badger's
	// directory lock) leaks, so every later restart fails with this error.
	broken error
}

// Cluster is an in-process region of real region.Nodes (Raft, Badger, the
// Connect API over h2c), every connection through a faultnet host per node,
// every node on its own injectable clock. It implements nemesis.Cluster.
type Cluster struct {
	cfg    Config
	Net    *faultnet.Net
	Clocks *clock.Set
	peers  []region.Peer

	mu      sync.Mutex
	members map[string]*member
	order   []string
}

var _ nemesis.Cluster = (*Cluster)(nil)

// TestConfig returns region timeouts suited to a loaded 2-core test machine:
// faster than production so failovers take seconds, slow enough not to flap.
func TestConfig() region.Config {
	cfg := region.DefaultConfig()
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.CommitTimeout = 20 * time.Millisecond
	cfg.LeaderWaitTimeout = 3 * time.Second
	return cfg
}

// Start opens every node, bootstrapped together, and returns once they are
// open (not necessarily with a leader: see WaitLeader).
func Start(cfg Config) (*Cluster, error) {
	if cfg.Nodes <= 0 || cfg.Region == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("cluster: need Region, Nodes > 0 and Dir")
	}
	c := &Cluster{cfg: cfg, Net: faultnet.New(cfg.Seed), Clocks: clock.NewSet(), members: map[string]*member{}}
	for i := range cfg.Nodes {
		id := cfg.Region + "-" + strconv.Itoa(i+1)
		raftAddr, err := testport.Addr()
		if err != nil {
			return nil, err
		}
		apiAddr, err := testport.Addr()
		if err != nil {
			return nil, err
		}
		p := region.Peer{ID: id, RaftAddr: raftAddr, APIAddr: apiAddr}
		c.peers = append(c.peers, p)
		c.members[id] = &member{id: id, dir: filepath.Join(cfg.Dir, id), peer: p}
		c.order = append(c.order, id)
	}
	for _, id := range c.order {
		if err := c.open(id); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

// open starts node id's next incarnation from its directory.
func (c *Cluster) open(id string) error {
	c.mu.Lock()
	m := c.members[id]
	broken := m.broken
	c.mu.Unlock()
	if broken != nil {
		return fmt.Errorf("cluster: open %s: %w", id, broken)
	}
	rc := TestConfig()
	if c.cfg.Tweak != nil {
		c.cfg.Tweak(&rc)
	}
	rc.Region = c.cfg.Region
	rc.NodeID = id
	rc.DataDir = m.dir
	rc.RaftAddr = m.peer.RaftAddr
	rc.Peers = c.peers
	rc.Bootstrap = true
	rc.Network = c.Net.Host(id)
	rc.Clock = c.Clocks.For(id)
	rc.Logger = c.cfg.Logger
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	var node *region.Node
	var err error
	deadline := time.Now().Add(openRetryFor)
	for {
		node, err = openNode(rc)
		if err == nil || errors.Is(err, errOpenPanicked) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		if errors.Is(err, errOpenPanicked) {
			c.mu.Lock()
			m.broken = err
			c.mu.Unlock()
		}
		return fmt.Errorf("cluster: open %s: %w", id, err)
	}
	var ln net.Listener
	for {
		ln, err = rc.Network.Listen(m.peer.APIAddr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		_ = node.Close()
		return fmt.Errorf("cluster: api listen %s: %w", id, err)
	}
	mux := http.NewServeMux()
	path, h := meridianv1connect.NewEventStoreHandler(region.NewService(node))
	mux.Handle(path, h)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	c.mu.Lock()
	m.node, m.srv = node, srv
	c.mu.Unlock()
	return nil
}

// errOpenPanicked: region.Open panicked (for example raft.NewRaft on a log
// store it cannot read); the node cannot start from its directory.
var errOpenPanicked = errors.New("cluster: open panicked")

// openNode runs region.Open, turning a panic into an error so that a node
// that cannot restart fails the run with a message instead of killing the
// test binary.
func openNode(rc region.Config) (n *region.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("%w: %v", errOpenPanicked, r)
		}
	}()
	return region.Open(rc)
}

// Nodes returns the node ids in order.
func (c *Cluster) Nodes() []string { return append([]string(nil), c.order...) }

// Node returns node id's current incarnation, nil while killed.
func (c *Cluster) Node(id string) *region.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[id]; ok {
		return m.node
	}
	return nil
}

// APIAddr returns node id's API address.
func (c *Cluster) APIAddr(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[id].peer.APIAddr
}

// Leader returns the leader most running nodes agree on, or a node that
// believes it leads.
func (c *Cluster) Leader() (string, bool) {
	votes := map[string]int{}
	self := ""
	for _, id := range c.order {
		n := c.Node(id)
		if n == nil {
			continue
		}
		st := n.Status()
		if st.GetLeader() != "" {
			votes[st.GetLeader()]++
		}
		if st.GetIsLeader() {
			self = id
		}
	}
	best, bestVotes := "", 0
	for id, v := range votes {
		if v > bestVotes || (v == bestVotes && id < best) {
			best, bestVotes = id, v
		}
	}
	if best != "" && c.Node(best) != nil {
		return best, true
	}
	return self, self != ""
}

// WaitLeader waits until a leader is elected and every running node knows it.
func (c *Cluster) WaitLeader(ctx context.Context) (string, error) {
	for {
		if id, ok := c.Leader(); ok {
			agree := true
			for _, o := range c.order {
				if n := c.Node(o); n != nil && n.Status().GetLeader() != id {
					agree = false
				}
			}
			if agree {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster: no leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill stops node id as abruptly as an in-process node can stop: its API
// server is closed, its connections are reset, then Raft and Badger are
// shut down (files kept). Unlike SIGKILL, Badger's memtable is flushed.
func (c *Cluster) Kill(id string) error {
	c.mu.Lock()
	m, ok := c.members[id]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("cluster: unknown node %q", id)
	}
	node, srv := m.node, m.srv
	m.node, m.srv = nil, nil
	c.mu.Unlock()
	if node == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	_ = srv.Close()
	c.Net.ResetHost(id)
	closed := make(chan error, 1)
	go func() { closed <- node.Close() }()
	select {
	case err := <-closed:
		c.Net.ResetHost(id)
		return err
	case <-time.After(nodeCloseWaitMax):
		// A close that hangs (hashicorp/raft's pipeline deadlock did, for
		// 18 minutes, before ADR 0009) fails this Kill with every
		// goroutine's stack on stderr instead of running into the
		// package's timeout; the node's goroutines are left behind.
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		return fmt.Errorf("cluster: closing %s did not finish within %s (goroutine stacks on stderr)", id, nodeCloseWaitMax)
	}
}

// nodeCloseWaitMax bounds how long Kill waits for a node to close.
const nodeCloseWaitMax = time.Minute

// Restart opens a killed node again from its directory.
func (c *Cluster) Restart(id string) error {
	if c.Node(id) != nil {
		return fmt.Errorf("cluster: restart %s: already running", id)
	}
	return c.open(id)
}

// Pause stalls every link to and from node id: it neither hears nor is
// heard, keeps its state, and catches up on Resume. (Its goroutines and
// timers keep running, unlike SIGSTOP: a paused leader steps down.)
func (c *Cluster) Pause(id string) error { c.Net.Pause(id); return nil }

// Resume ends a Pause.
func (c *Cluster) Resume(id string) error { c.Net.Resume(id); return nil }

// Partition cuts every link between nodes of different groups.
func (c *Cluster) Partition(groups ...[]string) error {
	c.Net.PartitionGroups(groups...)
	return nil
}

// Block cuts from -> to only.
func (c *Cluster) Block(from, to string) error { c.Net.Block(from, to); return nil }

// Heal removes every network fault.
func (c *Cluster) Heal() error { c.Net.HealAll(); return nil }

// SkewClock sets node id's clock offset.
func (c *Cluster) SkewClock(id string, d time.Duration) error {
	c.Clocks.For(id).Skew(d)
	return nil
}

// ResetClocks removes every clock fault.
func (c *Cluster) ResetClocks() error { c.Clocks.ResetAll(); return nil }

// Client returns a Connect client of node id's API, dialling from faultnet
// host `from` (so partitions and pauses reach clients too).
func (c *Cluster) Client(from, id string) meridianv1connect.EventStoreClient {
	host := c.Net.Host(from)
	hc := h2c.NewClient(func(ctx context.Context, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, clientDialTimeout)
		defer cancel()
		return host.Dial(ctx, addr)
	}, h2c.Options{UnaryOverHTTP1: true})
	return meridianv1connect.NewEventStoreClient(hc, "http://"+c.APIAddr(id))
}

// WaitConverged waits until every running node has applied the same log
// position.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	for {
		var positions []uint64
		for _, id := range c.order {
			if n := c.Node(id); n != nil {
				positions = append(positions, n.FSM().ApplyState().GetLastPosition())
			}
		}
		same := len(positions) > 0
		for _, p := range positions {
			same = same && p == positions[0]
		}
		if same {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: not converged (positions %v): %w", positions, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Streams reads entities' final streams from every running node's state
// machine, for the checkers.
func (c *Cluster) Streams(entities []string) (check.Replicas, error) {
	out := check.Replicas{}
	for _, id := range c.order {
		n := c.Node(id)
		if n == nil {
			continue
		}
		s := check.Streams{}
		for _, e := range entities {
			var evs []history.EventRef
			from := uint64(1)
			for {
				page, _, err := n.FSM().ReadStream(e, from, readPageMax, false)
				if err != nil {
					return nil, fmt.Errorf("cluster: read %s on %s: %w", e, id, err)
				}
				for _, ev := range page {
					evs = append(evs, EventRef(ev))
				}
				if len(page) < readPageMax {
					break
				}
				from = page[len(page)-1].GetVersion() + 1
			}
			if len(evs) > 0 {
				s[e] = evs
			}
		}
		out[id] = s
	}
	return out, nil
}

// EventRef converts an API event for the checkers.
func EventRef(ev *meridianv1.Event) history.EventRef {
	r := history.EventRef{ID: ev.GetId(), Version: ev.GetVersion()}
	if o := ev.GetOrigin(); o != nil {
		r.Origin = history.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}
	}
	if d := ev.GetDeps(); len(d) > 0 {
		r.Deps = history.Vector(d)
	}
	return r
}

// Close stops every node and the network.
func (c *Cluster) Close() error {
	var errs []error
	ids := c.Nodes()
	sort.Strings(ids)
	for _, id := range ids {
		if c.Node(id) != nil {
			if err := c.Kill(id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, c.Net.Close())
	return errors.Join(errs...)
}

// A faultnet host is what a node dials and listens through.
var _ region.Network = (*faultnet.Host)(nil)
