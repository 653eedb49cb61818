package check

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/meridiandb/meridian/tests/history"
)

// Linearizability limits.
const (
	// linTimeoutDefault bounds porcupine's search per entity. A search that
	// runs out is a failure to verify, never a pass.
	linTimeoutDefault = 30 * time.Second
	// describeIDsMax bounds the ids printed per state in visualisations.
	describeIDsMax = 8
	// culpritsMax bounds the op ids named in a violation.
	culpritsMax = 10
)

// LinOptions configures Linearizability.
type LinOptions struct {
	// Timeout bounds the search per entity; 0 means 30 s.
	Timeout time.Duration
	// VisualizationDir receives porcupine's HTML visualisation of every
	// entity that fails; "" means os.TempDir().
	VisualizationDir string
}

// linInput is the model's view of an operation's input.
type linInput struct {
	op *history.Op
}

// linOutput is the model's view of an operation's outcome.
type linOutput struct {
	unknown bool // Unknown or Pending: may or may not have taken effect
	op      *history.Op
}

// stream is the model state: an immutable list of event ids, newest first,
// shared between states (persistent).
type stream struct {
	prev *stream
	id   string
	n    uint64 // head version
	h    uint64 // hash of the whole sequence
}

var emptyStream = &stream{}

func (s *stream) push(ids []string) *stream {
	for _, id := range ids {
		f := fnv.New64a()
		var b [8]byte
		for i := range 8 {
			b[i] = byte(s.h >> (8 * i))
		}
		f.Write(b[:])
		f.Write([]byte(id))
		s = &stream{prev: s, id: id, n: s.n + 1, h: f.Sum64()}
	}
	return s
}

// at returns the id at version v.
func (s *stream) at(v uint64) (string, bool) {
	if v == 0 || v > s.n {
		return "", false
	}
	for s.n > v {
		s = s.prev
	}
	return s.id, true
}

// find returns the version of id, or 0.
func (s *stream) find(id string) uint64 {
	for ; s.n > 0; s = s.prev {
		if s.id == id {
			return s.n
		}
	}
	return 0
}

func (s *stream) equal(o *stream) bool {
	if s.n != o.n || s.h != o.h {
		return false
	}
	for s != o {
		if s.id != o.id {
			return false
		}
		s, o = s.prev, o.prev
	}
	return true
}

