package history

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Kind is what an operation did.
type Kind string

const (
	// Append appends events to one entity's stream.
	Append Kind = "append"
	// Read reads one entity's stream.
	Read Kind = "read"
	// Delivery is one event delivered by a subscription (Call == Return).
	Delivery Kind = "subscribe-delivery"
)

// Outcome is how an operation ended.
type Outcome string

const (
	// Pending: invoked, not completed (yet). Checkers treat it as Unknown.
	Pending Outcome = ""
	// OK: the operation took effect and returned its result.
	OK Outcome = "ok"
	// Failed: the operation definitely did not take effect.
	Failed Outcome = "failed"
	// Unknown: the operation may or may not have taken effect (timeout,
	// leadership lost, connection reset after sending).
	Unknown Outcome = "unknown"
)

// Consistency of a read (mirrors the API's levels).
type Consistency string

const (
	Strong   Consistency = "strong"
	Session  Consistency = "session" // the default; "" means Session
	Bounded  Consistency = "bounded"
	Eventual Consistency = "eventual"
)

// ExpectKind is the kind of an append's expected-version check.
type ExpectKind string

const (
	ExpectAny      ExpectKind = ""       // no check
	ExpectNoStream ExpectKind = "none"   // the stream has no events
	ExpectExists   ExpectKind = "exists" // the stream has at least one event
	ExpectExact    ExpectKind = "exact"  // the head version is Version
)

// Expected is an append's optimistic-concurrency check.
type Expected struct {
	Kind    ExpectKind `json:"kind,omitempty"`
	Version uint64     `json:"version,omitempty"`
}

// Matches reports whether a stream whose head is head passes the check.
func (e Expected) Matches(head uint64) bool {
	switch e.Kind {
	case ExpectNoStream:
		return head == 0
	case ExpectExists:
		return head > 0
	case ExpectExact:
		return head == e.Version
	}
	return true
}

func (e Expected) String() string {
	switch e.Kind {
	case ExpectExact:
		return fmt.Sprintf("exact %d", e.Version)
	case "":
		return "any"
	}
	return string(e.Kind)
}

// Dot is an event's identity in its origin region's log.
type Dot struct {
	Region string `json:"region"`
	Seq    uint64 `json:"seq"`
}

// IsZero reports whether the dot is unset.
func (d Dot) IsZero() bool { return d.Region == "" && d.Seq == 0 }

// Vector maps a region to a sequence (an applied vector, a session token's
// content, or an event's deps). Omitted regions are 0.
type Vector map[string]uint64

// Covers reports whether v >= o entry by entry.
func (v Vector) Covers(o Vector) bool {
	for r, s := range o {
		if v[r] < s {
			return false
		}
	}
	return true
}

// CoversDot reports whether the dot is within v.
func (v Vector) CoversDot(d Dot) bool { return !d.IsZero() && v[d.Region] >= d.Seq }

// Merge returns the entry-wise maximum of v and o (a new vector).
func (v Vector) Merge(o Vector) Vector {
	out := make(Vector, len(v)+len(o))
	for r, s := range v {
		out[r] = s
	}
	for r, s := range o {
		if s > out[r] {
			out[r] = s
		}
	}
	return out
}

// EventRef is what a checker needs of one stored or returned event.
type EventRef struct {
	ID      string `json:"id"`
	Version uint64 `json:"version"`
	Origin  Dot    `json:"origin,omitzero"`
	Deps    Vector `json:"deps,omitempty"`
	// Recovered: appended again by a new home after a failover superseded
	// it (its version is not the one it first had).
	Recovered bool `json:"recovered,omitempty"`
}

// Input is what the client sent.
type Input struct {
	// EventIDs are an append's event ids, in order (unique per workload, so
	// that unknown outcomes can be resolved from what persisted).
	EventIDs []string `json:"event_ids,omitempty"`
	Expected Expected `json:"expected,omitzero"`
	// Consistency, FromVersion and MaxCount describe a read.
	Consistency Consistency `json:"consistency,omitempty"`
	FromVersion uint64      `json:"from_version,omitempty"`
	MaxCount    int         `json:"max_count,omitempty"`
	// TokenIn is the session token sent; VectorIn its decoded vector.
	TokenIn  string `json:"token_in,omitempty"`
	VectorIn Vector `json:"vector_in,omitempty"`
	// Attempt numbers retries of the same append (same EventIDs), from 1.
	Attempt int `json:"attempt,omitempty"`
}

