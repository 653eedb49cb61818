package region

import (
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"

	"github.com/meridiandb/meridian/causal"
)

// Peer is one member of a region's Raft group.
type Peer struct {
	// ID is the node id, unique within the region (the Raft server id).
	ID string
	// RaftAddr is the address other members dial for Raft (host:port).
	RaftAddr string
	// APIAddr is the address of the node's Connect API (host:port); followers
	// forward writes and STRONG reads to the leader's APIAddr.
	APIAddr string
}

// Config configures a region Node. Start from DefaultConfig.
type Config struct {
	// Region is the region's name (causal.ValidateRegion rules).
	Region string
	// NodeID is this node's id; it must appear in Peers when bootstrapping.
	NodeID string
	// DataDir holds the Raft log (raftlog/), snapshots (snapshots/) and the
	// Badger state (state/). Created if missing.
	DataDir string
	// RaftAddr is the address the Raft transport listens on (host:port).
	RaftAddr string
	// RaftAdvertise is the Raft address other members dial; empty means the
	// listener's address (right for tests on 127.0.0.1:0).
	RaftAdvertise string
	// APIAdvertise is this node's Connect API address, reported by Status.
	// Empty means Peers' APIAddr for NodeID.
	APIAdvertise string
	// Peers is the region's initial membership, identical on every node
	// that bootstraps. It maps server ids to API addresses for forwarding;
	// Directory covers members that joined later.
	Peers []Peer
	// Bootstrap bootstraps the group with all Peers when the node has no Raft
	// state yet (with no Peers: with this node alone, the first node of a
	// region whose other members join through gossip). Safe on every node
	// (identical configuration); a node with existing state never
	// re-bootstraps.
	Bootstrap bool
	// Directory returns the API address of a region member that Peers does
	// not list (node/ wires the gossip pool's tags); nil: Peers only.
	Directory func(id string) (apiAddr string, ok bool)
	// Ownership says which region is each entity's home (node/ wires the
	// placement table); nil means every entity is homed in this region.
	Ownership Ownership
	// Replicas reports other regions' progress for DURABILITY_MULTI_REGION
	// appends; nil refuses them.
	Replicas Replicas
	// Network opens every connection; nil means TCP.
	Network Network
	// Tracer, when set, records spans of an append's steps in the region
	// (routing to the leader or the home, Raft commit, the MULTI_REGION
	// wait), children of the caller's span in ctx; nil: no tracing, and no
	// cost beyond a nil check.
	Tracer trace.Tracer
	// ClientOptions are added to the Connect clients that forward calls to
	// other nodes (node/ passes the trace-context interceptor).
	ClientOptions []connect.ClientOption
	// Clock is the wall clock behind the leader's HLC; nil means the system clock.
	Clock causal.WallClock
	// Logger receives the node's and Raft's logs; nil discards them.
	Logger *slog.Logger
	// Limits bound the size of appends (validated before proposing).
	Limits Limits

	// IdempotencyWindow is how long an event id stays an idempotency key.
	// 24h: longer than any sane client retry loop, short enough to bound i/.
	IdempotencyWindow time.Duration
	// StateCompression compresses the state machine's Badger tables
	// (StoreConfig.Compression). None: snappy cost 7 % more server CPU per
	// append under a sustained load (ADR 0008), and the Raft log and its
	// snapshots hold the events uncompressed anyway.
	StateCompression Compression
	// ClockOffsetMax is the HLC's maximum accepted offset of a remote stamp.
	// 500ms: generous for NTP-synced hosts.
	ClockOffsetMax time.Duration

	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout
	// are Raft's timers. 1s/1s/500ms/50ms (Raft's LAN defaults) elect a new
	// leader within ~2s of a crash without flapping on a loaded machine.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger one; SnapshotInterval is how often the check runs. 8192 entries
	// / 2 min: a snapshot is a Badger backup, so not too often; the log stays
	// small because entries are batches.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// a briefly absent follower catches up from the log, not a snapshot. 10240.
	TrailingLogs uint64
	// SnapshotsRetained is how many snapshots stay on disk. 2.
	SnapshotsRetained int

	// BatchOpsMax and BatchBytesMax bound one Raft entry (group commit).
	// 256 ops / 4 MiB: big enough to amortise an fsync over many clients,
	// small enough that one Badger transaction holds the entry.
	BatchOpsMax   int
	BatchBytesMax int
	// QueueOpsMax bounds appends waiting for a batch on the leader; beyond it
	// Append answers ErrOverloaded (ResourceExhausted). 8192.
	QueueOpsMax int
	// InflightBatchesMax bounds batches proposed but not yet applied. While
	// they are in flight new appends accumulate into the next batch. 4.
	InflightBatchesMax int
	// ApplyEnqueueTimeout bounds how long a proposal waits to enter Raft's
	// queue (raft.Apply's timeout). 5s.
	ApplyEnqueueTimeout time.Duration

	// LeaderWaitTimeout bounds how long a request waits for a leader to be
	// elected before failing with ErrNotLeader. 5s: two election rounds.
	LeaderWaitTimeout time.Duration
	// ForwardDialTimeout bounds one dial to the leader's API. 2s.
	ForwardDialTimeout time.Duration
	// ForwardTimeout bounds a forwarded request whose caller set no
	// deadline. 30s: longer than an election plus a commit under load.
	ForwardTimeout time.Duration
	// ReadWaitMax bounds how long a local read waits for the applied state to
	// cover a session token (or, after a restart, the local log) before the
	// read is forwarded to the leader. 1s.
	ReadWaitMax time.Duration
	// MoveWaitMax bounds how long a request for an entity whose home a
	// placement change is moving waits for the change to complete before
	// failing with ErrMoving (Unavailable). 5s: a move on a WAN takes a few
	// round trips plus the drain.
	MoveWaitMax time.Duration
	// LeaseDuration is how long a home lease holds after the renewal was
	// sent (with a placement table only). The placement group fails the
	// region's entities over no sooner than LeaseDuration + its maximum
	// clock offset after it last heard from the region. 6s: a few WAN
	// round trips of renewals fit in it, and a failover starts within
	// about 6.5s of losing the region.
	LeaseDuration time.Duration
	// LeaseRenewInterval is how often the leader renews. 2s: a third of
	// LeaseDuration, so that one or two lost renewals cost nothing.
	LeaseRenewInterval time.Duration
	// LeaseWaitMax bounds how long a write waits for the leader to hold the
	// lease (after an election, or while a renewal is late) before failing
	// with ErrLeaseExpired. 3s.
	LeaseWaitMax time.Duration
	// ClockTickInterval is how often an idle leader records its clock in
	// the region log (ClockTick), so that other regions' active-active
	// events become stable here while this region writes nothing
	// (with a placement table only). 1s.
	ClockTickInterval time.Duration
	// CheckpointInterval is the default idle checkpoint period of Subscribe. 1s.
	CheckpointInterval time.Duration
	// SubscribePageMax bounds events read per page by Subscribe; a subscriber
	// that cannot keep up holds at most one page in memory. 256.
	SubscribePageMax int
	// ReclaimInterval is how often the region leader reclaims the space
	// of events their streams' lifecycle hides (reclaim.go). 10s.
	ReclaimInterval time.Duration
}

