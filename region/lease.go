package region

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/internal/signal"
)

// Home leases (ADR 0004). With a placement table (Config.Ownership), the
// region leader orders writes only while the region's home lease holds: it
// renews it through the placement group every LeaseRenewInterval, and it
// holds until LeaseDuration after the renewal was sent, on this node's
// monotonic clock. The placement group counts it as expired only
// LeaseDuration plus the maximum clock offset after it applied the
// renewal, and fails the region's entities over only then: the two never
// order writes for one entity at once. A renewal counts only once the
// local placement copy has applied the last change that moved homes away
// from this region (a failover, which it did not freeze for); after a gap
// it is preceded by a PlacementFence at that index, so that nothing routed
// by an older copy commits. A leader whose wall clock is off the placement leader's by
// more than ClockOffsetMax fences itself: it keeps renewing (and reporting
// why) but orders nothing.

// LeaseRenewal is what a region leader sends to renew its region's lease.
type LeaseRenewal struct {
	Region, Holder string
	Duration       time.Duration
	// SentAt is the holder's wall clock when it sent the renewal.
	SentAt time.Time
	// Applied is the holder's applied vector.
	Applied map[string]uint64
	// TailEvents and TailOldest describe the holder's own events no other
	// region had applied (by the others' last renewals).
	TailEvents uint64
	TailOldest time.Time
	// Fenced says why the holder orders no writes ("" if it does).
	Fenced string
	// ClockOffset is the holder's wall clock minus the placement leader's
	// at the previous renewal.
	ClockOffset time.Duration
}

// LeaseGrant is the placement group's answer to a renewal.
type LeaseGrant struct {
	// Index is the renewal's placement index.
	Index uint64
	// Required is the last placement index that moved homes away from this
	// region: the local copy must have applied it before the lease counts.
	Required uint64
	// LeaderTime is the placement leader's wall clock when it answered.
	LeaderTime time.Time
}

// ErrLeaseExpired: this region does not hold its home lease (renewals fail,
// its clock is off, or it just became leader and has not renewed yet), so
// it orders no writes. Not served; retry (Unavailable). If the region stays
// cut off from the placement group, its entities with failover policy safe
// move to another region once the lease has expired there too.
var ErrLeaseExpired = errors.New("region: the region's home lease does not hold")

// kindLeaseExpired is the error kind of ErrLeaseExpired.
const kindLeaseExpired = "lease-expired"

// leaseState is the leader's hold on the region's lease.
type leaseState struct {
	mu sync.Mutex
	// validUntil: the lease holds before it (monotonic); zero: no lease.
	validUntil time.Time
	// required: the placement index the local copy must have applied.
	required uint64
	// fenced says why the lease is not used although renewed ("": it is).
	fenced string
	// offset is the clock offset measured at the last renewal.
	offset time.Duration
	// lastErr is the last renewal's failure ("" after a success).
	lastErr string
	// lastOK is when the last renewal was sent that succeeded.
	lastOK  time.Time
	changed signal.Signal
}

func (l *leaseState) clear() {
	l.mu.Lock()
	l.validUntil, l.required = time.Time{}, 0
	l.mu.Unlock()
	l.changed.Notify()
}

// leaseValid reports whether this node may order writes now: it leads the
// region, holds an unexpired, unfenced lease, and its placement copy has
// applied the renewal.
func (n *Node) leaseValid() bool {
	if n.cfg.Ownership == nil {
		return true
	}
	n.lease.mu.Lock()
	until, required, fenced := n.lease.validUntil, n.lease.required, n.lease.fenced
	n.lease.mu.Unlock()
	return fenced == "" && !until.IsZero() && time.Now().Before(until) &&
		n.isLeader() && n.cfg.Ownership.Index() >= required
}

// waitLease waits, at most LeaseWaitMax, for this leader to hold the lease.
func (n *Node) waitLease(ctx context.Context) error {
	if n.leaseValid() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseWaitMax)
	defer cancel()
	t := time.NewTicker(appliedPollInterval * 5)
	defer t.Stop()
	for {
		ch := n.lease.changed.C()
		if !n.isLeader() {
			return fmt.Errorf("%w: leadership moved while waiting for the home lease", ErrNotLeader)
		}
		if n.leaseValid() {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return n.leaseError()
		case <-n.closing:
			return ErrNodeClosed
		}
	}
}

// leaseError explains why the lease does not hold.
func (n *Node) leaseError() error {
	n.lease.mu.Lock()
	defer n.lease.mu.Unlock()
	why := "it has not been renewed yet"
	switch {
	case n.lease.fenced != "":
		why = n.lease.fenced
	case !n.lease.validUntil.IsZero() && time.Now().After(n.lease.validUntil):
		why = fmt.Sprintf("it expired %s ago", time.Since(n.lease.validUntil).Round(time.Millisecond))
		if n.lease.lastErr != "" {
			why += "; the last renewal failed: " + n.lease.lastErr
		}
	case n.lease.lastErr != "":
		why += "; the last renewal failed: " + n.lease.lastErr
	case n.cfg.Ownership.Index() < n.lease.required:
		why = fmt.Sprintf("the placement copy (index %d) has not applied the renewal (index %d)", n.cfg.Ownership.Index(), n.lease.required)
	}
	return fmt.Errorf("%w: region %s orders no writes until it renews its lease through the placement group: %s",
		ErrLeaseExpired, n.cfg.Region, why)
}

