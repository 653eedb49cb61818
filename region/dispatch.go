package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/signal"
)

// Competing consumers (issue 17). The region leader runs one dispatcher
// per consumer group that consumers fetch from. It reads the group's
// events from the region log after the stored checkpoint (skipping the
// stored acked and parked dots) into a bounded lookahead, leases each
// event to one consumer at a time, and only the first unfinished event of
// an entity can be leased: an entity's events are handled one after
// another, in log order. Leases live in the leader's memory; acks and
// parks are stored through Raft (GroupAck) before they are answered,
// together with the checkpoint they allow: per origin, just below the
// first event of that origin not yet finished (an origin's events are
// applied in sequence order in every region, so everything of it below
// that point was read and finished).
//
// A new leader, or a group repositioned by CommitCheckpoint, starts a
// fresh dispatcher from the stored state: leases held under the old one
// are delivered again (the unacked window), acked events never are.

// Dispatcher bounds.
const (
	// dispatchLookahead bounds the unfinished events a dispatcher holds,
	// and dispatchLookaheadBytes their payload bytes.
	dispatchLookahead      = 4096
	dispatchLookaheadBytes = 64 << 20
	// FetchWaitMax bounds a Fetch's wait_ms.
	FetchWaitMax = 30 * time.Second
	// fetchPollMax bounds how long a waiting Fetch sleeps before it looks
	// at expired leases and its leadership again.
	fetchPollMax = time.Second
	// dispatchIdleCommit is how often a dispatcher stores a checkpoint
	// that moved without acks (events the filter skipped).
	dispatchIdleCommit = time.Second
)

// pendingEvent is one event in a dispatcher's lookahead.
type pendingEvent struct {
	ev         *meridianv1.Event
	dot        causal.Dot
	deliveries uint32
	consumer   string // "" when not leased
	expires    time.Time
	reason     string // the last nack's
	settling   bool   // an ack or park of it is being stored
	done       bool
}

type dispatcher struct {
	n     *Node
	name  string
	term  uint64
	freed signal.Signal // an event became leasable (ack, nack, expiry)

	mu         sync.Mutex
	created    int64
	generation uint64
	settings   groupSettings
	filter     *EventFilter
	durable    causal.Vector       // the stored checkpoint
	finished   map[causal.Dot]bool // acked or parked beyond durable
	scanned    causal.Vector       // covers every event read into the lookahead
	scanIndex  uint64              // applied index of the last scan that reached the end
	pending    []*pendingEvent     // log order; done ones until compacted
	byDot      map[causal.Dot]*pendingEvent
	held       map[string]int // consumer -> leased events
	live       int            // pending, not done
	bytes      int
	lastCommit time.Time
}

func newDispatcher(n *Node, term uint64, g *meridianv1.ConsumerGroup) (*dispatcher, error) {
	filter, err := CompileFilter(g.GetFilter(), HardLimits())
	if err != nil {
		return nil, fmt.Errorf("%w: group %q: stored filter: %v", ErrCorruptState, g.GetName(), err)
	}
	d := &dispatcher{
		n: n, name: g.GetName(), term: term,
		created: g.GetCreatedUnixNanos(), generation: g.GetGeneration(),
		settings: resolveSettings(g.GetSettings()), filter: filter,
		durable:  causal.Vector(g.GetCheckpoint()).Clone(),
		finished: map[causal.Dot]bool{},
		byDot:    map[causal.Dot]*pendingEvent{},
		held:     map[string]int{},
	}
	if d.durable == nil {
		d.durable = causal.Vector{}
	}
	d.scanned = d.durable.Clone()
	for _, dot := range g.GetAcked() {
		d.finished[causalDot(dot)] = true
	}
	parked, err := n.fsm.parkedDots(g.GetName())
	if err != nil {
		return nil, err
	}
	for _, dot := range parked {
		if !d.durable.CoversDot(dot) {
			d.finished[dot] = true
		}
	}
	return d, nil
}

