package region

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/meridiandb/meridian/internal/h2c"
	"github.com/meridiandb/meridian/internal/network"
)

// Network opens every connection of a node: the Raft transport's listener
// and dials, the forwarding client's dials, and (in node/) the API listener.
// Production uses TCP; tests wrap it to add latency or cut links without
// root. It is internal/network's type, shared with placement and replication.
type Network = network.Network

// TCP is the production Network: plain TCP.
var TCP = network.TCP

// dialError marks a failure to connect: nothing was sent on the connection,
// so a request that failed with it provably did not reach the peer.
type dialError struct{ err error }

func (e *dialError) Error() string { return "region: dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func isDialError(err error) bool {
	var d *dialError
	return errors.As(err, &d)
}

// newHTTPClient returns a client that speaks HTTP/2 without TLS (h2c, prior
// knowledge) and dials through network. Forwarded requests use it. A failed
// dial is a *dialError: nothing was sent.
func newHTTPClient(network Network, dialTimeout time.Duration) *http.Client {
	return h2c.NewClient(func(ctx context.Context, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		c, err := network.Dial(ctx, addr)
		if err != nil {
			return nil, &dialError{err: err}
		}
		return c, nil
	}, h2c.Options{IdleConnsPerHost: forwardIdleConnsMax, PingInterval: forwardPingInterval, PingTimeout: forwardPingTimeout})
}

// Forwarding connection limits.
const (
	// forwardIdleConnsMax bounds idle HTTP/2 connections kept per leader.
	forwardIdleConnsMax = 4
	// forwardPingInterval is how long a forwarding connection may be silent
	// before it is pinged; forwardPingTimeout is how long the ping may take
	// before the connection is closed.
	forwardPingInterval = 2 * time.Second
	forwardPingTimeout  = 2 * time.Second
)
