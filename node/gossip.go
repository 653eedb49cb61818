package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/internal/logadapt"
)

// Gossip member tags: what a node tells the deployment about itself.
const (
	tagRegion    = "region"
	tagNode      = "node"
	tagAPI       = "api"
	tagRaft      = "raft"
	tagPlacement = "placement"
	// tagLAN and tagWAN are the node's gossip addresses in each pool, so a
	// member seen in one pool says how to reach it in the other.
	tagLAN = "lan"
	tagWAN = "wan"
)

// gossipEventsBuffer is how many serf events wait for the gossip loop; serf
// blocks its own delivery when the channel is full, so it is sized for a
// burst of a whole deployment's joins.
const gossipEventsBuffer = 256

// gossip is the node's membership in two serf pools (ADR 0007): the LAN
// pool of its region (fast failure detection; its members drive the
// region's Raft membership through the region leader, membership.go) and,
// when configured, the WAN pool of the whole deployment (WAN timers; region
// health and the endpoints of other regions). Every member is tagged with
// its region, id and addresses.
type gossip struct {
	lan     *serf.Serf
	wan     *serf.Serf // nil without Config.GossipWANAddr
	keyring *memberlist.Keyring
	region  string
	node    string
	name    string
	logger  *slog.Logger
	events  chan poolEvent

	mu sync.Mutex
	// since is when this node saw each member's status change, by pool and
	// member name.
	since map[string]time.Time
	// changed is closed and replaced whenever a member joins, leaves, fails
	// or updates its tags, in either pool.
	changed chan struct{}

	done chan struct{}
	wg   sync.WaitGroup
}

// poolEvent is a serf event and the pool it came from.
type poolEvent struct {
	pool string
	e    serf.Event
}

// memberName is a node's name in the gossip pools, unique in the
// deployment. Not "<region>/<node>" as elsewhere: memberlist reads a join
// address "name/host:port" up to the first slash, and serf reconnects to a
// failed member by such an address, so a slash in the name made every
// reconnect after a partition fail ("no such host"; found by
// TestChaosMembership, where a healed region then stayed unreachable).
func memberName(region, node string) string { return region + ":" + node }

// regionOnly is the LAN pool's merge delegate: a member of another region
// (a node given the wrong join address, or a pool of another region met by
// accident) is refused, so one region's pool never absorbs another's.
type regionOnly struct{ region string }

func (r regionOnly) NotifyMerge(members []*serf.Member) error {
	for _, m := range members {
		if m.Tags[tagRegion] != r.region {
			return fmt.Errorf("member %s of region %q refused by the LAN pool of region %q", m.Name, m.Tags[tagRegion], r.region)
		}
	}
	return nil
}

// startGossip creates the node's serf members (LAN on cfg.GossipAddr, WAN on
// cfg.GossipWANAddr if set). It does not join anyone yet (membership does).
func startGossip(cfg Config, tags map[string]string, logger *slog.Logger) (*gossip, error) {
	g := &gossip{
		region:  cfg.Region,
		node:    cfg.NodeID,
		name:    memberName(cfg.Region, cfg.NodeID),
		logger:  logger.With("component", "gossip"),
		events:  make(chan poolEvent, gossipEventsBuffer),
		since:   map[string]time.Time{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if len(cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.GossipKeys, cfg.GossipKeys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: gossip keys: %v", ErrInvalidConfig, err)
		}
		g.keyring = kr
	}
	dir := filepath.Join(cfg.DataDir, "gossip")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: gossip directory: %w", err)
	}
	var err error
	if g.lan, err = g.create(cfg, "lan", cfg.GossipAddr, cfg.GossipAdvertise, tags, filepath.Join(dir, "lan")); err != nil {
		return nil, err
	}
	if cfg.GossipWANAddr != "" {
		if g.wan, err = g.create(cfg, "wan", cfg.GossipWANAddr, cfg.GossipWANAdvertise, tags, filepath.Join(dir, "wan")); err != nil {
			_ = g.lan.Shutdown()
			return nil, err
		}
	}
	// Both pools' members carry both addresses (known only now: a port 0
	// was chosen at bind).
	all := maps.Clone(tags)
	all[tagLAN] = poolAddr(g.lan)
	if g.wan != nil {
		all[tagWAN] = poolAddr(g.wan)
	}
	for _, s := range g.pools() {
		if err := s.SetTags(all); err != nil {
			_ = g.close()
			return nil, fmt.Errorf("node: gossip tags: %w", err)
		}
	}
	return g, nil
}

