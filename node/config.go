package node

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/serf/serf"
	"go.opentelemetry.io/otel/trace"

	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/internal/nodetls"

	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/region"
	"github.com/meridiandb/meridian/replication"
)

// Config describes one Meridian process: its identity, where it listens and
// who its region peers are. Only cmd/ reads flags and environment; node/
// takes this struct.
type Config struct {
	// Region is the name of the region this node belongs to, e.g. "eu-west".
	Region string
	// NodeID identifies the node within its region (and its Raft server ID).
	NodeID string
	// DataDir holds the node's Raft log and Badger state; created if missing.
	DataDir string
	// APIAddr is where the Connect/gRPC API listens (host:port; port 0 picks one).
	APIAddr string
	// RaftAddr is where the Raft transport listens (host:port).
	RaftAddr string
	// APIAdvertise is the API address peers and clients use to reach this
	// node; empty means the address the API listener got.
	APIAdvertise string
	// RaftAdvertise is the Raft address peers use; empty means RaftAddr.
	RaftAdvertise string
	// Peers are the region's initial members, this node included when it
	// bootstraps.
	Peers []region.Peer
	// Bootstrap makes the node form the region from Peers if it has no state yet.
	Bootstrap bool
	// Network is how every connection is made (listen and dial); nil means
	// region.TCP. Tests pass a fault-injecting network.
	Network region.Network
	// TLS, when set, puts TLS on every listener and dialer of the node: the
	// API (clients verify the node; client certificates optional) and
	// mutual TLS with peers of the same deployment for Raft, placement,
	// forwarding, replication and membership calls (internal/nodetls). The
	// caller reloads it (Reload, Watch). Nil: plaintext everywhere.
	TLS *nodetls.Credentials
	// Tokens, when set, make every API call except health (and reflection,
	// unless DisableReflection) need a bearer token of the right role, or a
	// node certificate of the deployment (internal/auth). Needs TLS: a token
	// sent in plaintext is a token given away. The caller reloads it.
	Tokens *auth.Tokens
	// MetricsAddr is where /metrics (Prometheus) is served, apart from the
	// API (host:port; port 0 picks one); over TLS when TLS is set, without
	// tokens: bind it where only the monitoring system reaches it. Empty:
	// no metrics.
	MetricsAddr string
	// TracerProvider, when set, traces the API: a span per call (the
	// caller's trace context is continued, so a forwarded append is one
	// trace across nodes and regions), with child spans for forwarding,
	// the Raft commit and MULTI_REGION waits. Nil: no tracing.
	TracerProvider trace.TracerProvider
	// HTTPLimits bound the API server; zero fields take DefaultHTTPLimits.
	HTTPLimits HTTPLimits
	// DisableReflection stops serving gRPC server reflection.
	DisableReflection bool
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Close waits for in-flight requests
	// before cutting them off. Default 5 s: longer than an append's commit
	// on a healthy region, short enough for Ctrl-C to feel prompt.
	ShutdownTimeout time.Duration
	// StateCompression compresses the region state machine's Badger
	// tables: none (""), snappy or zstd (region.Compression).
	StateCompression region.Compression
	// RegionConfig, when set, adjusts the region configuration built from
	// the fields above (timeouts, limits, testing knobs). Nil in production.
	RegionConfig func(*region.Config)

	// PlacementRaftAddr is where the node's placement group member listens
	// (host:port). Empty: no placement group: a deployment of one region,
	// every entity homed here.
	PlacementRaftAddr string
	// PlacementRaftAdvertise is the placement address other members dial;
	// empty means PlacementRaftAddr's listener address.
	PlacementRaftAdvertise string
	// PlacementBootstrap forms a new placement group with this node as its
	// only voter (one node of a new deployment); the others join.
	PlacementBootstrap bool
	// Join are API addresses of nodes of the deployment (any region) to
	// join through: the placement group's (with PlacementRaftAddr) and the
	// gossip pool's (with GossipAddr).
	Join []string
	// VotersPerRegion is how many placement voters each region keeps (1 or
	// 3); 0 means placement's default (1).
	VotersPerRegion int
	// PlacementConfig, when set, adjusts the placement configuration (timers
	// in tests). Nil in production.
	PlacementConfig func(*placement.Config)
	// GossipAddr is where the node's member of its region's LAN gossip
	// pool (serf) listens, TCP and UDP (host:port). Empty: no gossip; the
	// region's members are its static Peers.
	GossipAddr string
	// GossipAdvertise is the LAN gossip address others use; empty means
	// GossipAddr.
	GossipAdvertise string
	// GossipWANAddr is where the node's member of the deployment's WAN
	// gossip pool listens (needs GossipAddr). Empty: no WAN pool; the node
	// reports only its own region's members and health.
	GossipWANAddr string
	// GossipWANAdvertise is the WAN gossip address others use; empty means
	// GossipWANAddr.
	GossipWANAdvertise string
	// GossipKeys encrypt gossip (AES-GCM; 16, 24 or 32 bytes each): the
	// first encrypts, all decrypt, so keys can be rotated. Empty: plaintext.
	GossipKeys [][]byte
	// DeadNodeTimeout is how long a region member must have been failed in
	// gossip before the region leader removes it from the Raft group.
	DeadNodeTimeout time.Duration
	// StabilizationTime is how long a joining node must stay healthy
	// before the region leader makes it a voter.
	StabilizationTime time.Duration
	// LastContactThreshold: a follower that has not heard from the leader
	// for longer is unhealthy (not promoted).
	LastContactThreshold time.Duration
	// MaxTrailingLogs: a follower more entries behind the leader is
	// unhealthy (not promoted).
	MaxTrailingLogs uint64
	// GossipConfig, when set, adjusts serf's configuration of each pool
	// ("lan", "wan"): timers in tests. Nil in production.
	GossipConfig func(pool string, c *serf.Config)
	// ReplicationConfig, when set, adjusts the replication configuration
	// (timers in tests). Nil in production.
	ReplicationConfig func(*replication.Config)
}

