package multiregion

// The multi-region nemesis: a seeded schedule of region-level faults (a
// region cut off, a non-transitive cut between two regions, a node or a
// region leader killed and restarted), and a workload of sessions that hop
// between regions with their tokens, recorded in a history.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/tests/check"
	"github.com/meridiandb/meridian/tests/history"
)

// FaultKind is one family of multi-region faults.
type FaultKind string

const (
	// FaultIsolate cuts every node of one region off from every other region
	// (the region's own group keeps working).
	FaultIsolate FaultKind = "isolate-region"
	// FaultNonTransitive cuts two regions from each other; both still reach
	// the third.
	FaultNonTransitive FaultKind = "non-transitive"
	// FaultKillNode kills one follower of a region.
	FaultKillNode FaultKind = "kill-node"
	// FaultKillLeader kills a region's leader.
	FaultKillLeader FaultKind = "kill-leader"
	// FaultKillRegion kills every node of a region (the region is lost
	// until the heal restarts them).
	FaultKillRegion FaultKind = "kill-region"
	// FaultOneWay cuts everything a region sends to the other regions; it
	// still receives.
	FaultOneWay FaultKind = "one-way"
	// FaultSkewWithin skews a region's node clocks by skewWithin, inside
	// the 500 ms bound; FaultSkewBeyond by skewBeyond, outside it.
	FaultSkewWithin FaultKind = "skew-within"
	FaultSkewBeyond FaultKind = "skew-beyond"
)

// Clock skews of the skew faults (the bound is 500 ms).
const (
	skewWithin = 300 * time.Millisecond
	skewBeyond = 2 * time.Second
)

// faultKinds is the mix the schedule draws from, uniformly.
var faultKinds = []FaultKind{FaultIsolate, FaultNonTransitive, FaultKillNode, FaultKillLeader}

// Bounds of a schedule.
const (
	// faultWarmupFraction: no fault before this share of the run.
	faultWarmupFraction = 0.15
	// faultLastStartFraction: no fault starts after this share.
	faultLastStartFraction = 0.85
	// faultHoldMin/Max bound how long one fault lasts (a killed node is
	// restarted after this long).
	faultHoldMin, faultHoldMax = 2 * time.Second, 5 * time.Second
	// faultGapMin/Max bound the healed time between two faults.
	faultGapMin, faultGapMax = time.Second, 3 * time.Second
)

// FaultStep is one timed step: a fault, or the heal of the previous one.
type FaultStep struct {
	At   time.Duration `json:"at"`
	Kind FaultKind     `json:"kind"`
	Heal bool          `json:"heal,omitempty"`
	// Regions are the region cut off (isolate), the two regions cut from
	// each other (non-transitive), or the region of the node killed.
	Regions []string `json:"regions"`
	// Pick chooses the follower of a kill-node step.
	Pick int `json:"pick,omitempty"`
}

func (s FaultStep) String() string {
	verb := "fault"
	if s.Heal {
		verb = "heal "
	}
	return fmt.Sprintf("%8s %s %s %v", s.At.Round(time.Millisecond), verb, s.Kind, s.Regions)
}

// FaultSchedule is a reproducible plan: the same seed, regions and duration
// give the same steps. At most one fault is active at a time; each is
// healed before the next; the last one is healed at the end of the run.
type FaultSchedule struct {
	Seed     int64         `json:"seed"`
	Duration time.Duration `json:"duration"`
	Steps    []FaultStep   `json:"steps"`
}

func (s FaultSchedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "multi-region schedule seed %d over %s:", s.Seed, s.Duration)
	for _, st := range s.Steps {
		b.WriteString("\n  ")
		b.WriteString(st.String())
	}
	return b.String()
}

// Faults returns how many faults the schedule injects.
func (s FaultSchedule) Faults() int {
	n := 0
	for _, st := range s.Steps {
		if !st.Heal {
			n++
		}
	}
	return n
}

// GenerateFaults plans faults over regions for a run of duration d.
func GenerateFaults(seed int64, regions []string, d time.Duration) FaultSchedule {
	return GenerateFaultsOf(seed, regions, d, faultKinds, faultHoldMin, faultHoldMax)
}