// DefaultConfig returns a Config with every tunable set; the caller fills in
// Region, NodeID, DataDir, RaftAddr and Peers.
func DefaultConfig() Config {
	return Config{
		Network:             TCP,
		Limits:              DefaultLimits(),
		IdempotencyWindow:   24 * time.Hour,
		StateCompression:    CompressionNone,
		ClockOffsetMax:      500 * time.Millisecond,
		HeartbeatTimeout:    time.Second,
		ElectionTimeout:     time.Second,
		LeaderLeaseTimeout:  500 * time.Millisecond,
		CommitTimeout:       50 * time.Millisecond,
		SnapshotThreshold:   8192,
		SnapshotInterval:    2 * time.Minute,
		TrailingLogs:        10240,
		SnapshotsRetained:   2,
		BatchOpsMax:         256,
		BatchBytesMax:       4 << 20,
		QueueOpsMax:         8192,
		InflightBatchesMax:  4,
		ApplyEnqueueTimeout: 5 * time.Second,
		LeaderWaitTimeout:   5 * time.Second,
		ForwardDialTimeout:  2 * time.Second,
		ForwardTimeout:      30 * time.Second,
		ReadWaitMax:         time.Second,
		MoveWaitMax:         5 * time.Second,
		LeaseDuration:       6 * time.Second,
		LeaseRenewInterval:  2 * time.Second,
		LeaseWaitMax:        3 * time.Second,
		ClockTickInterval:   time.Second,
		CheckpointInterval:  time.Second,
		SubscribePageMax:    256,
		ReclaimInterval:     10 * time.Second,
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
	switch {
	case c.NodeID == "":
		return bad("NodeID", "must not be empty")
	case c.DataDir == "":
		return bad("DataDir", "must not be empty")
	case c.RaftAddr == "":
		return bad("RaftAddr", "must not be empty")
	}
	seen := map[string]bool{}
	self := false
	for i, p := range c.Peers {
		if p.ID == "" || p.RaftAddr == "" {
			return bad(fmt.Sprintf("Peers[%d]", i), "ID and RaftAddr must not be empty")
		}
		if seen[p.ID] {
			return bad(fmt.Sprintf("Peers[%d]", i), "duplicate ID %q", p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == c.NodeID
	}
	if c.Bootstrap && len(c.Peers) > 0 && !self {
		return bad("Peers", "must contain NodeID %q to bootstrap", c.NodeID)
	}
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"IdempotencyWindow", c.IdempotencyWindow}, {"HeartbeatTimeout", c.HeartbeatTimeout},
		{"ElectionTimeout", c.ElectionTimeout}, {"LeaderLeaseTimeout", c.LeaderLeaseTimeout},
		{"CommitTimeout", c.CommitTimeout}, {"SnapshotInterval", c.SnapshotInterval},
		{"ApplyEnqueueTimeout", c.ApplyEnqueueTimeout}, {"LeaderWaitTimeout", c.LeaderWaitTimeout},
		{"ForwardDialTimeout", c.ForwardDialTimeout}, {"ForwardTimeout", c.ForwardTimeout},
		{"ReadWaitMax", c.ReadWaitMax}, {"MoveWaitMax", c.MoveWaitMax},
		{"LeaseDuration", c.LeaseDuration}, {"LeaseRenewInterval", c.LeaseRenewInterval}, {"LeaseWaitMax", c.LeaseWaitMax},
		{"CheckpointInterval", c.CheckpointInterval}, {"ClockTickInterval", c.ClockTickInterval},
		{"ReclaimInterval", c.ReclaimInterval},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return bad(d.name, "must be > 0, got %s", d.d)
		}
	}
	if _, err := c.StateCompression.badger(); err != nil {
		return fmt.Errorf("StateCompression: %w", err)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return bad("LeaderLeaseTimeout", "must be <= HeartbeatTimeout (%s), got %s", c.HeartbeatTimeout, c.LeaderLeaseTimeout)
	}
	if c.LeaseRenewInterval >= c.LeaseDuration {
		return bad("LeaseRenewInterval", "must be below LeaseDuration (%s), got %s", c.LeaseDuration, c.LeaseRenewInterval)
	}
	ints := []struct {
		name string
		v    int
	}{
		{"BatchOpsMax", c.BatchOpsMax}, {"BatchBytesMax", c.BatchBytesMax}, {"QueueOpsMax", c.QueueOpsMax},
		{"InflightBatchesMax", c.InflightBatchesMax}, {"SnapshotsRetained", c.SnapshotsRetained},
		{"SubscribePageMax", c.SubscribePageMax},
	}
	for _, v := range ints {
		if v.v <= 0 {
			return bad(v.name, "must be > 0, got %d", v.v)
		}
	}
	if c.SnapshotThreshold == 0 {
		return bad("SnapshotThreshold", "must be > 0")
	}
	return nil
}

// peer returns the peer with the given id.
func (c Config) peer(id string) (Peer, bool) {
	for _, p := range c.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return Peer{}, false
}