// HTTPLimits bound what one caller can make the API server hold: slow or
// silent clients, oversized headers and messages, idle connections.
// Streams (Subscribe, Pull, health Watch) have no deadline: HTTP/2 flow
// control bounds what they buffer and pings close dead connections.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers. Default 10 s.
	ReadHeaderTimeout time.Duration
	// UnaryReadTimeout bounds reading a unary call's request body, from
	// the end of its headers. Default 30 s: a 64 MiB batch over a slow link.
	UnaryReadTimeout time.Duration
	// UnaryWriteTimeout bounds a unary call from the end of its headers to
	// its response written, waits included. Default 2 min: above every
	// server-side wait (a MULTI_REGION append waits at most its deadline).
	UnaryWriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections nobody uses. Default 2 min.
	IdleTimeout time.Duration
	// HeaderBytesMax bounds a request's headers. Default 64 KiB.
	HeaderBytesMax int
	// RequestBytesMax bounds one request message: a full append batch of
	// events at the default 1 MiB each stays under it. Default 64 MiB.
	RequestBytesMax int
	// StreamsPerConnMax bounds concurrent HTTP/2 streams per connection.
	// Default 250.
	StreamsPerConnMax int
	// PingInterval and PingTimeout: an HTTP/2 connection silent for
	// PingInterval is pinged, and closed (its streams with it) if the
	// ping is not answered within PingTimeout. Default 30 s and 15 s.
	PingInterval, PingTimeout time.Duration
}

// DefaultHTTPLimits returns the limits described on HTTPLimits' fields.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{
		ReadHeaderTimeout: 10 * time.Second,
		UnaryReadTimeout:  30 * time.Second,
		UnaryWriteTimeout: 2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		HeaderBytesMax:    64 << 10,
		RequestBytesMax:   64 << 20,
		StreamsPerConnMax: 250,
		PingInterval:      30 * time.Second,
		PingTimeout:       15 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultHTTPLimits.
