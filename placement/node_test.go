package placement

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func testMemberConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Region, c.NodeID, c.DataDir = "eu-west", "n1", t.TempDir()
	c.RaftAddr, c.APIAdvertise = freeAddr(t), freeAddr(t)
	c.Bootstrap = true
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	c.StatsInterval, c.JoinInterval = 50*time.Millisecond, 100*time.Millisecond
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// A bootstrapped member leads alone, records itself (its region becomes
// the default), serves changes, and leaves no goroutine behind at Close.
func TestSingleMemberBootstrapsRecordsItselfAndCloses(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testMemberConfig(t)
	n, err := Open(cfg)
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			_ = n.Close()
		}
	}()
	require.Eventually(t, func() bool {
		return n.isLeader() && len(n.FSM().Members()) == 1 && n.Lookup("any").Home == "eu-west"
	}, 20*time.Second, 10*time.Millisecond, "member did not record itself")
	m := n.FSM().Members()[0]
	assert.Equal(t, "eu-west/n1", m.GetId())
	assert.Equal(t, cfg.APIAdvertise, m.GetApiAddress())

	svc := NewService(n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pin, err := svc.Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "eu/a", Region: "eu-west"}))
	require.NoError(t, err)
	assert.Equal(t, pin.Msg.GetIndex(), pin.Msg.GetEpoch())
	again, err := svc.Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "eu/a", Region: "eu-west"}))
	require.NoError(t, err)
	assert.Equal(t, pin.Msg.GetEpoch(), again.Msg.GetEpoch(), "pinning to the same region again changes nothing")
	_, err = svc.Pin(ctx, connect.NewRequest(&meridianv1.PinRequest{Entity: "eu/a", Region: "mars"}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	info := n.Info()
	assert.Equal(t, "eu-west/n1", info.GetLeader())
	assert.Zero(t, info.GetStaleness().AsDuration(), "the leader's copy is current")
	st := n.Stats()
	assert.Equal(t, "Leader", st.GetRaftState())
	assert.GreaterOrEqual(t, st.GetLastIndex(), pin.Msg.GetIndex())

	require.NoError(t, n.Close())
	closed = true
	reopened, err := Open(cfg)
	require.NoError(t, err)
	assert.Equal(t, "eu-west", reopened.Lookup("eu/a").Home, "the table is loaded from disk at open")
	require.NoError(t, reopened.Close())
}

func TestOpenWithoutStateNeedsBootstrapOrSeeds(t *testing.T) {
	cfg := testMemberConfig(t)
	cfg.Bootstrap = false
	_, err := Open(cfg)
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.ErrorContains(t, err, "Seeds")
}
