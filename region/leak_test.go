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
