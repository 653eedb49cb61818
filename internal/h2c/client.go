// Package h2c builds the HTTP clients Meridian's nodes and SDK use to call a
// node: every connection dialled by the caller's function (so tests can
// route it through a fault network), streams and gRPC over HTTP/2 without
// TLS (prior knowledge) with pings that detect a black-holed connection,
// and Connect unary calls either the same way (nodes calling nodes) or over
// HTTP/1.1 keep-alive connections (the SDK: Options.UnaryOverHTTP1).
// https:// URLs take TLS (Options.TLS) with the same split, HTTP/2
// negotiated by ALPN; nodes keep http:// URLs and put mutual TLS under
// them in the dial function (internal/nodetls).
//
// Why HTTP/1.1 for the SDK's unary calls: Go's HTTP/2 stack hands every
// call between several goroutines on each side (the caller, the
// connection's read loop, the server's frame reader, serve loop and one
// handler goroutine per stream, plus a writer goroutine per large frame),
// while HTTP/1.1 serves a call on the connection's own goroutine. On 2
// cores, 64 concurrent in-process callers took 73-92 us per call against
// 176-194 us over h2c alone (BenchmarkUnaryTransport; ADR 0003 and
// docs/PERFORMANCE.md). Streams need HTTP/2: Connect's client and bidi
// streams, gRPC, and one connection carrying many long-lived Pull streams
// with pings.
//
// Why not for nodes: HTTP/1.1 has no pings, so a call on a connection that
// a partition black-holed waits for its own deadline, where an HTTP/2 ping
// closes the connection and fails its calls in about 4 s. A node forwarding
// an append to a leader that went silent should hear so quickly; the SDK
// already bounds every attempt (RetryPolicy.AttemptTimeout) and tries the
// next endpoint.
package h2c

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Options of a client; zero fields take the defaults below.
type Options struct {
	// UnaryOverHTTP1 sends Connect unary calls over HTTP/1.1 keep-alive
	// connections (see the package doc); false sends everything over h2c.
	UnaryOverHTTP1 bool
	// IdleConnsPerHost bounds idle HTTP/2 connections kept per peer. Default 4.
	IdleConnsPerHost int
	// UnaryConnsPerHost (with UnaryOverHTTP1) bounds the HTTP/1.1
	// connections to one peer, so the unary calls in flight to it; a call
	// beyond waits for a connection.
	// Default 512: more concurrent calls than a node usually serves from one
	// caller, few enough file descriptors.
	UnaryConnsPerHost int
	// UnaryIdleConnsPerHost bounds the HTTP/1.1 connections kept open idle
	// per peer between bursts (each costs a file descriptor and, on the
	// server, a goroutine). Default 128: a burst of up to 128 concurrent
	// calls reuses its connections instead of dialling again.
	UnaryIdleConnsPerHost int
	// PingInterval is how long an HTTP/2 connection may be silent before it
	// is pinged; PingTimeout how long the ping may take before the
	// connection is closed. Default 2 s each: a partitioned peer is noticed
	// in ~4 s instead of when every stream's deadline ends. Unary calls have
	// no pings: each is bounded by its own deadline.
	PingInterval, PingTimeout time.Duration
	// IdleTimeout closes idle connections. Default 90 s.
	IdleTimeout time.Duration
	// TLS configures https:// URLs: HTTP/2 negotiated by ALPN for streams,
	// HTTP/1.1 for unary calls with UnaryOverHTTP1. Nil: the standard
	// library's defaults (system roots). http:// URLs stay plaintext at
	// this layer; nodes put mutual TLS under them in the dial function
	// (internal/nodetls), which the server sees as TLS with ALPN h2.
	TLS *tls.Config
}

// Defaults of Options.
const (
	idleConnsPerHostDefault      = 4
	unaryConnsPerHostDefault     = 512
	unaryIdleConnsPerHostDefault = 128
	pingIntervalDefault          = 2 * time.Second
	pingTimeoutDefault           = 2 * time.Second
	idleTimeoutDefault           = 90 * time.Second
)

