package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// This file is the region Node's side of replication between regions: what
// replication/ needs (the per-origin logs, the applied vector, applying
// shipped events, leadership) and what it reports back (lag, in Status).

// ReadOrigin returns up to max consecutive events of origin's log as this
// node holds it, from fromSeq (replication's LogSource).
func (n *Node) ReadOrigin(origin string, fromSeq uint64, max int) ([]*meridianv1.Event, error) {
	return n.fsm.ReadOrigin(origin, fromSeq, max)
}

// Applied returns a copy of this node's applied vector.
func (n *Node) Applied() map[string]uint64 {
	return n.fsm.ApplyState().GetApplied()
}

// Changed returns a channel closed after the next apply.
func (n *Node) Changed() <-chan struct{} { return n.fsm.Changed() }

// IsLeader reports whether this node leads its region's group.
func (n *Node) IsLeader() bool { return n.isLeader() }

// LeaderChanged returns a channel closed at the next leadership change.
func (n *Node) LeaderChanged() <-chan struct{} { return n.leaderChangedCh() }

// Replicate proposes events shipped from other regions as one Raft entry on
// this node, which must lead the region, and waits until it is applied. It
// returns how many events were newly applied (apply skips duplicates and
// stops an origin at an event that is not next or whose deps are not
// applied). Errors wrap ErrNotLeader (not proposed), ErrOverloaded (not
// proposed), ErrOutcomeUnknown, or ErrNodeClosed.
func (n *Node) Replicate(ctx context.Context, events []*meridianv1.Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	// The failovers of the events' origins are recorded first, so that no
	// lost home's tail is applied before the rule that supersedes it (a
	// region that was not a failover's survivor has no fence holding it).
	var origins []string
	for _, ev := range events {
		if o := ev.GetOrigin().GetRegion(); !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	if err := n.recordTails(origins); err != nil {
		return 0, fmt.Errorf("replicate: %w", err)
	}
	return n.replicate(ctx, &meridianv1.ReplicateBatch{Events: events})
}

// Clock returns this region's clock of origin (FSM.Clock): what its
// replication heartbeats tell other regions.
func (n *Node) Clock(origin string) *meridianv1.OriginClock { return n.fsm.Clock(origin) }

// AdvanceClocks records other origins' clocks through the region's Raft
// group (a ReplicateBatch without events), for the stability of
// active-active events.
func (n *Node) AdvanceClocks(ctx context.Context, clocks []*meridianv1.OriginClock) error {
	if len(clocks) == 0 {
		return nil
	}
	_, err := n.replicate(ctx, &meridianv1.ReplicateBatch{Clocks: clocks})
	return err
}

func (n *Node) replicate(ctx context.Context, b *meridianv1.ReplicateBatch) (int, error) {
	if !n.isLeader() {
		return 0, fmt.Errorf("%w: replicate on follower %s", ErrNotLeader, n.cfg.NodeID)
	}
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_REPLICATE_BATCH, b)
	if err != nil {
		return 0, err
	}
	f := n.raft.Apply(data, n.cfg.ApplyEnqueueTimeout)
	watchShutdown(f, n.closing)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, applyError(err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	res, ok := f.Response().(*ReplicateResult)
	if !ok {
		// A committed entry the closing state machine did not apply.
		return 0, fmt.Errorf("%w: replicate entry %d not applied here (%T)", ErrOutcomeUnknown, f.Index(), f.Response())
	}
	n.noteReplicate(res)
	return res.Applied, nil
}

// stalls remembers, per origin, a stop no correct history causes.
type stalls struct {
	mu      sync.Mutex
	byOrgin map[string]string
}

// noteReplicate logs what a replicate entry did beyond applying: origins
// stopped (debug: waiting is normal), events superseded or rolled back by
// a failover (warn), and stops that break an invariant (error, kept for
// Status until the origin moves again).
func (n *Node) noteReplicate(res *ReplicateResult) {
	if len(res.Stopped) > 0 {
		n.logger.Debug("replicate: origins stopped", "stopped", res.Stopped, "applied", res.Applied)
	}
	if len(res.Superseded) > 0 || len(res.RolledBack) > 0 {
		n.logger.Warn("replicate: a failover superseded events of a lost home (they are appended again by the new home, marked recovered)",
			"superseded", res.Superseded, "rolled_back", res.RolledBack)
	}
	n.stalls.mu.Lock()
	defer n.stalls.mu.Unlock()
	for origin, why := range res.Stopped {
		if strings.Contains(why, stallInvariant) {
			if n.stalls.byOrgin == nil {
				n.stalls.byOrgin = map[string]string{}
			}
			if n.stalls.byOrgin[origin] != why {
				n.logger.Error("replication stalled: an event cannot be applied", "origin", origin, "why", why)
			}
			n.stalls.byOrgin[origin] = why
		}
	}
	if res.Applied > 0 {
		for origin := range n.stalls.byOrgin {
			if _, still := res.Stopped[origin]; !still {
				delete(n.stalls.byOrgin, origin)
			}
		}
	}
}

func (n *Node) replicationStalls() map[string]string {
	n.stalls.mu.Lock()
	defer n.stalls.mu.Unlock()
	if len(n.stalls.byOrgin) == 0 {
		return nil
	}
	out := make(map[string]string, len(n.stalls.byOrgin))
	for o, w := range n.stalls.byOrgin {
		out[o] = w
	}
	return out
}

// lagReporter is what replication reports for Status.
type lagReporter struct {
	mu sync.Mutex
	fn func() []*meridianv1.OriginLag
}

// SetLagReporter installs the function Status calls for the replication
// lag per origin (node/ wires replication's Shipper.Lag).
func (n *Node) SetLagReporter(fn func() []*meridianv1.OriginLag) {
	n.lag.mu.Lock()
	defer n.lag.mu.Unlock()
	n.lag.fn = fn
}

func (n *Node) replicationLag() []*meridianv1.OriginLag {
	n.lag.mu.Lock()
	fn := n.lag.fn
	n.lag.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn()
}

// behind describes what applied lacks of need, for errors.
func behind(applied causal.Vector, need causal.Vector) string {
	out := ""
	for _, r := range need.Regions() {
		if applied[r] < need[r] {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%s behind by %d (applied %d, token %d)", r, need[r]-applied[r], applied[r], need[r])
		}
	}
	return out
}

// Replicas tells the home region how far other regions have applied its
// log, for DURABILITY_MULTI_REGION appends (node/ wires it to the other
// regions' APIs). Nil: appends may not ask for MULTI_REGION.
type Replicas interface {
	// Others returns how many regions other than this one exist.
	Others() int
	// WaitApplied waits until at least k other regions hold w's events,
	// or ctx ends. A region holds them when it has applied their dots and
	// keeps them at w's versions: a failover can supersede events that a
	// region then applies (its applied vector advances past them) without
	// keeping them, and those must not count.
	WaitApplied(ctx context.Context, w Written, k int) error
}

// Written is where an append's events were written: the entity, their
// versions, and the dot of the first (the others follow it in the origin's
// log).
type Written struct {
	Entity      string
	First, Last uint64
	Origin      string
	Seq         uint64
	// ActiveActive: the entity's versions are positions in a merged order
	// that concurrent writes elsewhere can shift, and no failover
	// supersedes its events, so only the dots are checked.
	ActiveActive bool
}

// Len is the number of events written.
func (w Written) Len() uint64 { return w.Last - w.First + 1 }

// LastSeq is the origin log position of the last event written.
func (w Written) LastSeq() uint64 { return w.Seq + w.Len() - 1 }

// Holds reports whether events, read from some region starting at w.First,
// are w's events at w's versions.
func (w Written) Holds(events []*meridianv1.Event) bool {
	n := w.Len()
	if uint64(len(events)) < n {
		return false
	}
	for i, e := range events[:n] {
		o := e.GetOrigin()
		if e.GetVersion() != w.First+uint64(i) || o.GetRegion() != w.Origin || o.GetSeq() != w.Seq+uint64(i) {
			return false
		}
	}
	return true
}

// multiRegionWaitMax bounds a MULTI_REGION append's wait for other regions
// when the caller set no deadline.
const multiRegionWaitMax = 30 * time.Second

func (n *Node) validateDurability(req *meridianv1.AppendRequest) error {
	switch req.GetDurability() {
	case meridianv1.Durability_DURABILITY_UNSPECIFIED, meridianv1.Durability_DURABILITY_REGION:
		if req.GetMinRegions() != 0 {
			return &InvalidArgumentError{Field: "min_regions", Reason: "must be 0 unless durability is DURABILITY_MULTI_REGION"}
		}
		return nil
	case meridianv1.Durability_DURABILITY_MULTI_REGION:
		if n.cfg.Replicas == nil {
			return &InvalidArgumentError{Field: "durability", Reason: "must be DURABILITY_REGION or unset: this region replicates to no other region"}
		}
		others := n.cfg.Replicas.Others()
		if k := req.GetMinRegions(); k < 1 || int(k) > others {
			return &InvalidArgumentError{Field: "min_regions", Reason: fmt.Sprintf("must be 1 to %d (the other regions) for DURABILITY_MULTI_REGION, got %d", others, k)}
		}
		return nil
	default:
		return &InvalidArgumentError{Field: "durability", Reason: fmt.Sprintf("unknown value %d", req.GetDurability())}
	}
}

// awaitReplicated waits until k other regions applied the append r. The
// append is committed here whatever happens; when the wait fails the caller
// learns that it is not (yet) durable in k regions, and a retry with the
// same event ids returns the original result and waits again.
func (n *Node) awaitReplicated(ctx context.Context, entity string, activeActive bool, r *meridianv1.AppendResponse, k int) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, multiRegionWaitMax)
		defer cancel()
	}
	w := Written{Entity: entity, First: r.GetFirstVersion(), Last: r.GetLastVersion(),
		Origin: r.GetOrigin().GetRegion(), Seq: r.GetOrigin().GetSeq(), ActiveActive: activeActive}
	last := w.LastSeq()
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if !activeActive {
		go n.watchKept(wctx, stop, w)
	}
	if err := n.cfg.Replicas.WaitApplied(wctx, w, k); err != nil {
		if cause := context.Cause(wctx); errors.Is(cause, errNoLongerHeld) {
			return fmt.Errorf("%w: appended at %s:%d in region %s as %s v%d-%d, but %v before %d other regions held them: a failover of this region superseded them, and the entity's new home appends them again (marked recovered); retry with the same event ids to learn their versions",
				ErrNotReplicated, w.Origin, last, n.cfg.Region, w.Entity, w.First, w.Last, cause, k)
		}
		return fmt.Errorf("%w: appended at %s:%d in region %s, but fewer than %d other regions applied it in time (retry with the same event ids to wait again): %v",
			ErrNotReplicated, w.Origin, last, n.cfg.Region, k, err)
	}
	return nil
}

