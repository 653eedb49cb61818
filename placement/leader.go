package placement

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/internal/logadapt"
)

// runLeadership follows leadership changes: on gaining it, a Barrier (the
// table then holds every earlier entry), then raft-autopilot starts
// reconciling voters; on losing it, autopilot stops.
func (n *Node) runLeadership() {
	defer n.wg.Done()
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case <-n.closing:
			return
		case leader := <-n.raft.LeaderCh():
			if stop != nil {
				stop()
				stop = nil
			}
			if !leader {
				n.logger.Info("placement leadership lost")
				continue
			}
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.logger.Warn("placement barrier failed after election", "err", err)
				continue
			}
			n.logger.Info("placement leadership established", "applied", n.fsm.AppliedIndex())
			stop = n.establishLeadership()
		}
	}
}

// establishLeadership starts the leader's voter reconciliation, the
// timeout of placement changes in progress and the failover of regions
// whose lease expired, and returns the function that stops them
// (revokeLeadership). It runs after a Barrier, so every lease renewal
// committed before is applied and timed (lease.go).
func (n *Node) establishLeadership() func() {
	d := &delegate{n: n, health: newHealth(n.cfg.FailedAfter)}
	ap := autopilot.New(n.raft, d,
		autopilot.WithLogger(logadapt.HCLog(n.logger.With("component", "placement-autopilot"), "autopilot")),
		autopilot.WithUpdateInterval(n.cfg.StatsInterval),
		autopilot.WithReconcileInterval(n.cfg.StatsInterval),
		autopilot.WithPromoter(&regionPromoter{votersPerRegion: n.cfg.VotersPerRegion, stabilization: n.cfg.StabilizationTime}),
	)
	ctx, cancel := context.WithCancel(context.Background())
	ap.Start(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.runTransitionTimeouts(ctx) })
	wg.Go(func() { n.runFailovers(ctx) })
	return func() {
		cancel()
		<-ap.Stop()
		wg.Wait()
	}
}

// delegate is raft-autopilot's view of the application: the member
// directory (the table's members), their liveness (from fetching their
// stats) and the removal of failed members.
type delegate struct {
	n      *Node
	health *health
}

func (d *delegate) AutopilotConfig() *autopilot.Config {
	return &autopilot.Config{
		CleanupDeadServers:      true,
		LastContactThreshold:    d.n.cfg.LastContactThreshold,
		MaxTrailingLogs:         d.n.cfg.TrailingLogs,
		MinQuorum:               1,
		ServerStabilizationTime: d.n.cfg.StabilizationTime,
	}
}

func (d *delegate) NotifyState(*autopilot.State) {}

// KnownServers lists the member directory with each member's liveness.
func (d *delegate) KnownServers() map[raft.ServerID]*autopilot.Server {
	_, leader := d.n.raft.LeaderWithID()
	out := map[raft.ServerID]*autopilot.Server{}
	for _, m := range d.n.fsm.Members() {
		id := raft.ServerID(m.GetId())
		status := d.health.status(m.GetId())
		if m.GetId() == d.n.id {
			status = autopilot.NodeAlive
		}
		out[id] = &autopilot.Server{
			ID: id, Name: m.GetId(), Address: raft.ServerAddress(m.GetRaftAddress()),
			NodeStatus: status, RaftVersion: raft.ProtocolVersionMax,
			Meta: map[string]string{"region": m.GetRegion()}, IsLeader: id == leader,
		}
	}
	return out
}