// create starts one pool's serf member and its event forwarder.
func (g *gossip) create(cfg Config, pool, addr, advertise string, tags map[string]string, snapshot string) (*serf.Serf, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip %s address %q: %v", ErrInvalidConfig, pool, addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	events := make(chan serf.Event, gossipEventsBuffer)
	sc := serf.DefaultConfig()
	sc.NodeName = g.name
	sc.Tags = tags
	sc.EventCh = events
	sc.Logger = logadapt.HCLog(g.logger.With("pool", pool), "serf").StandardLogger(nil)
	// A node that left and starts again under the same name is the same
	// node coming back (its data directory says so), not an impostor.
	sc.RejoinAfterLeave = true
	// The snapshot lists the members this node knew: a restarted node
	// rejoins them without seeds.
	sc.SnapshotPath = snapshot
	sc.ReconnectTimeout = max(sc.ReconnectTimeout, 2*cfg.DeadNodeTimeout)
	// Failed members are retried every 10 s instead of serf's 30: after a
	// partition heals, the sides usually find each other sooner by
	// refutation, but when that gossip is lost this is the bound.
	sc.ReconnectInterval = 10 * time.Second
	mc := memberlist.DefaultLANConfig()
	if pool == "wan" {
		mc = wanConfig()
	} else {
		sc.Merge = regionOnly{region: g.region}
	}
	mc.Name = g.name
	mc.BindAddr, mc.BindPort = host, port
	mc.Logger = sc.Logger
	if advertise != "" {
		ahost, aport, err := net.SplitHostPort(advertise)
		if err != nil {
			return nil, fmt.Errorf("%w: gossip %s advertise address %q: %v", ErrInvalidConfig, pool, advertise, err)
		}
		mc.AdvertiseAddr = ahost
		mc.AdvertisePort, _ = strconv.Atoi(aport)
	}
	if g.keyring != nil {
		// One keyring for both pools: a key change applies to both.
		mc.Keyring = g.keyring
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	sc.MemberlistConfig = mc
	if cfg.GossipConfig != nil {
		cfg.GossipConfig(pool, sc)
	}
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("node: start %s gossip on %s: %w", pool, addr, err)
	}
	g.wg.Add(1)
	go g.forward(pool, events)
	return s, nil
}

// wanConfig is memberlist's WAN configuration with failure detection
// shortened for a deployment of a few regions: memberlist's WAN defaults
// (probes every 5 s, suspicion 6 x log10(n) probe intervals, up to 6 times
// that without confirmations) took 105 s to report a region cut off in the
// chaos suite; region health is worth more to an operator sooner. A probe
// still waits 1 s for its answer (several round trips of the slowest link
// the WAN profiles emulate) and failures still need indirect probes and
// suspicion: a region is reported unreachable in about 6 to 20 s.
func wanConfig() *memberlist.Config {
	mc := memberlist.DefaultWANConfig()
	mc.ProbeInterval = 2 * time.Second
	mc.ProbeTimeout = time.Second
	mc.SuspicionMult = 4
	mc.SuspicionMaxTimeoutMult = 3
	return mc
}

// poolAddr is a serf member's own gossip address.
func poolAddr(s *serf.Serf) string {
	m := s.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// pools returns the running serf members.
func (g *gossip) pools() []*serf.Serf {
	if g.wan == nil {
		return []*serf.Serf{g.lan}
	}
	return []*serf.Serf{g.lan, g.wan}
}

// forward records when each member's status changed and wakes the watchers.
func (g *gossip) forward(pool string, events <-chan serf.Event) {
	defer g.wg.Done()
	for {
		select {
		case <-g.done:
			return
		case e := <-events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			now := time.Now()
			g.mu.Lock()
			for _, m := range me.Members {
				g.since[pool+"/"+m.Name] = now
				g.logger.Info("gossip member "+me.Type.String(), "pool", pool, "member", m.Name, "addr", net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
			}
			close(g.changed)
			g.changed = make(chan struct{})
			g.mu.Unlock()
		}
	}
}

// Changed returns a channel closed at the next membership change.
func (g *gossip) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// statusFor is how long member has had its current status in pool as seen
// here; false when it has had it since this node joined.
func (g *gossip) statusFor(pool, name string) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.since[pool+"/"+name]
	if !ok {
		return 0, false
	}
	return time.Since(t), true
}

// joinLAN and joinWAN contact the given gossip addresses of one pool; one
// answer is enough.
func (g *gossip) joinLAN(addrs []string) error { return joinPool(g.lan, addrs) }

func (g *gossip) joinWAN(addrs []string) error {
	if g.wan == nil {
		return nil
	}
	return joinPool(g.wan, addrs)
}

func joinPool(s *serf.Serf, addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("no gossip address to join")
	}
	n, err := s.Join(addrs, true)
	if n > 0 {
		return nil
	}
	return err
}

// regionMembers returns the LAN pool's members of region, by node id.
func (g *gossip) regionMembers(region string) map[string]serf.Member {
	out := map[string]serf.Member{}
	for _, m := range g.lan.Members() {
		if m.Tags[tagRegion] == region && m.Tags[tagNode] != "" {
			out[m.Tags[tagNode]] = m
		}
	}
	return out
}

// apiAddr is the API address of an alive member of the node's region. A
// follower forwards every write through it (region.Config.Directory), so it
// scans the member list instead of building a map.
func (g *gossip) apiAddr(node string) (string, bool) {
	for _, m := range g.lan.Members() {
		if m.Tags[tagNode] == node && m.Tags[tagRegion] == g.region {
			api := m.Tags[tagAPI]
			return api, m.Status == serf.StatusAlive && api != ""
		}
	}
	return "", false
}