// dispatcher returns the group's dispatcher on this leader, starting one
// when there is none for this term or the group was repositioned.
func (n *Node) dispatcher(name string) (*dispatcher, error) {
	term := n.raft.CurrentTerm()
	if !n.isLeader() || n.established.Load() != term {
		return nil, fmt.Errorf("%w: node %s is not an established leader (term %d)", ErrNotLeader, n.cfg.NodeID, term)
	}
	n.dispatch.Lock()
	defer n.dispatch.Unlock()
	// Read under the lock: a dispatcher is never replaced by one built
	// from an older read of the group.
	g, err := n.fsm.Group(name)
	d := n.dispatch.m[name]
	if err != nil {
		if errors.Is(err, ErrGroupNotFound) {
			delete(n.dispatch.m, name)
		}
		return nil, err
	}
	if d != nil && d.term == term && d.created == g.GetCreatedUnixNanos() && d.generation == g.GetGeneration() {
		return d, nil
	}
	if d, err = newDispatcher(n, term, g); err != nil {
		return nil, err
	}
	if n.dispatch.m == nil {
		n.dispatch.m = map[string]*dispatcher{}
	}
	n.dispatch.m[name] = d
	return d, nil
}

// dropDispatcher forgets the group's dispatcher (deleted or repositioned).
func (n *Node) dropDispatcher(name string) {
	n.dispatch.Lock()
	defer n.dispatch.Unlock()
	delete(n.dispatch.m, name)
}

// current reports whether d is still its group's dispatcher.
func (d *dispatcher) current() bool {
	d.n.dispatch.Lock()
	defer d.n.dispatch.Unlock()
	return d.n.dispatch.m[d.name] == d
}

// errDispatcherReplaced: the group was repositioned, deleted or created
// again while a Fetch waited; it asks its new dispatcher.
var errDispatcherReplaced = errors.New("region: consumer group dispatcher replaced")

// dropDispatchers forgets every dispatcher (leadership lost).
func (n *Node) dropDispatchers() {
	n.dispatch.Lock()
	defer n.dispatch.Unlock()
	n.dispatch.m = nil
}

// valid reports whether d still speaks for the region leader.
func (d *dispatcher) valid() error {
	if !d.n.isLeader() || d.n.raft.CurrentTerm() != d.term {
		return fmt.Errorf("%w: node %s lost the leadership of term %d", ErrNotLeader, d.n.cfg.NodeID, d.term)
	}
	return nil
}

// fetch leases up to maxCount events to consumer, waiting up to wait for one.
func (d *dispatcher) fetch(ctx context.Context, consumer string, maxCount int, wait time.Duration) ([]*meridianv1.Delivery, error) {
	deadline := time.Now().Add(wait)
	for {
		if err := d.valid(); err != nil {
			return nil, err
		}
		if !d.current() {
			return nil, errDispatcherReplaced
		}
		changed, freed := d.n.fsm.Changed(), d.freed.C()
		out, parks, idle, next, err := d.take(consumer, maxCount)
		if err != nil {
			return nil, err
		}
		if len(parks) > 0 {
			if _, err := d.park(ctx, parks); err != nil && !errors.Is(err, ErrGroupParkedFull) {
				d.n.logger.Warn("consumer group: park expired events", "group", d.name, "err", err)
			}
		}
		if idle != nil {
			if _, err := d.store(ctx, &meridianv1.GroupAck{Name: d.name, Checkpoint: idle}, nil); err != nil {
				d.n.logger.Debug("consumer group: store idle checkpoint", "group", d.name, "err", err)
			}
		}
		now := time.Now()
		if len(out) > 0 || !now.Before(deadline) {
			return out, nil
		}
		sleep := min(deadline.Sub(now), fetchPollMax)
		if !next.IsZero() {
			sleep = min(sleep, max(next.Sub(now), time.Millisecond))
		}
		t := time.NewTimer(sleep)
		select {
		case <-changed:
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-d.n.closing:
			t.Stop()
			return nil, ErrNodeClosed
		}
		t.Stop()
	}
}