// leaseRemaining is how long the lease still holds on this leader, and why
// it is not used if it is not ("" when it is).
func (n *Node) leaseRemaining() (time.Duration, string) {
	if n.cfg.Ownership == nil || !n.isLeader() {
		return 0, ""
	}
	if !n.leaseValid() {
		return 0, n.leaseError().Error()
	}
	n.lease.mu.Lock()
	defer n.lease.mu.Unlock()
	return time.Until(n.lease.validUntil), ""
}

// runLease renews the lease while this node leads the region.
func (n *Node) runLease() {
	defer n.wg.Done()
	retry := min(n.cfg.LeaseRenewInterval, leaseRetryInterval)
	for {
		leaderCh := n.leaderChangedCh()
		wait := n.cfg.LeaseRenewInterval
		if n.isLeader() {
			if !n.renewLease() {
				wait = retry
			}
		} else {
			n.lease.clear()
			wait = time.Hour
		}
		t := time.NewTimer(wait)
		select {
		case <-n.closing:
			t.Stop()
			return
		case <-leaderCh:
			if !n.isLeader() {
				n.lease.clear()
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// leaseRetryInterval is the pause after a failed renewal.
const leaseRetryInterval = 100 * time.Millisecond

// renewLease renews once; it reports whether the lease holds afterwards.
func (n *Node) renewLease() bool {
	own := n.cfg.Ownership
	term := n.raft.CurrentTerm()
	st := n.fsm.ApplyState()
	r := LeaseRenewal{Region: n.cfg.Region, Holder: n.cfg.NodeID, Duration: n.cfg.LeaseDuration, Applied: st.GetApplied()}
	r.TailEvents, r.TailOldest = n.unreplicatedTail(st)
	n.lease.mu.Lock()
	r.Fenced, r.ClockOffset = n.lease.fenced, n.lease.offset
	n.lease.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseRenewInterval+n.cfg.LeaseDuration/2)
	defer cancel()
	sent, wallSent := time.Now(), n.wallNow()
	r.SentAt = wallSent
	grant, err := own.RenewLease(ctx, r)
	recv, wallRecv := time.Now(), n.wallNow()
	if err != nil {
		n.lease.mu.Lock()
		n.lease.lastErr = err.Error()
		n.lease.mu.Unlock()
		n.lease.changed.Notify()
		n.logger.Debug("lease renewal failed", "err", err)
		return n.leaseValid()
	}
	// The placement leader read its clock between our two readings.
	offset := wallSent.Add(wallRecv.Sub(wallSent) / 2).Sub(grant.LeaderTime)
	uncertainty := recv.Sub(sent) / 2
	fenced := ""
	if abs(offset)-uncertainty > n.cfg.ClockOffsetMax {
		fenced = fmt.Sprintf("this node's clock is %s off the placement leader's (measured within %s), beyond the bound of %s",
			offset.Round(time.Millisecond), uncertainty.Round(time.Millisecond), n.cfg.ClockOffsetMax)
	}
	if !n.isLeader() || n.raft.CurrentTerm() != term {
		return false
	}
	if fenced == "" && !n.leaseValid() {
		// Re-acquiring after a gap: nothing routed by a copy that predates
		// the last change that moved homes away from this region (a
		// failover, which this region did not freeze for) may commit.
		if !own.WaitIndex(ctx, grant.Required) {
			n.recordLeaseFailure(fmt.Sprintf("the placement copy did not reach index %d (the last change that moved homes away from this region) in time", grant.Required))
			return false
		}
		if _, err := n.proposeFence(ctx, &meridianv1.PlacementFence{Floor: grant.Required}); err != nil {
			n.recordLeaseFailure(fmt.Sprintf("raising the placement floor to %d: %v", grant.Required, err))
			return false
		}
	}
	n.lease.mu.Lock()
	was := n.lease.fenced
	n.lease.offset, n.lease.fenced, n.lease.lastErr, n.lease.lastOK = offset, fenced, "", sent
	if fenced == "" {
		n.lease.validUntil, n.lease.required = sent.Add(n.cfg.LeaseDuration), grant.Required
	} else {
		n.lease.validUntil, n.lease.required = time.Time{}, 0
	}
	n.lease.mu.Unlock()
	n.lease.changed.Notify()
	switch {
	case fenced != "" && was == "":
		n.logger.Error("home lease fenced: this region orders no writes until the clock is back within the bound", "why", fenced)
	case fenced == "" && was != "":
		n.logger.Warn("home lease unfenced: the clock is back within the bound", "offset", offset)
	}
	return fenced == ""
}

func (n *Node) recordLeaseFailure(why string) {
	n.lease.mu.Lock()
	n.lease.lastErr = why
	n.lease.mu.Unlock()
	n.lease.changed.Notify()
	n.logger.Warn("lease renewal not usable", "why", why)
}

// wallNow reads the wall clock the HLC reads.
func (n *Node) wallNow() time.Time {
	if n.cfg.Clock != nil {
		return n.cfg.Clock.Now()
	}
	return time.Now()
}

// unreplicatedTail counts this region's own events that no other region
// had applied by their last lease renewals, and the HLC wall time of the
// oldest of them.
func (n *Node) unreplicatedTail(st *meridianv1.ApplyState) (uint64, time.Time) {
	me := n.cfg.Region
	own := st.GetApplied()[me]
	var best uint64
	for r, v := range n.cfg.Ownership.Applied() {
		if r != me {
			best = max(best, v[me])
		}
	}
	if own <= best {
		return 0, time.Time{}
	}
	var oldest time.Time
	if evs, err := n.fsm.ReadOrigin(me, best+1, 1); err == nil && len(evs) == 1 {
		oldest = time.Unix(0, evs[0].GetHlc().GetWallNanos())
	}
	return own - best, oldest
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