// leave announces a graceful leave in both pools and waits for it to spread.
func (g *gossip) leave() error {
	var errs []error
	for _, s := range g.pools() {
		errs = append(errs, s.Leave())
	}
	return errors.Join(errs...)
}

func (g *gossip) close() error {
	var errs []error
	for _, s := range g.pools() {
		errs = append(errs, s.Shutdown())
	}
	close(g.done)
	g.wg.Wait()
	return errors.Join(errs...)
}

// memberStatus maps serf's status to the API's.
func memberStatus(s serf.MemberStatus) meridianv1.MemberStatus {
	switch s {
	case serf.StatusAlive:
		return meridianv1.MemberStatus_MEMBER_STATUS_ALIVE
	case serf.StatusLeaving:
		return meridianv1.MemberStatus_MEMBER_STATUS_LEAVING
	case serf.StatusLeft:
		return meridianv1.MemberStatus_MEMBER_STATUS_LEFT
	case serf.StatusFailed:
		return meridianv1.MemberStatus_MEMBER_STATUS_FAILED
	}
	return meridianv1.MemberStatus_MEMBER_STATUS_UNSPECIFIED
}

// list describes every member and every region's health: the node's own
// region as its LAN pool sees it, the other regions as the WAN pool does.
// roles gives the Raft role of members of the node's own region.
func (g *gossip) list(roles map[string]meridianv1.RaftRole) *meridianv1.ListMembersResponse {
	resp := &meridianv1.ListMembersResponse{AnsweredBy: g.region + "/" + g.node}
	health := map[string]*meridianv1.RegionHealth{}
	add := func(pool string, m serf.Member) {
		gm := &meridianv1.GossipMember{
			Region:           m.Tags[tagRegion],
			Node:             m.Tags[tagNode],
			GossipAddress:    m.Tags[tagLAN],
			GossipWanAddress: m.Tags[tagWAN],
			ApiAddress:       m.Tags[tagAPI],
			RaftAddress:      m.Tags[tagRaft],
			PlacementAddress: m.Tags[tagPlacement],
			Status:           memberStatus(m.Status),
		}
		if gm.Region == g.region {
			gm.RaftRole = roles[gm.Node]
			if gm.RaftRole == meridianv1.RaftRole_RAFT_ROLE_UNSPECIFIED {
				gm.RaftRole = meridianv1.RaftRole_RAFT_ROLE_NONE
			}
		}
		if d, ok := g.statusFor(pool, m.Name); ok {
			gm.StatusFor = durationpb.New(d)
		}
		resp.Members = append(resp.Members, gm)
		h := health[gm.Region]
		if h == nil {
			h = &meridianv1.RegionHealth{Region: gm.Region}
			health[gm.Region] = h
		}
		if m.Status == serf.StatusLeft {
			return
		}
		h.Members++
		if m.Status == serf.StatusAlive {
			h.Alive++
			h.Reachable = true
		}
	}
	for _, m := range g.lan.Members() {
		if m.Tags[tagRegion] == g.region {
			add("lan", m)
		}
	}
	if g.wan != nil {
		for _, m := range g.wan.Members() {
			if m.Tags[tagRegion] != g.region {
				add("wan", m)
			}
		}
	}
	sort.Slice(resp.Members, func(i, j int) bool {
		a, b := resp.Members[i], resp.Members[j]
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		return a.Node < b.Node
	})
	for _, h := range health {
		resp.Regions = append(resp.Regions, h)
	}
	sort.Slice(resp.Regions, func(i, j int) bool { return resp.Regions[i].Region < resp.Regions[j].Region })
	return resp
}

// ErrNoGossip is returned by operations that need Config.GossipAddr.
var ErrNoGossip = errors.New("node: gossip is not enabled on this node (no gossip address)")

// ErrGossipPlaintext refuses installing keys on a pool that started
// without encryption: the pool's members would stop understanding it.
var ErrGossipPlaintext = errors.New("node: gossip was started without keys; encryption cannot be turned on in place")

// SetGossipKeys makes keys the node's gossip keyring: keys[0] encrypts, every
// key decrypts, keys not listed are dropped. Rotation is three rounds over
// every node: add the new key second, move it first, drop the old one
// (docs/OPERATIONS.md); each round must reach every node before the next.
func (n *Node) SetGossipKeys(keys [][]byte) error {
	if n.gossip == nil {
		return ErrNoGossip
	}
	kr := n.gossip.keyring
	if kr == nil {
		return ErrGossipPlaintext
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: no gossip key given", ErrInvalidConfig)
	}
	for i, k := range keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("%w: gossip key %d is %d bytes: want 16, 24 or 32", ErrInvalidConfig, i, l)
		}
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("node: add gossip key: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("node: use gossip key: %w", err)
	}
	for _, have := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, have) }) {
			if err := kr.RemoveKey(have); err != nil {
				return fmt.Errorf("node: remove gossip key: %w", err)
			}
		}
	}
	n.logger.Info("gossip keyring replaced", "keys", len(keys))
	return nil
}