// take expires leases, reads more of the log when the lookahead has room,
// and leases up to maxCount events to consumer. It returns the expired events
// to park, a checkpoint to store when one moved without acks, and the
// next lease expiry.
func (d *dispatcher) take(consumer string, maxCount int) (out []*meridianv1.Delivery, parks []*pendingEvent, idle causal.Vector, next time.Time, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	parks = d.expireLocked(now)
	if err := d.fillLocked(); err != nil {
		return nil, nil, nil, time.Time{}, err
	}
	room := min(maxCount, d.settings.maxInFlight-d.held[consumer])
	blocked := map[string]bool{}
	for _, pe := range d.pending {
		if pe.done {
			continue
		}
		entity := pe.ev.GetEntity()
		if blocked[entity] {
			continue
		}
		blocked[entity] = true // later events of the entity wait for this one
		if pe.consumer != "" {
			if next.IsZero() || pe.expires.Before(next) {
				next = pe.expires
			}
			continue
		}
		if pe.settling || len(out) >= room {
			continue
		}
		pe.consumer, pe.expires = consumer, now.Add(d.settings.ackTimeout)
		pe.deliveries++
		d.held[consumer]++
		out = append(out, &meridianv1.Delivery{Event: pe.ev, Delivery: pe.deliveries, LeaseExpiresUnixNanos: pe.expires.UnixNano()})
		if next.IsZero() || pe.expires.Before(next) {
			next = pe.expires
		}
	}
	if cp := d.checkpointLocked(nil); !d.durable.Covers(cp) && now.Sub(d.lastCommit) >= dispatchIdleCommit {
		idle = cp
		d.lastCommit = now
	}
	return out, parks, idle, next, nil
}

// expireLocked ends the leases that expired: the event is leasable again,
// or to be parked when it was delivered max_deliveries times.
func (d *dispatcher) expireLocked(now time.Time) (parks []*pendingEvent) {
	for _, pe := range d.pending {
		if pe.done || pe.settling || pe.consumer == "" || now.Before(pe.expires) {
			continue
		}
		d.releaseLocked(pe)
		if pe.deliveries >= d.settings.maxDeliveries {
			pe.settling = true
			if pe.reason == "" {
				pe.reason = fmt.Sprintf("not acked within the ack timeout (%s)", d.settings.ackTimeout)
			}
			parks = append(parks, pe)
		}
	}
	if len(parks) == 0 {
		return nil
	}
	d.freed.Notify()
	return parks
}

func (d *dispatcher) releaseLocked(pe *pendingEvent) {
	if pe.consumer == "" {
		return
	}
	if d.held[pe.consumer]--; d.held[pe.consumer] <= 0 {
		delete(d.held, pe.consumer)
	}
	pe.consumer, pe.expires = "", time.Time{}
}

// fillLocked reads the log after the lookahead while it has room.
func (d *dispatcher) fillLocked() error {
	applied := d.n.fsm.AppliedIndex()
	// Finished events beyond the stored checkpoint count too: one event
	// that does not finish holds the checkpoint, and the acked set behind
	// it must stay below GroupAckedMax.
	for d.live+len(d.finished) < dispatchLookahead && d.bytes < dispatchLookaheadBytes && d.scanIndex != applied {
		room := dispatchLookahead - d.live - len(d.finished)
		page, err := d.n.fsm.ScanLog(LogScan{After: d.scanned, Filter: d.filter, Max: min(room, ReadCountMax)})
		if err != nil {
			return err
		}
		for _, ev := range page.Events {
			dot := causal.Dot{Region: ev.GetOrigin().GetRegion(), Seq: ev.GetOrigin().GetSeq()}
			if d.finished[dot] || d.byDot[dot] != nil || ev.GetReclaimed() {
				continue // a stub's event was deleted: the checkpoint passes it
			}
			pe := &pendingEvent{ev: ev, dot: dot}
			d.pending = append(d.pending, pe)
			d.byDot[dot] = pe
			d.live++
			d.bytes += proto.Size(ev)
		}
		d.scanned.MergeFrom(page.Scanned)
		if page.End {
			d.scanIndex = applied
		}
		if len(page.Events) == 0 && !page.End {
			continue // a page of skipped entries: read on
		}
	}
	d.compactLocked()
	return nil
}

