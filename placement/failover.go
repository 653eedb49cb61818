package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Failover (ADR 0004). Once a region's lease has expired on the placement
// leader (duration + MaxClockOffset after the leader applied its last
// renewal), the region orders no more writes. Its rules with failover
// policy SAFE then move, in one transition, to the first region of each
// rule's failover list whose lease holds. The lost home cannot freeze;
// instead every other region (the fencers: all of them, so a failover
// waits while two regions are lost at once) holds the lost home's log back
// at what it has of it and reports that; the longest of those prefixes is
// the cut, which the new home applies before the flip. So every event of
// the lost home that any other region held, and every MULTI_REGION write
// among them, keeps its version; the rest (its unreplicated tail) is
// superseded when it arrives and appended again by the new home, marked
// recovered (region/supersede.go): the flip records the failover's
// FailoverTail in the lost region's lease, which tells every region which
// events those are.

// ErrHomeLost: a planned change would move homes away from (or to) a region
// whose lease has expired. Moving a lost home's entities is a failover,
// which the leader starts by itself for rules with failover policy SAFE.
var ErrHomeLost = errors.New("placement: a region of the change is lost")

// failoverCheckInterval is how often the leader looks for expired leases.
const failoverCheckInterval = 250 * time.Millisecond

// applyFailover stages the failover of c.Region's rules to c.Targets.
func applyFailover(t *table, c *meridianv1.FailoverCommand, index uint64) (update, *ApplyResult) {
	if cur := t.transitionView(); cur.active() {
		return rejected(&BusyError{Transition: cur.rec.GetIndex(), Reason: cur.rec.GetReason()})
	}
	t.mu.RLock()
	l, ok := t.s.leases[c.GetRegion()]
	t.mu.RUnlock()
	if !ok || l.GetRenewedIndex() != c.GetExpectedRenewedIndex() {
		return rejected(invalidf("expected_renewed_index", "region %q renewed its lease since (at index %d, not %d): it is not lost",
			c.GetRegion(), l.GetRenewedIndex(), c.GetExpectedRenewedIndex()))
	}
	cur, _ := t.view()
	rules := cur.rulesProto()
	moved := 0
	for _, r := range rules {
		to, ok := c.GetTargets()[r.GetPrefix()]
		if !ok {
			continue
		}
		if r.GetHomeRegion() != c.GetRegion() || !slices.Contains(r.GetFailover(), to) ||
			r.GetFailoverPolicy() == meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER {
			return rejected(invalidf("targets", "rule %q (home %s, failover %v, policy %v) cannot fail over from %s to %s",
				r.GetPrefix(), r.GetHomeRegion(), r.GetFailover(), r.GetFailoverPolicy(), c.GetRegion(), to))
		}
		r.HomeRegion = to
		r.Failover = append(slices.DeleteFunc(r.GetFailover(), func(f string) bool { return f == to }), c.GetRegion())
		moved++
	}
	if moved != len(c.GetTargets()) || moved == 0 {
		return rejected(invalidf("targets", "names %d rules, %d of them exist", len(c.GetTargets()), moved))
	}
	sr := &meridianv1.SetRulesCommand{
		Rules: rules, DefaultRegion: cur.defaultRegion, ExpectedIndex: cur.rulesIndex,
		Stage: true, ProposedAt: c.GetProposedAt(), Reason: c.GetReason(),
	}
	tr, moves, err := pendingOf(t, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, sr, index)
	if err != nil {
		return rejected(err)
	}
	for _, m := range moves {
		m.Lost = m.GetFrom() == c.GetRegion()
	}
	payload, err := marshalDeterministic.Marshal(sr)
	if err != nil {
		panic(fmt.Errorf("placement: stage entry %d: marshal failover: %w", index, err))
	}
	tr.rec = &meridianv1.PlacementTransition{
		Index: index, CommandType: meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, Command: payload,
		Moves: moves, StartedAt: c.GetProposedAt(), Reason: c.GetReason(), Failover: true, Fencers: c.GetFencers(),
	}
	return update{transition: tr}, &ApplyResult{Staged: true, Transition: index, DefaultEpoch: cur.defaultEpoch}
}

// fencedCut returns a lost move's cut once every fencer reported.
func fencedCut(fencers []string, m *meridianv1.HomeMove) (uint64, bool) {
	var cut uint64
	for _, r := range fencers {
		s, ok := m.GetFenced()[r]
		if !ok {
			return 0, false
		}
		cut = max(cut, s)
	}
	return cut, true
}