// FetchServerStats asks every member for its Raft stats, concurrently; a
// member that does not answer is left out (autopilot counts it unhealthy)
// and its failure feeds its liveness.
//
// raft-autopilot gives the call half its update interval (StatsInterval/2)
// through ctx. Across regions that can be less than one round trip (found
// by tests/multiregion TestNemesisAcrossRegions under the wan3 profile: a
// region 150 ms away never got a voter with a 250 ms interval), so the
// fetches run under CallTimeout instead, cancelled only when the member
// closes; a slow round only delays the next reconciliation.
func (d *delegate) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	ctx, cancel := context.WithTimeout(d.n.ctx, d.n.cfg.CallTimeout)
	defer cancel()
	api := map[string]string{}
	for _, m := range d.n.fsm.Members() {
		api[m.GetId()] = m.GetApiAddress()
	}
	var mu sync.Mutex
	out := map[raft.ServerID]*autopilot.ServerStats{}
	var wg sync.WaitGroup
	for id := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st *autopilot.ServerStats
			if string(id) == d.n.id {
				st = statsOf(d.n.Stats())
			} else if addr := api[string(id)]; addr != "" {
				if resp, err := d.n.peers.stats(ctx, addr); err == nil && resp.GetId() == string(id) {
					st = statsOf(resp)
				}
			}
			d.health.observe(string(id), st != nil, time.Now())
			if st != nil {
				mu.Lock()
				out[id] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// RemoveFailedServer removes a failed member from the Raft configuration
// (it rejoins through its join loop when it returns). Autopilot wants it
// not to block.
func (d *delegate) RemoveFailedServer(s *autopilot.Server) {
	go func() {
		if err := d.n.raft.RemoveServer(s.ID, 0, d.n.cfg.ApplyTimeout).Error(); err != nil {
			d.n.logger.Warn("remove failed member", "member", s.ID, "err", err)
			return
		}
		d.n.logger.Info("failed member removed from the placement group", "member", s.ID)
	}()
}

func statsOf(r *meridianv1.MemberStatsResponse) *autopilot.ServerStats {
	st := &autopilot.ServerStats{LastTerm: r.GetLastTerm(), LastIndex: r.GetLastIndex(), LastContact: -1}
	if d := r.GetLastContact(); d != nil {
		st.LastContact = d.AsDuration()
	}
	return st
}

// health tracks members' liveness from the leader's stats fetches: alive
// while fetches succeed, failed once they have failed for failedAfter.
type health struct {
	failedAfter time.Duration
	mu          sync.Mutex
	started     time.Time
	lastOK      map[string]time.Time
	failingFrom map[string]time.Time
}

func newHealth(failedAfter time.Duration) *health {
	return &health{failedAfter: failedAfter, started: time.Now(), lastOK: map[string]time.Time{}, failingFrom: map[string]time.Time{}}
}

func (h *health) observe(id string, ok bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.lastOK[id] = now
		delete(h.failingFrom, id)
		return
	}
	if _, failing := h.failingFrom[id]; !failing {
		h.failingFrom[id] = now
	}
}

func (h *health) status(id string) autopilot.NodeStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	if from, failing := h.failingFrom[id]; failing {
		if time.Since(from) >= h.failedAfter {
			return autopilot.NodeFailed
		}
		if _, ever := h.lastOK[id]; !ever {
			return autopilot.NodeUnknown
		}
		return autopilot.NodeAlive
	}
	if _, ok := h.lastOK[id]; ok {
		return autopilot.NodeAlive
	}
	return autopilot.NodeUnknown
}

// regionPromoter keeps votersPerRegion voters in every region: it promotes
// a region's healthy, stable non-voters while the region has fewer healthy
// voters, demotes surplus voters (unhealthy first, never the leader), and
// lets autopilot remove a failed voter only once its region has enough
// healthy voters without it, so a region cut off as a whole keeps its vote
// for when it returns.
type regionPromoter struct {
	votersPerRegion int
	stabilization   time.Duration
}

var _ autopilot.Promoter = (*regionPromoter)(nil)

func (p *regionPromoter) GetServerExt(*autopilot.Config, *autopilot.ServerState) interface{} {
	return nil
}

func (p *regionPromoter) GetStateExt(*autopilot.Config, *autopilot.State) interface{} { return nil }

func (p *regionPromoter) GetNodeTypes(_ *autopilot.Config, s *autopilot.State) map[raft.ServerID]autopilot.NodeType {
	out := map[raft.ServerID]autopilot.NodeType{}
	for id := range s.Servers {
		out[id] = autopilot.NodeVoter
	}
	return out
}

func (p *regionPromoter) IsPotentialVoter(t autopilot.NodeType) bool { return t == autopilot.NodeVoter }

