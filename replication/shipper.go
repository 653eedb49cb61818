package replication

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Deps are what a Shipper works on; node/ adapts the region member and the
// placement table to them. All are required.
type Deps struct {
	// Log is this region's copy of every origin's log and its applied
	// vector, which is the Shipper's only cursor.
	Log LogSource
	// Applier applies pulled events through this region's Raft group.
	Applier Applier
	// Leadership starts and stops the Shipper's pullers.
	Leadership Leadership
	// Directory lists the regions to pull and their endpoints.
	Directory Directory
}

// Shipper brings this region's copy of every other origin's log up to date,
// on the region leader only: per origin, one puller streams the log from a
// reachable region (the origin first) and proposes causally ready batches
// through the Applier. See DESIGN.md.
type Shipper struct {
	cfg    Config
	deps   Deps
	logger *slog.Logger
	client *pullClient

	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}

	mu sync.Mutex
	// pullers are the running pullers by origin, empty unless leading.
	pullers map[string]*puller
	// offered is, per source region, the highest applied vector it has sent
	// in any message of any stream: how far it can serve each origin.
	offered map[string]map[string]uint64
}

// NewShipper validates cfg and starts the Shipper: it follows deps'
// leadership until Close.
func NewShipper(cfg Config, deps Deps) (*Shipper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil || deps.Applier == nil || deps.Leadership == nil || deps.Directory == nil {
		return nil, fmt.Errorf("%w: Deps: Log, Applier, Leadership and Directory are required", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	s := &Shipper{
		cfg:     cfg,
		deps:    deps,
		logger:  cfg.Logger.With("component", "replication", "region", cfg.Region),
		client:  newPullClient(cfg.Network, cfg.CallTimeout),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		pullers: map[string]*puller{},
		offered: map[string]map[string]uint64{},
	}
	go s.runLeadership()
	return s, nil
}

// Close stops every puller (waiting for proposals in flight to return) and
// closes idle connections. Safe to call more than once.
func (s *Shipper) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
	s.client.close()
	return nil
}

// observe records a source's applied vector from one of its messages.
func (s *Shipper) observe(source string, applied map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.offered[source]
	if v == nil {
		v = map[string]uint64{}
		s.offered[source] = v
	}
	for o, seq := range applied {
		if seq > v[o] {
			v[o] = seq
		}
	}
}

// offeredBy returns how far source has said it can serve origin.
func (s *Shipper) offeredBy(source, origin string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offered[source][origin]
}

// known returns the most of origin's log any source has offered.
func (s *Shipper) known(origin string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.knownLocked(origin)
}

func (s *Shipper) knownLocked(origin string) uint64 {
	var k uint64
	for src, v := range s.offered {
		if src != s.cfg.Region {
			k = max(k, v[origin])
		}
	}
	return k
}

// bestOffer returns the region among candidates, other than except, that
// has offered the most of origin's log, and how much.
func (s *Shipper) bestOffer(origin, except string, candidates []string) (string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, most := "", uint64(0)
	for _, c := range candidates {
		if c != except && s.offered[c][origin] > most {
			best, most = c, s.offered[c][origin]
		}
	}
	return best, most
}

// sources returns the regions a puller of origin may pull from, in order of
// preference: the origin itself, then the others by name, never this region.
func (s *Shipper) sources(origin string) []string {
	out := []string{origin}
	regions := slices.Clone(s.deps.Directory.Regions())
	slices.Sort(regions)
	for _, r := range slices.Compact(regions) {
		if r != origin && r != s.cfg.Region && r != "" {
			out = append(out, r)
		}
	}
	return out
}

// OriginStaleness is this region's staleness for origin (OriginLag's),
// false when unknown: no puller for it (this node does not lead the
// region) or none of its sources vouched for their copy. The Service sends
// it to regions that pull origin's log from this one.
func (s *Shipper) OriginStaleness(origin string) (time.Duration, bool) {
	s.mu.Lock()
	p := s.pullers[origin]
	s.mu.Unlock()
	if p == nil {
		return 0, false
	}
	return p.status().staleness(s.deps.Log.Applied()[origin], time.Now())
}

// Lag reports, per origin other than this region (sorted by origin), how
// far this region is behind the best copy of its log it knows of. Known and
// Source come from the pullers, which run on the region leader only: on a
// follower Known is the applied entry and Source is empty.
func (s *Shipper) Lag() []*meridianv1.OriginLag {
	applied := s.deps.Log.Applied()
	origins := map[string]bool{}
	for _, r := range s.deps.Directory.Regions() {
		origins[r] = true
	}
	for o := range applied {
		origins[o] = true
	}
	delete(origins, s.cfg.Region)
	delete(origins, "")
	now := time.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*meridianv1.OriginLag, 0, len(origins))
	for _, o := range slices.Sorted(maps.Keys(origins)) {
		l := &meridianv1.OriginLag{Origin: o, Applied: applied[o], Known: max(applied[o], s.knownLocked(o)), Lag: durationpb.New(0)}
		l.LagEvents = l.Known - l.Applied
		if p := s.pullers[o]; p != nil {
			st := p.status()
			l.Source = st.source
			if st.headSeq > applied[o] && st.headWallNanos != 0 {
				l.Lag = durationpb.New(max(0, now.Sub(time.Unix(0, st.headWallNanos))))
			}
			if d, ok := st.staleness(applied[o], now); ok {
				l.Staleness = durationpb.New(d)
			}
		}
		out = append(out, l)
	}
	return out
}