// compactLocked drops finished events from the lookahead once they are
// half of it.
func (d *dispatcher) compactLocked() {
	if len(d.pending) < 64 || d.live*2 > len(d.pending) {
		return
	}
	kept := d.pending[:0]
	for _, pe := range d.pending {
		if !pe.done {
			kept = append(kept, pe)
		}
	}
	clear(d.pending[len(kept):])
	d.pending = kept
}

// checkpointLocked is the checkpoint the lookahead allows if the events
// in assume finish: per origin, just below its first unfinished event, or
// everything scanned.
func (d *dispatcher) checkpointLocked(assume map[*pendingEvent]bool) causal.Vector {
	cp := d.scanned.Clone()
	for _, pe := range d.pending {
		if pe.done || assume[pe] {
			continue
		}
		if s := pe.dot.Seq - 1; s < cp[pe.dot.Region] {
			cp[pe.dot.Region] = s
		}
	}
	return cp
}

// store proposes a GroupAck whose finished events are list and, once it
// applied, marks them finished and takes the stored checkpoint.
func (d *dispatcher) store(ctx context.Context, cmd *meridianv1.GroupAck, list []*pendingEvent) (AckCounts, error) {
	cmd.CreatedUnixNanos, cmd.Generation = d.created, d.generation
	// The outcome must be known: a caller that goes away must not leave an
	// ack stored here but its event pending (delivered again).
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.n.cfg.ApplyEnqueueTimeout+d.n.cfg.LeaderWaitTimeout)
	defer cancel()
	r, err := applyOnLeader[*GroupResult](pctx, d.n, meridianv1.CommandType_COMMAND_TYPE_GROUP,
		&meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Ack{Ack: cmd}, UnixNanos: d.n.hlc.Now().WallNanos})
	if err == nil {
		err = r.Err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		for _, pe := range list {
			pe.settling = false
		}
		d.freed.Notify()
		return AckCounts{}, err
	}
	for _, pe := range list {
		pe.settling = false
		if slices.Contains(r.Ack.Refused, pe.dot) {
			continue // stays in the lookahead, delivered again
		}
		d.finishLocked(pe)
	}
	d.durable.MergeFrom(r.Group.GetCheckpoint()) // stores may finish out of order
	for dot := range d.finished {
		if d.durable.CoversDot(dot) {
			delete(d.finished, dot)
		}
	}
	d.lastCommit = time.Now()
	d.freed.Notify()
	return r.Ack, nil
}

func (d *dispatcher) finishLocked(pe *pendingEvent) {
	if pe.done {
		return
	}
	d.releaseLocked(pe)
	pe.done = true
	d.finished[pe.dot] = true
	delete(d.byDot, pe.dot)
	d.live--
	d.bytes -= proto.Size(pe.ev)
}

