package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/tests/history"
)

// WorkloadConfig shapes the clients' traffic.
type WorkloadConfig struct {
	// Clients is the number of concurrent clients, each its own session.
	Clients int
	// Entities is the number of streams written and read.
	Entities int
	// Seed makes every client's choices (and event ids) reproducible.
	Seed int64
	// ReadShare is the share of operations that are reads; StrongShare the
	// share of reads that are STRONG (the others are SESSION).
	ReadShare, StrongShare float64
	// ExactShare is the share of appends that expect the last head the
	// client saw.
	ExactShare float64
	// EventsMax bounds events per append (1..EventsMax).
	EventsMax int
	// RequestTimeout bounds one request; a timed-out append is unknown.
	RequestTimeout time.Duration
	// RetriesMax is how many times an unknown append is retried with the
	// same event ids.
	RetriesMax int
	// Subscribers is the number of entity subscriptions (subscriber k
	// follows entity k mod Entities, resubscribing after its last delivered
	// version on any node when a stream breaks or goes quiet).
	Subscribers int
}

// DefaultWorkload is a mixed workload: 4 clients over 4 entities, half
// reads (half of them STRONG), a fifth of appends with an exact expected
// version, up to 3 events per append.
func DefaultWorkload(seed int64) WorkloadConfig {
	return WorkloadConfig{Clients: 4, Entities: 4, Seed: seed, ReadShare: 0.5, StrongShare: 0.5,
		ExactShare: 0.2, EventsMax: 3, RequestTimeout: 2 * time.Second, RetriesMax: 2, Subscribers: 2}
}

// Workload drives clients against a Cluster through faultnet and records
// every operation in a history.
type Workload struct {
	cfg      WorkloadConfig
	c        *Cluster
	rec      *history.Recorder
	entities []string
	ok       atomic.Int64 // acknowledged appends
}

// NewWorkload prepares clients over c recording into rec.
func NewWorkload(c *Cluster, cfg WorkloadConfig, rec *history.Recorder) *Workload {
	w := &Workload{cfg: cfg, c: c, rec: rec}
	for i := range cfg.Entities {
		w.entities = append(w.entities, fmt.Sprintf("nemesis/e%02d", i))
	}
	return w
}

// Entities returns the streams the workload touches.
func (w *Workload) Entities() []string { return w.entities }

// Acked returns how many appends were acknowledged so far.
func (w *Workload) Acked() int64 { return w.ok.Load() }

// Run runs every client until ctx is done.
func (w *Workload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range w.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, i)
		}()
	}
	for k := range w.cfg.Subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.subscriber(ctx, k)
		}()
	}
	wg.Wait()
}

// Subscription limits.
const (
	// subscribeQuietMax: a subscription that delivers nothing (not even a
	// checkpoint) for this long is abandoned and reopened elsewhere.
	subscribeQuietMax = 3 * time.Second
	// subscribeCheckpoint is the requested idle checkpoint interval.
	subscribeCheckpoint = 500 * time.Millisecond
	// subscribeBackoff is the pause before resubscribing.
	subscribeBackoff = 50 * time.Millisecond
)

// subscriber follows one entity and records every delivery. Client ids of
// subscribers follow the workers' and the final writer's.
func (w *Workload) subscriber(ctx context.Context, k int) {
	cid := w.cfg.Clients + 1 + k
	entity := w.entities[k%len(w.entities)]
	rng := rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(cid)+1000))
	nodes := w.c.Nodes()
	host := fmt.Sprintf("subscriber-%d", k)
	clients := make([]meridianv1connect.EventStoreClient, len(nodes))
	for i, n := range nodes {
		clients[i] = w.c.Client(host, n)
	}
	next := uint64(1)
	for ctx.Err() == nil {
		i := rng.IntN(len(nodes))
		subCtx, cancel := context.WithCancel(ctx)
		quiet := time.AfterFunc(subscribeQuietMax, cancel)
		stream, err := clients[i].Subscribe(subCtx, connect.NewRequest(&meridianv1.SubscribeRequest{
			Target:             &meridianv1.SubscribeRequest_Entity{Entity: entity},
			FromPosition:       next,
			CheckpointInterval: durationpb.New(subscribeCheckpoint),
		}))
		if err == nil {
			for stream.Receive() {
				quiet.Reset(subscribeQuietMax)
				if ev := stream.Msg().GetEvent(); ev != nil {
					w.rec.Deliver(cid, "", entity, EventRef(ev), history.Result{Node: nodes[i]})
					next = ev.GetVersion() + 1
				}
			}
			_ = stream.Close()
		}
		quiet.Stop()
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(subscribeBackoff):
		}
	}
}

// session is one client's state.
type session struct {
	id      int
	rng     *rand.Rand
	clients []meridianv1connect.EventStoreClient
	nodes   []string
	token   string
	heads   map[string]uint64
	seq     int
}

func (w *Workload) client(ctx context.Context, i int) {
	s := &session{id: i, rng: rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(i)+1)), heads: map[string]uint64{}}
	host := fmt.Sprintf("client-%d", i)
	for _, n := range w.c.Nodes() {
		s.nodes = append(s.nodes, n)
		s.clients = append(s.clients, w.c.Client(host, n))
	}
	for ctx.Err() == nil {
		entity := w.entities[s.rng.IntN(len(w.entities))]
		node := s.rng.IntN(len(s.nodes))
		if s.rng.Float64() < w.cfg.ReadShare {
			w.read(ctx, s, node, entity)
		} else {
			w.append(ctx, s, node, entity)
		}
	}
}

