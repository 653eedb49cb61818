package region

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/google/uuid"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"google.golang.org/protobuf/proto"
)

// Merged streams (active-active entities, ARCHITECTURE.md section 8, ADR
// 0005). Every region orders appends to an active-active entity itself;
// each region stores the stream's events under a/ keys, which sort them in
// the deterministic merged order (keys.go), so any two regions that have
// applied the same events hold the same sequence. A stream becomes merged
// with its first active-active event: its earlier single-home events stay
// where they are (e/, versions below merged_from) and every later event,
// of either mode, is kept under a/. A version of a merged event is its
// position in the region's merged order when read; it is final once the
// event is stable (Stability).

// checkMergedExpected refuses every expected version but "any" for an
// active-active append: each region orders its own appends to the entity,
// so no region could check a global compare-and-set, and a check against
// the region's own view would let a client believe it got one.
func checkMergedExpected(op *meridianv1.AppendOp) error {
	switch k := op.GetExpected().GetKind().(type) {
	case nil, *meridianv1.ExpectedVersion_Any_:
		return nil
	default:
		return invalidf("expected", "entity %q is active-active: every region accepts its appends concurrently, so only expected version \"any\" (unset) is allowed, got %s",
			op.GetEntity(), expectedText(k))
	}
}

func expectedText(k any) string {
	switch k := k.(type) {
	case *meridianv1.ExpectedVersion_NoStream_:
		return "no_stream"
	case *meridianv1.ExpectedVersion_StreamExists_:
		return "stream_exists"
	case *meridianv1.ExpectedVersion_Exact:
		return fmt.Sprintf("exact %d", k.Exact)
	}
	return fmt.Sprintf("%T", k)
}

// mergedDeps is what an event appended to a merged stream depends on: the
// writer's token, every origin's latest event of the stream here, and the
// stream's last event (for a stream becoming merged with this append).
func mergedDeps(token map[string]uint64, head *meridianv1.StreamHead) map[string]uint64 {
	deps := make(map[string]uint64, len(token)+len(head.GetVector())+1)
	for r, s := range token {
		deps[r] = s
	}
	for r, s := range head.GetVector() {
		deps[r] = max(deps[r], s)
	}
	if p := head.GetLastOrigin(); p.GetSeq() != 0 {
		deps[p.GetRegion()] = max(deps[p.GetRegion()], p.GetSeq())
	}
	if len(deps) == 0 {
		return nil
	}
	return deps
}

// mergeHead is head after ev was stored in the merged stream.
func mergeHead(head *meridianv1.StreamHead, ev *meridianv1.Event) *meridianv1.StreamHead {
	next := proto.Clone(head).(*meridianv1.StreamHead)
	if !next.GetMerged() {
		next.Merged, next.MergedFrom = true, head.GetVersion()+1
	}
	next.Version++
	if next.Vector == nil {
		next.Vector = map[string]uint64{}
	}
	o := ev.GetOrigin()
	next.Vector[o.GetRegion()] = max(next.Vector[o.GetRegion()], o.GetSeq())
	if hlcOf(next.GetLastHlc()).less(hlcOf(ev.GetHlc())) {
		next.LastHlc, next.LastOrigin = ev.GetHlc(), o
	}
	next.Epoch = max(next.GetEpoch(), ev.GetEpoch())
	return next
}

// mergeRules checks op's merge rules (index-aligned with its events) and
// each event's data against its rule; it returns one rule or nil per event.
func mergeRules(op *meridianv1.AppendOp) ([]*meridianv1.MergeRule, error) {
	evs := op.GetEvents()
	if len(op.GetMerge()) > len(evs) {
		return nil, invalidf("merge", "%d merge rules for %d events", len(op.GetMerge()), len(evs))
	}
	merges := make([]*meridianv1.MergeRule, len(evs))
	for i, r := range op.GetMerge() {
		if r.GetOp() == meridianv1.MergeOp_MERGE_OP_UNSPECIFIED {
			continue
		}
		field := fmt.Sprintf("events[%d]", i)
		if err := ValidateMergeRule(field+".merge", r); err != nil {
			return nil, err
		}
		if r.GetEventType() != evs[i].GetType() {
			return nil, invalidf(field+".merge.event_type", "rule for %q on an event of type %q", r.GetEventType(), evs[i].GetType())
		}
		if _, err := parseMerge(field, r, evs[i].GetData()); err != nil {
			return nil, err
		}
		merges[i] = r
	}
	return merges, nil
}

