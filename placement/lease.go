package placement

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// Home leases (ADR 0004). A region's leader renews its region's lease
// through the placement group every few seconds; it orders writes only
// while the lease holds, counted on its own monotonic clock from when it
// sent the renewal. Every member notes, on its monotonic clock, when it
// applied each region's last renewal: a lease is expired, as a member sees
// it, once duration + the maximum clock offset have passed since then
// (or since the member started, whichever is later). The holder sent the
// renewal before any member applied it, so the holder stops first.

// Bounds of a lease renewal.
const (
	leaseDurationMin = 10 * time.Millisecond
	leaseDurationMax = time.Hour
)

// leaseClock is when this member applied each region's last renewal.
type leaseClock struct {
	mu     sync.Mutex
	seen   map[string]time.Time
	opened time.Time
}

func (c *leaseClock) renewed(region string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	c.seen[region] = time.Now()
}

// reset forgets every renewal: the member counts every lease from now
// (at open and after a restore, when it cannot know when they happened).
func (c *leaseClock) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen, c.opened = map[string]time.Time{}, time.Now()
}

// since is how long ago the region's last renewal was applied here,
// counting no earlier than the member's start.
func (c *leaseClock) since(region string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := c.opened
	if t, ok := c.seen[region]; ok && t.After(at) {
		at = t
	}
	return time.Since(at)
}

// applyRenewLease stores a region's renewed lease at the entry's index.
func applyRenewLease(t *table, c *meridianv1.RenewLeaseCommand, index uint64) (update, *ApplyResult) {
	cur, members := t.view()
	l := c.GetLease()
	if err := validateLease(l, members.known); err != nil {
		return rejected(err)
	}
	l = proto.Clone(l).(*meridianv1.RegionLease)
	l.RenewedIndex, l.MovedAwayIndex = index, 0
	t.mu.RLock()
	l.Failovers = nil
	if prev, ok := t.s.leases[l.GetRegion()]; ok {
		l.MovedAwayIndex = prev.GetMovedAwayIndex()
		l.Failovers = prev.GetFailovers()
	}
	t.mu.RUnlock()
	return update{leases: []*meridianv1.RegionLease{l}, renewed: l.GetRegion()}, &ApplyResult{Epoch: l.GetMovedAwayIndex(), DefaultEpoch: cur.defaultEpoch}
}

// validateLease checks a renewal: a known region, a holder, a duration in
// range.
func validateLease(l *meridianv1.RegionLease, known map[string]bool) error {
	if l == nil {
		return invalidf("lease", "must be set")
	}
	if err := causal.ValidateRegion(l.GetRegion()); err != nil {
		return invalidf("lease.region", "%v", err)
	}
	if err := validateKnownRegion("lease.region", l.GetRegion(), known); err != nil {
		return err
	}
	if l.GetHolder() == "" {
		return invalidf("lease.holder", "must name the region leader")
	}
	if d := l.GetDuration().AsDuration(); d < leaseDurationMin || d > leaseDurationMax {
		return invalidf("lease.duration", "must be %s to %s, got %s", leaseDurationMin, leaseDurationMax, d)
	}
	return nil
}

// LeaseStatus returns region's lease as this member sees it: expired once
// duration + maxOffset have passed since it applied the last renewal (or
// since it opened or restored, if later). ok is false when the region never
// renewed.
func (f *FSM) LeaseStatus(region string, maxOffset time.Duration) (*meridianv1.LeaseStatus, bool) {
	f.table.mu.RLock()
	l, ok := f.table.s.leases[region]
	f.table.mu.RUnlock()
	if !ok {
		return nil, false
	}
	age := f.leaseSeen.since(region)
	return &meridianv1.LeaseStatus{
		Lease: proto.Clone(l).(*meridianv1.RegionLease), Age: durationpb.New(age),
		Expired: age > l.GetDuration().AsDuration()+maxOffset,
	}, true
}

// Leases returns every region's last renewal (fresh messages), by region.
func (f *FSM) Leases() map[string]*meridianv1.RegionLease {
	f.table.mu.RLock()
	defer f.table.mu.RUnlock()
	out := make(map[string]*meridianv1.RegionLease, len(f.table.s.leases))
	for r, l := range f.table.s.leases {
		out[r] = proto.Clone(l).(*meridianv1.RegionLease)
	}
	return out
}

