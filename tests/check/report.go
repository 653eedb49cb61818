package check

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/meridiandb/meridian/tests/history"
)

// ErrViolation is wrapped by Report.Err when a checker found a violation.
var ErrViolation = errors.New("check: violation")

// Checker names, used in reports.
const (
	NameLinearizability = "linearizability"
	NameLostWrites      = "no-lost-writes"
	NameConvergence     = "convergence"
	NameIdempotency     = "idempotency"
	NameSession         = "session"
	NameSubscriptions   = "subscriptions"
	NameResolve         = "resolve-unknown"
)

// Violation kinds of the session checker.
const (
	ReadYourWrites    = "read-your-writes"
	MonotonicReads    = "monotonic-reads"
	MonotonicWrites   = "monotonic-writes"
	WritesFollowReads = "writes-follow-reads"
	CausalOrder       = "causal-order"
	TokenMonotonic    = "token-monotonic"
)

// violationsShownMax bounds the violations Report.String prints; all stay in
// Report.Violations.
const violationsShownMax = 20

// Violation is one precise finding.
type Violation struct {
	// Kind refines the checker (a session guarantee, "missing", ...).
	Kind    string `json:"kind"`
	Entity  string `json:"entity,omitempty"`
	Replica string `json:"replica,omitempty"`
	// Ops are the history op ids involved, the offending one first.
	Ops     []int  `json:"ops,omitempty"`
	Message string `json:"message"`
}

func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Kind)
	if v.Entity != "" {
		fmt.Fprintf(&b, " entity=%s", v.Entity)
	}
	if v.Replica != "" {
		fmt.Fprintf(&b, " replica=%s", v.Replica)
	}
	if len(v.Ops) > 0 {
		fmt.Fprintf(&b, " ops=%v", v.Ops)
	}
	b.WriteString(": ")
	b.WriteString(v.Message)
	return b.String()
}

// Report is a checker's result: what it looked at and what it found.
type Report struct {
	Check string `json:"check"`
	// Checked counts what was examined (ops, entities or events), so that an
	// empty run is visible as such.
	Checked    int         `json:"checked"`
	Violations []Violation `json:"violations,omitempty"`
	// Files are artefacts written for a failure (porcupine visualisations).
	Files []string `json:"files,omitempty"`
}

// OK reports whether there were no violations.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Kinds returns the distinct violation kinds, sorted.
func (r Report) Kinds() []string {
	seen := map[string]bool{}
	for _, v := range r.Violations {
		seen[v.Kind] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r Report) String() string {
	var b strings.Builder
	if r.OK() {
		fmt.Fprintf(&b, "check %s: ok (%d checked)", r.Check, r.Checked)
		return b.String()
	}
	fmt.Fprintf(&b, "check %s: %d violation(s) (%d checked)", r.Check, len(r.Violations), r.Checked)
	for i, v := range r.Violations {
		if i == violationsShownMax {
			fmt.Fprintf(&b, "\n  ... %d more", len(r.Violations)-i)
			break
		}
		b.WriteString("\n  - ")
		b.WriteString(v.String())
	}
	for _, f := range r.Files {
		fmt.Fprintf(&b, "\n  file: %s", f)
	}
	return b.String()
}

// Err returns nil when OK, else an error wrapping ErrViolation.
func (r Report) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrViolation, r.String())
}

func (r *Report) add(v Violation) { r.Violations = append(r.Violations, v) }

// Streams is one replica's final streams: entity -> events in version order.
type Streams map[string][]history.EventRef

// Replicas holds the final streams of every node (or region): name ->
// streams.
type Replicas map[string]Streams

// names returns the replica names, sorted.
func (rs Replicas) names() []string {
	out := make([]string, 0, len(rs))
	for n := range rs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// location is where an event id is stored in one replica.
type location struct {
	entity    string
	version   uint64
	origin    history.Dot
	deps      history.Vector
	recovered bool
}

// index maps event id -> every place it is stored in one replica.
func (s Streams) index() map[string][]location {
	idx := map[string][]location{}
	for entity, evs := range s {
		for _, ev := range evs {
			idx[ev.ID] = append(idx[ev.ID], location{entity: entity, version: ev.Version, origin: ev.Origin, deps: ev.Deps, recovered: ev.Recovered})
		}
	}
	return idx
}

// qualifies reports whether a read is subject to session guarantees and
// linearizability: ok, and STRONG or SESSION.
func sessionRead(op *history.Op) bool {
	return op.Kind == history.Read && op.Outcome == history.OK &&
		(op.Consistency == history.Strong || op.Consistency == history.Session || op.Consistency == "")
}

// Without returns the replicas with the given entities' streams left out.
func (rs Replicas) Without(entities map[string]bool) Replicas {
	out := make(Replicas, len(rs))
	for n, s := range rs {
		kept := Streams{}
		for e, evs := range s {
			if !entities[e] {
				kept[e] = evs
			}
		}
		out[n] = kept
	}
	return out
}