// NewClient returns a client whose connections are made by dial: everything
// over h2c, or with o.UnaryOverHTTP1 Connect unary calls over HTTP/1.1 and
// everything else over h2c (see the package doc).
func NewClient(dial func(ctx context.Context, addr string) (net.Conn, error), o Options) *http.Client {
	if o.IdleConnsPerHost <= 0 {
		o.IdleConnsPerHost = idleConnsPerHostDefault
	}
	if o.UnaryConnsPerHost <= 0 {
		o.UnaryConnsPerHost = unaryConnsPerHostDefault
	}
	if o.UnaryIdleConnsPerHost <= 0 {
		o.UnaryIdleConnsPerHost = unaryIdleConnsPerHostDefault
	}
	o.UnaryIdleConnsPerHost = min(o.UnaryIdleConnsPerHost, o.UnaryConnsPerHost)
	if o.PingInterval <= 0 {
		o.PingInterval = pingIntervalDefault
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = pingTimeoutDefault
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = idleTimeoutDefault
	}
	dialContext := func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) }
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	h2 := new(http.Protocols)
	h2.SetUnencryptedHTTP2(true)
	h2.SetHTTP2(true)
	stream := &http.Transport{
		Protocols:           h2,
		TLSClientConfig:     o.TLS,
		DialContext:         dialContext,
		MaxIdleConnsPerHost: o.IdleConnsPerHost,
		IdleConnTimeout:     o.IdleTimeout,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: o.PingInterval, PingTimeout: o.PingTimeout},
	}
	if !o.UnaryOverHTTP1 {
		return &http.Client{Transport: stream}
	}
	return &http.Client{Transport: &Transport{
		Unary: &http.Transport{
			Protocols:           h1,
			TLSClientConfig:     o.TLS,
			DialContext:         dialContext,
			MaxConnsPerHost:     o.UnaryConnsPerHost,
			MaxIdleConnsPerHost: o.UnaryIdleConnsPerHost,
			IdleConnTimeout:     o.IdleTimeout,
		},
		Stream: stream,
	}}
}

// Transport sends Connect unary calls through Unary and every other request
// through Stream.
type Transport struct {
	Unary, Stream http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !IsConnectUnary(r) {
		return t.Stream.RoundTrip(r)
	}
	r, err := inMemoryBody(r)
	if err != nil {
		return nil, err
	}
	return t.Unary.RoundTrip(r)
}

// unaryBodyInMemoryMax bounds the request bodies inMemoryBody copies.
const unaryBodyInMemoryMax = 64 << 10

// inMemoryBody returns r with its body (of known length, at most
// unaryBodyInMemoryMax bytes) read into a bytes.Reader. net/http flushes a
// request's headers on their own before copying a body of a type it does
// not know to be in memory (Connect's unary payloads are such a type), so
// every call took two writes on the client and usually two reads on the
// server; with the body in memory, headers and body leave in one write.
// The caller's request is not modified: r is copied.
func inMemoryBody(r *http.Request) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength <= 0 || r.ContentLength > unaryBodyInMemoryMax {
		return r, nil
	}
	buf := make([]byte, r.ContentLength)
	_, err := io.ReadFull(r.Body, buf)
	closeErr := r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("h2c: read request body of %d bytes: %w", r.ContentLength, err)
	}
	if closeErr != nil {
		return nil, fmt.Errorf("h2c: close request body: %w", closeErr)
	}
	c := *r
	c.Body = io.NopCloser(bytes.NewReader(buf))
	c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return &c, nil
}

// CloseIdleConnections closes the idle connections of both transports
// (http.Client.CloseIdleConnections calls it).
func (t *Transport) CloseIdleConnections() {
	for _, rt := range []http.RoundTripper{t.Unary, t.Stream} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// IsConnectUnary reports whether r is a call of the Connect protocol's
// unary form: a GET, or a POST whose Content-Type is not one of the
// streaming forms (Connect streams send application/connect+<codec>, gRPC
// and gRPC-Web application/grpc...).
func IsConnectUnary(r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return ct != "" && !strings.HasPrefix(ct, "application/connect+") && !strings.HasPrefix(ct, "application/grpc")
}
