package replication

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/network"
)

// Network opens every connection (internal/network; region.Network is the
// same type, so node/ passes one value to all).
type Network = network.Network

// TCP is the production Network: plain TCP.
var TCP = network.TCP

// Limits fixed by the protocol or by the package, not tunable.
const (
	// PullEventsMax bounds the events of one PullResponse: a request's
	// max_events of 0 means it, larger values are capped to it
	// (replication.proto).
	PullEventsMax = 256
	// pullReadBytesMax bounds one PullResponse the client accepts: a message
	// holds at most MessageBytesMax of events, or one event larger than that
	// (region's hard limit is 4 MiB of payload per event), plus the applied
	// vector. 16 MiB leaves room for both.
	pullReadBytesMax = 16 << 20
	// pullIdleConnsMax bounds idle HTTP/2 connections kept per endpoint.
	pullIdleConnsMax = 2
	// pullPingInterval and pullPingTimeout detect a black-holed connection
	// (partition, crashed peer) under a Pull stream.
	pullPingInterval = 2 * time.Second
	pullPingTimeout  = 2 * time.Second
	// timerMin is the smallest accepted duration of any Config timer.
	timerMin = time.Millisecond
)

// Config configures a Service and a Shipper. Start from DefaultConfig.
type Config struct {
	// Region is this region's name (causal.ValidateRegion rules). The
	// Service names it as source_region; the Shipper never pulls its own
	// origin nor pulls from it.
	Region string
	// Network opens every Pull connection; nil means TCP.
	Network Network
	// Logger receives the package's logs (component "replication"); nil
	// discards them.
	Logger *slog.Logger

	// HeartbeatInterval is how often a caught-up Pull stream sends an empty
	// message carrying the applied vector, so the puller learns how far the
	// source is and can tell a quiet stream from a dead one. 1s.
	HeartbeatInterval time.Duration
	// MessageBytesMax bounds the summed proto size of the events of one
	// PullResponse (a single larger event still goes alone). 4 MiB: one
	// region Raft entry's worth.
	MessageBytesMax int

	// BatchEventsMax and BatchBytesMax bound one proposal to the Applier
	// (one Raft entry). 256 events / 4 MiB, as the region's group commit.
	BatchEventsMax int
	BatchBytesMax  int
	// PendingEventsMax and PendingBytesMax bound the events a puller holds
	// that it has received but not yet seen applied. When pending is full
	// the puller stops reading its stream: HTTP/2 flow control then stops
	// the source. 4096 events / 8 MiB: 16 batches, enough to keep a Raft
	// group busy across a WAN round trip without holding much memory.
	PendingEventsMax int
	PendingBytesMax  int

	// BackoffMin and BackoffMax bound the wait (with jitter) before a
	// puller reconnects after a failed or unproductive stream; it doubles on
	// each failure in a row and resets after progress. 100ms / 10s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// CallTimeout bounds opening a stream: dialling an endpoint and
	// receiving its first message (the source answers at once). 5s: a WAN
	// handshake plus slack.
	CallTimeout time.Duration
	// StreamIdleTimeout: a stream that delivers nothing (not even a
	// heartbeat) for this long while the puller is ready to read is dead and
	// is replaced. 5s: five heartbeats.
	StreamIdleTimeout time.Duration
	// StallTimeout: when the current source has nothing more to give while
	// another region has offered more of the origin's log (or the source
	// itself says it is behind what we were offered before), the puller
	// switches source after this long without progress. A source other
	// than the origin whose own copy is staler than this (its
	// origin_staleness) is left for the origin after this long too. 5s.
	StallTimeout time.Duration
	// OriginRetryInterval: a puller caught up with a region other than the
	// origin goes back to the origin after this long (found by the
	// isolated-region test: after a heal nobody else offered the events the
	// origin wrote while cut off). 10s.
	OriginRetryInterval time.Duration
	// DepsPollInterval bounds the wait of a puller whose next event depends
	// on another origin not yet applied; it also wakes on every apply. 100ms.
	DepsPollInterval time.Duration
	// DirectoryRefresh is how often the leader re-reads the region list
	// (regions join over time). 10s.
	DirectoryRefresh time.Duration

	// Knobs are testing hooks; nil in production.
	Knobs *TestingKnobs
}