// newID returns a reproducible, unique UUID from the client's generator.
func (s *session) newID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.IntN(256))
	}
	u, _ := uuid.FromBytes(b[:])
	u[6] = (u[6] & 0x0f) | 0x40 // version 4
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
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

func (w *Workload) append(ctx context.Context, s *session, node int, entity string) {
	n := 1 + s.rng.IntN(max(1, w.cfg.EventsMax))
	ids := make([]string, n)
	evs := make([]*meridianv1.ProposedEvent, n)
	for k := range n {
		ids[k] = s.newID()
		evs[k] = &meridianv1.ProposedEvent{Id: ids[k], Type: "NemesisEvent", Data: []byte(fmt.Sprintf("c%d-%d-%d", s.id, s.seq, k))}
	}
	s.seq++
	req := &meridianv1.AppendRequest{Entity: entity, Events: evs}
	exp := history.Expected{}
	if s.rng.Float64() < w.cfg.ExactShare {
		exp = history.Expected{Kind: history.ExpectExact, Version: s.heads[entity]}
		req.Expected = &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_Exact{Exact: s.heads[entity]}}
	}
	for attempt := 1; attempt <= 1+w.cfg.RetriesMax; attempt++ {
		req.SessionToken = s.token
		id := w.rec.Invoke(s.id, "", history.Append, entity, history.Input{EventIDs: ids, Expected: exp, Attempt: attempt,
			TokenIn: s.token, VectorIn: vectorOf(s.token)})
		rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
		resp, err := s.clients[node].Append(rctx, connect.NewRequest(req))
		cancel()
		if err == nil {
			r := resp.Msg
			s.token = r.GetSessionToken()
			s.heads[entity] = max(s.heads[entity], r.GetLastVersion())
			res := history.Result{FirstVersion: r.GetFirstVersion(), LastVersion: r.GetLastVersion(), Duplicate: r.GetDuplicate(),
				TokenOut: r.GetSessionToken(), VectorOut: vectorOf(r.GetSessionToken()), Region: r.GetRegion(), Node: s.nodes[node]}
			if o := r.GetOrigin(); o != nil {
				res.Origin = history.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}
			}
			w.rec.OK(id, res)
			w.ok.Add(1)
			return
		}
		outcome, conflict, head := classify(err)
		if outcome == history.Failed {
			w.rec.Fail(id, err, history.Result{Conflict: conflict, Head: head, Node: s.nodes[node]})
			if conflict {
				s.heads[entity] = head
			}
			return
		}
		w.rec.Unknown(id, err)
		if ctx.Err() != nil {
			return
		}
		node = s.rng.IntN(len(s.nodes)) // retry elsewhere, same ids
	}
}

func (w *Workload) read(ctx context.Context, s *session, node int, entity string) {
	cons, hc := meridianv1.Consistency_CONSISTENCY_SESSION, history.Session
	if s.rng.Float64() < w.cfg.StrongShare {
		cons, hc = meridianv1.Consistency_CONSISTENCY_STRONG, history.Strong
	}
	req := &meridianv1.ReadRequest{Entity: entity, Consistency: cons, SessionToken: s.token, MaxCount: 1000}
	id := w.rec.Invoke(s.id, "", history.Read, entity, history.Input{Consistency: hc, FromVersion: 1, MaxCount: 1000,
		TokenIn: s.token, VectorIn: vectorOf(s.token)})
	rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	resp, err := s.clients[node].Read(rctx, connect.NewRequest(req))
	cancel()
	if err != nil {
		outcome, _, _ := classify(err)
		if outcome == history.Failed {
			w.rec.Fail(id, err, history.Result{Node: s.nodes[node]})
		} else {
			w.rec.Unknown(id, err)
		}
		return
	}
	r := resp.Msg
	evs := make([]history.EventRef, len(r.GetEvents()))
	for i, ev := range r.GetEvents() {
		evs[i] = EventRef(ev)
	}
	s.token = r.GetSessionToken()
	s.heads[entity] = r.GetHeadVersion()
	w.rec.OK(id, history.Result{Head: r.GetHeadVersion(), Events: evs, TokenOut: r.GetSessionToken(),
		VectorOut: vectorOf(r.GetSessionToken()), Region: r.GetRegion(), Node: r.GetNode()})
}

// Error kinds the region reports in the Meridian-Error header that prove an
// append was not applied.
var definiteKinds = map[string]bool{
	"version-conflict": true, "invalid-argument": true, "idempotency-conflict": true,
	"overloaded": true, "not-leader": true,
}

// classify decides whether err proves the request had no effect.
func classify(err error) (history.Outcome, bool, uint64) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return history.Unknown, false, 0
	}
	kind := ce.Meta().Get("Meridian-Error")
	if definiteKinds[kind] {
		var head uint64
		if kind == "version-conflict" {
			_, _ = fmt.Sscan(ce.Meta().Get("Meridian-Current-Version"), &head)
		}
		return history.Failed, kind == "version-conflict", head
	}
	return history.Unknown, false, 0
}
