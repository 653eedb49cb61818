package region

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/testport"
	"github.com/meridiandb/meridian/tests/faultnet"
	"github.com/stretchr/testify/require"
)

// raftRegion is an in-process region: real Raft over real TCP on 127.0.0.1,
// every connection through a faultnet host per node, real Badger in
// t.TempDir(), and each node's Connect API served over h2c.
type raftRegion struct {
	t     testing.TB
	net   *faultnet.Net
	peers []Peer
	tweak func(*Config)
	// hostPrefix prefixes the faultnet host names of the nodes.
	hostPrefix string

	mu    sync.Mutex
	nodes []*raftNode
}

type raftNode struct {
	id   string
	dir  string
	node *Node // nil while stopped
	srv  *http.Server
	// lastIndex is the last Raft log index when the node was last stopped.
	lastIndex uint64
}

// nodeTestLogger logs Raft and node warnings to the test log when
// MERIDIAN_TEST_LOG is set (debug with MERIDIAN_TEST_LOG=debug).
func nodeTestLogger(t testing.TB) *slog.Logger {
	switch os.Getenv("MERIDIAN_TEST_LOG") {
	case "":
		return slog.New(slog.DiscardHandler)
	case "debug":
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

// freeLoopbackAddr returns a currently free 127.0.0.1 port below the
// ephemeral range, so that no outgoing connection takes it while its node
// is down for a restart (internal/testport).
func freeLoopbackAddr(t testing.TB) string {
	addr, err := testport.Addr()
	require.NoError(t, err)
	return addr
}

func nodeTestConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Region = "r1"
	cfg.Logger = nodeTestLogger(t)
	// Faster than production so that failover tests take seconds, slow
	// enough not to flap on a loaded 2-core machine.
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.CommitTimeout = 20 * time.Millisecond
	cfg.LeaderWaitTimeout = 5 * time.Second
	return cfg
}

// newTestRegion starts n nodes n1..nN, bootstrapped together.
func newTestRegion(t testing.TB, n int, tweak func(*Config)) *raftRegion {
	fn := faultnet.New(1)
	t.Cleanup(func() { _ = fn.Close() })
	return newTestRegionOn(t, fn, "", n, tweak)
}

// newTestRegionOn starts n nodes on a shared fault network (so that
// regions can reach each other); hosts are named hostPrefix + node id.
func newTestRegionOn(t testing.TB, fn *faultnet.Net, hostPrefix string, n int, tweak func(*Config)) *raftRegion {
	r := &raftRegion{t: t, net: fn, hostPrefix: hostPrefix, tweak: tweak}
	for i := range n {
		id := "n" + strconv.Itoa(i+1)
		r.peers = append(r.peers, Peer{ID: id, RaftAddr: freeLoopbackAddr(t), APIAddr: freeLoopbackAddr(t)})
		r.nodes = append(r.nodes, &raftNode{id: id, dir: t.TempDir()})
	}
	t.Cleanup(func() {
		for i := range r.nodes {
			r.stop(i)
		}
	})
	for i := range r.nodes {
		r.start(i)
	}
	return r
}

func (r *raftRegion) config(i int) Config {
	cfg := nodeTestConfig(r.t)
	cfg.NodeID = r.nodes[i].id
	cfg.DataDir = r.nodes[i].dir
	cfg.RaftAddr = r.peers[i].RaftAddr
	cfg.Peers = r.peers
	cfg.Bootstrap = true
	cfg.Network = r.net.Host(r.hostPrefix + r.nodes[i].id)
	if r.tweak != nil {
		r.tweak(&cfg)
	}
	return cfg
}

// start opens node i (again) with its data directory and API server.
func (r *raftRegion) start(i int) {
	r.t.Helper()
	cfg := r.config(i)
	var node *Node
	var err error
	// The port was free when picked; after a restart Raft's old socket may
	// linger briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		node, err = Open(cfg)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(r.t, err, "open %s", cfg.NodeID)
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewEventStoreHandler(NewService(node)))
	mux.Handle(meridianv1connect.NewConsumerGroupsHandler(NewGroupsService(node)))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols}
	var ln net.Listener
	require.Eventually(r.t, func() bool {
		ln, err = cfg.Network.Listen(r.peers[i].APIAddr)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "api listen: %v", err)
	go func() { _ = srv.Serve(ln) }()
	r.mu.Lock()
	r.nodes[i].node, r.nodes[i].srv = node, srv
	r.mu.Unlock()
}