// errNoLongerHeld ends a MULTI_REGION wait whose events left this region's
// stream.
var errNoLongerHeld = errors.New("this region no longer holds them at those versions")

// keptPollInterval is how often a MULTI_REGION wait checks that this region
// still holds what it waits for.
const keptPollInterval = 50 * time.Millisecond

// watchKept ends a MULTI_REGION wait (stop, with errNoLongerHeld) as soon
// as this region's own stream stops holding w's events at w's versions:
// once a region learns that it was failed over, it rolls its unreplicated
// tail out of its streams, and no other region will ever hold those events
// there. Without it the wait would run to its deadline.
func (n *Node) watchKept(ctx context.Context, stop context.CancelCauseFunc, w Written) {
	t := time.NewTicker(keptPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		events, _, err := n.fsm.ReadStream(w.Entity, w.First, int(w.Len()), false)
		if err == nil && !w.Holds(events) {
			stop(errNoLongerHeld)
			return
		}
	}
}

// Limits of BOUNDED reads.
const (
	boundedStalenessMin = time.Millisecond
	boundedStalenessMax = time.Hour
)

// readBounded serves a BOUNDED read here when this region's view of the
// entity's home origin is at most max_staleness old (and the session token
// is covered, as for SESSION); otherwise the home region serves it (it is
// never stale for its own entities). Staleness is known on the region
// leader (the shipper runs there), so followers forward to it.
func (n *Node) readBounded(ctx context.Context, req *meridianv1.ReadRequest, token causal.Vector) (*meridianv1.ReadResponse, error) {
	d := req.GetMaxStaleness().AsDuration()
	if req.GetMaxStaleness() == nil || d < boundedStalenessMin || d > boundedStalenessMax {
		return nil, &InvalidArgumentError{Field: "max_staleness", Reason: fmt.Sprintf("must be %s to %s for CONSISTENCY_BOUNDED, got %s", boundedStalenessMin, boundedStalenessMax, d)}
	}
	h, local, err := n.home(ctx, req.GetEntity())
	if err != nil {
		return nil, err
	}
	if h.ActiveActive {
		return n.readBoundedMerged(ctx, req, token, d)
	}
	if local || n.cfg.Ownership == nil {
		return n.readLocalOrForward(ctx, req, token, token)
	}
	var resp *meridianv1.ReadResponse
	err = n.routeToLeader(ctx, false,
		func() error {
			if st, ok := n.staleness(h.Region); ok && st <= d {
				r, err := n.readLocalOrForward(WithForwarded(ctx, n.cfg.NodeID), req, token, token)
				resp = r
				return err
			}
			r, err := n.readAtHome(ctx, req, h)
			resp = r
			return err
		},
		func(addr string) error {
			r, err := n.fwd.read(ctx, addr, req, routeOf(ctx), true)
			resp = r
			return err
		})
	return resp, err
}