// mergedReplicateWrites are the writes that store a shipped event in its
// merged stream here (head is the stream's head before it), and the head
// after it. Nothing about versions is checked: the event's place is its
// key, and deps (checked by the caller) guarantee that everything it
// follows is here already.
func (a applier) mergedReplicateWrites(txn *badger.Txn, ev *meridianv1.Event, head *meridianv1.StreamHead, pos uint64) []kv {
	entity := ev.GetEntity()
	id, _ := uuid.Parse(ev.GetId())
	stored := proto.Clone(ev).(*meridianv1.Event)
	stored.Position = pos
	stored.Stable = false
	next := mergeHead(head, ev)
	k := mergedKeyOf(ev)
	r := mergedRef(k)
	rec := &meridianv1.IdempotencyRecord{
		Entity: entity, Version: ev.GetVersion(), ContentHash: contentHash(entity, proposedOf(ev)),
		Origin: ev.GetOrigin(), FirstVersion: ev.GetVersion(), LastVersion: ev.GetVersion(),
		Hlc: ev.GetHlc(), Epoch: ev.GetEpoch(), FirstOrigin: ev.GetOrigin(),
	}
	sw := newStateWriter(txn, entity)
	sw.apply(stored)
	return append([]kv{
		{key: k, value: mustMarshal(stored)},
		{key: originKey(ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()), value: r},
		{key: logKey(pos), value: r},
		{key: idempotencyKey(id), value: mustMarshal(rec), expiresAt: idempotencyExpiry(hlcOf(ev.GetHlc()), a.window)},
		{key: headKey(entity), value: mustMarshal(next)},
	}, sw.kvs()...)
}

// noteOrigin records that this region applied origin's event with HLC h
// (for stability: origin's later events all stamp above it).
func noteOrigin(st *meridianv1.ApplyState, origin string, h *meridianv1.Hlc) {
	if st.OriginHlc == nil {
		st.OriginHlc = map[string]*meridianv1.Hlc{}
	}
	if cur := st.OriginHlc[origin]; cur == nil || hlcOf(cur).less(hlcOf(h)) {
		st.OriginHlc[origin] = h
	}
}

// SetRegions tells the state machine which regions the deployment has
// (node/ wires it to the placement table), for stability: an event of a
// merged stream is stable once every one of them has sent this region
// something stamped at or above it. Unset, the region is alone.
func (f *FSM) SetRegions(regions func() []string) { f.regions.Store(&regions) }

// stableWatermark is the HLC at or below which every event of a merged
// stream is stable here: the least, over the deployment's regions (and
// every region this one applied events of), of the
// greatest HLC this region has applied from it (its own: last_hlc, since
// its next stamp is above it). A region never heard from gives zero:
// nothing is stable.
func (f *FSM) stableWatermark(st *meridianv1.ApplyState) hlc {
	w := hlcOf(st.GetLastHlc())
	// The deployment's regions, and every region this one ever applied
	// events of: a region that left the member list for a while may still
	// send events stamped between its last known clock and the others'.
	regions := map[string]bool{}
	if fn := f.regions.Load(); fn != nil && *fn != nil {
		for _, r := range (*fn)() {
			regions[r] = true
		}
	}
	for r := range st.GetApplied() {
		regions[r] = true
	}
	for r := range regions {
		if r == f.ap.region {
			continue
		}
		h, ok := st.GetOriginHlc()[r]
		if !ok {
			return hlc{}
		}
		if hlcOf(h).less(w) {
			w = hlcOf(h)
		}
	}
	return w
}

// Clock is this region's OriginClock for origin: for its own log, the
// applied seq and last_hlc (every later event of this region is stamped
// above it); for another origin, how far this region has applied its log
// and the greatest HLC among those events.
func (f *FSM) Clock(origin string) *meridianv1.OriginClock {
	st := f.ApplyState()
	c := &meridianv1.OriginClock{Origin: origin, Seq: st.GetApplied()[origin]}
	if origin == f.ap.region {
		c.Hlc = st.GetLastHlc()
	} else {
		c.Hlc = st.GetOriginHlc()[origin]
	}
	if c.Hlc != nil {
		c.Hlc = proto.Clone(c.Hlc).(*meridianv1.Hlc)
	}
	return c
}

