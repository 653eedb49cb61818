package perf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/internal/h2c"
	"github.com/meridiandb/meridian/internal/nodetls"
)

// The region under test: three `meridian server` processes of the real binary
// on loopback, one Raft group, fsync on every commit (the Raft log's), load
// sent over the Connect API to the leader.

const (
	regionName = "bench"
	// connsMax is how many clients (each its own connection pool) the load
	// generator spreads its callers over, as separate application processes
	// would: unary calls take one HTTP/1.1 connection each, streams share
	// an HTTP/2 connection per pool.
	connsMax = 8
)

type regionProc struct {
	id, api string
	cmd     *exec.Cmd
	done    chan struct{}
}

type regionCluster struct {
	// scheme is "https" for a region with TLS and tokens, else "http";
	// newHTTP makes a client transport with connections of its own.
	scheme  string
	newHTTP func() *http.Client
	dir     string
	bin     string // the meridian binary the servers run
	procs   []*regionProc
	clients []meridianv1connect.EventStoreClient // to the leader, connsMax of them
	leader  string                               // API address of the leader
	follow  meridianv1connect.EventStoreClient   // to one follower
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// apiClient is the SDK's transport (internal/h2c): unary calls over
// HTTP/1.1 keep-alive connections, streams over h2c (over TLS with cfg).
func apiClient(cfg *tls.Config) *http.Client {
	return h2c.NewClient(func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	}, h2c.Options{UnaryOverHTTP1: true, TLS: cfg})
}

// perfDeployment names the TLS region's deployment in its certificates.
const perfDeployment = "perf"

// secure gives the region of dir TLS and tokens: a CA, a certificate per
// node, one write token; it returns each node's extra flags and a maker
// of client transports that verify the nodes and send the token.
func secure(dir string, ids []string) (map[string][]string, func() *http.Client, error) {
	ca, err := nodetls.NewCA(perfDeployment, time.Hour)
	if err != nil {
		return nil, nil, err
	}
	tokens := filepath.Join(dir, "tokens")
	secret, err := auth.WriteTokenFile(tokens, auth.Token{Name: "bench", Role: auth.RoleWrite})
	if err != nil {
		return nil, nil, err
	}
	flags := map[string][]string{}
	for _, id := range ids {
		f, err := ca.IssueFiles(nodetls.Identity{Deployment: perfDeployment, Region: regionName, Node: id}, []string{"127.0.0.1"}, time.Hour, filepath.Join(dir, id+"-tls"), "node")
		if err != nil {
			return nil, nil, err
		}
		flags[id] = []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA, "--auth-token-file", tokens}
	}
	return flags, func() *http.Client {
		hc := apiClient(ca.ClientConfig())
		hc.Transport = auth.BearerTransport{Secret: secret, Next: hc.Transport}
		return hc
	}, nil
}

func meridianBinary(dir string) (string, error) {
	if bin := os.Getenv("MERIDIAN_BIN"); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "meridian")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meridiandb/meridian/cmd/meridian").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build meridian: %v\n%s", err, out)
	}
	return bin, nil
}

