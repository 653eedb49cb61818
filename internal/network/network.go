// Package network is the one definition of how a Meridian node opens
// connections: every listener and dial of the region group, the placement
// group, replication and the API goes through a Network, so that tests can
// give each node a fault-injecting one (tests/faultnet) without root.
// region, placement and replication alias it; node/ passes one value to all.
package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// Network opens every connection of a node.
type Network interface {
	// Listen opens a listener on addr (host:port; port 0 picks one).
	Listen(addr string) (net.Listener, error)
	// Dial connects to addr, honouring ctx's deadline and cancellation.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCP is the production Network: plain TCP.
var TCP Network = tcpNetwork{}

type tcpNetwork struct{}

func (tcpNetwork) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

func (tcpNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// ErrBadAdvertise: an advertise address that does not resolve.
var ErrBadAdvertise = errors.New("network: bad advertise address")

// StreamLayer adapts a Network listener to hashicorp/raft's StreamLayer, so
// that a Raft transport's dials and accepts both go through the Network.
type StreamLayer struct {
	net.Listener
	network   Network
	advertise net.Addr
}

// NewStreamLayer listens on bind through n; advertise (empty: the
// listener's address) is the address other members dial, which Raft
// stores in its configuration.
func NewStreamLayer(n Network, bind, advertise string) (*StreamLayer, error) {
	ln, err := n.Listen(bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen on %s: %w", bind, err)
	}
	s := &StreamLayer{Listener: ln, network: n, advertise: ln.Addr()}
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

// Dial implements raft.StreamLayer.
func (s *StreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.network.Dial(ctx, string(addr))
}

// Addr implements net.Listener with the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }
