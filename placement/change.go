package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// The leader's side of changes that may move homes: wait for the change in
// progress (at most one), propose, and when the change was staged wait for
// it to complete or be aborted.

// changePollInterval bounds how long a change waiting for its turn or its
// outcome goes without rechecking the table (it also wakes on every apply).
const changePollInterval = 20 * time.Millisecond

// proposeChange proposes m on the leader and returns the change's result:
// at once when it moves no home, after the flip when it was staged (rec is
// then the completed transition). A change refused because another one is
// in progress waits for it and is proposed again. If ctx ends while the
// staged change is in progress, the change goes on (the leader aborts it
// after TransitionTimeout) and the error says so.
func (n *Node) proposeChange(ctx context.Context, typ meridianv1.PlacementCommandType, m proto.Message) (*ApplyResult, *meridianv1.PlacementTransition, error) {
	for {
		if err := n.waitTable(ctx, func() bool { return n.fsm.TransitionIndex() == 0 }); err != nil {
			busy := n.fsm.TransitionIndex()
			return nil, nil, fmt.Errorf("%w: waiting for the change staged at index %d to complete: %w", ErrNotLeader, busy, err)
		}
		if err := n.checkReachable(typ, m); err != nil {
			return nil, nil, err
		}
		res, err := n.propose(typ, m)
		if errors.Is(err, ErrBusy) {
			continue
		}
		if err != nil || !res.Staged {
			return res, nil, err
		}
		n.logger.Info("placement change staged", "transition", res.Transition, "reason", changeReason(m))
		var out outcome
		if err := n.waitTable(ctx, func() bool {
			var ok bool
			out, ok = n.fsm.outcomes.get(res.Transition)
			return ok
		}); err != nil {
			return nil, nil, fmt.Errorf("%w: the change was staged at index %d and is still in progress (the new homes take over once the old ones froze and they drained): %w",
				ErrOutcomeUnknown, res.Transition, err)
		}
		if out.res == nil {
			return nil, out.rec, fmt.Errorf("%w: %s (staged at index %d): %s", ErrAborted, out.rec.GetReason(), out.rec.GetIndex(), out.rec.GetAborted())
		}
		return out.res, out.rec, nil
	}
}

// waitTable waits until ready() holds for the local table, ctx ends or the
// member closes.
func (n *Node) waitTable(ctx context.Context, ready func() bool) error {
	t := time.NewTicker(changePollInterval)
	defer t.Stop()
	for {
		ch := n.fsm.Changed()
		if ready() {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closing:
			return ErrStoreClosed
		}
	}
}

// move builds the change that moves target (an entity or a rule's prefix)
// to region, from the leader's current table.
func (n *Node) moveCommand(req *meridianv1.MoveRequest) (meridianv1.PlacementCommandType, proto.Message, error) {
	now := timestamppb.Now()
	switch t := req.GetTarget().(type) {
	case *meridianv1.MoveRequest_Entity:
		return meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN,
			&meridianv1.PinCommand{Entity: t.Entity, Region: req.GetRegion(), Stage: true, ProposedAt: now}, nil
	case *meridianv1.MoveRequest_Prefix:
		rules, def, _, rulesIndex := n.fsm.Rules()
		i := slices.IndexFunc(rules, func(r *meridianv1.PlacementRule) bool { return r.GetPrefix() == t.Prefix })
		if i < 0 {
			prefixes := make([]string, len(rules))
			for k, r := range rules {
				prefixes[k] = r.GetPrefix()
			}
			return 0, nil, invalidf("prefix", "no rule has prefix %q (rules: %s); move an entity, or add the rule with SetRules",
				t.Prefix, strings.Join(prefixes, ", "))
		}
		r := rules[i]
		r.HomeRegion = req.GetRegion()
		r.Failover = slices.DeleteFunc(r.GetFailover(), func(f string) bool { return f == req.GetRegion() })
		return meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, &meridianv1.SetRulesCommand{
			Rules: rules, DefaultRegion: def, ExpectedIndex: rulesIndex, Stage: true, ProposedAt: now,
			Reason: fmt.Sprintf("move prefix %s to %s", t.Prefix, req.GetRegion()),
		}, nil
	}
	return 0, nil, invalidf("target", "must be an entity or a prefix")
}

// move is Move on the leader: a rule move is a read-modify-write of the
// rules, retried when another change got in between.
func (n *Node) move(ctx context.Context, req *meridianv1.MoveRequest) (*meridianv1.MoveResponse, error) {
	const conflictRetriesMax = 3
	for attempt := 0; ; attempt++ {
		if err := n.waitTable(ctx, func() bool { return n.fsm.TransitionIndex() == 0 }); err != nil {
			return nil, fmt.Errorf("%w: waiting for the change in progress: %w", ErrNotLeader, err)
		}
		typ, cmd, err := n.moveCommand(req)
		if err != nil {
			return nil, err
		}
		res, rec, err := n.proposeChange(ctx, typ, cmd)
		if errors.Is(err, ErrConflict) && attempt < conflictRetriesMax {
			continue
		}
		if err != nil {
			return nil, err
		}
		resp := &meridianv1.MoveResponse{Index: res.Index, Epoch: res.Epoch, Change: ChangeOf(rec)}
		for _, r := range res.Rules {
			if r.GetPrefix() == req.GetPrefix() {
				resp.Epoch = r.GetEpoch()
			}
		}
		return resp, nil
	}
}