// ack stores the acks of dots.
func (d *dispatcher) ack(ctx context.Context, dots []*meridianv1.Dot) (*meridianv1.AckResponse, error) {
	resp := &meridianv1.AckResponse{}
	d.mu.Lock()
	// A new leader may be asked before it read the log: read it first, so
	// that events delivered by the old leader are known.
	if err := d.fillLocked(); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	var list []*pendingEvent
	assume := map[*pendingEvent]bool{}
	cmd := &meridianv1.GroupAck{Name: d.name}
	for _, pd := range dots {
		dot := causalDot(pd)
		pe := d.byDot[dot]
		switch {
		case pe != nil && !pe.settling && !assume[pe]:
			pe.settling = true
			assume[pe] = true
			list = append(list, pe)
			cmd.Acked = append(cmd.Acked, pd)
		case pe != nil, d.durable.CoversDot(dot), d.finished[dot]:
			resp.Duplicate++ // finished, or being finished by another call
		default:
			resp.Unknown++
		}
	}
	cmd.Checkpoint = d.checkpointLocked(assume)
	d.mu.Unlock()
	if len(list) == 0 {
		resp.Checkpoint = d.durableCopy()
		return resp, nil
	}
	counts, err := d.store(ctx, cmd, list)
	if err != nil {
		return nil, err
	}
	resp.Acked += uint32(counts.Acked)
	resp.Duplicate += uint32(counts.Duplicate)
	resp.Checkpoint = d.durableCopy()
	return resp, nil
}

func (d *dispatcher) durableCopy() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable.Clone()
}

// nack gives consumer's leased dots back: leasable again, or parked when
// park is set or they were delivered max_deliveries times.
func (d *dispatcher) nack(ctx context.Context, consumer string, dots []*meridianv1.Dot, park bool, reason string) (*meridianv1.NackResponse, error) {
	resp := &meridianv1.NackResponse{}
	var parks []*pendingEvent
	d.mu.Lock()
	for _, pd := range dots {
		pe := d.byDot[causalDot(pd)]
		if pe == nil || pe.settling || pe.consumer != consumer {
			resp.Unknown++
			continue
		}
		d.releaseLocked(pe)
		if reason != "" {
			pe.reason = reason
		}
		if park || pe.deliveries >= d.settings.maxDeliveries {
			if pe.reason == "" {
				pe.reason = fmt.Sprintf("nacked on delivery %d", pe.deliveries)
			}
			pe.settling = true
			parks = append(parks, pe)
			continue
		}
		resp.Requeued++
	}
	d.freed.Notify()
	d.mu.Unlock()
	if len(parks) == 0 {
		return resp, nil
	}
	counts, err := d.park(ctx, parks)
	resp.Parked = uint32(counts.Parked)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// parkBytesMax bounds the event bytes of one park command (parks carry
// whole events), well inside one apply transaction.
const parkBytesMax = 4 << 20

// park stores parks as parked events, in commands of at most GroupDotsMax
// events and parkBytesMax bytes.
func (d *dispatcher) park(ctx context.Context, parks []*pendingEvent) (AckCounts, error) {
	var total AckCounts
	for len(parks) > 0 {
		n, size := 0, 0
		for n < len(parks) && n < GroupDotsMax && (n == 0 || size+proto.Size(parks[n].ev) <= parkBytesMax) {
			size += proto.Size(parks[n].ev)
			n++
		}
		chunk, rest := parks[:n], parks[n:]
		d.mu.Lock()
		cmd := &meridianv1.GroupAck{Name: d.name}
		assume := map[*pendingEvent]bool{}
		for _, pe := range chunk {
			assume[pe] = true
			cmd.Parked = append(cmd.Parked, &meridianv1.ParkedEvent{Event: pe.ev, Deliveries: pe.deliveries, Reason: pe.reason})
		}
		cmd.Checkpoint = d.checkpointLocked(assume)
		d.mu.Unlock()
		counts, err := d.store(ctx, cmd, chunk)
		total.Parked += counts.Parked
		total.ParkRefused += counts.ParkRefused
		if err != nil {
			d.unsettle(rest)
			return total, err
		}
		parks = rest
	}
	if total.ParkRefused > 0 {
		return total, fmt.Errorf("%w: group %q holds %d parked events; %d events were not parked and will be delivered again: drop parked events first",
			ErrGroupParkedFull, d.name, GroupParkedMax, total.ParkRefused)
	}
	return total, nil
}

// unsettle gives events whose park was not proposed back to delivery.
func (d *dispatcher) unsettle(list []*pendingEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, pe := range list {
		pe.settling = false
	}
	d.freed.Notify()
}
