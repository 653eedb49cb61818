package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// The region leader's side of placement changes that move homes (ADR 0004):
// as an old home it fences itself (a PlacementFence entry in its own log,
// after which apply refuses every append routed by an older placement
// copy) and reports the fence; as a new home it reports once it has applied
// the old home's log up to the fence. The placement group flips the homes
// once every report is in.

// Bounds of the homes loop.
const (
	// homesPollInterval bounds how long the loop goes without looking at
	// the placement copy and the applied vector (it also wakes on their
	// changes and on leadership changes).
	homesPollInterval = 100 * time.Millisecond
	// ackResendInterval is how long a report goes unconfirmed by the
	// placement copy before it is sent again.
	ackResendInterval = time.Second
	// homesCallTimeout bounds one fence proposal or one report.
	homesCallTimeout = 5 * time.Second
)

// ackKey identifies one report of one transition.
type ackKey struct {
	transition uint64
	kind       TransitionAckKind
	origin     string
}

// runHomes runs the homes loop until the node closes; it acts only while
// this node leads the region.
func (n *Node) runHomes() {
	defer n.wg.Done()
	own := n.cfg.Ownership
	sent := map[ackKey]time.Time{}
	t := time.NewTicker(homesPollInterval)
	defer t.Stop()
	for {
		leaderCh, ownCh, fsmCh := n.leaderChangedCh(), own.Changed(), n.fsm.Changed()
		if n.isLeader() {
			n.homesStep(sent)
		}
		select {
		case <-n.closing:
			return
		case <-leaderCh:
		case <-ownCh:
		case <-fsmCh:
		case <-t.C:
		}
	}
}

// homesStep does this region's part of the transition in progress, if
// any, lifts the fences of failovers that are over, and appends again the
// superseded events of entities homed here.
func (n *Node) homesStep(sent map[ackKey]time.Time) {
	tr, ok := n.cfg.Ownership.Transition()
	if err := n.recordTails(n.cfg.Ownership.Regions()); err != nil {
		// Nothing else until it is in: this region must not become the
		// home of a moved entity before its own tail is out of its streams.
		n.logger.Warn("failover over: recording its tail rule failed; retrying", "err", err)
		return
	}
	n.releaseFences(tr, ok)
	if ok {
		n.transitionStep(tr, sent)
	} else {
		clear(sent)
	}
	n.recoverSuperseded()
}

// transitionStep is this region's part of transition tr.
func (n *Node) transitionStep(tr Transition, sent map[ackKey]time.Time) {
	me := n.cfg.Region
	for _, m := range tr.Moves {
		if m.Lost {
			n.lostMoveStep(tr, m, sent)
			continue
		}
		switch {
		case m.From == me && !m.Frozen:
			st := n.fsm.ApplyState()
			if st.GetFreezeTransition() != tr.Index {
				if err := n.freeze(tr.Index); err != nil {
					n.logger.Warn("placement change: fence failed; retrying", "transition", tr.Index, "err", err)
					return
				}
				st = n.fsm.ApplyState()
			}
			n.report(sent, TransitionAck{Transition: tr.Index, Kind: AckFrozen, Region: me, Seq: st.GetFreezeSeq()})
		case m.To == me && m.Frozen && m.DrainedSeq < m.FrozenSeq:
			if applied := n.fsm.ApplyState().GetApplied()[m.From]; applied >= m.FrozenSeq {
				n.report(sent, TransitionAck{Transition: tr.Index, Kind: AckDrained, Region: me, Origin: m.From, Seq: applied})
			}
		}
	}
}

// lostMoveStep is this region's part of a failover's move away from a lost
// region: as a survivor, hold the lost region's log back at what this
// region has of it and report that; once every survivor reported, let it
// through up to the cut; as the new home, report once it holds the cut.
func (n *Node) lostMoveStep(tr Transition, m TransitionMove, sent map[ackKey]time.Time) {
	me := n.cfg.Region
	if m.From == me {
		return // this region is back and still in the failover's table: it takes no part
	}
	fencer := slices.Contains(tr.Fencers, me)
	cut, known := tr.Cut(m)
	if fencer {
		f := n.fsm.ApplyState().GetOriginFences()[m.From]
		if f == nil || f.GetTransition() != tr.Index {
			if _, err := n.proposeOriginFence(&meridianv1.OriginFence{Origin: m.From, Transition: tr.Index}); err != nil {
				n.logger.Warn("failover: fencing the lost region's log failed; retrying", "transition", tr.Index, "origin", m.From, "err", err)
				return
			}
			f = n.fsm.ApplyState().GetOriginFences()[m.From]
			n.logger.Info("failover: holding the lost region's log back", "transition", tr.Index, "origin", m.From, "at", f.GetLimit())
		}
		if _, ok := m.Fenced[me]; !ok {
			n.report(sent, TransitionAck{Transition: tr.Index, Kind: AckFenced, Region: me, Origin: m.From, Seq: f.GetLimit()})
		}
		if known && f.GetLimit() < cut {
			if _, err := n.proposeOriginFence(&meridianv1.OriginFence{Origin: m.From, Transition: tr.Index, Limit: cut}); err != nil {
				n.logger.Warn("failover: raising the fence to the cut failed; retrying", "transition", tr.Index, "err", err)
				return
			}
		}
	}
	if m.To == me && known && m.DrainedSeq < cut {
		if applied := n.fsm.ApplyState().GetApplied()[m.From]; applied >= cut {
			n.report(sent, TransitionAck{Transition: tr.Index, Kind: AckDrained, Region: me, Origin: m.From, Seq: applied})
		}
	}
}