// runClockTick records, while this node leads, the leader's clock in the
// region log when nothing was stamped for ClockTickInterval. Other regions
// learn it from replication heartbeats (FSM.Clock) and can then call their
// active-active events up to it stable: this region's next event stamps
// above it. A region that writes needs no tick (its events carry its
// clock).
func (n *Node) runClockTick() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ClockTickInterval)
	defer t.Stop()
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		if !n.isLeader() {
			continue
		}
		now := n.hlc.Now()
		last := n.fsm.ApplyState().GetLastHlc()
		if time.Duration(now.WallNanos-last.GetWallNanos()) < n.cfg.ClockTickInterval {
			continue
		}
		data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_CLOCK_TICK,
			&meridianv1.ClockTick{Hlc: &meridianv1.Hlc{WallNanos: now.WallNanos, Logical: now.Logical}})
		if err != nil {
			panic(err) // a constant message: cannot fail
		}
		fut := n.raft.Apply(data, n.cfg.ApplyEnqueueTimeout)
		watchShutdown(fut, n.closing)
		if err := fut.Error(); err != nil {
			n.logger.Debug("clock tick not applied", "err", err)
		}
	}
}

// subscribeEntity serves an entity subscription. It delivers every event
// of the stream once, in the stream's order, whether the stream is
// single-home (events only ever come at its end) or merged (a late
// concurrent event may sort before events already delivered): each pass
// scans the stream from the first version that may still change (the end
// of the prefix delivered and fixed: single-home, or stable) and sends the
// events whose dots it has not delivered (an origin's events of one entity
// are applied in seq order, so a per-origin maximum is the delivered set).
// Events carry their version at delivery and, in a merged stream, whether
// it is final (stable). from_position is the version to start at;
// checkpoints' next_position is the first version that may still change.
func (n *Node) subscribeEntity(ctx context.Context, entity string, req *meridianv1.SubscribeRequest, filter *EventFilter, interval time.Duration,
	send func(*meridianv1.SubscribeResponse) error) error {
	delivered := causal.Vector{}
	scanFrom := uint64(1)
	start := max(req.GetFromPosition(), 1)
	if req.GetFromEnd() {
		_, head, err := n.fsm.ReadStreamWithHead(entity, 0, 1, true)
		if err != nil {
			return err
		}
		start = head.GetVersion() + 1
	}
	// pass scans the stream from scanFrom once; events below skipBelow (the
	// start position) are marked delivered without being sent. It reports
	// whether the stream is merged.
	pass := func(skipBelow uint64) (merged bool, err error) {
		from, fixedRun := scanFrom, true
		for {
			events, head, err := n.fsm.ReadStreamWithHead(entity, from, n.cfg.SubscribePageMax, false)
			if err != nil {
				return false, err
			}
			merged = head.GetMerged()
			for _, e := range events {
				o := e.GetOrigin()
				dot := causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}
				if !delivered.CoversDot(dot) {
					if e.GetVersion() >= skipBelow && filter.matchType(e.GetType()) {
						if err := send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Event{Event: e}}); err != nil {
							return merged, err
						}
					}
					delivered.AddDot(dot)
				}
				fixed := !head.GetMerged() || e.GetStable()
				if fixedRun && fixed {
					scanFrom = e.GetVersion() + 1
				} else {
					fixedRun = false
				}
			}
			if len(events) < n.cfg.SubscribePageMax {
				return merged, nil
			}
			from = events[len(events)-1].GetVersion() + 1
			if err := ctx.Err(); err != nil {
				return merged, err
			}
		}
	}
	checkpoint := func() error {
		return send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Checkpoint{
			Checkpoint: &meridianv1.Checkpoint{NextPosition: scanFrom, CaughtUp: true, SessionToken: causal.FormatToken(delivered)},
		}})
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	skipBelow := start
	for first := true; ; first = false {
		changed := n.fsm.Changed()
		merged, err := pass(skipBelow)
		if err != nil {
			return err
		}
		if merged {
			// A merged stream's versions shift: the start applied to the
			// events present when the subscription began.
			skipBelow = 0
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if first {
			if err := checkpoint(); err != nil {
				return err
			}
			ticker.Reset(interval)
		}
		select {
		case <-changed:
		case <-ticker.C:
			if err := checkpoint(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closing:
			return ErrNodeClosed
		}
	}
}