// leaseExpired reports whether region's lease has expired as this leader
// sees it: duration + MaxClockOffset after this member applied the last
// renewal (as a follower or as leader; establishLeadership runs after a
// Barrier, so every renewal committed before is applied by then, at or
// after its commit and so after the holder sent it). A region that never
// renewed has no lease to expire (and has ordered no write).
func (n *Node) leaseExpired(region string) bool {
	st, ok := n.fsm.LeaseStatus(region, n.cfg.MaxClockOffset)
	return ok && st.GetExpired()
}

// leaseLive reports whether region holds a lease this leader can count
// on: renewed, not expired, and not fenced by its holder.
func (n *Node) leaseLive(region string) bool {
	st, ok := n.fsm.LeaseStatus(region, n.cfg.MaxClockOffset)
	return ok && !st.GetExpired() && st.GetLease().GetFenced() == ""
}

// runFailovers, on the leader, fails over the rules of regions whose lease
// has expired.
func (n *Node) runFailovers(ctx context.Context) {
	t := time.NewTicker(failoverCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.fsm.TransitionIndex() != 0 {
			continue
		}
		for _, lost := range n.fsm.leaseRegions() {
			if !n.leaseExpired(lost) {
				continue
			}
			cmd := n.failoverCommand(lost)
			if cmd == nil {
				continue
			}
			res, err := n.propose(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_FAILOVER, cmd)
			if err != nil {
				n.logger.Warn("failover could not be staged; retrying", "region", lost, "err", err)
				break
			}
			n.logger.Warn("failover staged: a region's lease expired", "region", lost, "transition", res.Transition,
				"targets", cmd.GetTargets(), "fencers", cmd.GetFencers(), "why", cmd.GetReason())
			break
		}
	}
}

// failoverCommand builds the failover of lost's SAFE rules to the first
// live region of each one's failover list; nil when none can move.
func (n *Node) failoverCommand(lost string) *meridianv1.FailoverCommand {
	st, ok := n.fsm.LeaseStatus(lost, n.cfg.MaxClockOffset)
	if !ok {
		return nil
	}
	// Every other region fences: any of them may hold events of the lost
	// home that a MULTI_REGION append was acknowledged for, and the cut must
	// include them. So a failover needs every other region's lease to hold
	// (and so its report to be able to arrive); with two regions lost at
	// once, the entities wait for one to return.
	live := map[string]bool{}
	var fencers []string
	for _, r := range n.fsm.Regions() {
		if r == lost {
			continue
		}
		if !n.leaseLive(r) {
			n.logger.Debug("failover waits: another region's lease does not hold either", "lost", lost, "region", r)
			return nil
		}
		live[r] = true
		fencers = append(fencers, r)
	}
	rules, _, _, _ := n.fsm.Rules()
	targets := map[string]string{}
	for _, r := range rules {
		if r.GetHomeRegion() != lost || r.GetFailoverPolicy() == meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER ||
			r.GetMode() == meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE {
			continue
		}
		for _, f := range r.GetFailover() {
			if live[f] {
				targets[r.GetPrefix()] = f
				break
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	sort.Strings(fencers)
	return &meridianv1.FailoverCommand{
		Region: lost, ExpectedRenewedIndex: st.GetLease().GetRenewedIndex(), Targets: targets, Fencers: fencers,
		ProposedAt: timestamppb.Now(),
		Reason:     fmt.Sprintf("failover of %s: %s", lost, describeLease(st)),
	}
}

// checkReachable refuses, on the leader, a planned change whose moves
// start or end in a region whose lease has expired: such a move cannot
// complete (no freeze, no drain), and moving a lost home's entities is a
// failover.
func (n *Node) checkReachable(typ meridianv1.PlacementCommandType, m proto.Message) error {
	_, moves, err := pendingOf(&n.fsm.table, typ, m, n.fsm.AppliedIndex()+1)
	if err != nil || len(moves) == 0 {
		return nil // apply refuses it or applies it at once
	}
	var lost []string
	for _, mv := range moves {
		for _, r := range []string{mv.GetFrom(), mv.GetTo()} {
			if n.leaseExpired(r) && !slices.Contains(lost, r) {
				lost = append(lost, r)
			}
		}
	}
	if len(lost) == 0 {
		return nil
	}
	var why []string
	for _, r := range lost {
		st, _ := n.fsm.LeaseStatus(r, n.cfg.MaxClockOffset)
		why = append(why, describeLease(st))
	}
	return fmt.Errorf("%w: %s; a move needs both homes reachable. Entities of rules with failover policy safe leave a lost home by themselves (failover); the others wait for it to return",
		ErrHomeLost, strings.Join(why, "; "))
}
