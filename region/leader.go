package region

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"github.com/meridiandb/meridian/causal"
)

// leaderBarrierTimeout bounds the barrier a new leader issues before it
// counts as established.
const leaderBarrierTimeout = 10 * time.Second

// leaderPollInterval is how often a request waiting for a leader rechecks
// when no leader change was observed (the network may have healed).
const leaderPollInterval = 50 * time.Millisecond

// runLeadership follows Raft's leadership: it wakes requests waiting for a
// leader on every change and runs establishLeadership / revokeLeadership.
func (n *Node) runLeadership() {
	defer n.wg.Done()
	obsCh := make(chan raft.Observation, 16)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	leaderCh := n.raft.LeaderCh()
	for {
		select {
		case <-obsCh:
			n.leaderChanged()
		case isLeader := <-leaderCh:
			n.leaderChanged()
			if isLeader {
				n.establishLeadership()
			} else {
				n.revokeLeadership()
			}
		case <-n.closing:
			return
		}
	}
}

// establishLeadership runs when this node becomes leader: a barrier makes
// the FSM apply every earlier entry, then the HLC is raised above the last
// stamp applied, so this leader's stamps follow its predecessors'.
func (n *Node) establishLeadership() {
	term := n.raft.CurrentTerm()
	f := n.raft.Barrier(leaderBarrierTimeout)
	watchShutdown(f, n.closing)
	if err := f.Error(); err != nil {
		n.logger.Warn("leader barrier failed", "err", err)
		return
	}
	if last := n.fsm.ApplyState().GetLastHlc(); last != nil {
		if _, err := n.hlc.Update(causal.Timestamp{WallNanos: last.GetWallNanos(), Logical: last.GetLogical()}); err != nil {
			// Apply keeps HLCs increasing regardless (ApplyState.last_hlc).
			n.logger.Warn("last applied hlc is ahead of the local clock", "err", err)
		}
	}
	n.established.Store(term)
	n.logger.Info("leadership established", "term", n.raft.CurrentTerm(), "applied", n.fsm.AppliedIndex())
}

// revokeLeadership runs when this node stops leading. Proposals still in
// Raft learn their outcome from Raft (ErrLeadershipLost: outcome unknown);
// queued ones fail with ErrNotLeader when the batcher proposes them.
func (n *Node) revokeLeadership() {
	n.dropDispatchers()
	n.logger.Info("leadership lost", "term", n.raft.CurrentTerm())
}

// leaderChanged wakes everything waiting for a leader change.
func (n *Node) leaderChanged() { n.leaderCh.Notify() }

func (n *Node) leaderChangedCh() <-chan struct{} { return n.leaderCh.C() }

// waitLeaderChange waits for a leader change, a poll interval, ctx or the
// deadline. It returns ctx's error, or errLeaderWait once deadline passed.
func (n *Node) waitLeaderChange(ctx context.Context, ch <-chan struct{}, deadline time.Time) error {
	wait := min(time.Until(deadline), leaderPollInterval)
	if wait <= 0 {
		return errLeaderWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.closing:
		return ErrNodeClosed
	}
	return nil
}

var errLeaderWait = errors.New("region: leader wait bound reached")

// isLeader reports whether Raft says this node is the leader now.
func (n *Node) isLeader() bool { return n.raft.State() == raft.Leader }

// LogStaleness bounds how far this node's copy of its region's own log may
// be behind the region: zero on the leader, whose copy is the log (a leader
// deposed without knowing it yet is the window STRONG reads close with
// VerifyLeader); on a follower the time since it last heard from the leader
// plus one heartbeat period, within which the leader sends its commit
// index. False when the node has never heard from a leader. The Pull
// service sends it with the region's own origin, so a region pulling from
// a follower cut off from its leader does not take that copy for fresh.
func (n *Node) LogStaleness() (time.Duration, bool) {
	if n.isLeader() {
		return 0, true
	}
	last := n.raft.LastContact()
	if last.IsZero() {
		return 0, false
	}
	return max(0, time.Since(last)) + n.cfg.HeartbeatTimeout/10, true
}

// leader returns the current leader's id and API address, if known.
func (n *Node) leader() (id, apiAddr string, ok bool) {
	_, sid := n.raft.LeaderWithID()
	if sid == "" {
		return "", "", false
	}
	p, found := n.cfg.peer(string(sid))
	if string(sid) == n.cfg.NodeID && n.cfg.APIAdvertise != "" {
		p.APIAddr, found = n.cfg.APIAdvertise, true
	}
	if (!found || p.APIAddr == "") && n.cfg.Directory != nil {
		p.APIAddr, found = n.cfg.Directory(string(sid))
	}
	if !found || p.APIAddr == "" {
		return string(sid), "", false
	}
	return string(sid), p.APIAddr, true
}