// byRegion groups the state's servers by region, each sorted by id.
func byRegion(s *autopilot.State) map[string][]*autopilot.ServerState {
	out := map[string][]*autopilot.ServerState{}
	for id, srv := range s.Servers {
		r := regionOf(string(id))
		out[r] = append(out[r], srv)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Server.ID < list[j].Server.ID })
	}
	return out
}

func (p *regionPromoter) CalculatePromotionsAndDemotions(c *autopilot.Config, s *autopilot.State) autopilot.RaftChanges {
	var changes autopilot.RaftChanges
	now := time.Now()
	minStable := s.ServerStabilizationTime(c)
	for _, servers := range byRegion(s) {
		var healthyVoters, unhealthyVoters, candidates []*autopilot.ServerState
		for _, srv := range servers {
			switch {
			case srv.HasVotingRights() && srv.Health.Healthy:
				healthyVoters = append(healthyVoters, srv)
			case srv.HasVotingRights():
				unhealthyVoters = append(unhealthyVoters, srv)
			case srv.State == autopilot.RaftNonVoter && srv.Health.IsStable(now, minStable):
				candidates = append(candidates, srv)
			}
		}
		for i := 0; i < len(candidates) && len(healthyVoters)+i < p.votersPerRegion; i++ {
			changes.Promotions = append(changes.Promotions, candidates[i].Server.ID)
		}
		if len(healthyVoters) >= p.votersPerRegion {
			surplus := len(healthyVoters) + len(unhealthyVoters) - p.votersPerRegion
			for _, srv := range append(unhealthyVoters, healthyVoters...) {
				if surplus <= 0 {
					break
				}
				if srv.State == autopilot.RaftLeader {
					continue
				}
				changes.Demotions = append(changes.Demotions, srv.Server.ID)
				surplus--
			}
		}
	}
	return changes
}

func (p *regionPromoter) FilterFailedServerRemovals(_ *autopilot.Config, s *autopilot.State, failed *autopilot.FailedServers) *autopilot.FailedServers {
	regions := byRegion(s)
	out := &autopilot.FailedServers{StaleNonVoters: failed.StaleNonVoters}
	// Autopilot calls every member that is not NodeAlive failed, and so
	// removed a member whose first stats fetch had failed a second after
	// it joined (NodeUnknown: never answered yet); a region lost then had
	// no placement vote. Only members whose fetches have failed for
	// failedAfter (NodeFailed) are removed.
	for _, srv := range failed.FailedNonVoters {
		if srv.NodeStatus == autopilot.NodeFailed {
			out.FailedNonVoters = append(out.FailedNonVoters, srv)
		}
	}
	for _, srv := range failed.FailedVoters {
		if srv.NodeStatus != autopilot.NodeFailed {
			continue
		}
		healthy := 0
		for _, other := range regions[regionOf(string(srv.ID))] {
			if other.Server.ID != srv.ID && other.HasVotingRights() && other.Health.Healthy {
				healthy++
			}
		}
		if healthy >= p.votersPerRegion {
			out.FailedVoters = append(out.FailedVoters, srv)
		}
	}
	// Stale voters (in the configuration, unknown to the directory) are
	// left alone: the directory records a member before it is added.
	return out
}

// handOffTimeout bounds a leadership transfer at shutdown.
const handOffTimeout = 5 * time.Second

// HandOff transfers leadership of the placement group to another voter if
// this member leads it (before the node stops serving its API, through
// which regions renew their leases). Best effort: without another voter,
// or if the transfer fails, the group elects a leader once this one stops.
func (n *Node) HandOff() {
	if !n.isLeader() || len(n.voters()) < 2 {
		return
	}
	f := n.raft.LeadershipTransfer()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			n.logger.Warn("placement leadership transfer at shutdown failed", "err", err)
			return
		}
		n.logger.Info("placement leadership handed over at shutdown")
	case <-time.After(handOffTimeout):
		n.logger.Warn("placement leadership transfer at shutdown timed out", "after", handOffTimeout)
	}
}
