package replication

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

var errFakeNotLeader = errors.New("fake: not leader")

// fakeRegion is an in-memory region: its own log and its copies of other
// origins' logs, the applied vector, and Replicate with exactly the rules
// of region's apply (seq = applied[origin] + 1, deps covered by the applied
// vector; duplicates skipped; an origin stops at its first event that does
// not qualify). It implements LogSource and Applier.
type fakeRegion struct {
	name string

	mu      sync.Mutex
	logs    map[string][]*meridianv1.Event // origin -> its events, seq 1..n
	changed chan struct{}
	// order is every applied dot, in apply order (own appends included).
	order []string
	// violations are proposals apply had to stop: an event out of its
	// origin's order or with deps not covered. The shipper must never make
	// one (it proposes only what is ready).
	violations []string
	proposals  int
	// delay is added to every Replicate (a slow Raft group).
	delay time.Duration
	// notLeader makes Replicate fail as a follower would.
	notLeader bool
	// refuse, when set, makes ReadOrigin fail for these origins (a source
	// that cannot serve them).
	refuse map[string]bool
	// ownClock is this region's own clock (Clock of its own name); clocks
	// are the other origins' clocks AdvanceClocks recorded, and
	// clockCalls counts AdvanceClocks calls.
	ownClock   *meridianv1.Hlc
	clocks     map[string]*meridianv1.Hlc
	clockCalls int
}

func newFakeRegion(name string) *fakeRegion {
	return &fakeRegion{name: name, logs: map[string][]*meridianv1.Event{}, changed: make(chan struct{})}
}

func (r *fakeRegion) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *fakeRegion) appliedLocked() map[string]uint64 {
	v := make(map[string]uint64, len(r.logs))
	for o, l := range r.logs {
		if len(l) > 0 {
			v[o] = uint64(len(l))
		}
	}
	return v
}

// Append writes one event of this region's own log with deps (merged with
// its previous own event) and returns its seq.
func (r *fakeRegion) Append(deps map[string]uint64, dataBytes int) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := uint64(len(r.logs[r.name]) + 1)
	d := maps.Clone(deps)
	if d == nil {
		d = map[string]uint64{}
	}
	delete(d, r.name)
	if seq > 1 {
		d[r.name] = seq - 1
	}
	ev := &meridianv1.Event{
		Entity:  fmt.Sprintf("%s-%d", r.name, seq),
		Version: 1,
		Id:      fmt.Sprintf("%s/%d", r.name, seq),
		Type:    "Test",
		Data:    make([]byte, dataBytes),
		Origin:  &meridianv1.Dot{Region: r.name, Seq: seq},
		Hlc:     &meridianv1.Hlc{WallNanos: time.Now().UnixNano()},
		Deps:    d,
	}
	r.logs[r.name] = append(r.logs[r.name], ev)
	r.order = append(r.order, ev.GetId())
	r.notifyLocked()
	return seq
}

// AppendSeen appends an event that depends on everything this region has
// applied (a writer whose session token is the region's vector).
func (r *fakeRegion) AppendSeen(dataBytes int) uint64 {
	return r.Append(r.Applied(), dataBytes)
}

func (r *fakeRegion) ReadOrigin(origin string, fromSeq uint64, max int) ([]*meridianv1.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse[origin] {
		return nil, fmt.Errorf("fake %s: refusing to serve %s", r.name, origin)
	}
	l := r.logs[origin]
	if fromSeq < 1 || fromSeq > uint64(len(l)) {
		return nil, nil
	}
	end := min(uint64(len(l)), fromSeq-1+uint64(max))
	return slices.Clone(l[fromSeq-1 : end]), nil
}

func (r *fakeRegion) Applied() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.appliedLocked()
}

func (r *fakeRegion) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Clock is the region's rule: its own clock for its own log, else the
// greatest of the recorded clock and the origin's last event here.
func (r *fakeRegion) Clock(origin string) *meridianv1.OriginClock {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[origin]
	c := &meridianv1.OriginClock{Origin: origin, Seq: uint64(len(l))}
	if len(l) > 0 {
		c.Hlc = l[len(l)-1].GetHlc()
	}
	h := r.clocks[origin]
	if origin == r.name {
		h = r.ownClock
	}
	if h != nil && (c.Hlc == nil || hlcLess(c.Hlc, h)) {
		c.Hlc = h
	}
	return c
}