// GenerateFaultsOf plans faults of the given kinds (drawn uniformly), each
// held holdMin to holdMax.
func GenerateFaultsOf(seed int64, regions []string, d time.Duration, faultKinds []FaultKind, holdMin, holdMax time.Duration) FaultSchedule {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d756c7469))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	s := FaultSchedule{Seed: seed, Duration: d}
	at := time.Duration(faultWarmupFraction * float64(d))
	last := time.Duration(faultLastStartFraction * float64(d))
	for at < last {
		kind := faultKinds[rng.IntN(len(faultKinds))]
		var rs []string
		switch kind {
		case FaultNonTransitive:
			p := rng.Perm(len(regions))
			rs = []string{regions[p[0]], regions[p[1]]}
		default:
			rs = []string{regions[rng.IntN(len(regions))]}
		}
		step := FaultStep{At: at, Kind: kind, Regions: rs, Pick: rng.IntN(1 << 16)}
		healAt := min(at+between(holdMin, holdMax), d)
		heal := step
		heal.At, heal.Heal = healAt, true
		s.Steps = append(s.Steps, step, heal)
		at = healAt + between(faultGapMin, faultGapMax)
	}
	// The last fault lasts until the end of the run: the run's last heal
	// (Recover) then heals a real fault, and convergence after it is
	// measured from a diverged state.
	if n := len(s.Steps); n > 0 {
		s.Steps[n-1].At = d
	}
	return s
}

// FaultEvent is a step as applied: the hosts it touched and any error.
type FaultEvent struct {
	Step  FaultStep     `json:"step"`
	When  time.Duration `json:"when"`
	Hosts []string      `json:"hosts,omitempty"`
	Err   string        `json:"err,omitempty"`
}

func (e FaultEvent) String() string {
	s := fmt.Sprintf("%s -> %v (applied at %s)", e.Step, e.Hosts, e.When.Round(time.Millisecond))
	if e.Err != "" {
		s += " error: " + e.Err
	}
	return s
}

// FaultRunner applies a FaultSchedule to a Cluster.
type FaultRunner struct {
	c    *Cluster
	logf func(string, ...any)

	mu     sync.Mutex
	killed []string
	skewed []string
	events []FaultEvent
	// lastHeal is when the last heal step (or Recover) was applied.
	lastHeal time.Time
	// onFault, when set, is called after every step is applied.
	onFault func(FaultStep)
}

// NewFaultRunner returns a runner over c logging through logf.
func NewFaultRunner(c *Cluster, logf func(string, ...any)) *FaultRunner {
	return &FaultRunner{c: c, logf: logf}
}

// Events returns the steps applied so far.
func (r *FaultRunner) Events() []FaultEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]FaultEvent(nil), r.events...)
}

// RegionLeader returns the running host of region that leads its group.
func (c *Cluster) RegionLeader(regionName string) (string, bool) {
	for _, h := range c.HostsOf(regionName) {
		if n := c.Node(h); n != nil && n.Region().IsLeader() {
			return h, true
		}
	}
	return "", false
}