// recordTails records in this region's state the completed failovers of
// origins it does not have yet (supersede.go, failover tails), each in the
// entry that releases the fence the failover left here, if any. Origins'
// events are applied only after (Replicate asks first).
func (n *Node) recordTails(origins []string) error {
	own := n.cfg.Ownership
	if own == nil {
		return nil
	}
	for _, o := range origins {
		for _, ft := range own.Failovers(o) {
			if n.fsm.hasTail(o, ft.GetTransition()) {
				continue
			}
			f := n.fsm.ApplyState().GetOriginFences()[o]
			release := o != n.cfg.Region && f != nil && f.GetTransition() <= ft.GetTransition()
			res, err := n.proposeOriginFence(&meridianv1.OriginFence{Origin: o, Transition: ft.GetTransition(), Release: release, Tail: ft})
			if err != nil {
				return fmt.Errorf("failover of %s staged at %d: %w", o, ft.GetTransition(), err)
			}
			if o == n.cfg.Region {
				n.logger.Warn("failover of this region: its own unreplicated tail leaves its streams, for the new homes to append again",
					"transition", ft.GetTransition(), "cut", ft.GetCut(), "superseded", res.Superseded)
				continue
			}
			n.logger.Info("failover over: its lost home's unreplicated tail is superseded on arrival", "origin", o,
				"transition", ft.GetTransition(), "cut", ft.GetCut(), "moved", ft.GetMoved(), "released", release)
		}
	}
	return nil
}

// releaseFences lifts the fences of failovers no longer in progress. The
// fence of a failover that completed is lifted by recordTails, with its
// tail rule, never alone.
func (n *Node) releaseFences(tr Transition, active bool) {
	for origin, f := range n.fsm.ApplyState().GetOriginFences() {
		if active && f.GetTransition() == tr.Index {
			continue
		}
		if f.GetTransition() > n.cfg.Ownership.Index() {
			continue // a copy behind the failover's staging knows neither its end nor its tail
		}
		if slices.ContainsFunc(n.cfg.Ownership.Failovers(origin), func(ft *meridianv1.FailoverTail) bool {
			return ft.GetTransition() == f.GetTransition()
		}) {
			continue
		}
		if _, err := n.proposeOriginFence(&meridianv1.OriginFence{Origin: origin, Transition: f.GetTransition(), Release: true}); err != nil {
			n.logger.Warn("failover over: releasing the fence failed; retrying", "origin", origin, "err", err)
			continue
		}
		n.logger.Info("failover over: the lost region's log flows again", "origin", origin, "transition", f.GetTransition())
	}
}

// recoveriesPerStep bounds the superseded events appended again per step.
const recoveriesPerStep = 32