// DefaultConfig returns a Config with every tunable set; the caller fills
// in Region and, outside production, Network and Logger.
func DefaultConfig() Config {
	return Config{
		Network:             TCP,
		HeartbeatInterval:   time.Second,
		MessageBytesMax:     4 << 20,
		BatchEventsMax:      256,
		BatchBytesMax:       4 << 20,
		PendingEventsMax:    4096,
		PendingBytesMax:     8 << 20,
		BackoffMin:          100 * time.Millisecond,
		BackoffMax:          10 * time.Second,
		CallTimeout:         5 * time.Second,
		StreamIdleTimeout:   5 * time.Second,
		StallTimeout:        5 * time.Second,
		DepsPollInterval:    100 * time.Millisecond,
		DirectoryRefresh:    10 * time.Second,
		OriginRetryInterval: 10 * time.Second,
	}
}

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	if err := causal.ValidateRegion(c.Region); err != nil {
		return bad("Region", "%v", err)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"HeartbeatInterval", c.HeartbeatInterval}, {"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax},
		{"CallTimeout", c.CallTimeout}, {"StreamIdleTimeout", c.StreamIdleTimeout}, {"StallTimeout", c.StallTimeout},
		{"DepsPollInterval", c.DepsPollInterval}, {"DirectoryRefresh", c.DirectoryRefresh},
		{"OriginRetryInterval", c.OriginRetryInterval},
	} {
		if f.d < timerMin {
			return bad(f.name, "must be at least %s, got %s", timerMin, f.d)
		}
	}
	for _, f := range []struct {
		name string
		n    int
	}{
		{"MessageBytesMax", c.MessageBytesMax}, {"BatchEventsMax", c.BatchEventsMax}, {"BatchBytesMax", c.BatchBytesMax},
		{"PendingEventsMax", c.PendingEventsMax}, {"PendingBytesMax", c.PendingBytesMax},
	} {
		if f.n < 1 {
			return bad(f.name, "must be positive, got %d", f.n)
		}
	}
	switch {
	case c.BackoffMax < c.BackoffMin:
		return bad("BackoffMax", "must be at least BackoffMin (%s), got %s", c.BackoffMin, c.BackoffMax)
	case c.StreamIdleTimeout <= c.HeartbeatInterval:
		return bad("StreamIdleTimeout", "must exceed HeartbeatInterval (%s), got %s", c.HeartbeatInterval, c.StreamIdleTimeout)
	case c.MessageBytesMax > pullReadBytesMax/2:
		return bad("MessageBytesMax", "must be at most %d, got %d", pullReadBytesMax/2, c.MessageBytesMax)
	case c.BatchEventsMax > PullEventsMax:
		return bad("BatchEventsMax", "must be at most %d, got %d", PullEventsMax, c.BatchEventsMax)
	case c.PendingEventsMax < c.BatchEventsMax:
		// The puller asks for messages of at most BatchEventsMax events, and
		// always has room for one when pending is empty.
		return bad("PendingEventsMax", "must be at least BatchEventsMax (%d), got %d", c.BatchEventsMax, c.PendingEventsMax)
	case c.PendingBytesMax < c.MessageBytesMax:
		return bad("PendingBytesMax", "must be at least MessageBytesMax (%d), got %d", c.MessageBytesMax, c.PendingBytesMax)
	}
	return nil
}

// withDefaults fills the nil Network and Logger.
func (c Config) withDefaults() Config {
	if c.Network == nil {
		c.Network = TCP
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