// Run applies every step at its offset from now until the schedule ends or
// ctx is done. A failing step is recorded, not fatal.
func (r *FaultRunner) Run(ctx context.Context, s FaultSchedule) {
	start := time.Now()
	for _, st := range s.Steps {
		if st.At >= s.Duration {
			return // the run's end: Recover is the last heal
		}
		t := time.NewTimer(time.Until(start.Add(st.At)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		hosts, err := r.apply(st)
		ev := FaultEvent{Step: st, When: time.Since(start), Hosts: hosts}
		if err != nil {
			ev.Err = err.Error()
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		r.logf("nemesis: %s", ev)
		if r.onFault != nil {
			r.onFault(st)
		}
	}
}

func (r *FaultRunner) apply(st FaultStep) ([]string, error) {
	c := r.c
	switch {
	case st.Heal && (st.Kind == FaultIsolate || st.Kind == FaultNonTransitive || st.Kind == FaultOneWay):
		c.Net.HealAll()
		r.markHeal()
		return nil, nil
	case st.Heal && (st.Kind == FaultSkewWithin || st.Kind == FaultSkewBeyond):
		hosts := r.unskew()
		r.markHeal()
		return hosts, nil
	case st.Heal:
		r.mu.Lock()
		killed := r.killed
		r.killed = nil
		r.mu.Unlock()
		var errs []error
		for _, h := range killed {
			if err := c.Restart(h); err != nil {
				errs = append(errs, err)
				r.mu.Lock()
				r.killed = append(r.killed, h) // Recover tries again
				r.mu.Unlock()
			}
		}
		r.markHeal()
		return killed, errors.Join(errs...)
	case st.Kind == FaultSkewWithin || st.Kind == FaultSkewBeyond:
		d := skewWithin
		if st.Kind == FaultSkewBeyond {
			d = skewBeyond
		}
		hosts := c.HostsOf(st.Regions[0])
		for _, h := range hosts {
			c.Clock(h).Skew(d)
		}
		r.mu.Lock()
		r.skewed = append(r.skewed, hosts...)
		r.mu.Unlock()
		return hosts, nil
	case st.Kind == FaultOneWay:
		in := c.HostsOf(st.Regions[0])
		for _, h := range c.Hosts() {
			if c.RegionOf(h) != st.Regions[0] {
				for _, x := range in {
					c.Net.Block(x, h)
				}
			}
		}
		return in, nil
	case st.Kind == FaultKillRegion:
		var killed []string
		var errs []error
		for _, h := range c.HostsOf(st.Regions[0]) {
			if c.Node(h) == nil {
				continue
			}
			errs = append(errs, c.Kill(h))
			killed = append(killed, h)
		}
		r.mu.Lock()
		r.killed = append(r.killed, killed...)
		r.mu.Unlock()
		return killed, errors.Join(errs...)
	case st.Kind == FaultIsolate:
		in := c.HostsOf(st.Regions[0])
		var out []string
		for _, h := range c.Hosts() {
			if c.RegionOf(h) != st.Regions[0] {
				out = append(out, h)
			}
		}
		c.Net.PartitionGroups(in, out)
		return in, nil
	case st.Kind == FaultNonTransitive:
		a, b := c.HostsOf(st.Regions[0]), c.HostsOf(st.Regions[1])
		for _, x := range a {
			for _, y := range b {
				c.Net.Partition(x, y)
			}
		}
		return append(append([]string(nil), a...), b...), nil
	}
	// A kill.
	leader, ok := c.RegionLeader(st.Regions[0])
	var victim string
	switch {
	case st.Kind == FaultKillLeader && ok:
		victim = leader
	default:
		var fs []string
		for _, h := range c.HostsOf(st.Regions[0]) {
			if h != leader && c.Node(h) != nil {
				fs = append(fs, h)
			}
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("nemesis: no running node to kill in %s", st.Regions[0])
		}
		victim = fs[st.Pick%len(fs)]
	}
	err := c.Kill(victim)
	r.mu.Lock()
	r.killed = append(r.killed, victim)
	r.mu.Unlock()
	return []string{victim}, err
}

// unskew sets every skewed clock back and returns the hosts.
func (r *FaultRunner) unskew() []string {
	r.mu.Lock()
	hosts := r.skewed
	r.skewed = nil
	r.mu.Unlock()
	for _, h := range hosts {
		r.c.Clock(h).Skew(0)
	}
	return hosts
}

func (r *FaultRunner) markHeal() {
	r.mu.Lock()
	r.lastHeal = time.Now()
	r.mu.Unlock()
}

// Recover heals the network and restarts every node still down; it is the
// run's last heal, and returns when it was applied.
func (r *FaultRunner) Recover() (time.Time, error) {
	r.c.Net.HealAll()
	r.unskew()
	r.mu.Lock()
	killed := r.killed
	r.killed = nil
	r.mu.Unlock()
	var errs []error
	for _, h := range killed {
		if err := r.c.Restart(h); err != nil {
			errs = append(errs, fmt.Errorf("restart %s: %w", h, err))
		}
	}
	r.markHeal()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastHeal, errors.Join(errs...)
}

// HopConfig shapes the sessions' traffic.
type HopConfig struct {
	// Sessions is the number of concurrent clients, each one session with
	// its own token.
	Sessions int
	// EntitiesPerHome is the number of entities of each prefix (us/, eu/,
	// ap/).
	EntitiesPerHome int
	// Seed makes every choice (and every event id) reproducible.
	Seed int64
	// ReadShare is the share of operations that are reads; of those,
	// StrongShare are STRONG and EventualShare EVENTUAL, the rest SESSION.
	ReadShare, StrongShare, EventualShare float64
	// ExactShare is the share of appends that expect the last head the
	// session saw.
	ExactShare float64
	// EventsMax bounds events per append (1..EventsMax).
	EventsMax int
	// RequestTimeout bounds one request; a timed-out append is unknown.
	RequestTimeout time.Duration
	// AttemptsMax bounds the attempts of one append (retries use the same
	// event ids, on another random region and node).
	AttemptsMax int
	// RetryBackoff is the pause before a retry.
	RetryBackoff time.Duration
	// Prefixes are the entity prefixes (entities are "<prefix>/nemesis-<i>");
	// nil means us, eu and ap.
	Prefixes []string
	// MultiRegion maps a prefix to the min_regions its appends ask for
	// (DURABILITY_MULTI_REGION); absent means DURABILITY_REGION.
	MultiRegion map[string]uint32
}

// DefaultHop is the acceptance workload: 6 sessions over 3 entities per
// home, half reads (70% SESSION, 20% STRONG, 10% EVENTUAL), a tenth of
// appends with an exact expected version, up to 2 events per append.
func DefaultHop(seed int64) HopConfig {
	return HopConfig{Sessions: 6, EntitiesPerHome: 3, Seed: seed, ReadShare: 0.5, StrongShare: 0.2, EventualShare: 0.1,
		ExactShare: 0.1, EventsMax: 2, RequestTimeout: 4 * time.Second, AttemptsMax: 5, RetryBackoff: 100 * time.Millisecond}
}

// HopWorkload drives sessions that pick a random region and node for every
// operation, carrying their tokens, and records everything.
type HopWorkload struct {
	cfg      HopConfig
	c        *Cluster
	rec      *history.Recorder
	entities []string
	acked    atomic.Int64
}

// NewHopWorkload prepares the sessions over c, recording into rec.
func NewHopWorkload(c *Cluster, cfg HopConfig, rec *history.Recorder) *HopWorkload {
	w := &HopWorkload{cfg: cfg, c: c, rec: rec}
	prefixes := cfg.Prefixes
	if len(prefixes) == 0 {
		prefixes = []string{"us", "eu", "ap"}
	}
	for _, p := range prefixes {
		for i := range cfg.EntitiesPerHome {
			w.entities = append(w.entities, fmt.Sprintf("%s/nemesis-%d", p, i))
		}
	}
	return w
}

// Entities returns the streams the workload touches.
func (w *HopWorkload) Entities() []string { return append([]string(nil), w.entities...) }

// Acked returns how many appends were acknowledged so far.
func (w *HopWorkload) Acked() int64 { return w.acked.Load() }

// Run runs every session until ctx is done.
func (w *HopWorkload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range w.cfg.Sessions {
		wg.Go(func() { w.session(ctx, i) })
	}
	wg.Wait()
}

// hopSession is one client's state.
type hopSession struct {
	id    int
	rng   *rand.Rand
	token string
	heads map[string]uint64
	seq   int
}

func (w *HopWorkload) session(ctx context.Context, i int) {
	s := &hopSession{id: i, rng: rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(i)+1)), heads: map[string]uint64{}}
	for ctx.Err() == nil {
		entity := w.entities[s.rng.IntN(len(w.entities))]
		if s.rng.Float64() < w.cfg.ReadShare {
			w.read(ctx, s, entity)
		} else {
			w.append(ctx, s, entity)
		}
	}
}

// hop picks a random region, then a random node of it (running or not:
// a client does not know).
func (w *HopWorkload) hop(s *hopSession) string {
	regions := w.c.cfg.Regions
	hosts := w.c.HostsOf(regions[s.rng.IntN(len(regions))])
	return hosts[s.rng.IntN(len(hosts))]
}

// newID returns a reproducible, unique UUID from the session's generator.
func (s *hopSession) newID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.IntN(256))
	}
	u, _ := uuid.FromBytes(b[:])
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	return u.String()
}