// stop closes node i (a clean kill: Raft and Badger closed, files kept).
func (r *raftRegion) stop(i int) {
	r.mu.Lock()
	tn := r.nodes[i]
	node, srv := tn.node, tn.srv
	tn.node, tn.srv = nil, nil
	r.mu.Unlock()
	if node == nil {
		return
	}
	_ = srv.Close()
	// Shut Raft down first so the log stops changing, and note its end.
	// Stop the transport's waits for unreachable peers first, as Close
	// does, or the shutdown waits for them.
	node.parts.stopDialing()
	_ = node.Raft().Shutdown().Error()
	last, err := node.parts.logs.LastIndex()
	require.NoError(r.t, err)
	tn.lastIndex = last
	require.NoError(r.t, node.Close())
}

// node returns node i, nil while it is stopped.
func (r *raftRegion) node(i int) *Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[i].node
}

// running returns the indexes of running nodes.
func (r *raftRegion) running() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for i, n := range r.nodes {
		if n.node != nil {
			out = append(out, i)
		}
	}
	return out
}

// waitLeader waits until one running node leads and every running node
// but excluded ones knows it, and returns its index.
func (r *raftRegion) waitLeader(exclude ...int) int {
	r.t.Helper()
	leader := -1
	require.Eventually(r.t, func() bool {
		leader = -1
		for _, i := range r.running() {
			if n := r.node(i); n != nil && n.isLeader() {
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
	next:
		for _, i := range r.running() {
			for _, x := range exclude {
				if i == x {
					continue next
				}
			}
			if n := r.node(i); n == nil || n.Status().GetLeader() != r.nodes[leader].id {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "no leader")
	return leader
}

// follower returns a running node that is not the leader.
func (r *raftRegion) follower(leader int) int {
	for _, i := range r.running() {
		if i != leader {
			return i
		}
	}
	r.t.Fatal("no follower running")
	return -1
}

// client returns a Connect client of node i's API (dialed without faults).
func (r *raftRegion) client(i int) meridianv1connect.EventStoreClient {
	return meridianv1connect.NewEventStoreClient(newHTTPClient(TCP, 2*time.Second), "http://"+r.peers[i].APIAddr)
}

// waitApplied waits until every running node applied what node i applied.
func (r *raftRegion) waitConverged() {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		var want uint64
		for _, i := range r.running() {
			want = max(want, r.node(i).FSM().ApplyState().GetLastPosition())
		}
		for _, i := range r.running() {
			if r.node(i).FSM().ApplyState().GetLastPosition() != want {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "nodes did not converge")
}

// readStreamAll reads entity's whole stream from node n's state machine.
func readStreamAll(t testing.TB, n *Node, entity string) []*meridianv1.Event {
	var out []*meridianv1.Event
	from := uint64(1)
	for {
		evs, _, err := n.FSM().ReadStream(entity, from, ReadCountMax, false)
		require.NoError(t, err)
		out = append(out, evs...)
		if len(evs) < ReadCountMax {
			return out
		}
		from = evs[len(evs)-1].GetVersion() + 1
	}
}

func newTestEvent() *meridianv1.ProposedEvent {
	id := uuid.Must(uuid.NewV7())
	return &meridianv1.ProposedEvent{Id: id.String(), Type: "Tested", Data: []byte("payload-" + id.String()[:8])}
}

func appendRequest(entity string, events ...*meridianv1.ProposedEvent) *meridianv1.AppendRequest {
	return &meridianv1.AppendRequest{Entity: entity, Events: events}
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testEntity(i int) string { return fmt.Sprintf("order-%d", i) }