// leaseRegions returns the regions with a lease, sorted.
func (f *FSM) leaseRegions() []string {
	f.table.mu.RLock()
	defer f.table.mu.RUnlock()
	out := make([]string, 0, len(f.table.s.leases))
	for r := range f.table.s.leases {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// renewLease is RenewLease on the leader.
func (n *Node) renewLease(l *meridianv1.RegionLease) (*meridianv1.RenewLeaseResponse, error) {
	res, err := n.propose(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_RENEW_LEASE, &meridianv1.RenewLeaseCommand{Lease: l})
	if err != nil {
		return nil, err
	}
	return &meridianv1.RenewLeaseResponse{Index: res.Index, RequiredIndex: res.Epoch, LeaderTime: timestamppb.Now()}, nil
}

// leaseStatus is region's lease as this member sees it (nil if none).
func (n *Node) leaseStatus(region string) *meridianv1.LeaseStatus {
	st, _ := n.fsm.LeaseStatus(region, n.cfg.MaxClockOffset)
	return st
}

// describeLease is a one-line account of a lease, for errors and logs.
func describeLease(st *meridianv1.LeaseStatus) string {
	if st == nil {
		return "no lease renewed yet"
	}
	l := st.GetLease()
	state := "holds"
	if st.GetExpired() {
		state = "expired"
	}
	return fmt.Sprintf("lease of %s (holder %s) %s: renewed %s ago for %s", l.GetRegion(), l.GetHolder(), state,
		st.GetAge().AsDuration().Round(time.Millisecond), l.GetDuration().AsDuration())
}

// failoverTailsMax bounds the failovers a lease record keeps.
const failoverTailsMax = 16

// movedAway returns the lease records of the regions that flip at index
// moves homes away from, with moved_away_index set to index. In a failover
// (next is the staged rule set) the lost region's record also gains the
// failover's FailoverTail, which tells every region which of its events
// are its unreplicated tail.
func movedAway(t *table, rec *meridianv1.PlacementTransition, index uint64, next *meridianv1.SetRulesCommand) []*meridianv1.RegionLease {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*meridianv1.RegionLease
	seen := map[string]bool{}
	for _, m := range rec.GetMoves() {
		l, ok := t.s.leases[m.GetFrom()]
		if !ok || seen[m.GetFrom()] {
			continue
		}
		seen[m.GetFrom()] = true
		l = proto.Clone(l).(*meridianv1.RegionLease)
		l.MovedAwayIndex = index
		if m.GetLost() && rec.GetFailover() && next != nil {
			l.Failovers = append(l.Failovers, t.s.failoverTail(m.GetFrom(), m.GetCut(), rec.GetIndex(), index, next))
			if n := len(l.Failovers); n > failoverTailsMax {
				l.Failovers = l.Failovers[n-failoverTailsMax:]
			}
		}
		out = append(out, l)
	}
	return out
}

// failoverTail describes the failover of lost staged at transition and
// flipped at completed: the prefixes of lost's rules it moves (next homes
// them elsewhere) and keeps, and the entities pinned to lost (pins do not
// fail over). s is the table before the flip (callers hold table.mu).
func (s *tableState) failoverTail(lost string, cut, transition, completed uint64, next *meridianv1.SetRulesCommand) *meridianv1.FailoverTail {
	ft := &meridianv1.FailoverTail{Transition: transition, CompletedIndex: completed, Cut: cut}
	after := map[string]string{}
	for _, r := range next.GetRules() {
		after[r.GetPrefix()] = r.GetHomeRegion()
	}
	for _, r := range s.rules.rules {
		if r.home != lost {
			continue
		}
		if h, ok := after[r.prefix]; ok && h != lost {
			ft.Moved = append(ft.Moved, r.prefix)
		} else {
			ft.Kept = append(ft.Kept, r.prefix)
		}
	}
	// Only pins under a moved rule matter (the others are kept anyway), so
	// the record, which every region keeps in its apply state, stays small
	// unless thousands of entities under a moved rule are pinned to the
	// lost region (not bounded: leaving one out would supersede the writes
	// its home goes on ordering; docs/PLACEMENT.md says so).
	moved := func(entity string) bool {
		best, m := -1, false
		for _, r := range s.rules.rules {
			if r.home == lost && len(r.prefix) > best && strings.HasPrefix(entity, r.prefix) {
				best, m = len(r.prefix), slices.Contains(ft.Moved, r.prefix)
			}
		}
		return m
	}
	if id, ok := s.names.ids[lost]; ok {
		for e, pe := range s.pins {
			if pe.region == id && moved(e) {
				ft.Pinned = append(ft.Pinned, e)
			}
		}
	}
	sort.Strings(ft.Moved)
	sort.Strings(ft.Kept)
	sort.Strings(ft.Pinned)
	return ft
}

// Failovers returns region's last completed failovers (oldest first), as
// its lease record keeps them. The records are immutable: callers must not
// change them.
func (f *FSM) Failovers(region string) []*meridianv1.FailoverTail {
	f.table.mu.RLock()
	defer f.table.mu.RUnlock()
	return f.table.s.leases[region].GetFailovers()
}

// LeaseInfo describes region's lease as this member sees it.
func (n *Node) LeaseInfo(region string) string {
	st := n.leaseStatus(region)
	if st == nil {
		return ""
	}
	return describeLease(st)
}