func vectorOf(token string) history.Vector {
	if token == "" {
		return nil
	}
	v, err := causal.ParseToken(token)
	if err != nil {
		return nil
	}
	return history.Vector(v)
}

func eventRef(ev *meridianv1.Event) history.EventRef {
	r := history.EventRef{ID: ev.GetId(), Version: ev.GetVersion(), Recovered: ev.GetRecovered()}
	if o := ev.GetOrigin(); o != nil {
		r.Origin = history.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}
	}
	if d := ev.GetDeps(); len(d) > 0 {
		r.Deps = history.Vector(d)
	}
	return r
}

func (w *HopWorkload) pause(ctx context.Context) {
	t := time.NewTimer(w.cfg.RetryBackoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (w *HopWorkload) append(ctx context.Context, s *hopSession, entity string) {
	n := 1 + s.rng.IntN(max(1, w.cfg.EventsMax))
	ids := make([]string, n)
	evs := make([]*meridianv1.ProposedEvent, n)
	for k := range n {
		ids[k] = s.newID()
		evs[k] = &meridianv1.ProposedEvent{Id: ids[k], Type: "HopEvent", Data: fmt.Appendf(nil, "s%d-%d-%d", s.id, s.seq, k)}
	}
	s.seq++
	req := &meridianv1.AppendRequest{Entity: entity, Events: evs}
	prefix, _, _ := strings.Cut(entity, "/")
	if k := w.cfg.MultiRegion[prefix]; k > 0 {
		req.Durability, req.MinRegions = meridianv1.Durability_DURABILITY_MULTI_REGION, k
	}
	exp := history.Expected{}
	if s.rng.Float64() < w.cfg.ExactShare {
		exp = history.Expected{Kind: history.ExpectExact, Version: s.heads[entity]}
		req.Expected = &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_Exact{Exact: s.heads[entity]}}
	}
	for attempt := 1; attempt <= w.cfg.AttemptsMax && ctx.Err() == nil; attempt++ {
		host := w.hop(s)
		req.SessionToken = s.token
		id := w.rec.Invoke(s.id, "", history.Append, entity, history.Input{EventIDs: ids, Expected: exp, Attempt: attempt,
			TokenIn: s.token, VectorIn: vectorOf(s.token)})
		rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
		resp, err := w.c.EventStore(host).Append(rctx, connect.NewRequest(req))
		cancel()
		if err == nil {
			r := resp.Msg
			s.token = r.GetSessionToken()
			s.heads[entity] = max(s.heads[entity], r.GetLastVersion())
			res := history.Result{FirstVersion: r.GetFirstVersion(), LastVersion: r.GetLastVersion(), Duplicate: r.GetDuplicate(),
				TokenOut: r.GetSessionToken(), VectorOut: vectorOf(r.GetSessionToken()), Region: r.GetRegion(), Node: host}
			if o := r.GetOrigin(); o != nil {
				res.Origin = history.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}
			}
			w.rec.OK(id, res)
			w.acked.Add(1)
			return
		}
		outcome, retry, conflict, head := classifyAppend(err)
		if outcome == history.Failed {
			w.rec.Fail(id, err, history.Result{Conflict: conflict, Head: head, Node: host})
		} else {
			w.rec.Unknown(id, err)
		}
		if conflict {
			s.heads[entity] = head
		}
		if !retry {
			return
		}
		w.pause(ctx)
	}
}

