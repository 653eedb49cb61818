// Package raftnet adapts an internal/network Network to hashicorp/raft's
// StreamLayer, so that the region and placement groups' Raft transports dial
// and accept through the node's Network. It is apart from internal/network so
// that packages which need only the Network (replication) do not depend on
// hashicorp/raft.
package raftnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/meridiandb/meridian/internal/network"
)

// ErrBadAdvertise: an advertise address that does not resolve.
var ErrBadAdvertise = errors.New("raftnet: bad advertise address")

// Redial pacing: a dial that fails is tried again after redialMin, then
// after twice the previous wait, up to redialMax.
const (
	redialMin = 10 * time.Millisecond
	redialMax = 200 * time.Millisecond
)

// StreamLayer adapts a Network listener to hashicorp/raft's StreamLayer, so
// that a Raft transport's dials and accepts both go through the Network.
//
// A dial waits for the peer: one that fails (the peer's process is down
// and the connection is refused, or a partition refuses it) is tried again
// until the transport's timeout runs out, as a dial into a network that
// drops packets would wait anyway. Why: hashicorp/raft v1.8.0 backs off
// its replication to a follower after each failed RPC, doubling the wait
// up to 10.24 s, and nothing cuts a wait short once the follower is back.
// Refused dials fail in microseconds, so a follower down for 5 s piled up
// a dozen failures and then got no entries for up to 10 s after it
// returned: a region whose placement copy stayed behind that long could
// not renew its home lease (tests/multiregion TestFencedHomesNemesis). With
// dials that wait, an outage of a few seconds costs one or two failures,
// and the follower hears from the leader within redialMax of coming back.
// StopDialing ends the waits at once: call it before Raft.Shutdown, which
// waits for every goroutine that may be dialling.
type StreamLayer struct {
	net.Listener
	network   network.Network
	advertise net.Addr
	stopCtx   context.Context
	stop      context.CancelFunc
}

// NewStreamLayer listens on bind through n; advertise (empty: the
// listener's address) is the address other members dial, which Raft
// stores in its configuration.
func NewStreamLayer(n network.Network, bind, advertise string) (*StreamLayer, error) {
	ln, err := n.Listen(bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen on %s: %w", bind, err)
	}
	s := &StreamLayer{Listener: ln, network: n, advertise: ln.Addr()}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("%w: raft advertise address %q: %v", ErrBadAdvertise, advertise, err)
		}
		s.advertise = a
	}
	return s, nil
}

// Dial implements raft.StreamLayer: it tries until a dial succeeds, timeout
// runs out, or StopDialing is called, and then returns the last error.
func (s *StreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.stopCtx, timeout)
	defer cancel()
	wait := redialMin
	for {
		conn, err := s.network.Dial(ctx, string(addr))
		if err == nil {
			return conn, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, redialMax)
	}
}

// StopDialing makes every dial in progress, and every later one, give up
// at its next failure. Close calls it too.
func (s *StreamLayer) StopDialing() { s.stop() }

// Close implements net.Listener: it stops dialling and closes the listener.
func (s *StreamLayer) Close() error {
	s.stop()
	return s.Listener.Close()
}

// Addr implements net.Listener with the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Transport is hashicorp/raft's NetworkTransport with pipelined
// replication turned off: AppendEntriesPipeline reports it unsupported, so
// the leader replicates to each follower one AppendEntries at a time
// (every entry Raft has gathered meanwhile rides in the next one). The
// other methods, the optional interfaces Raft looks for among them
// (WithPreVote, WithClose), are the NetworkTransport's.
//
// Why: in hashicorp/raft v1.8.0 a pipeline can deadlock. When a follower
// answers an AppendEntries with Success=false (a log mismatch after a
// leader change or a partition) the pipeline's decoder goroutine returns,
// and nothing reads the pipeline's consumer channel any more. The send loop
// may still send once more; the transport's decoder then blocks handing
// that response to the channel nobody reads, the send blocks behind it,
// and the pipeline is never closed. The leader keeps sending heartbeats,
// so no election heals it, but that follower gets no entry again until
// the leader restarts, and Raft.Shutdown waits forever for the send. The
// nemesis suite (tests/cluster) hit it: Node.Close hung for 18 minutes in
// raft's shutdown with the replication goroutine parked in
// netPipeline.AppendEntries. Measured cost of turning it off:
// docs/PERFORMANCE.md (ADR 0009).
type Transport struct {
	*raft.NetworkTransport
}

// NewTransport builds a Transport from cfg.
func NewTransport(cfg *raft.NetworkTransportConfig) *Transport {
	return &Transport{NetworkTransport: raft.NewNetworkTransportWithConfig(cfg)}
}

// AppendEntriesPipeline implements raft.Transport: pipelining is off.
func (*Transport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
