package region

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := nodeTestConfig(t)
	cfg.NodeID, cfg.DataDir = "n1", t.TempDir()
	cfg.RaftAddr = freeLoopbackAddr(t)
	cfg.Peers = []Peer{{ID: "n1", RaftAddr: cfg.RaftAddr, APIAddr: freeLoopbackAddr(t)}}
	cfg.Bootstrap = true
	n, err := Open(cfg)
	require.NoError(t, err)
	require.Eventually(t, n.isLeader, 10*time.Second, 10*time.Millisecond)
	ctx := testContext(t, 10*time.Second)
	_, err = n.Append(ctx, appendRequest("leak-1", newTestEvent()))
	require.NoError(t, err)
	require.NoError(t, n.Close())
}

func TestWatchShutdownAnswersAbandonedApplyFutures(t *testing.T) {
	cfg := nodeTestConfig(t)
	cfg.NodeID, cfg.DataDir = "n1", t.TempDir()
	cfg.RaftAddr = freeLoopbackAddr(t)
	// Two voters, one never started: nothing commits, so the future waits.
	cfg.Peers = []Peer{{ID: "n1", RaftAddr: cfg.RaftAddr}, {ID: "n2", RaftAddr: freeLoopbackAddr(t)}}
	cfg.Bootstrap = true
	n, err := Open(cfg)
	require.NoError(t, err)
	defer n.Close()
	// A follower enqueues the entry (Raft's loop then refuses it): the
	// future is raft's logFuture, whose shutdown channel must be settable.
	f := n.raft.Apply([]byte("x"), time.Second)
	stop := make(chan struct{})
	require.True(t, watchShutdown(f, stop), "raft's apply future has no settable ShutdownCh: %T", f)
	require.True(t, watchShutdown(n.raft.Barrier(time.Second), stop))
	require.True(t, watchShutdown(n.raft.VerifyLeader(), stop))
	close(stop)
	require.Error(t, f.Error())
}