func (w *HopWorkload) read(ctx context.Context, s *hopSession, entity string) {
	cons, hc := meridianv1.Consistency_CONSISTENCY_SESSION, history.Session
	switch x := s.rng.Float64(); {
	case x < w.cfg.StrongShare:
		cons, hc = meridianv1.Consistency_CONSISTENCY_STRONG, history.Strong
	case x < w.cfg.StrongShare+w.cfg.EventualShare:
		cons, hc = meridianv1.Consistency_CONSISTENCY_EVENTUAL, history.Eventual
	}
	host := w.hop(s)
	req := &meridianv1.ReadRequest{Entity: entity, Consistency: cons, SessionToken: s.token, MaxCount: 1000}
	id := w.rec.Invoke(s.id, "", history.Read, entity, history.Input{Consistency: hc, FromVersion: 1, MaxCount: 1000,
		TokenIn: s.token, VectorIn: vectorOf(s.token)})
	rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	resp, err := w.c.EventStore(host).Read(rctx, connect.NewRequest(req))
	cancel()
	if err != nil {
		if outcome, _, _, _ := classifyAppend(err); outcome == history.Failed {
			w.rec.Fail(id, err, history.Result{Node: host})
		} else {
			w.rec.Unknown(id, err)
		}
		return
	}
	r := resp.Msg
	evs := make([]history.EventRef, len(r.GetEvents()))
	for i, ev := range r.GetEvents() {
		evs[i] = eventRef(ev)
	}
	s.token = r.GetSessionToken()
	if hc != history.Eventual {
		s.heads[entity] = r.GetHeadVersion()
	}
	w.rec.OK(id, history.Result{Head: r.GetHeadVersion(), Events: evs, TokenOut: r.GetSessionToken(),
		VectorOut: vectorOf(r.GetSessionToken()), Region: r.GetRegion(), Node: host + "/" + r.GetNode()})
}

