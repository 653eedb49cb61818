package placement

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/network"
)

// Network opens every connection (internal/network; region.Network is the
// same type, so node/ passes one value to all).
type Network = network.Network

// TCP is the production Network: plain TCP.
var TCP = network.TCP

// Config configures one node's member of the placement group. Start from
// DefaultConfig.
type Config struct {
	// Region is the node's region (causal.ValidateRegion rules).
	Region string
	// NodeID is the node's id within its region; the member's Raft server
	// id is "<Region>/<NodeID>".
	NodeID string
	// DataDir holds the placement log (raftlog/), snapshots (snapshots/) and
	// the table (state/). Created if missing.
	DataDir string
	// RaftAddr is where the placement Raft transport listens (host:port).
	RaftAddr string
	// RaftAdvertise is the address other members dial; empty means the
	// listener's address.
	RaftAdvertise string
	// APIAdvertise is this node's Connect API address (host:port), recorded
	// in the member directory: other members call Join, MemberStats and
	// changes through it, and routing sends writes of entities homed in
	// this region to it. Required.
	APIAdvertise string
	// Bootstrap forms a new placement group with this node as its only
	// voter when the node has no placement state yet. Exactly one node of a
	// new deployment sets it; the others join through Seeds.
	Bootstrap bool
	// Seeds are API addresses (host:port) of nodes already in the group, to
	// join through when this node is not yet a member. Members found in the
	// local table are tried too, so Seeds matter only on first start.
	Seeds []string
	// VotersPerRegion is how many voters each region keeps in the group: 1
	// or 3. 1 (default): the group's majority spans regions, and one node
	// of every region suffices to keep a region's vote.
	VotersPerRegion int
	// Network opens every connection; nil means TCP.
	Network Network
	// Logger receives the member's and Raft's logs; nil discards them.
	Logger *slog.Logger

	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout are the placement group's Raft timers. The group spans
	// regions, so they are WAN-sized: 2s/2s/1s/100ms tolerate round trips
	// of several hundred milliseconds without spurious elections.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold (entries) and SnapshotInterval: the table changes
	// rarely; 1024 entries / 2 min keep the log short.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs stay after a snapshot for briefly absent members. 1024.
	TrailingLogs uint64
	// SnapshotsRetained is how many snapshots stay on disk. 2.
	SnapshotsRetained int

	// ApplyTimeout bounds a change waiting to enter the leader's Raft queue
	// and commit. 10s: a WAN commit plus an election.
	ApplyTimeout time.Duration
	// CallTimeout bounds one call to another member (join, stats, probe,
	// forwarded change) whose caller set no deadline. 5s.
	CallTimeout time.Duration
	// JoinInterval is how often the member re-asks the leader to keep it in
	// the group (a no-op when it is already in): a node removed while it
	// was down or cut off rejoins within it. 5s.
	JoinInterval time.Duration
	// StatsInterval is how often the leader fetches every member's Raft
	// stats and reconciles voters (raft-autopilot's update and reconcile
	// intervals). 1s.
	StatsInterval time.Duration
	// LastContactThreshold: a member that has not heard from the leader for
	// longer is unhealthy (not promoted; replaced if a voter). 5s.
	LastContactThreshold time.Duration
	// StabilizationTime is how long a member must be healthy before it is
	// promoted to voter. 5s: longer than a restart's first heartbeats.
	StabilizationTime time.Duration
	// FailedAfter is how long a member's stats must fail before it counts
	// as failed: a failed voter is removed once its region has enough
	// healthy voters again, a failed non-voter is removed (it rejoins when
	// it returns). 10s.
	FailedAfter time.Duration
	// EpochWaitMax bounds how long a lookup waits for the local copy to
	// reach an epoch a routed request carries. 2s.
	EpochWaitMax time.Duration
	// ProbeInterval is how often the member checks that it reaches each
	// other region (ListRegions' reachable). 2s.
	ProbeInterval time.Duration
	// TransitionTimeout bounds a placement change that moves homes: the
	// leader aborts one that has not completed (every old home frozen,
	// every new home drained) this long after it saw it staged. Writes to
	// the moved entities wait meanwhile, so it is a bound on that pause
	// too. 30s: a WAN drain of a busy home's backlog.
	TransitionTimeout time.Duration
	// MaxClockOffset is the most the monotonic clocks of two nodes may
	// disagree about an interval of one lease duration (rate drift), and
	// the most a region leader's wall clock may be off the placement
	// leader's before it fences itself (region.Config.ClockOffsetMax must
	// not exceed it). A region's lease counts as expired here only its
	// duration plus this after this member applied the renewal. 500ms.
	MaxClockOffset time.Duration
}

