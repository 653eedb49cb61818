package raftnet

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/meridiandb/meridian/internal/network"
	"github.com/meridiandb/meridian/internal/testport"
)

// The optional interfaces hashicorp/raft looks for on a transport must
// survive the wrapper: without WithPreVote, for one, Raft silently runs
// elections without pre-vote.
var (
	_ raft.WithPreVote = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
)

func TestTransportTurnsPipeliningOff(t *testing.T) {
	stream, err := NewStreamLayer(network.TCP, "127.0.0.1:0", "")
	require.NoError(t, err)
	tr := NewTransport(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: time.Second})
	defer tr.Close()
	p, err := tr.AppendEntriesPipeline("n2", "127.0.0.1:1")
	require.Nil(t, p)
	require.ErrorIs(t, err, raft.ErrPipelineReplicationNotSupported)
	require.Equal(t, stream.Addr().String(), string(tr.LocalAddr()))
}

// flakyStore refuses every other write once armed, as a follower's disk
// can: Raft then answers the leader's AppendEntries with Success=false.
type flakyStore struct {
	*raft.InmemStore
	armed  atomic.Bool
	writes atomic.Int64
}

func (s *flakyStore) StoreLogs(logs []*raft.Log) error {
	if s.armed.Load() && s.writes.Add(1)%2 == 0 {
		return errors.New("injected store failure")
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *flakyStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots here") }
func (nopFSM) Restore(io.ReadCloser) error         { return nil }

// testConfig is Raft's configuration for a member of a test group on
// loopback: short timers, logs discarded.
func testConfig(id raft.ServerID, logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = id
	rc.HeartbeatTimeout, rc.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	rc.LeaderLeaseTimeout, rc.CommitTimeout = 150*time.Millisecond, 5*time.Millisecond
	rc.Logger = logger
	return rc
}

// leaderAndFollower waits for one of rs to lead and returns its index and
// that of another member.
func leaderAndFollower(t *testing.T, rs []*raft.Raft) (leader, follower int) {
	t.Helper()
	leader = -1
	require.Eventually(t, func() bool {
		for i, r := range rs {
			if r.State() == raft.Leader {
				leader = i
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no leader")
	return leader, (leader + 1) % len(rs)
}

// TestFollowerRejectionsDoNotStallReplicationOrShutdown is the regression
// test of the hashicorp/raft pipeline deadlock (see Transport): a follower
// whose store keeps refusing writes answers Success=false again and again
// under a steady stream of entries. Each rejection is a chance for a
// pipelined leader to park its sender for good. With Transport the follower
// must catch up once its store recovers, and every Raft must shut down.
// Over the plain NetworkTransport this test hangs in the catch-up or the
// shutdown.
func TestFollowerRejectionsDoNotStallReplicationOrShutdown(t *testing.T) {
	const nodes = 3
	logger := logadapt.HCLog(slog.New(slog.NewTextHandler(io.Discard, nil)), "raft")
	type member struct {
		store *flakyStore
		tr    *Transport
		raft  *raft.Raft
	}
	ms := make([]*member, nodes)
	var conf raft.Configuration
	for i := range ms {
		stream, err := NewStreamLayer(network.TCP, "127.0.0.1:0", "")
		require.NoError(t, err)
		tr := NewTransport(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 3, Timeout: 2 * time.Second, Logger: logger})
		ms[i] = &member{store: &flakyStore{InmemStore: raft.NewInmemStore()}, tr: tr}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint("n", i)), Address: tr.LocalAddr()})
	}
	for i, m := range ms {
		rc := testConfig(raft.ServerID(fmt.Sprint("n", i)), logger)
		snaps := raft.NewInmemSnapshotStore()
		require.NoError(t, raft.BootstrapCluster(rc, m.store, m.store, snaps, m.tr, conf))
		r, err := raft.NewRaft(rc, nopFSM{}, m.store, m.store, snaps, m.tr)
		require.NoError(t, err)
		m.raft = r
	}
	shutdown := func() {
		done := make(chan struct{})
		go func() {
			for _, m := range ms {
				_ = m.raft.Shutdown().Error()
				_ = m.tr.Close()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Raft.Shutdown did not return within 30 s: a replication goroutine is stuck")
		}
	}
	rafts := make([]*raft.Raft, len(ms))
	for i, m := range ms {
		rafts[i] = m.raft
	}
	l, f := leaderAndFollower(t, rafts)
	leader, victim := ms[l], ms[f]
	victim.store.armed.Store(true)

	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				// Commits need the leader and the healthy follower only.
				_ = leader.raft.Apply([]byte("x"), 5*time.Second).Error()
			}
		}()
	}
	wg.Wait()
	rejected := victim.store.writes.Load() / 2
	victim.store.armed.Store(false)
	// Applied entries are committed, so no later leader drops them: the
	// follower must end up holding them whoever leads by then.
	var target uint64
	for _, m := range ms {
		if m != victim {
			target = max(target, m.raft.AppliedIndex())
		}
	}
	caughtUp := func() bool {
		idx, err := victim.store.LastIndex()
		return err == nil && idx >= target
	}
	if !assert.Eventually(t, caughtUp, 20*time.Second, 10*time.Millisecond) {
		idx, _ := victim.store.LastIndex()
		shutdown()
		t.Fatalf("the follower stopped receiving entries at %d of %d after %d rejected writes", idx, target, rejected)
	}
	require.Greater(t, rejected, int64(10), "the follower rejected too few writes for the test to mean anything")
	shutdown()
}