// recoverSuperseded appends again, marked recovered, the events a failover
// superseded here whose entity this region is now the home of. Each is
// one append of that one event, with its id: idempotency makes a repeat
// (or a client's retry that got there first) a no-op.
func (n *Node) recoverSuperseded() {
	if !n.leaseValid() {
		return
	}
	// Markers of entities homed elsewhere stay (their home appends them),
	// so each step goes on after the last one it looked at, and starts over
	// once it reached the end.
	evs, err := n.fsm.RecoveriesAfter(n.recoverCursor, recoveriesPerStep)
	if err != nil {
		return
	}
	if len(evs) < recoveriesPerStep {
		n.recoverCursor = nil
	} else {
		n.recoverCursor = evs[len(evs)-1].GetOrigin()
	}
	if len(evs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), homesCallTimeout)
	defer cancel()
	for _, ev := range evs {
		if ev.GetReclaimed() {
			// Its data was dropped (reclaim.go): appending the stub would
			// make an empty event visible. It stays superseded.
			continue
		}
		h, err := n.cfg.Ownership.Home(ctx, ev.GetEntity(), 0)
		if err != nil || h.Region != n.cfg.Region || h.Moving != nil {
			continue // its home does it (for an active-active entity, its rule's home region)
		}
		op := &meridianv1.AppendOp{
			Entity: ev.GetEntity(), Events: []*meridianv1.ProposedEvent{proposedOf(ev)},
			Deps:          map[string]uint64{ev.GetOrigin().GetRegion(): ev.GetOrigin().GetSeq()},
			RecoveredFrom: ev.GetOrigin(), OriginalVersion: ev.GetVersion(), Epoch: h.Epoch, PlacementIndex: h.Index,
			ActiveActive: h.ActiveActive,
		}
		r, err := n.batcher.submit(ctx, op)
		if errors.Is(err, ErrStreamDeleted) || errors.Is(err, ErrInvalidArgument) {
			// The stream was deleted for good (or cannot take it) since:
			// this one will never go in; the others still can.
			n.logger.Warn("failover: a superseded event cannot be appended again; it stays superseded", "entity", ev.GetEntity(),
				"dot", fmt.Sprintf("%s:%d", ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()), "err", err)
			continue
		}
		if err != nil {
			n.logger.Warn("failover: re-appending a superseded event failed; retrying", "entity", ev.GetEntity(),
				"dot", fmt.Sprintf("%s:%d", ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()), "err", err)
			return
		}
		n.logger.Warn("failover: a superseded event of the lost home was appended again, marked recovered",
			"entity", ev.GetEntity(), "original_version", ev.GetVersion(), "version", r.GetFirstVersion(),
			"dot", fmt.Sprintf("%s:%d", ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()), "duplicate", r.GetDuplicate())
	}
}

// proposeOriginFence proposes an OriginFence on this leader and waits.
func (n *Node) proposeOriginFence(f *meridianv1.OriginFence) (*FenceResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), homesCallTimeout)
	defer cancel()
	return n.propose(ctx, meridianv1.CommandType_COMMAND_TYPE_ORIGIN_FENCE, f)
}

// freeze proposes this region's fence for transition index and waits for
// it to apply.
func (n *Node) freeze(index uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), homesCallTimeout)
	defer cancel()
	res, err := n.proposeFence(ctx, &meridianv1.PlacementFence{Floor: index, Transition: index})
	if err != nil {
		return err
	}
	n.logger.Info("placement change: fenced as an old home", "transition", index, "floor", res.Floor, "seq", res.Seq)
	return nil
}

// proposeFence proposes a PlacementFence on this node, which must lead the
// region, and waits until it is applied.
func (n *Node) proposeFence(ctx context.Context, f *meridianv1.PlacementFence) (*FenceResult, error) {
	return n.propose(ctx, meridianv1.CommandType_COMMAND_TYPE_PLACEMENT_FENCE, f)
}

// propose proposes one fence command on this node, which must lead the
// region, and waits until it is applied.
func (n *Node) propose(ctx context.Context, t meridianv1.CommandType, m proto.Message) (*FenceResult, error) {
	return applyOnLeader[*FenceResult](ctx, n, t, m)
}

// applyOnLeader proposes one command (not an append: those go through the
// batcher) on this node, which must lead the region, waits until it is
// applied here and returns the state machine's result, which must be an R.
// ctx ending first gives ErrOutcomeUnknown: the entry may still commit.
func applyOnLeader[R any](ctx context.Context, n *Node, t meridianv1.CommandType, m proto.Message) (R, error) {
	var zero R
	if !n.isLeader() {
		return zero, fmt.Errorf("%w: %v on follower %s", ErrNotLeader, t, n.cfg.NodeID)
	}
	data, err := EncodeCommand(t, m)
	if err != nil {
		return zero, err
	}
	fut := n.raft.Apply(data, n.cfg.ApplyEnqueueTimeout)
	watchShutdown(fut, n.closing)
	done := make(chan error, 1)
	go func() { done <- fut.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return zero, applyError(err)
		}
	case <-ctx.Done():
		return zero, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	res, ok := fut.Response().(R)
	if !ok {
		return zero, fmt.Errorf("%w: entry %d not applied here (%T)", ErrOutcomeUnknown, fut.Index(), fut.Response())
	}
	return res, nil
}

// report sends ack unless it was sent less than ackResendInterval ago (the
// placement copy shows it once it is applied; until then it may be lost).
func (n *Node) report(sent map[ackKey]time.Time, ack TransitionAck) {
	k := ackKey{transition: ack.Transition, kind: ack.Kind, origin: ack.Origin}
	if at, ok := sent[k]; ok && time.Since(at) < ackResendInterval {
		return
	}
	sent[k] = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), homesCallTimeout)
	defer cancel()
	if err := n.cfg.Ownership.AckTransition(ctx, ack); err != nil {
		n.logger.Warn("placement change: report failed; retrying", "transition", ack.Transition, "kind", ack.Kind, "err", err)
		return
	}
	n.logger.Debug("placement change: reported", "transition", ack.Transition, "kind", ack.Kind, "origin", ack.Origin, "seq", ack.Seq)
}
