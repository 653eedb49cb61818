package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"github.com/hashicorp/serf/serf"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/h2c"
	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/meridiandb/meridian/internal/nodetls"
	"github.com/meridiandb/meridian/region"
)

// Timers of the region's membership (ADR 0007).
const (
	// membershipReconcileInterval is how often the region leader compares
	// the gossip pool with the Raft configuration even without a gossip
	// event (an AddNonvoter that failed is retried at this pace).
	membershipReconcileInterval = time.Second
	// membershipCallTimeout bounds one call to another node (stats, lists).
	membershipCallTimeout = 2 * time.Second
	// gossipJoinRetry is how long a node waits between attempts to join the
	// gossip pool through its seeds.
	gossipJoinRetry = time.Second
	// leavePoll is how often Leave checks whether the region leader has
	// removed the node.
	leavePoll = 100 * time.Millisecond
)

// membership drives the region's Raft group from the gossip pool: on the
// region leader, members of the region that gossip reports alive are added
// as non-voters, raft-autopilot promotes them once they have caught up and
// stayed healthy for the stabilization time, and removes members that left
// gracefully or have been failed in gossip for DeadNodeTimeout.
type membership struct {
	cfg    Config
	g      *gossip
	rn     *region.Node
	logger *slog.Logger
	status *h2c.Stubs[meridianv1connect.EventStoreClient]
	lists  *h2c.Stubs[meridianv1connect.MembershipClient]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// left is closed once Leave has taken the node out of the deployment.
	left     chan struct{}
	leftOnce sync.Once
	// refused is when each gossip member that failed admission was last
	// logged (reconcile's goroutine only).
	refused map[string]time.Time
}