// Result is what came back.
type Result struct {
	// FirstVersion and LastVersion are an ok append's versions.
	FirstVersion uint64 `json:"first_version,omitempty"`
	LastVersion  uint64 `json:"last_version,omitempty"`
	// Origin is an ok append's first dot; the others follow contiguously.
	Origin Dot `json:"origin,omitzero"`
	// Duplicate: the server answered a retry with the original result.
	Duplicate bool `json:"duplicate,omitempty"`
	// Conflict: a failed append was refused for its expected version; the
	// stream head seen by the server is Head.
	Conflict bool `json:"conflict,omitempty"`
	// Events are the events a read returned, or the one a subscription
	// delivered.
	Events []EventRef `json:"events,omitempty"`
	// Head is the stream head a read (or a conflict) reported.
	Head uint64 `json:"head,omitempty"`
	// TokenOut is the session token returned; VectorOut its decoded vector.
	TokenOut  string `json:"token_out,omitempty"`
	VectorOut Vector `json:"vector_out,omitempty"`
	// Region and Node served the request.
	Region string `json:"region,omitempty"`
	Node   string `json:"node,omitempty"`
	// Error is the error text of a failed or unknown operation.
	Error string `json:"error,omitempty"`
}

// Op is one operation: invocation, completion and everything recorded.
type Op struct {
	ID int `json:"id"`
	// Client is a dense, zero-based client number (one goroutine issuing
	// operations one at a time).
	Client int `json:"client"`
	// Session is the session whose token the client carries; "" means the
	// client is its own session.
	Session string  `json:"session,omitempty"`
	Kind    Kind    `json:"kind"`
	Entity  string  `json:"entity"`
	Call    int64   `json:"call"`   // nanoseconds since the history started
	Return  int64   `json:"return"` // 0 while pending
	Outcome Outcome `json:"outcome"`
	// Resolved marks an Unknown outcome decided afterwards from what
	// persisted (the operation's real completion time is unknown).
	Resolved bool `json:"resolved,omitempty"`
	Input
	Result
}

// SessionID is the op's session: Session, or the client number.
func (o *Op) SessionID() string {
	if o.Session != "" {
		return o.Session
	}
	return fmt.Sprintf("client-%d", o.Client)
}

// Precedes reports whether o completed before p was invoked (real-time
// order); an op that never completed precedes nothing.
func (o *Op) Precedes(p *Op) bool {
	return o.Outcome != Pending && o.Return != 0 && o.Return < p.Call
}

