// Package h2c builds the HTTP clients Meridian's nodes use to call each
// other: HTTP/2 without TLS (prior knowledge), every connection dialled by
// the caller's function (so tests can route it through a fault network),
// and pings that detect a black-holed connection.
package h2c

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Options of a client; zero fields take the defaults below.
type Options struct {
	// IdleConnsPerHost bounds idle connections kept per peer. Default 4.
	IdleConnsPerHost int
	// PingInterval is how long a connection may be silent before it is
	// pinged; PingTimeout how long the ping may take before the connection
	// is closed. Default 2 s each: a partitioned peer is noticed in ~4 s
	// instead of when every request's deadline ends.
	PingInterval, PingTimeout time.Duration
	// IdleTimeout closes idle connections. Default 90 s.
	IdleTimeout time.Duration
}

// Defaults of Options.
const (
	idleConnsPerHostDefault = 4
	pingIntervalDefault     = 2 * time.Second
	pingTimeoutDefault      = 2 * time.Second
	idleTimeoutDefault      = 90 * time.Second
)

// NewClient returns an h2c client whose connections are made by dial.
func NewClient(dial func(ctx context.Context, addr string) (net.Conn, error), o Options) *http.Client {
	if o.IdleConnsPerHost <= 0 {
		o.IdleConnsPerHost = idleConnsPerHostDefault
	}
	if o.PingInterval <= 0 {
		o.PingInterval = pingIntervalDefault
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = pingTimeoutDefault
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = idleTimeoutDefault
	}
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols:           protocols,
		DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) },
		MaxIdleConnsPerHost: o.IdleConnsPerHost,
		IdleConnTimeout:     o.IdleTimeout,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: o.PingInterval, PingTimeout: o.PingTimeout},
	}}
}
