package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
)

// gossipEventsBuffer is how many serf events wait for the gossip loop; serf
// blocks its own delivery when the channel is full, so it is sized for a
// burst of a whole deployment's joins.
const gossipEventsBuffer = 256

// gossip is the node's member of the deployment's serf pool (ADR 0007): one
// pool for every node of every region, each member tagged with its region,
// id and addresses. Members of the node's own region drive its region's
// Raft membership through the region leader (membership.go); members of
// other regions give region health and endpoints.
type gossip struct {
	serf    *serf.Serf
	keyring *memberlist.Keyring
	region  string
	name    string
	logger  *slog.Logger
	events  chan serf.Event

	mu sync.Mutex
	// since is when this node saw each member's status change, by member name.
	since map[string]time.Time
	// changed is closed and replaced whenever a member joins, leaves, fails
	// or updates its tags.
	changed chan struct{}

	done chan struct{}
	wg   sync.WaitGroup
}

// memberName is a node's name in the gossip pool, unique in the deployment.
func memberName(region, node string) string { return region + "/" + node }

// startGossip creates the node's serf member, listening on cfg.GossipAddr.
// It does not join anyone yet (joinGossip does).
func startGossip(cfg Config, tags map[string]string, logger *slog.Logger) (*gossip, error) {
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: GossipAddr %q: %v", ErrInvalidConfig, cfg.GossipAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	g := &gossip{
		region:  cfg.Region,
		name:    memberName(cfg.Region, cfg.NodeID),
		logger:  logger.With("component", "gossip"),
		events:  make(chan serf.Event, gossipEventsBuffer),
		since:   map[string]time.Time{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	sc := serf.DefaultConfig()
	sc.NodeName = g.name
	sc.Tags = tags
	sc.EventCh = g.events
	sc.Logger = logadapt.HCLog(g.logger, "serf").StandardLogger(nil)
	// A node that left and starts again under the same name is the same
	// node coming back (its data directory says so), not an impostor.
	sc.RejoinAfterLeave = true
	// The snapshot lists the members this node knew: a restarted node
	// rejoins them without seeds.
	dir := filepath.Join(cfg.DataDir, "gossip")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: gossip directory: %w", err)
	}
	sc.SnapshotPath = filepath.Join(dir, "members")
	sc.ReconnectTimeout = max(sc.ReconnectTimeout, 2*cfg.DeadNodeTimeout)
	mc := memberlist.DefaultLANConfig()
	mc.Name = g.name
	mc.BindAddr, mc.BindPort = host, port
	mc.Logger = sc.Logger
	if cfg.GossipAdvertise != "" {
		ahost, aport, err := net.SplitHostPort(cfg.GossipAdvertise)
		if err != nil {
			return nil, fmt.Errorf("%w: GossipAdvertise %q: %v", ErrInvalidConfig, cfg.GossipAdvertise, err)
		}
		mc.AdvertiseAddr = ahost
		mc.AdvertisePort, _ = strconv.Atoi(aport)
	}
	if len(cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.GossipKeys, cfg.GossipKeys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: gossip keys: %v", ErrInvalidConfig, err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
		g.keyring = kr
	}
	sc.MemberlistConfig = mc
	if cfg.GossipConfig != nil {
		cfg.GossipConfig(sc)
	}
	if g.serf, err = serf.Create(sc); err != nil {
		return nil, fmt.Errorf("node: start gossip on %s: %w", cfg.GossipAddr, err)
	}
	g.wg.Add(1)
	go g.run()
	return g, nil
}

// run records when each member's status changed and wakes the watchers.
func (g *gossip) run() {
	defer g.wg.Done()
	for {
		select {
		case <-g.done:
			return
		case e := <-g.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			now := time.Now()
			g.mu.Lock()
			for _, m := range me.Members {
				g.since[m.Name] = now
				g.logger.Info("gossip member "+me.Type.String(), "member", m.Name, "addr", net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
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

// statusFor is how long member has had its current status as seen here;
// false when it has had it since this node joined.
func (g *gossip) statusFor(name string) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.since[name]
	if !ok {
		return 0, false
	}
	return time.Since(t), true
}

// join contacts the given gossip addresses; one answer is enough.
func (g *gossip) join(addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("no gossip address to join")
	}
	n, err := g.serf.Join(addrs, true)
	if n > 0 {
		return nil
	}
	return err
}

// regionMembers returns the members of region, by node id.
func (g *gossip) regionMembers(region string) map[string]serf.Member {
	out := map[string]serf.Member{}
	for _, m := range g.serf.Members() {
		if m.Tags[tagRegion] == region && m.Tags[tagNode] != "" {
			out[m.Tags[tagNode]] = m
		}
	}
	return out
}

// apiAddr is the API address of an alive member of the node's region.
func (g *gossip) apiAddr(node string) (string, bool) {
	m, ok := g.regionMembers(g.region)[node]
	if !ok || m.Status != serf.StatusAlive || m.Tags[tagAPI] == "" {
		return "", false
	}
	return m.Tags[tagAPI], true
}

// leave announces a graceful leave and waits for it to spread.
func (g *gossip) leave() error { return g.serf.Leave() }

func (g *gossip) close() error {
	err := g.serf.Shutdown()
	close(g.done)
	g.wg.Wait()
	return err
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

// list describes every member and every region's health; roles gives the
// Raft role of members of the node's own region.
func (g *gossip) list(roles map[string]meridianv1.RaftRole) *meridianv1.ListMembersResponse {
	resp := &meridianv1.ListMembersResponse{AnsweredBy: g.name}
	health := map[string]*meridianv1.RegionHealth{}
	for _, m := range g.serf.Members() {
		gm := &meridianv1.GossipMember{
			Region:           m.Tags[tagRegion],
			Node:             m.Tags[tagNode],
			GossipAddress:    net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
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
		if d, ok := g.statusFor(m.Name); ok {
			gm.StatusFor = durationpb.New(d)
		}
		resp.Members = append(resp.Members, gm)
		h := health[gm.Region]
		if h == nil {
			h = &meridianv1.RegionHealth{Region: gm.Region}
			health[gm.Region] = h
		}
		if m.Status == serf.StatusLeft {
			continue
		}
		h.Members++
		if m.Status == serf.StatusAlive {
			h.Alive++
			h.Reachable = true
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

// waitFor waits until cond holds, re-checking at every membership change and
// every poll interval, or until ctx ends.
func (g *gossip) waitFor(ctx context.Context, poll time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-g.Changed():
		case <-time.After(poll):
		}
	}
	return nil
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
