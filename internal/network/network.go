// Package network is the one definition of how a Meridian node opens
// connections: every listener and dial of the region group, the placement
// group, replication and the API goes through a Network, so that tests can
// give each node a fault-injecting one (tests/faultnet) without root.
// region, placement and replication alias it; node/ passes one value to all.
package network

import (
	"context"
	"net"
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