// Error kinds (the Meridian-Error header) that prove a request was not
// applied, and whether a client retries them (the SDK retries Unavailable).
var appendFailures = map[string]bool{ // kind -> retry
	"version-conflict": false, "invalid-argument": false, "idempotency-conflict": false,
	"overloaded": true, "not-leader": true, "deps-not-applied": true, "no-placement": true, "routing-loop": true,
	"moving": true, "lease-expired": true, "stale-placement": true,
}

// classifyAppend decides whether err proves the append had no effect, and
// whether to retry it with the same ids. Everything else (transport errors,
// timeouts, outcome-unknown) is unknown and retried.
func classifyAppend(err error) (out history.Outcome, retry, conflict bool, head uint64) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return history.Unknown, true, false, 0
	}
	kind := ce.Meta().Get("Meridian-Error")
	r, definite := appendFailures[kind]
	if !definite {
		return history.Unknown, true, false, 0
	}
	if kind == "version-conflict" {
		_, _ = fmt.Sscan(ce.Meta().Get("Meridian-Current-Version"), &head)
	}
	return history.Failed, r, kind == "version-conflict", head
}

// streamsOf reads every entity's final stream from host's state machine.
func (c *Cluster) streamsOf(host string, entities []string) (check.Streams, error) {
	n := c.Node(host)
	if n == nil {
		return nil, fmt.Errorf("multiregion: %s is not running", host)
	}
	out := check.Streams{}
	for _, e := range entities {
		var evs []history.EventRef
		from := uint64(1)
		for {
			page, _, err := n.Region().FSM().ReadStream(e, from, 1000, false)
			if err != nil {
				return nil, err
			}
			for _, ev := range page {
				evs = append(evs, eventRef(ev))
			}
			if len(page) < 1000 {
				break
			}
			from = page[len(page)-1].GetVersion() + 1
		}
		out[e] = evs
	}
	return out, nil
}

// Replicas returns every host's final streams of entities, by host.
func (c *Cluster) Replicas(entities []string) (check.Replicas, error) {
	out := check.Replicas{}
	for _, h := range c.Hosts() {
		s, err := c.streamsOf(h, entities)
		if err != nil {
			return nil, err
		}
		out[h] = s
	}
	return out, nil
}

// RegionsDiverged is Diverged over one node per region: its leader (a
// region's committed state), "" when every region's leader holds the same.
func (c *Cluster) RegionsDiverged(entities []string) string {
	var leaders []string
	for _, r := range c.cfg.Regions {
		h, ok := c.RegionLeader(r)
		if !ok {
			return r + " has no leader"
		}
		leaders = append(leaders, h)
	}
	return c.diverged(leaders, entities)
}

// Diverged describes the first difference between hosts' streams or
// applied vectors, "" when every host holds the same.
func (c *Cluster) Diverged(entities []string) string { return c.diverged(c.Hosts(), entities) }

func (c *Cluster) diverged(hosts, entities []string) string {
	ref := c.Node(hosts[0])
	if ref == nil {
		return hosts[0] + " is not running"
	}
	refVec := fmt.Sprint(ref.Region().Applied())
	refStreams, err := c.streamsOf(hosts[0], entities)
	if err != nil {
		return err.Error()
	}
	for _, h := range hosts[1:] {
		n := c.Node(h)
		if n == nil {
			return h + " is not running"
		}
		if v := fmt.Sprint(n.Region().Applied()); v != refVec {
			return fmt.Sprintf("%s applied %s, %s applied %s", hosts[0], refVec, h, v)
		}
		s, err := c.streamsOf(h, entities)
		if err != nil {
			return err.Error()
		}
		for _, e := range entities {
			a, b := refStreams[e], s[e]
			if len(a) != len(b) {
				return fmt.Sprintf("%s: %d events on %s, %d on %s", e, len(a), hosts[0], len(b), h)
			}
			for i := range a {
				if a[i].ID != b[i].ID || a[i].Origin != b[i].Origin {
					return fmt.Sprintf("%s version %d: %s on %s, %s on %s", e, i+1, a[i].ID, hosts[0], b[i].ID, h)
				}
			}
		}
	}
	return ""
}