// Limits of Config.
const (
	votersPerRegionMax = 3
	timerMin           = time.Millisecond
)

// DefaultConfig returns a Config with every tunable set; the caller fills
// in Region, NodeID, DataDir, RaftAddr, APIAdvertise and Bootstrap or Seeds.
func DefaultConfig() Config {
	return Config{
		Network:              TCP,
		VotersPerRegion:      1,
		HeartbeatTimeout:     2 * time.Second,
		ElectionTimeout:      2 * time.Second,
		LeaderLeaseTimeout:   time.Second,
		CommitTimeout:        100 * time.Millisecond,
		SnapshotThreshold:    1024,
		SnapshotInterval:     2 * time.Minute,
		TrailingLogs:         1024,
		SnapshotsRetained:    2,
		ApplyTimeout:         10 * time.Second,
		CallTimeout:          5 * time.Second,
		JoinInterval:         5 * time.Second,
		StatsInterval:        time.Second,
		LastContactThreshold: 5 * time.Second,
		StabilizationTime:    5 * time.Second,
		FailedAfter:          10 * time.Second,
		EpochWaitMax:         2 * time.Second,
		ProbeInterval:        2 * time.Second,
		TransitionTimeout:    30 * time.Second,
		MaxClockOffset:       500 * time.Millisecond,
	}
}

// ServerID is the placement Raft server id of a region's node.
func ServerID(region, node string) string { return region + "/" + node }

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	if err := causal.ValidateRegion(c.Region); err != nil {
		return bad("Region", "%v", err)
	}
	switch {
	case c.NodeID == "":
		return bad("NodeID", "must not be empty")
	case c.DataDir == "":
		return bad("DataDir", "must not be empty")
	case c.RaftAddr == "":
		return bad("RaftAddr", "must not be empty")
	case c.VotersPerRegion < 1 || c.VotersPerRegion > votersPerRegionMax || c.VotersPerRegion == 2:
		return bad("VotersPerRegion", "must be 1 or 3, got %d", c.VotersPerRegion)
	}
	if err := validHostPort(c.APIAdvertise); err != nil {
		return bad("APIAdvertise", "%v", err)
	}
	for i, s := range c.Seeds {
		if err := validHostPort(s); err != nil {
			return bad(fmt.Sprintf("Seeds[%d]", i), "%v", err)
		}
	}
	for name, d := range map[string]time.Duration{
		"HeartbeatTimeout": c.HeartbeatTimeout, "ElectionTimeout": c.ElectionTimeout,
		"LeaderLeaseTimeout": c.LeaderLeaseTimeout, "CommitTimeout": c.CommitTimeout,
		"SnapshotInterval": c.SnapshotInterval, "ApplyTimeout": c.ApplyTimeout,
		"CallTimeout": c.CallTimeout, "JoinInterval": c.JoinInterval, "StatsInterval": c.StatsInterval,
		"LastContactThreshold": c.LastContactThreshold, "StabilizationTime": c.StabilizationTime,
		"FailedAfter": c.FailedAfter, "EpochWaitMax": c.EpochWaitMax, "ProbeInterval": c.ProbeInterval,
		"TransitionTimeout": c.TransitionTimeout, "MaxClockOffset": c.MaxClockOffset,
	} {
		if d < timerMin {
			return bad(name, "must be at least %s, got %s", timerMin, d)
		}
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return bad("LeaderLeaseTimeout", "must not exceed HeartbeatTimeout (%s), got %s", c.HeartbeatTimeout, c.LeaderLeaseTimeout)
	}
	if c.SnapshotThreshold == 0 || c.SnapshotsRetained < 1 {
		return bad("SnapshotThreshold/SnapshotsRetained", "must be positive")
	}
	return nil
}

func validHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	if host == "" || port == "" || port == "0" {
		return fmt.Errorf("want a reachable host:port, got %q", addr)
	}
	return nil
}