// freeAddr returns a loopback address nothing listens on, below the
// ephemeral range so that no connection takes it meanwhile.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testport.Addr()
	require.NoError(t, err)
	return addr
}

func TestDialWaitsForThePeerToListen(t *testing.T) {
	stream, err := NewStreamLayer(network.TCP, "127.0.0.1:0", "")
	require.NoError(t, err)
	defer stream.Close()
	addr := freeAddr(t)
	listening := make(chan net.Listener, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen again on %s: %v", addr, err)
		}
		listening <- ln
	}()
	conn, err := stream.Dial(raft.ServerAddress(addr), 5*time.Second)
	ln := <-listening
	require.NotNil(t, ln)
	defer ln.Close()
	require.NoError(t, err, "a refused dial must be tried again until the timeout")
	require.NoError(t, conn.Close())
}

func TestDialGivesUpAtTheTimeoutAndOnStopDialing(t *testing.T) {
	stream, err := NewStreamLayer(network.TCP, "127.0.0.1:0", "")
	require.NoError(t, err)
	defer stream.Close()
	addr := raft.ServerAddress(freeAddr(t))

	start := time.Now()
	_, err = stream.Dial(addr, 300*time.Millisecond)
	require.Error(t, err)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "gave up before the timeout")

	done := make(chan error, 1)
	go func() {
		_, err := stream.Dial(addr, time.Minute)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	stream.StopDialing()
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("StopDialing did not end a dial waiting for its peer")
	}
	_, err = stream.Dial(addr, time.Minute)
	require.Error(t, err, "a dial after StopDialing fails at its first failure")
}

// TestFollowerCatchesUpPromptlyAfterAnOutage is the regression test of
// hashicorp/raft's replication backoff (see StreamLayer): a follower is
// down for 6 s, its address refusing connections, while the leader keeps
// committing. Once it is back it must hold everything committed before
// its return within 2 s. With dials that fail at once, the leader piled up
// a dozen failures and waited up to 10.24 s before it sent again.
func TestFollowerCatchesUpPromptlyAfterAnOutage(t *testing.T) {
	const nodes = 3
	logger := logadapt.HCLog(slog.New(slog.NewTextHandler(io.Discard, nil)), "raft")
	type member struct {
		id     raft.ServerID
		addr   string
		store  *raft.InmemStore
		snaps  raft.SnapshotStore
		stream *StreamLayer
		tr     *raft.NetworkTransport
		raft   *raft.Raft
	}
	config := func(id raft.ServerID) *raft.Config { return testConfig(id, logger) }
	listen := func(m *member) {
		stream, err := NewStreamLayer(network.TCP, m.addr, "")
		require.NoError(t, err)
		m.addr, m.stream = stream.Addr().String(), stream
		m.tr = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger})
	}
	ms := make([]*member, nodes)
	var conf raft.Configuration
	for i := range ms {
		m := &member{id: raft.ServerID(fmt.Sprint("n", i)), addr: freeAddr(t), store: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
		listen(m)
		ms[i] = m
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: m.id, Address: m.tr.LocalAddr()})
	}
	start := func(m *member) {
		r, err := raft.NewRaft(config(m.id), nopFSM{}, m.store, m.store, m.snaps, m.tr)
		require.NoError(t, err)
		m.raft = r
	}
	stop := func(m *member) {
		m.stream.StopDialing()
		require.NoError(t, m.raft.Shutdown().Error())
		require.NoError(t, m.tr.Close())
	}
	for _, m := range ms {
		require.NoError(t, raft.BootstrapCluster(config(m.id), m.store, m.store, m.snaps, m.tr, conf))
		start(m)
	}
	rafts := make([]*raft.Raft, len(ms))
	for i, m := range ms {
		rafts[i] = m.raft
	}
	l, f := leaderAndFollower(t, rafts)
	leader, victim := ms[l], ms[f]
	defer func() {
		for _, m := range ms {
			stop(m)
		}
	}()

	writing := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-writing:
				return
			default:
			}
			// Commits need the leader and the other follower only.
			_ = leader.raft.Apply([]byte("x"), 5*time.Second).Error()
			time.Sleep(5 * time.Millisecond)
		}
	})
	stop(victim)
	time.Sleep(6 * time.Second)
	listen(victim)
	target := leader.raft.AppliedIndex()
	back := time.Now()
	start(victim)
	caughtUp := func() bool {
		idx, err := victim.store.LastIndex()
		return err == nil && idx >= target
	}
	ok := assert.Eventually(t, caughtUp, 30*time.Second, 10*time.Millisecond)
	took := time.Since(back)
	close(writing)
	wg.Wait()
	require.True(t, ok, "the follower never caught up")
	t.Logf("follower caught up to index %d %s after it came back", target, took.Round(time.Millisecond))
	require.Less(t, took, 2*time.Second, "the leader kept the follower waiting after it came back")
}