// startRegionCluster starts the region, with TLS and tokens if secured.
func startRegionCluster(secured bool) (*regionCluster, error) {
	dir, err := os.MkdirTemp("", "meridian-perf-region-")
	if err != nil {
		return nil, err
	}
	c := &regionCluster{dir: dir, scheme: "http", newHTTP: func() *http.Client { return apiClient(nil) }}
	bin, err := meridianBinary(dir)
	if err != nil {
		c.close()
		return nil, err
	}
	c.bin = bin
	type addrs struct{ id, raft, api string }
	var nodes []addrs
	var peers []string
	for i := range 3 {
		raftAddr, err := freeAddr()
		if err != nil {
			c.close()
			return nil, err
		}
		apiAddr, err := freeAddr()
		if err != nil {
			c.close()
			return nil, err
		}
		id := fmt.Sprintf("n%d", i+1)
		nodes = append(nodes, addrs{id, raftAddr, apiAddr})
		peers = append(peers, id+"="+raftAddr+"="+apiAddr)
	}
	extra := map[string][]string{}
	if secured {
		var ids []string
		for _, n := range nodes {
			ids = append(ids, n.id)
		}
		if extra, c.newHTTP, err = secure(dir, ids); err != nil {
			c.close()
			return nil, err
		}
		c.scheme = "https"
	}
	for _, n := range nodes {
		cmd := exec.Command(bin, append([]string{"server",
			"--region", regionName,
			"--node-id", n.id,
			"--data-dir", filepath.Join(dir, n.id),
			"--api-addr", n.api,
			"--raft-addr", n.raft,
			"--peers", strings.Join(peers, ","),
			"--bootstrap",
		}, extra[n.id]...)...)
		logf, err := os.Create(filepath.Join(dir, n.id+".log"))
		if err != nil {
			c.close()
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			c.close()
			return nil, err
		}
		p := &regionProc{id: n.id, api: n.api, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
		c.procs = append(c.procs, p)
	}
	if err := c.waitLeader(startupTimout); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *regionCluster) waitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range c.procs {
			cl := meridianv1connect.NewEventStoreClient(c.newHTTP(), c.scheme+"://"+p.api)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cl.Status(ctx, connect.NewRequest(&meridianv1.StatusRequest{}))
			cancel()
			if err != nil {
				last = err
				continue
			}
			if st.Msg.GetIsLeader() {
				c.leader = p.api
				for range connsMax {
					c.clients = append(c.clients, meridianv1connect.NewEventStoreClient(c.newHTTP(), c.scheme+"://"+p.api))
				}
				for _, f := range c.procs {
					if f.api != p.api {
						c.follow = meridianv1connect.NewEventStoreClient(c.newHTTP(), c.scheme+"://"+f.api)
						break
					}
				}
				// The leader is elected; one append proves it commits.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := c.clients[0].Append(ctx, connect.NewRequest(appendReq("warmup", 1)))
				return err
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no leader among %d meridian servers within %s (last error: %v; logs in %s)", len(c.procs), timeout, last, c.dir)
}

// serverCPU is the CPU time all of the region's server processes have used
// so far (issue 14: CPU per appended event, every process together).
func (c *regionCluster) serverCPU(tb testing.TB) time.Duration {
	var total time.Duration
	for _, p := range c.procs {
		d, err := procCPU(p.cmd.Process.Pid)
		require.NoError(tb, err)
		total += d
	}
	return total
}

// leaderAppliedIndex is the Raft index of the last entry the leader's state
// machine applied.
func (c *regionCluster) leaderAppliedIndex(tb testing.TB) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.clients[0].Status(ctx, connect.NewRequest(&meridianv1.StatusRequest{}))
	require.NoError(tb, err)
	return st.Msg.GetAppliedIndex()
}

func appendReq(entity string, events int) *meridianv1.AppendRequest {
	req := &meridianv1.AppendRequest{Entity: entity}
	for range events {
		req.Events = append(req.Events, &meridianv1.ProposedEvent{
			Id:   uuid.Must(uuid.NewV7()).String(),
			Type: "BenchEvent",
			Data: make([]byte, eventBytes),
		})
	}
	return req
}

func (c *regionCluster) close() {
	for _, p := range c.procs {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	for _, p := range c.procs {
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.RemoveAll(c.dir)
}

var (
	regionOnce, secureOnce sync.Once
	region, secureRegion   *regionCluster
	regionErr, secureErr   error
)

func sharedRegion(tb testing.TB) *regionCluster {
	regionOnce.Do(func() {
		region, regionErr = startRegionCluster(false)
		if regionErr == nil {
			cleanups = append(cleanups, region.close)
		}
	})
	require.NoError(tb, regionErr)
	return region
}

// sharedSecureRegion is sharedRegion with TLS on every port and tokens.
func sharedSecureRegion(tb testing.TB) *regionCluster {
	secureOnce.Do(func() {
		secureRegion, secureErr = startRegionCluster(true)
		if secureErr == nil {
			cleanups = append(cleanups, secureRegion.close)
		}
	})
	require.NoError(tb, secureErr)
	return secureRegion
}

// BenchmarkRegionAppend: 1 KiB events, one event per append, one stream per
// client (no version contention), sent to the leader over Connect.
func BenchmarkRegionAppend(b *testing.B) { benchRegionAppend(b, sharedRegion, []int{1, 64, 256}) }

// BenchmarkRegionAppendTLS is BenchmarkRegionAppend against a region with
// TLS on every port (client to leader and between the nodes) and bearer
// tokens (issue 16: TLS may cost at most 15 %). Run both in one command to
// compare: -bench 'RegionAppend(TLS)?/clients=(1|64)$'.
func BenchmarkRegionAppendTLS(b *testing.B) { benchRegionAppend(b, sharedSecureRegion, []int{1, 64}) }

func benchRegionAppend(b *testing.B, shared func(testing.TB) *regionCluster, clientCounts []int) {
	for _, clients := range clientCounts {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := shared(b)
			before := c.leaderAppliedIndex(b)
			cpu0 := c.serverCPU(b)
			runLoad(b, clients, func(ctx context.Context, client, _ int) error {
				cl := c.clients[client%len(c.clients)]
				_, err := cl.Append(ctx, connect.NewRequest(appendReq(fmt.Sprintf("bench-%d", client), 1)))
				return err
			})
			// CPU of the three server processes per appended event (the
			// clients' own CPU is not in it; 10 ms resolution).
			b.ReportMetric(float64((c.serverCPU(b)-cpu0).Microseconds())/float64(b.N), "server-cpu-us/event")
			// How well group commit works: appends per Raft entry.
			if entries := c.leaderAppliedIndex(b) - before; entries > 0 {
				b.ReportMetric(float64(b.N)/float64(entries), "appends/entry")
			}
		})
	}
}

// BenchmarkRegionReadLast10 reads the last 10 events of a 100-event stream
// from a follower, served locally (EVENTUAL), over the API.
func BenchmarkRegionReadLast10(b *testing.B) {
	c := sharedRegion(b)
	read := c.followerLast10Reader(b, "bench-read")
	// The load generator's own garbage collector shows in the tail: this
	// process's heap is small, so at Go's default GOGC=100 it collects every
	// few hundred reads, and a read that overlaps a collection on 2 cores
	// waits for it. clientGOGC=100 is the plain client (the target is judged
	// on it); clientGOGC=400 is the same reads with this process collecting a
	// quarter as often, which leaves in the tail what the servers cause.
	for _, gogc := range []int{100, 400} {
		b.Run(fmt.Sprintf("clientGOGC=%d", gogc), func(b *testing.B) {
			defer debug.SetGCPercent(debug.SetGCPercent(gogc))
			runLoad(b, 1, read)
		})
	}
}

// followerLast10Reader appends a 100-event stream to entity, waits until
// the follower serves it, and returns the benchmarks' read: its last 10
// events from the follower, EVENTUAL (served locally).
func (c *regionCluster) followerLast10Reader(b *testing.B, entity string) func(ctx context.Context, _, _ int) error {
	ctx := context.Background()
	if _, err := c.clients[0].Append(ctx, connect.NewRequest(appendReq(entity, 100))); err != nil {
		b.Fatal(err)
	}
	req := &meridianv1.ReadRequest{
		Entity: entity, MaxCount: 10,
		Direction:   meridianv1.Direction_DIRECTION_BACKWARD,
		Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
	}
	read := func(ctx context.Context, _, _ int) error {
		resp, err := c.follow.Read(ctx, connect.NewRequest(req))
		if err == nil && len(resp.Msg.GetEvents()) != 10 {
			err = errors.New("read returned fewer than 10 events")
		}
		return err
	}
	require.Eventually(b, func() bool { return read(ctx, 0, 0) == nil }, 10*time.Second, 10*time.Millisecond,
		"the follower should serve %s", entity)
	return read
}

// BenchmarkRegionReadLast10UnderWrites is issue 14's read figure: the same
// follower read as BenchmarkRegionReadLast10 (last 10 of a 100-event
// stream, EVENTUAL, served locally, one reader) while 64 writers append
// 1 KiB events to the leader as fast as they can. The writers run either as
// goroutines of this process (writers=goroutines: the reader also waits
// for them on this process's 2 Ps) or as a separate `meridian bench`
// process (writers=process: what a reader meets when the writers are other
// clients). Each reports the writers' rate beside the reads' latency, so a
// run that starved the writers shows.
func BenchmarkRegionReadLast10UnderWrites(b *testing.B) {
	const writers = 64
	c := sharedRegion(b)
	ctx := context.Background()
	read := c.followerLast10Reader(b, "bench-read-under-writes")

	b.Run("writers=goroutines", func(b *testing.B) {
		wctx, stop := context.WithCancel(ctx)
		var (
			appended atomic.Int64
			failed   atomic.Int64
			wg       sync.WaitGroup
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := c.clients[w%len(c.clients)]
				for wctx.Err() == nil {
					_, err := cl.Append(wctx, connect.NewRequest(appendReq(fmt.Sprintf("bench-writer-%d", w), 1)))
					switch {
					case err == nil:
						appended.Add(1)
					case wctx.Err() == nil:
						failed.Add(1)
					}
				}
			}()
		}
		time.Sleep(time.Second) // let the writers reach their steady rate
		a0, t0 := appended.Load(), time.Now()
		runLoad(b, 1, read)
		rate := float64(appended.Load()-a0) / time.Since(t0).Seconds()
		stop()
		wg.Wait()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d appends failed while the reads ran", n)
		}
		b.ReportMetric(rate, "writer-appends/s")
	})

	b.Run("writers=process", func(b *testing.B) {
		p := startBench(b, c, writers, 0, "bench-proc-writer-", 30*time.Minute)
		time.Sleep(time.Second)
		runLoad(b, 1, read)
		p.stop(b)
		require.Zero(b, p.appendsFail, "appends failed while the reads ran")
		require.Greater(b, p.appendsOK, int64(0), "the writers appended nothing")
		b.ReportMetric(p.appendsPerS, "writer-appends/s")
	})
}