// ackTransition is AckTransition on the leader.
func (n *Node) ackTransition(req *meridianv1.AckTransitionRequest) (*meridianv1.AckTransitionResponse, error) {
	res, err := n.propose(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ACK_TRANSITION, &meridianv1.AckTransitionCommand{
		Transition: req.GetTransition(), Kind: req.GetKind(), Region: req.GetRegion(), Origin: req.GetOrigin(),
		Seq: req.GetSeq(), AckedAt: timestamppb.Now(),
	})
	if err != nil {
		return nil, err
	}
	if res.Completed {
		n.logger.Info("placement change completed", "transition", res.Transition, "index", res.Index)
	}
	return &meridianv1.AckTransitionResponse{Index: res.Index, Completed: res.Completed}, nil
}

// transitionCheckInterval is how often the leader checks the age of the
// change in progress.
const transitionCheckInterval = 100 * time.Millisecond

// runTransitionTimeouts aborts, on the leader, a change that has not
// completed TransitionTimeout after this leader first saw it in progress
// (a new leader gives a change the whole timeout again: it cannot know how
// long its predecessor waited).
func (n *Node) runTransitionTimeouts(ctx context.Context) {
	t := time.NewTicker(transitionCheckInterval)
	defer t.Stop()
	var seen uint64
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rec, active := n.fsm.Transition()
		if !active {
			seen = 0
			continue
		}
		if rec.GetIndex() != seen {
			seen, since = rec.GetIndex(), time.Now()
			continue
		}
		reason := ""
		if lost := n.lostInMove(rec); lost != "" {
			// A home this change waits for will not report: drop the change
			// now rather than hold writes (and a failover) for the timeout.
			reason = fmt.Sprintf("region %s is lost (%s): %s", lost, n.LeaseInfo(lost), pendingParts(rec))
		} else if time.Since(since) >= n.cfg.TransitionTimeout {
			reason = fmt.Sprintf("not completed within %s: %s", n.cfg.TransitionTimeout, pendingParts(rec))
		}
		if reason == "" {
			continue
		}
		if _, err := n.propose(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ABORT_TRANSITION,
			&meridianv1.AbortTransitionCommand{Transition: rec.GetIndex(), Reason: reason}); err != nil {
			n.logger.Warn("abort of a stuck placement change failed; retrying", "transition", rec.GetIndex(), "err", err)
			continue
		}
		n.logger.Warn("placement change aborted", "transition", rec.GetIndex(), "change", rec.GetReason(), "why", reason)
	}
}

// pendingParts says what a transition still waits for.
func pendingParts(rec *meridianv1.PlacementTransition) string {
	var parts []string
	for _, m := range rec.GetMoves() {
		if m.GetLost() {
			var missing []string
			for _, r := range rec.GetFencers() {
				if _, ok := m.GetFenced()[r]; !ok {
					missing = append(missing, r)
				}
			}
			if len(missing) > 0 {
				parts = append(parts, fmt.Sprintf("%s have not fenced lost %s's log", strings.Join(missing, ", "), m.GetFrom()))
			} else if cut, _ := fencedCut(rec.GetFencers(), m); m.GetDrainedSeq() < cut {
				parts = append(parts, fmt.Sprintf("%s (new home) applied %s's log to %d of the cut %d", m.GetTo(), m.GetFrom(), m.GetDrainedSeq(), cut))
			}
			continue
		}
		switch {
		case !m.GetFrozen():
			parts = append(parts, fmt.Sprintf("%s (old home) has not frozen", m.GetFrom()))
		case m.GetDrainedSeq() < m.GetFrozenSeq():
			parts = append(parts, fmt.Sprintf("%s (new home) applied %s's log to %d of %d",
				m.GetTo(), m.GetFrom(), m.GetDrainedSeq(), m.GetFrozenSeq()))
		}
	}
	return strings.Join(parts, "; ")
}

// lostInMove returns a region whose report rec still waits for and whose
// lease has expired on this leader ("" if none): an old home that has not
// frozen, a new home that has not drained, or a fencer that has not fenced.
func (n *Node) lostInMove(rec *meridianv1.PlacementTransition) string {
	for _, m := range rec.GetMoves() {
		if m.GetLost() {
			for _, r := range rec.GetFencers() {
				if _, ok := m.GetFenced()[r]; !ok && n.leaseExpired(r) {
					return r
				}
			}
		} else if !m.GetFrozen() && n.leaseExpired(m.GetFrom()) {
			return m.GetFrom()
		}
		if n.leaseExpired(m.GetTo()) {
			return m.GetTo()
		}
	}
	return ""
}
