package multiregion

// Placement churn: a seeded stream of placement changes (pins, unpins, rule
// moves) fired while a workload runs, so that tests check that a change of
// an entity's home never forks its stream (issue: fenced homes).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// ChurnKind is one kind of placement change.
type ChurnKind string

const (
	// ChurnPin pins an entity to a region.
	ChurnPin ChurnKind = "pin"
	// ChurnUnpin removes an entity's pin.
	ChurnUnpin ChurnKind = "unpin"
	// ChurnRules moves one prefix rule to another region (SetRules).
	ChurnRules ChurnKind = "rules"
)

// ChurnConfig shapes the placement changes.
type ChurnConfig struct {
	// Seed makes every choice reproducible.
	Seed int64
	// Interval is the pause between two changes.
	Interval time.Duration
	// Entities are the entities pins and unpins pick from.
	Entities []string
	// Kinds are the kinds to draw from, uniformly.
	Kinds []ChurnKind
	// RequestTimeout bounds one change.
	RequestTimeout time.Duration
}

// ChurnEvent is one change as it was sent, with its outcome.
type ChurnEvent struct {
	At     time.Duration
	Kind   ChurnKind
	Target string // entity or prefix
	Region string
	Via    string
	Took   time.Duration
	Err    string
}

func (e ChurnEvent) String() string {
	s := fmt.Sprintf("%8s %-5s %s -> %s via %s (%s)", e.At.Round(time.Millisecond), e.Kind, e.Target, e.Region, e.Via, e.Took.Round(time.Millisecond))
	if e.Err != "" {
		s += ": " + e.Err
	}
	return s
}

// Churn fires placement changes through random nodes.
type Churn struct {
	cfg ChurnConfig
	c   *Cluster

	mu     sync.Mutex
	events []ChurnEvent
}

// NewChurn prepares placement churn over c.
func NewChurn(c *Cluster, cfg ChurnConfig) *Churn {
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []ChurnKind{ChurnPin, ChurnUnpin}
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	return &Churn{cfg: cfg, c: c}
}

// Events returns the changes sent so far.
func (ch *Churn) Events() []ChurnEvent {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return append([]ChurnEvent(nil), ch.events...)
}

// OK counts the changes that succeeded.
func (ch *Churn) OK() int {
	n := 0
	for _, e := range ch.Events() {
		if e.Err == "" {
			n++
		}
	}
	return n
}

// Run sends changes until ctx ends, one at a time.
func (ch *Churn) Run(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(ch.cfg.Seed), 0xC4))
	start := time.Now()
	regions := ch.c.cfg.Regions
	for {
		t := time.NewTimer(ch.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		kind := ch.cfg.Kinds[rng.IntN(len(ch.cfg.Kinds))]
		hosts := ch.c.Hosts()
		via := hosts[rng.IntN(len(hosts))]
		ev := ChurnEvent{At: time.Since(start), Kind: kind, Via: via, Region: regions[rng.IntN(len(regions))]}
		rctx, cancel := context.WithTimeout(ctx, ch.cfg.RequestTimeout)
		pc := ch.c.Placement(via)
		var err error
		switch kind {
		case ChurnPin:
			ev.Target = ch.cfg.Entities[rng.IntN(len(ch.cfg.Entities))]
			_, err = pc.Pin(rctx, connect.NewRequest(&meridianv1.PinRequest{Entity: ev.Target, Region: ev.Region}))
		case ChurnUnpin:
			ev.Target, ev.Region = ch.cfg.Entities[rng.IntN(len(ch.cfg.Entities))], "(rules)"
			_, err = pc.Unpin(rctx, connect.NewRequest(&meridianv1.UnpinRequest{Entity: ev.Target}))
		case ChurnRules:
			var rules *connect.Response[meridianv1.ListRulesResponse]
			if rules, err = pc.ListRules(rctx, connect.NewRequest(&meridianv1.ListRulesRequest{})); err == nil && len(rules.Msg.GetRules()) > 0 {
				rs := rules.Msg.GetRules()
				i := rng.IntN(len(rs))
				ev.Target = rs[i].GetPrefix()
				next := make([]*meridianv1.PlacementRule, len(rs))
				for k, r := range rs {
					next[k] = &meridianv1.PlacementRule{Prefix: r.GetPrefix(), HomeRegion: r.GetHomeRegion(), Mode: r.GetMode(),
						Failover: r.GetFailover(), FailoverPolicy: r.GetFailoverPolicy()}
				}
				// The new home leaves the failover list; the old one takes its
				// place, so the rule keeps somewhere to fail over to.
				old := next[i].GetHomeRegion()
				next[i].HomeRegion = ev.Region
				var fo []string
				for _, f := range next[i].GetFailover() {
					if f != ev.Region {
						fo = append(fo, f)
					}
				}
				if old != ev.Region && len(next[i].GetFailover()) > 0 {
					fo = append(fo, old)
				}
				next[i].Failover = fo
				_, err = pc.SetRules(rctx, connect.NewRequest(&meridianv1.SetRulesRequest{
					Rules: next, DefaultRegion: rules.Msg.GetDefaultRegion(), ExpectedIndex: rules.Msg.GetRulesIndex(),
				}))
			}
		}
		cancel()
		ev.Took = time.Since(start) - ev.At
		if err != nil {
			ev.Err = err.Error()
		}
		ch.mu.Lock()
		ch.events = append(ch.events, ev)
		ch.mu.Unlock()
	}
}