func (s *stream) String() string {
	var ids []string
	for p := s; p.n > 0 && len(ids) < describeIDsMax; p = p.prev {
		ids = append(ids, p.id)
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	prefix := ""
	if s.n > uint64(len(ids)) {
		prefix = "... "
	}
	return fmt.Sprintf("head %d [%s%s]", s.n, prefix, strings.Join(ids, " "))
}

// stepStream returns every state the stream can be in after the operation.
func stepStream(s *stream, in linInput, out linOutput) []*stream {
	op := in.op
	switch op.Kind {
	case history.Read:
		if out.op.Head != s.n {
			return nil
		}
		for _, ev := range out.op.Events {
			if id, ok := s.at(ev.Version); !ok || id != ev.ID {
				return nil
			}
		}
		return []*stream{s}
	case history.Append:
		ids := op.EventIDs
		if len(ids) == 0 {
			return []*stream{s} // nothing to append: no effect
		}
		if v := s.find(ids[0]); v != 0 {
			// A retry of an append that already took effect: idempotent.
			for k, id := range ids {
				if got, ok := s.at(v + uint64(k)); !ok || got != id {
					return nil // partially present: never valid
				}
			}
			switch {
			case out.unknown:
				return []*stream{s}
			case op.Outcome == history.OK:
				if op.FirstVersion == v && op.LastVersion == v+uint64(len(ids))-1 {
					return []*stream{s}
				}
				return nil
			case op.Conflict:
				if !op.Expected.Matches(s.n) {
					return []*stream{s}
				}
				return nil
			}
			return nil
		}
		matches := op.Expected.Matches(s.n)
		switch {
		case out.unknown:
			if matches {
				return []*stream{s, s.push(ids)}
			}
			return []*stream{s}
		case op.Outcome == history.OK:
			if matches && op.FirstVersion == s.n+1 && op.LastVersion == s.n+uint64(len(ids)) {
				return []*stream{s.push(ids)}
			}
			return nil
		case op.Conflict:
			if !matches {
				return []*stream{s}
			}
			return nil
		}
	}
	return nil
}

// streamModel is the sequential specification of one entity's stream.
func streamModel() porcupine.Model {
	nd := porcupine.NondeterministicModel{
		Init: func() []interface{} { return []interface{}{emptyStream} },
		Step: func(state, input, output interface{}) []interface{} {
			next := stepStream(state.(*stream), input.(linInput), output.(linOutput))
			out := make([]interface{}, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Equal: func(a, b interface{}) bool { return a.(*stream).equal(b.(*stream)) },
		Hash:  func(s interface{}) uint64 { return s.(*stream).h },
		DescribeOperation: func(input, output interface{}) string {
			return describeOp(input.(linInput).op, output.(linOutput).unknown)
		},
		DescribeState: func(s interface{}) string { return s.(*stream).String() },
	}
	return nd.ToModel()
}

func describeOp(op *history.Op, unknown bool) string {
	switch op.Kind {
	case history.Read:
		return fmt.Sprintf("#%d read from %d -> head %d, %d events", op.ID, op.FromVersion, op.Head, len(op.Events))
	case history.Append:
		res := "unknown"
		switch {
		case unknown:
		case op.Outcome == history.OK:
			res = fmt.Sprintf("ok %d..%d", op.FirstVersion, op.LastVersion)
			if op.Resolved {
				res += " (resolved)"
			}
		case op.Conflict:
			res = "conflict"
		}
		return fmt.Sprintf("#%d append %v expect %s -> %s", op.ID, op.EventIDs, op.Expected, res)
	}
	return fmt.Sprintf("#%d %s", op.ID, op.Kind)
}

// linOps selects the operations the model checks, per entity: appends that
// are OK, Unknown/Pending or refused for their expected version, and OK
// STRONG reads. Ops of unknown outcome (and resolved ones, whose completion
// time is unknown) return at "infinity": after everything else.
func linOps(h history.History) map[string][]porcupine.Operation {
	inf := h.End() + 1
	out := map[string][]porcupine.Operation{}
	for i := range h.Ops {
		op := &h.Ops[i]
		var unknown bool
		switch {
		case op.Kind == history.Read && op.Outcome == history.OK && op.Consistency == history.Strong:
		case op.Kind == history.Append && op.Outcome == history.OK:
		case op.Kind == history.Append && op.Outcome == history.Failed && op.Conflict:
		case op.Kind == history.Append && (op.Outcome == history.Unknown || op.Outcome == history.Pending):
			unknown = true
		default:
			continue
		}
		ret := op.Return
		if unknown || op.Resolved || ret == 0 {
			ret = inf
		}
		out[op.Entity] = append(out[op.Entity], porcupine.Operation{
			ClientId: op.Client,
			Input:    linInput{op: op},
			Call:     op.Call,
			Output:   linOutput{unknown: unknown, op: op},
			Return:   ret,
		})
	}
	return out
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Linearizability checks, per entity, that appends and STRONG reads are
// linearizable against a stream model (a list of event ids; an append checks
// its expected version and takes the next versions; a retry of an applied
// append returns the original versions; a read sees the head and the ids at
// their versions). An entity whose search times out (porcupine Unknown) is a
// violation: a failure to verify is never a pass. For every failing entity
// the HTML visualisation is written to opts.VisualizationDir.
func Linearizability(h history.History, opts LinOptions) Report {
	if opts.Timeout == 0 {
		opts.Timeout = linTimeoutDefault
	}
	if opts.VisualizationDir == "" {
		opts.VisualizationDir = os.TempDir()
	}
	rep := Report{Check: NameLinearizability}
	perEntity := linOps(h)
	entities := make([]string, 0, len(perEntity))
	for e := range perEntity {
		entities = append(entities, e)
	}
	sort.Strings(entities)
	model := streamModel()
	for _, e := range entities {
		ops := perEntity[e]
		rep.Checked += len(ops)
		res, info := porcupine.CheckOperationsVerbose(model, ops, opts.Timeout)
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			rep.add(Violation{Kind: "unverified", Entity: e, Message: fmt.Sprintf(
				"porcupine did not finish within %s over %d ops: result unknown, which is a failure to verify (raise the timeout or shorten the history)", opts.Timeout, len(ops))})
		case porcupine.Illegal:
			v := Violation{Kind: "not-linearizable", Entity: e, Ops: culprits(ops, info)}
			name := fmt.Sprintf("porcupine-%s-%d.html", unsafeFileChars.ReplaceAllString(e, "_"), h.Seed)
			path := filepath.Join(opts.VisualizationDir, name)
			if err := os.MkdirAll(opts.VisualizationDir, 0o755); err == nil {
				if err := porcupine.VisualizePath(model, info, path); err == nil {
					rep.Files = append(rep.Files, path)
				} else {
					path = fmt.Sprintf("(visualisation failed: %v)", err)
				}
			}
			v.Message = fmt.Sprintf("%d ops admit no linearization; ops outside the longest partial linearization: %v; visualisation %s",
				len(ops), v.Ops, path)
			rep.add(v)
		}
	}
	return rep
}

// culprits names the ops outside the longest partial linearization found.
func culprits(ops []porcupine.Operation, info porcupine.LinearizationInfo) []int {
	var best []int
	for _, part := range info.PartialLinearizations() {
		for _, lin := range part {
			if len(lin) > len(best) {
				best = lin
			}
		}
	}
	in := map[int]bool{}
	for _, i := range best {
		in[i] = true
	}
	var out []int
	for i, o := range ops {
		if !in[i] {
			out = append(out, o.Input.(linInput).op.ID)
			if len(out) == culpritsMax {
				break
			}
		}
	}
	return out
}
