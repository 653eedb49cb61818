package region

import (
	"context"
	"fmt"
	"time"

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

// homesStep does this region's part of the transition in progress, if any.
func (n *Node) homesStep(sent map[ackKey]time.Time) {
	tr, ok := n.cfg.Ownership.Transition()
	if !ok {
		clear(sent)
		return
	}
	me := n.cfg.Region
	for _, m := range tr.Moves {
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
	if !n.isLeader() {
		return nil, fmt.Errorf("%w: fence on follower %s", ErrNotLeader, n.cfg.NodeID)
	}
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_PLACEMENT_FENCE, f)
	if err != nil {
		return nil, err
	}
	fut := n.raft.Apply(data, n.cfg.ApplyEnqueueTimeout)
	watchShutdown(fut, n.closing)
	done := make(chan error, 1)
	go func() { done <- fut.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, applyError(err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	res, ok := fut.Response().(*FenceResult)
	if !ok {
		return nil, fmt.Errorf("%w: fence entry %d not applied here (%T)", ErrOutcomeUnknown, fut.Index(), fut.Response())
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
