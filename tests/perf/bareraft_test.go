package perf

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
	wal "github.com/hashicorp/raft-wal"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/internal/raftlog"
)

// Bare hashicorp/raft: the library's own ceiling on this machine. Same log
// store (raftlog, ADR 0006), same transport (TCP), same fsync behaviour as
// a region; the state machine does nothing.

const (
	roleEnv       = "MERIDIAN_PERF_ROLE"
	roleRaftNode  = "bare-raft-node"
	eventBytes    = 1024
	applyTimeout  = 10 * time.Second
	startupTimout = 30 * time.Second
)

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (nopSnapshot) Release()                             {}

// bareNode is one hashicorp/raft member on TCP and a log store.
type bareNode struct {
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     logStore
}

// Log stores compared for ADRs 0001 and 0006.
const (
	storeWAL     = "wal"
	storeBoltDB  = "boltdb"
	storeRaftLog = "raftlog"
)

type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

func openLogStore(kind, dir string) (logStore, error) {
	switch kind {
	case storeWAL:
		walDir := filepath.Join(dir, "wal")
		if err := os.MkdirAll(walDir, 0o700); err != nil {
			return nil, err
		}
		return wal.Open(walDir)
	case storeBoltDB:
		return raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	case storeRaftLog:
		return raftlog.Open(filepath.Join(dir, "raftlog"), raftlog.Options{})
	default:
		return nil, fmt.Errorf("unknown log store %q (want %s, %s or %s)", kind, storeWAL, storeBoltDB, storeRaftLog)
	}
}

func startBareNode(id, store, dir string) (*bareNode, error) {
	w, err := openLogStore(store, dir)
	if err != nil {
		return nil, fmt.Errorf("open %s log store: %w", store, err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 1, io.Discard)
	if err != nil {
		return nil, err
	}
	tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 8, 10*time.Second, io.Discard)
	if err != nil {
		return nil, err
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	cfg.LogOutput = io.Discard
	r, err := raft.NewRaft(cfg, nopFSM{}, w, w, snaps, tr)
	if err != nil {
		return nil, err
	}
	return &bareNode{raft: r, transport: tr, store: w}, nil
}

func (n *bareNode) close() {
	_ = n.raft.Shutdown().Error()
	_ = n.transport.Close()
	_ = n.store.Close()
}

// runBareRaftChild is the body of a follower process: start a node, print its
// address, serve until standard input closes.
func runBareRaftChild() int {
	dir, err := os.MkdirTemp("", "meridian-perf-raft-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	n, err := startBareNode(os.Getenv("MERIDIAN_PERF_ID"), os.Getenv("MERIDIAN_PERF_STORE"), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", n.transport.LocalAddr())
	_, _ = io.Copy(io.Discard, os.Stdin) // parent gone or done
	n.close()
	return 0
}

// child is a process started by the benchmark; closing stdin stops it.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// startSelfChild re-executes the benchmark binary in the given role and waits
// for the line "ADDR <address>" on its standard output.
func startSelfChild(role string, env ...string) (*child, string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{cmd: cmd, stdin: stdin}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				lines <- addr
			}
		}
	}()
	select {
	case addr := <-lines:
		return c, addr, nil
	case <-time.After(startupTimout):
		c.stop()
		return nil, "", fmt.Errorf("child %s did not report its address within %s", role, startupTimout)
	}
}

// bareCluster is node 0 in this process (the leader, where load is generated)
// plus two follower processes.
type bareCluster struct {
	leader   *bareNode
	children []*child
	dir      string
}

func startBareCluster(store string) (*bareCluster, error) {
	dir, err := os.MkdirTemp("", "meridian-perf-bare-")
	if err != nil {
		return nil, err
	}
	return startBareClusterIn(dir, store)
}

// startBareClusterIn starts the cluster with the leader's state in dir,
// which close removes.
func startBareClusterIn(dir, store string) (*bareCluster, error) {
	c := &bareCluster{dir: dir}
	var err error
	c.leader, err = startBareNode("n0", store, dir)
	if err != nil {
		c.close()
		return nil, err
	}
	boot := raft.Configuration{Servers: []raft.Server{{ID: "n0", Address: c.leader.transport.LocalAddr()}}}
	if err := c.leader.raft.BootstrapCluster(boot).Error(); err != nil {
		c.close()
		return nil, err
	}
	deadline := time.Now().Add(startupTimout)
	for c.leader.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			c.close()
			return nil, fmt.Errorf("bare raft node did not become leader within %s", startupTimout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range []string{"n1", "n2"} {
		ch, addr, err := startSelfChild(roleRaftNode, "MERIDIAN_PERF_ID="+id, "MERIDIAN_PERF_STORE="+store)
		if err != nil {
			c.close()
			return nil, err
		}
		c.children = append(c.children, ch)
		if err := c.leader.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, applyTimeout).Error(); err != nil {
			c.close()
			return nil, fmt.Errorf("add voter %s: %w", id, err)
		}
	}
	// One committed entry with all three voters proves the group works.
	if err := c.leader.raft.Barrier(applyTimeout).Error(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *bareCluster) apply(data []byte) error {
	return c.leader.raft.Apply(data, applyTimeout).Error()
}

func (c *bareCluster) close() {
	if c.leader != nil {
		c.leader.close()
	}
	for _, ch := range c.children {
		ch.stop()
	}
	_ = os.RemoveAll(c.dir)
}

var (
	bareMu       sync.Mutex
	bareClusters = map[string]*bareCluster{}
)

// sharedBareCluster starts one bare cluster per log store for the whole run.
func sharedBareCluster(tb testing.TB, store string) *bareCluster {
	bareMu.Lock()
	defer bareMu.Unlock()
	if c, ok := bareClusters[store]; ok {
		return c
	}
	c, err := startBareCluster(store)
	require.NoError(tb, err)
	bareClusters[store] = c
	cleanups = append(cleanups, c.close)
	return c
}

// cleanups run after all tests and benchmarks of the package (TestMain).
var cleanups []func()

// runLoad performs b.N operations with the given number of concurrent
// clients and reports latency quantiles and throughput.
func runLoad(b *testing.B, clients int, op func(ctx context.Context, client, i int) error) {
	b.Helper()
	var (
		lat      latencies
		next     atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(ctx, c, i); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d operations failed; first: %v", n, b.N, firstErr.Load())
	}
	b.ReportMetric(micros(lat.quantile(0.5)), "p50-us")
	b.ReportMetric(micros(lat.quantile(0.99)), "p99-us")
	b.ReportMetric(float64(lat.count())/elapsed.Seconds(), "ops/s")
}

// BenchmarkBareRaft is the library ceiling on the region's log store
// (raftlog): 1 KiB entries, fsync on every commit, 3 processes, load
// generated inside the leader process.
func BenchmarkBareRaft(b *testing.B) {
	for _, clients := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchBare(b, storeRaftLog, clients)
		})
	}
}

// BenchmarkLogStore compares Raft log stores under bare raft (ADRs 0001
// and 0006).
func BenchmarkLogStore(b *testing.B) {
	for _, store := range []string{storeRaftLog, storeWAL, storeBoltDB} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("store=%s/clients=%d", store, clients), func(b *testing.B) {
				benchBare(b, store, clients)
			})
		}
	}
}

func benchBare(b *testing.B, store string, clients int) {
	c := sharedBareCluster(b, store)
	payload := make([]byte, eventBytes)
	runLoad(b, clients, func(context.Context, int, int) error { return c.apply(payload) })
}