func newMembership(cfg Config, g *gossip, rn *region.Node, logger *slog.Logger) *membership {
	httpClient := h2c.NewClient(cfg.Network.Dial, h2c.Options{})
	m := &membership{
		cfg: cfg, g: g, rn: rn, logger: logger.With("component", "membership"), refused: map[string]time.Time{},
		status: h2c.NewStubs(func(url string) meridianv1connect.EventStoreClient {
			return meridianv1connect.NewEventStoreClient(httpClient, url)
		}),
		lists: h2c.NewStubs(func(url string) meridianv1connect.MembershipClient {
			return meridianv1connect.NewMembershipClient(httpClient, url)
		}),
		left: make(chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

func (m *membership) start(seeds []string) {
	m.wg.Go(func() { m.joinPool(seeds) })
	m.wg.Go(m.followLeadership)
}

func (m *membership) close() {
	m.cancel()
	m.wg.Wait()
}

// joinPool joins the gossip pools through the seeds (API addresses of any
// node of the deployment): it asks them for their members' gossip
// addresses and joins those (joinOnce). It retries until the node is in
// both pools; from then on serf keeps it there (and its snapshots bring a
// restarted node back without seeds).
func (m *membership) joinPool(seeds []string) {
	if len(seeds) == 0 {
		return
	}
	for attempt := 0; ; attempt++ {
		err := m.joinOnce(seeds)
		if err == nil {
			return
		}
		if attempt%10 == 0 {
			m.logger.Warn("gossip join failed; retrying", "seeds", seeds, "err", err)
		}
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(gossipJoinRetry):
		}
	}
}

func (m *membership) joinOnce(seeds []string) error {
	var lan, wan []string
	var errs []error
	for _, seed := range seeds {
		ctx, cancel := context.WithTimeout(m.ctx, membershipCallTimeout)
		resp, err := m.lists.For(seed).ListMembers(ctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		for _, gm := range resp.Msg.GetMembers() {
			if gm.GetStatus() != meridianv1.MemberStatus_MEMBER_STATUS_ALIVE || memberName(gm.GetRegion(), gm.GetNode()) == m.g.name {
				continue
			}
			if gm.GetRegion() == m.cfg.Region && gm.GetGossipAddress() != "" {
				lan = append(lan, gm.GetGossipAddress())
			}
			if gm.GetGossipWanAddress() != "" {
				wan = append(wan, gm.GetGossipWanAddress())
			}
		}
	}
	// The WAN pool first: through it the seeds' answers come to include
	// this region's members even when the seed is in another region.
	wanDone := m.g.wan == nil
	if !wanDone && len(wan) > 0 {
		if err := m.g.joinWAN(wan); err != nil {
			errs = append(errs, fmt.Errorf("wan pool: %w", err))
		} else {
			wanDone = true
		}
	}
	// The region's first node has nobody to meet in its LAN pool.
	lanDone := m.cfg.Bootstrap && len(lan) == 0
	if len(lan) > 0 {
		if err := m.g.joinLAN(lan); err != nil {
			errs = append(errs, fmt.Errorf("lan pool: %w", err))
		} else {
			lanDone = true
		}
	}
	if !lanDone || !wanDone {
		return fmt.Errorf("not in both gossip pools yet (lan %v, wan %v): no alive member of this region or of the deployment listed by the seeds: %w", lanDone, wanDone, errors.Join(errs...))
	}
	m.logger.Info("joined the gossip pools", "lan", lan, "wan", wan)
	return nil
}

// followLeadership runs the leader's reconciliation while this node leads
// its region.
func (m *membership) followLeadership() {
	for {
		changed := m.rn.LeaderChanged()
		if m.rn.IsLeader() {
			m.lead(changed)
		}
		select {
		case <-m.ctx.Done():
			return
		case <-changed:
		}
	}
}

// lead adds alive region members to the Raft group and runs raft-autopilot
// until leadership changes.
func (m *membership) lead(changed <-chan struct{}) {
	d := &regionDelegate{m: m}
	ap := autopilot.New(m.rn.Raft(), d,
		autopilot.WithLogger(logadapt.HCLog(m.logger.With("component", "region-autopilot"), "autopilot")),
		autopilot.WithUpdateInterval(membershipReconcileInterval),
		autopilot.WithReconcileInterval(membershipReconcileInterval),
	)
	ctx, cancel := context.WithCancel(m.ctx)
	ap.Start(ctx)
	defer func() {
		cancel()
		<-ap.Stop()
	}()
	m.logger.Info("region membership reconciliation started")
	for {
		m.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-changed:
			return
		case <-m.g.Changed():
		case <-time.After(membershipReconcileInterval):
		}
	}
}

// reconcile adds every alive gossip member of the region that the Raft
// configuration lacks (or lists at another address) as a non-voter, and
// removes every member that left gracefully. A leave is the operator's
// decision, so it is carried out even when it leaves fewer voters
// (autopilot, which removes failed members, never goes below a majority of
// the voters it had); the leaving node has handed on leadership first.
func (m *membership) reconcile() {
	cf := m.rn.Raft().GetConfiguration()
	if cf.Error() != nil {
		return
	}
	have := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range cf.Configuration().Servers {
		have[s.ID] = s.Address
	}
	for id, mem := range m.g.regionMembers(m.cfg.Region) {
		addr := raft.ServerAddress(mem.Tags[tagRaft])
		if _, in := have[raft.ServerID(id)]; in && mem.Status == serf.StatusLeft && id != m.cfg.NodeID {
			if err := m.rn.Raft().RemoveServer(raft.ServerID(id), 0, membershipCallTimeout).Error(); err != nil {
				m.logger.Warn("remove a node that left from the region group", "member", id, "err", err)
				continue
			}
			m.logger.Info("node that left removed from the region group", "member", id)
			continue
		}
		if mem.Status != serf.StatusAlive || addr == "" {
			continue
		}
		if got, ok := have[raft.ServerID(id)]; ok && got == addr {
			continue
		}
		if err := m.admit(id, mem.Tags[tagAPI]); err != nil {
			if time.Since(m.refused[id]) > refusedLogInterval {
				m.refused[id] = time.Now()
				m.logger.Warn("gossip member not added to the region group: it did not prove it is that node", "member", id, "err", err)
			}
			continue
		}
		f := m.rn.Raft().AddNonvoter(raft.ServerID(id), addr, 0, membershipCallTimeout)
		if err := f.Error(); err != nil {
			m.logger.Warn("add joining node to the region group", "member", id, "err", err)
			continue
		}
		m.logger.Info("node added to the region group as a non-voter", "member", id, "raft", addr)
	}
}

// refusedLogInterval: a member that keeps failing admission is logged
// once in this long.
const refusedLogInterval = time.Minute

// admit checks, with TLS on, that the gossip member claiming to be node id
// of this region holds that node's certificate: gossip carries names, not
// proof (its key only keeps strangers out of the pool), so without this a
// holder of the gossip key could join the region's Raft configuration
// under any name. A TLS dial to the member's API address proves the
// certificate (chain and deployment: nodetls); the name must then match.
func (m *membership) admit(id, apiAddr string) error {
	if m.cfg.TLS == nil {
		return nil
	}
	if apiAddr == "" {
		return errors.New("no API address in its gossip tags")
	}
	ctx, cancel := context.WithTimeout(m.ctx, membershipCallTimeout)
	defer cancel()
	conn, err := m.cfg.Network.Dial(ctx, apiAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	tc, ok := conn.(*tls.Conn)
	if !ok || len(tc.ConnectionState().PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	got, err := nodetls.CertIdentity(tc.ConnectionState().PeerCertificates[0])
	if err != nil {
		return err
	}
	if got.Region != m.cfg.Region || got.Node != id {
		return fmt.Errorf("its certificate names %s, not node %s of region %s", got, id, m.cfg.Region)
	}
	return nil
}

// roles is every region member's place in the Raft configuration, by id.
func (m *membership) roles() map[string]meridianv1.RaftRole {
	out := map[string]meridianv1.RaftRole{}
	cf := m.rn.Raft().GetConfiguration()
	if cf.Error() != nil {
		return out
	}
	_, leader := m.rn.Raft().LeaderWithID()
	for _, s := range cf.Configuration().Servers {
		switch {
		case s.ID == leader:
			out[string(s.ID)] = meridianv1.RaftRole_RAFT_ROLE_LEADER
		case s.Suffrage == raft.Voter:
			out[string(s.ID)] = meridianv1.RaftRole_RAFT_ROLE_VOTER
		default:
			out[string(s.ID)] = meridianv1.RaftRole_RAFT_ROLE_NONVOTER
		}
	}
	return out
}

// errOnlyVoter refuses a Leave that would leave the region without a group.
var errOnlyVoter = errors.New("the only voter of its region cannot leave: add another node first, or stop the region")

// leave takes the node out of the deployment: leadership handed on, a
// graceful gossip leave (the region leader's autopilot then removes the
// node), and a wait until a peer's configuration no longer lists it.
func (m *membership) leave(ctx context.Context) (bool, error) {
	voters := 0
	for _, r := range m.roles() {
		if r == meridianv1.RaftRole_RAFT_ROLE_VOTER || r == meridianv1.RaftRole_RAFT_ROLE_LEADER {
			voters++
		}
	}
	if r := m.roles()[m.cfg.NodeID]; voters <= 1 && (r == meridianv1.RaftRole_RAFT_ROLE_VOTER || r == meridianv1.RaftRole_RAFT_ROLE_LEADER) {
		return false, errOnlyVoter
	}
	if m.rn.IsLeader() {
		if err := m.rn.Raft().LeadershipTransfer().Error(); err != nil {
			return false, fmt.Errorf("hand on the region's leadership: %w", err)
		}
	}
	if err := m.g.leave(); err != nil {
		return false, fmt.Errorf("gossip leave: %w", err)
	}
	m.logger.Info("left the gossip pool; waiting for the region leader to remove this node")
	for {
		if m.removedByPeer(ctx) {
			m.leftOnce.Do(func() { close(m.left) })
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(leavePoll):
		}
	}
}

// removedByPeer asks the other alive members of the region (from gossip)
// whether their copy of the Raft configuration still lists this node; one
// that does not is enough. It does not go through the local view of the
// leader: a node removed from the group stops hearing from the leader and
// soon forgets who it is.
func (m *membership) removedByPeer(ctx context.Context) bool {
	for id, mem := range m.g.regionMembers(m.cfg.Region) {
		addr := mem.Tags[tagAPI]
		if id == m.cfg.NodeID || mem.Status != serf.StatusAlive || addr == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, membershipCallTimeout)
		resp, err := m.lists.For(addr).ListMembers(cctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
		cancel()
		if err != nil {
			continue
		}
		listed := false
		for _, gm := range resp.Msg.GetMembers() {
			if gm.GetRegion() == m.cfg.Region && gm.GetNode() == m.cfg.NodeID {
				listed = gm.GetRaftRole() != meridianv1.RaftRole_RAFT_ROLE_NONE
			}
		}
		if !listed {
			return true
		}
	}
	return false
}

// regionDelegate is raft-autopilot's view of the region: the Raft
// configuration's servers and the gossip pool's members of the region,
// with liveness from gossip and stats from each node's Status.
type regionDelegate struct{ m *membership }

func (d *regionDelegate) AutopilotConfig() *autopilot.Config {
	return &autopilot.Config{
		CleanupDeadServers:      true,
		LastContactThreshold:    d.m.cfg.LastContactThreshold,
		MaxTrailingLogs:         d.m.cfg.MaxTrailingLogs,
		MinQuorum:               1,
		ServerStabilizationTime: d.m.cfg.StabilizationTime,
	}
}

func (d *regionDelegate) NotifyState(*autopilot.State) {}

// KnownServers reports every server of the Raft configuration and every
// gossip member of the region. Liveness is gossip's, with one difference:
// a failed member counts as failed (and autopilot removes it) only once it
// has been failed for DeadNodeTimeout, so a node that restarts keeps its
// place. A server gossip does not know (a static peer of a node started
// without gossip) counts as alive: gossip has no say over it.
func (d *regionDelegate) KnownServers() map[raft.ServerID]*autopilot.Server {
	_, leader := d.m.rn.Raft().LeaderWithID()
	out := map[raft.ServerID]*autopilot.Server{}
	add := func(id, addr string, status autopilot.NodeStatus) {
		out[raft.ServerID(id)] = &autopilot.Server{
			ID: raft.ServerID(id), Name: id, Address: raft.ServerAddress(addr),
			NodeStatus: status, NodeType: autopilot.NodeVoter, RaftVersion: raft.ProtocolVersionMax,
			IsLeader: raft.ServerID(id) == leader,
		}
	}
	if cf := d.m.rn.Raft().GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			add(string(s.ID), string(s.Address), autopilot.NodeAlive)
		}
	}
	for id, mem := range d.m.g.regionMembers(d.m.cfg.Region) {
		status := autopilot.NodeAlive
		switch mem.Status {
		case serf.StatusLeft:
			status = autopilot.NodeLeft
		case serf.StatusFailed:
			if since, ok := d.m.g.statusFor("lan", mem.Name); ok && since >= d.m.cfg.DeadNodeTimeout {
				status = autopilot.NodeFailed
			}
		}
		if id == d.m.cfg.NodeID {
			status = autopilot.NodeAlive
		}
		add(id, mem.Tags[tagRaft], status)
	}
	return out
}

// FetchServerStats asks every server for its Raft progress (Status),
// concurrently; one that does not answer is left out (unhealthy).
func (d *regionDelegate) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	var mu sync.Mutex
	out := map[raft.ServerID]*autopilot.ServerStats{}
	var wg sync.WaitGroup
	for id := range servers {
		wg.Go(func() {
			var st *meridianv1.StatusResponse
			if string(id) == d.m.cfg.NodeID {
				st = d.m.rn.Status()
			} else if addr, ok := d.m.g.apiAddr(string(id)); ok {
				cctx, cancel := context.WithTimeout(d.m.ctx, membershipCallTimeout)
				resp, err := d.m.status.For(addr).Status(cctx, connect.NewRequest(&meridianv1.StatusRequest{}))
				cancel()
				if err != nil || resp.Msg.GetNode() != string(id) {
					return
				}
				st = resp.Msg
			} else {
				return
			}
			// Autopilot wants the last entry's term; the current term
			// (Status reads it without going through Raft's loop) serves
			// its purpose: a server in the leader's term, few entries
			// behind and in contact has caught up.
			stats := &autopilot.ServerStats{LastTerm: st.GetRaftTerm(), LastIndex: st.GetRaftLastIndex(), LastContact: -1}
			if c := st.GetRaftLastContact(); c != nil {
				stats.LastContact = c.AsDuration()
			}
			mu.Lock()
			out[id] = stats
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// RemoveFailedServer removes a member that left or stayed failed; autopilot
// wants it not to block.
func (d *regionDelegate) RemoveFailedServer(s *autopilot.Server) {
	d.m.wg.Go(func() {
		if err := d.m.rn.Raft().RemoveServer(s.ID, 0, membershipCallTimeout).Error(); err != nil {
			d.m.logger.Warn("remove failed node from the region group", "member", s.ID, "err", err)
			return
		}
		d.m.logger.Info("node removed from the region group", "member", s.ID, "status", s.NodeStatus)
	})
}

// membershipService serves the Membership API.
type membershipService struct {
	m *membership
}

func (s membershipService) ListMembers(context.Context, *connect.Request[meridianv1.ListMembersRequest]) (*connect.Response[meridianv1.ListMembersResponse], error) {
	return connect.NewResponse(s.m.g.list(s.m.roles())), nil
}

func (s membershipService) Leave(ctx context.Context, _ *connect.Request[meridianv1.LeaveRequest]) (*connect.Response[meridianv1.LeaveResponse], error) {
	removed, err := s.m.leave(ctx)
	switch {
	case errors.Is(err, errOnlyVoter):
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	case err != nil && ctx.Err() != nil:
		return nil, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("leave announced, removal not confirmed before the deadline: %w", err))
	case err != nil:
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&meridianv1.LeaveResponse{Removed: removed}), nil
}