func (l HTTPLimits) withDefaults() HTTPLimits {
	d := DefaultHTTPLimits()
	for _, f := range []struct{ v, def *time.Duration }{
		{&l.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&l.UnaryReadTimeout, &d.UnaryReadTimeout},
		{&l.UnaryWriteTimeout, &d.UnaryWriteTimeout}, {&l.IdleTimeout, &d.IdleTimeout},
		{&l.PingInterval, &d.PingInterval}, {&l.PingTimeout, &d.PingTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if l.HeaderBytesMax <= 0 {
		l.HeaderBytesMax = d.HeaderBytesMax
	}
	if l.RequestBytesMax <= 0 {
		l.RequestBytesMax = d.RequestBytesMax
	}
	if l.StreamsPerConnMax <= 0 {
		l.StreamsPerConnMax = d.StreamsPerConnMax
	}
	return l
}

// Named limits of the metrics server.
const (
	// readHeaderTimeout bounds how long a scraper may take to send headers.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes keep-alive connections nobody uses.
	idleTimeout = 2 * time.Minute
)

// Other named limits.
const (
	// shutdownTimeoutMax bounds Config.ShutdownTimeout.
	shutdownTimeoutMax = 5 * time.Minute
	// compressMinBytes: responses smaller than this go out uncompressed even
	// when the client accepts gzip (Connect clients advertise it by default,
	// and Connect compresses every response such a client accepts). The API's
	// clients sit in the region, where the network moves bytes faster than
	// gzip compresses them, and gzip's per-message setup alone (resetting its
	// tables, about 30 µs here) cost more than the rest of a small call: in
	// the 64-client append profile it was a fifth of the leader's CPU, in the
	// 10-event read a quarter of the process's. 1 MiB keeps every append
	// answer and every read of up to about a thousand 1 KiB events plain.
	compressMinBytes = 1 << 20
)

// DefaultConfig returns a single-node configuration on loopback, the ports of
// `meridian dev`'s first node. Callers set at least Region, NodeID and DataDir.
func DefaultConfig() Config {
	return Config{
		Region:          "local",
		NodeID:          "n1",
		APIAddr:         "127.0.0.1:7001",
		RaftAddr:        "127.0.0.1:7101",
		ShutdownTimeout: 5 * time.Second,

		DeadNodeTimeout:      time.Minute,
		StabilizationTime:    10 * time.Second,
		LastContactThreshold: 2 * time.Second,
		MaxTrailingLogs:      1000,
	}
}

// Validate reports the first field outside its allowed range. It checks what
// node/ itself uses; region.Config.Validate checks the rest at Start.
func (c Config) Validate() error {
	switch {
	case c.Region == "":
		return fmt.Errorf("%w: Region is empty", ErrInvalidConfig)
	case c.NodeID == "":
		return fmt.Errorf("%w: NodeID is empty", ErrInvalidConfig)
	case c.DataDir == "":
		return fmt.Errorf("%w: DataDir is empty", ErrInvalidConfig)
	case c.ShutdownTimeout <= 0 || c.ShutdownTimeout > shutdownTimeoutMax:
		return fmt.Errorf("%w: ShutdownTimeout %s outside (0, %s]", ErrInvalidConfig, c.ShutdownTimeout, shutdownTimeoutMax)
	}
	for name, addr := range map[string]string{"APIAddr": c.APIAddr, "RaftAddr": c.RaftAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: %s %q: want host:port: %v", ErrInvalidConfig, name, addr, err)
		}
	}
	for name, addr := range map[string]string{"GossipAddr": c.GossipAddr, "GossipWANAddr": c.GossipWANAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: %s %q: want host:port: %v", ErrInvalidConfig, name, addr, err)
		}
	}
	if c.Tokens != nil && c.TLS == nil {
		return fmt.Errorf("%w: Tokens need TLS (bearer tokens must not cross the network in plaintext)", ErrInvalidConfig)
	}
	if _, err := region.ParseCompression(string(c.StateCompression)); err != nil {
		return fmt.Errorf("%w: StateCompression: %v", ErrInvalidConfig, err)
	}
	if c.GossipWANAddr != "" && c.GossipAddr == "" {
		return fmt.Errorf("%w: GossipWANAddr needs GossipAddr (the region's LAN pool)", ErrInvalidConfig)
	}
	if c.DeadNodeTimeout < 0 || c.StabilizationTime < 0 || c.LastContactThreshold < 0 {
		return fmt.Errorf("%w: DeadNodeTimeout, StabilizationTime and LastContactThreshold must not be negative", ErrInvalidConfig)
	}
	for i, k := range c.GossipKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("%w: GossipKeys[%d] is %d bytes: want 16, 24 or 32 (AES-128, -192 or -256)", ErrInvalidConfig, i, n)
		}
	}
	for name, addr := range map[string]string{"APIAdvertise": c.APIAdvertise, "RaftAdvertise": c.RaftAdvertise, "GossipAdvertise": c.GossipAdvertise, "GossipWANAdvertise": c.GossipWANAdvertise} {
		if addr == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "0" {
			return fmt.Errorf("%w: %s %q: want a reachable host:port", ErrInvalidConfig, name, addr)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if p.ID == "" || p.RaftAddr == "" {
			return fmt.Errorf("%w: Peers[%d]: ID and RaftAddr are required", ErrInvalidConfig, i)
		}
		if seen[p.ID] {
			return fmt.Errorf("%w: Peers[%d]: duplicate ID %q", ErrInvalidConfig, i, p.ID)
		}
		seen[p.ID] = true
	}
	if c.Bootstrap && len(c.Peers) > 0 && !seen[c.NodeID] {
		return fmt.Errorf("%w: Bootstrap with Peers that do not include NodeID %q", ErrInvalidConfig, c.NodeID)
	}
	return nil
}
