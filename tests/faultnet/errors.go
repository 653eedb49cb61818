package faultnet

import "errors"

// Sentinel errors. Every error returned by this package wraps one of them, so
// callers test with errors.Is.
var (
	// ErrPartitioned: a dial crossed a link that is cut (Block, Partition,
	// Isolate) in the dialling direction.
	ErrPartitioned = errors.New("faultnet: link partitioned")
	// ErrDialLost: a dial was dropped by the link's loss probability.
	ErrDialLost = errors.New("faultnet: dial lost")
	// ErrReset: the connection was reset by the harness (ResetConns,
	// ResetHost, per-chunk reset probability, or heal after a black hole).
	ErrReset = errors.New("faultnet: connection reset")
	// ErrNotLoopback: an address other than 127.0.0.1 / localhost was given.
	// The harness never contacts anything but loopback.
	ErrNotLoopback = errors.New("faultnet: address is not 127.0.0.1")
	// ErrUnknownAddress: something listens on the address, but not through
	// faultnet, so the harness cannot tell which host owns it.
	ErrUnknownAddress = errors.New("faultnet: address not listened on through faultnet")
	// ErrNetClosed: the Net was closed.
	ErrNetClosed = errors.New("faultnet: network closed")
)