// History is a recorded run: operations in invocation order.
type History struct {
	// Seed and Schedule say how to replay the run that made it.
	Seed     int64  `json:"seed,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	Ops      []Op   `json:"ops"`
}

// Recorder records a history from concurrent clients. Safe for concurrent
// use.
type Recorder struct {
	mu    sync.Mutex
	start time.Time
	now   func() time.Time
	ops   []Op
	seed  int64
	sched string
}

// NewRecorder starts a history now, on the system's monotonic clock.
func NewRecorder() *Recorder { return NewRecorderClock(time.Now) }

// NewRecorderClock starts a history on the given clock (tests).
func NewRecorderClock(now func() time.Time) *Recorder {
	return &Recorder{start: now(), now: now}
}

// SetRun records the seed and schedule for replay.
func (r *Recorder) SetRun(seed int64, schedule string) {
	r.mu.Lock()
	r.seed, r.sched = seed, schedule
	r.mu.Unlock()
}

func (r *Recorder) stamp() int64 {
	t := r.now().Sub(r.start).Nanoseconds()
	if t <= 0 {
		t = 1 // 0 means "not returned"
	}
	return t
}

// Invoke records the start of an operation and returns its id.
func (r *Recorder) Invoke(client int, session string, kind Kind, entity string, in Input) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := len(r.ops)
	r.ops = append(r.ops, Op{ID: id, Client: client, Session: session, Kind: kind, Entity: entity, Call: r.stamp(), Input: in})
	return id
}

// complete records the end of operation id.
func (r *Recorder) complete(id int, out Outcome, res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id < 0 || id >= len(r.ops) {
		panic(fmt.Sprintf("history: complete of unknown op %d", id))
	}
	op := &r.ops[id]
	if op.Outcome != Pending {
		panic(fmt.Sprintf("history: op %d completed twice", id))
	}
	op.Return = r.stamp()
	if op.Return < op.Call {
		op.Return = op.Call
	}
	op.Outcome = out
	op.Result = res
}

// OK records a successful completion.
func (r *Recorder) OK(id int, res Result) { r.complete(id, OK, res) }

// Fail records a definite failure (the operation did not take effect).
func (r *Recorder) Fail(id int, err error, res Result) {
	if err != nil {
		res.Error = err.Error()
	}
	r.complete(id, Failed, res)
}

// Unknown records an indefinite outcome.
func (r *Recorder) Unknown(id int, err error) {
	res := Result{}
	if err != nil {
		res.Error = err.Error()
	}
	r.complete(id, Unknown, res)
}

// Deliver records one event delivered by a subscription.
func (r *Recorder) Deliver(client int, session, entity string, ev EventRef, res Result) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := len(r.ops)
	t := r.stamp()
	res.Events = []EventRef{ev}
	r.ops = append(r.ops, Op{ID: id, Client: client, Session: session, Kind: Delivery, Entity: entity, Call: t, Return: t, Outcome: OK, Result: res})
	return id
}

// History returns a copy of what was recorded so far; pending operations
// stay Pending.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]Op, len(r.ops))
	copy(ops, r.ops)
	return History{Seed: r.seed, Schedule: r.sched, Ops: ops}
}

// Len returns the number of recorded operations.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// Count returns how many ops have the kind and outcome.
func (h History) Count(kind Kind, out Outcome) int {
	n := 0
	for i := range h.Ops {
		if h.Ops[i].Kind == kind && h.Ops[i].Outcome == out {
			n++
		}
	}
	return n
}

// Entities returns the entities the history touches, sorted.
func (h History) Entities() []string {
	seen := map[string]bool{}
	for i := range h.Ops {
		seen[h.Ops[i].Entity] = true
	}
	out := make([]string, 0, len(seen))
	for e := range seen {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// End returns the latest timestamp in the history.
func (h History) End() int64 {
	var end int64
	for i := range h.Ops {
		end = max(end, h.Ops[i].Call, h.Ops[i].Return)
	}
	return end
}

// Clone returns a deep enough copy for checkers to rewrite outcomes.
func (h History) Clone() History {
	ops := make([]Op, len(h.Ops))
	copy(ops, h.Ops)
	return History{Seed: h.Seed, Schedule: h.Schedule, Ops: ops}
}

// MarshalIndent returns the history as indented JSON.
func (h History) MarshalIndent() ([]byte, error) { return json.MarshalIndent(h, "", "  ") }

// Dump writes the history as JSON to dir/name (dir is created) and returns
// the path. Used when a check fails, so the history can be inspected and
// re-checked offline.
func (h History) Dump(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("history: dump: %w", err)
	}
	b, err := h.MarshalIndent()
	if err != nil {
		return "", fmt.Errorf("history: dump: %w", err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("history: dump: %w", err)
	}
	return p, nil
}

// Load reads a history written by Dump.
func Load(path string) (History, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return History{}, fmt.Errorf("history: load: %w", err)
	}
	var h History
	if err := json.Unmarshal(b, &h); err != nil {
		return History{}, fmt.Errorf("history: load %s: %w", path, err)
	}
	return h, nil
}

// Without returns a copy of h without the operations drop selects (their
// ids are kept on the others).
func (h History) Without(drop func(*Op) bool) History {
	out := History{Seed: h.Seed, Schedule: h.Schedule}
	for i := range h.Ops {
		if !drop(&h.Ops[i]) {
			out.Ops = append(out.Ops, h.Ops[i])
		}
	}
	return out
}