func (r *fakeRegion) AdvanceClocks(_ context.Context, clocks []*meridianv1.OriginClock) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notLeader {
		return errFakeNotLeader
	}
	r.clockCalls++
	if r.clocks == nil {
		r.clocks = map[string]*meridianv1.Hlc{}
	}
	for _, c := range clocks {
		if uint64(len(r.logs[c.GetOrigin()])) < c.GetSeq() {
			r.violations = append(r.violations, fmt.Sprintf("clock of %s at seq %d recorded with %d applied", c.GetOrigin(), c.GetSeq(), len(r.logs[c.GetOrigin()])))
			continue
		}
		if cur := r.clocks[c.GetOrigin()]; cur == nil || hlcLess(cur, c.GetHlc()) {
			r.clocks[c.GetOrigin()] = c.GetHlc()
		}
	}
	return nil
}

func (r *fakeRegion) Replicate(ctx context.Context, events []*meridianv1.Event) (int, error) {
	r.mu.Lock()
	delay, notLeader := r.delay, r.notLeader
	r.mu.Unlock()
	if notLeader {
		return 0, errFakeNotLeader
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proposals++
	applied := r.appliedLocked()
	stopped := map[string]bool{}
	n := 0
	for _, ev := range events {
		origin, seq := ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()
		switch {
		case origin == r.name || stopped[origin] || seq <= applied[origin]:
			continue
		case seq != applied[origin]+1:
			stopped[origin] = true
			r.violations = append(r.violations, fmt.Sprintf("%s/%d proposed with applied %d", origin, seq, applied[origin]))
			continue
		}
		if dep, want, ok := uncoveredPlain(ev.GetDeps(), applied); ok {
			stopped[origin] = true
			r.violations = append(r.violations, fmt.Sprintf("%s/%d proposed before its dep %s/%d (applied %v)", origin, seq, dep, want, applied))
			continue
		}
		r.logs[origin] = append(r.logs[origin], ev)
		r.order = append(r.order, ev.GetId())
		applied[origin] = seq
		n++
	}
	if n > 0 {
		r.notifyLocked()
	}
	return n, nil
}

// uncoveredPlain is region's rule, written independently of the
// shipper's: every dep at or below the applied vector.
func uncoveredPlain(deps, applied map[string]uint64) (string, uint64, bool) {
	for _, r := range slices.Sorted(maps.Keys(deps)) {
		if deps[r] > applied[r] {
			return r, deps[r], true
		}
	}
	return "", 0, false
}

func (r *fakeRegion) setDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

func (r *fakeRegion) setRefuse(origin string, refuse bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse == nil {
		r.refuse = map[string]bool{}
	}
	r.refuse[origin] = refuse
	r.notifyLocked()
}

func (r *fakeRegion) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.violations)
}

func (r *fakeRegion) Order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

func (r *fakeRegion) Log(origin string) []*meridianv1.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs[origin])
}

func (r *fakeRegion) Proposals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proposals
}

// fakeLeadership is a switchable Leadership.
type fakeLeadership struct {
	mu      sync.Mutex
	leader  bool
	changed chan struct{}
}

func newFakeLeadership(leader bool) *fakeLeadership {
	return &fakeLeadership{leader: leader, changed: make(chan struct{})}
}

func (l *fakeLeadership) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader
}

func (l *fakeLeadership) LeaderChanged() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *fakeLeadership) Set(leader bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leader != leader {
		l.leader = leader
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// fakeDirectory is a mutable Directory.
type fakeDirectory struct {
	mu        sync.Mutex
	endpoints map[string][]string
	changed   chan struct{}
}

func newFakeDirectory() *fakeDirectory {
	return &fakeDirectory{endpoints: map[string][]string{}, changed: make(chan struct{})}
}

func (d *fakeDirectory) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

func (d *fakeDirectory) Regions() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.endpoints))
}

func (d *fakeDirectory) Endpoints(region string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.endpoints[region])
}

func (d *fakeDirectory) Set(region string, endpoints ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.endpoints[region] = endpoints
	close(d.changed)
	d.changed = make(chan struct{})
}