// staleness is how old this region's view of origin's log may be, from
// the shipper's report; false when unknown.
// readBoundedMerged serves a BOUNDED read of an active-active entity:
// every region writes it, so the read is served here once this region is
// at most d behind every other region's writes (staleness is known on the
// leader, so followers forward to it); otherwise it fails Unavailable
// naming the region that is behind, since no region holds more than its
// own writes fresh.
func (n *Node) readBoundedMerged(ctx context.Context, req *meridianv1.ReadRequest, token causal.Vector, d time.Duration) (*meridianv1.ReadResponse, error) {
	var resp *meridianv1.ReadResponse
	err := n.routeToLeader(ctx, false,
		func() error {
			for _, r := range n.cfg.Ownership.Regions() {
				if r == n.cfg.Region {
					continue
				}
				st, ok := n.staleness(r)
				switch {
				case !ok:
					return fmt.Errorf("%w: entity %q is active-active and this region (%s) does not know how far behind region %s's writes it is",
						ErrTooStale, req.GetEntity(), n.cfg.Region, r)
				case st > d:
					return fmt.Errorf("%w: entity %q is active-active and this region (%s) is %s behind region %s's writes, more than max_staleness %s",
						ErrTooStale, req.GetEntity(), n.cfg.Region, st.Round(time.Millisecond), r, d)
				}
			}
			r, err := n.readLocalOrForward(WithForwarded(ctx, n.cfg.NodeID), req, token, token)
			resp = r
			return err
		},
		func(addr string) error {
			r, err := n.fwd.read(ctx, addr, req, routeOf(ctx), true)
			resp = r
			return err
		})
	return resp, err
}

func (n *Node) staleness(origin string) (time.Duration, bool) {
	for _, l := range n.replicationLag() {
		if l.GetOrigin() == origin && l.GetStaleness() != nil {
			return l.GetStaleness().AsDuration(), true
		}
	}
	return 0, false
}
