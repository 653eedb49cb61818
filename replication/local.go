package replication

import (
	"context"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// The interfaces below are what replication needs from the layers beside
// and below it. replication imports neither region nor placement nor node:
// node/ adapts a region.Node and the placement table to them.

// LogSource is this region's copy of every origin's log.
type LogSource interface {
	// ReadOrigin returns up to max consecutive events of origin's log
	// starting at fromSeq (fewer at the end; none past it).
	ReadOrigin(origin string, fromSeq uint64, max int) ([]*meridianv1.Event, error)
	// Applied returns a copy of the applied vector.
	Applied() map[string]uint64
	// Changed returns a channel closed after the next apply (a wake-up, not
	// a queue).
	Changed() <-chan struct{}
	// Clock returns what this region knows of origin's clock: how far it
	// applied origin's log and an HLC every later event of origin stamps
	// above (for its own log, its last HLC). Nil Hlc when unknown.
	Clock(origin string) *meridianv1.OriginClock
}

// Applier applies shipped events through this region's Raft group; only the
// region leader can.
type Applier interface {
	// Replicate proposes events (of one or several origins, in seq order per
	// origin) as one Raft entry and waits until it is applied. It returns
	// how many were newly applied. Errors: not leader (retry after
	// leadership settles), outcome unknown, ctx.
	Replicate(ctx context.Context, events []*meridianv1.Event) (int, error)
	// AdvanceClocks records other origins' clocks (as their heartbeats
	// carried them) through this region's Raft group, for the stability of
	// active-active events (ADR 0005).
	AdvanceClocks(ctx context.Context, clocks []*meridianv1.OriginClock) error
}

// Leadership says whether this node leads its region (replication runs on
// the region leader only) and when that changes.
type Leadership interface {
	IsLeader() bool
	// LeaderChanged returns a channel closed and replaced on every change.
	LeaderChanged() <-chan struct{}
}

// Directory lists the regions and their API endpoints (from the placement
// table).
type Directory interface {
	Regions() []string
	// Endpoints returns a region's API addresses (host:port), best first.
	Endpoints(region string) []string
	// Changed returns a channel closed when the region list may have
	// changed (a wake-up, not a queue): a region that joins gets a puller
	// at once instead of at the next DirectoryRefresh.
	Changed() <-chan struct{}
}
