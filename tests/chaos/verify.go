package chaos

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
)

// op is one recorded append.
type op struct {
	client   int
	node     string
	entity   string
	ids      []string
	start    time.Time
	end      time.Time
	outcome  string // ok, failed, unknown
	first    uint64
	last     uint64
	errText  string
	expected int64 // -1 any, else exact version
}

type history struct {
	mu  sync.Mutex
	ops []*op
}

func (h *history) add(o *op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

// snapshot returns the operations recorded so far.
func (h *history) snapshot() []*op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*op(nil), h.ops...)
}

func (h *history) count(outcome string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.ops {
		if o.outcome == outcome {
			n++
		}
	}
	return n
}

// classify says whether a failed request certainly did not apply.
func classify(err error) string {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeAlreadyExists, connect.CodeResourceExhausted:
		return "failed"
	default:
		return "unknown" // timeouts, unavailable, leadership lost: may have committed
	}
}

func entityName(i int) string { return fmt.Sprintf("chaos/e%02d", i) }

func compareStreams(byNode map[string]map[string][]string) string {
	var ref string
	for n := range byNode {
		if ref == "" || n < ref {
			ref = n
		}
	}
	for n, st := range byNode {
		for e, ids := range st {
			if !slices.Equal(ids, byNode[ref][e]) {
				return fmt.Sprintf("entity %s: node %s has %d events, node %s has %d", e, n, len(ids), ref, len(byNode[ref][e]))
			}
		}
	}
	return ""
}

// checkHistory validates the final streams against the history:
//   - every acknowledged append is present exactly once, at the versions it
//     was acknowledged with;
//   - an append whose outcome is unknown is present entirely or not at all;
//   - an append that certainly failed is absent;
//   - no event id appears twice anywhere.
func checkHistory(ops []*op, streams map[string][]string) error {
	where := map[string]struct {
		entity  string
		version uint64
	}{}
	var errs []error
	for e, ids := range streams {
		for i, id := range ids {
			if prev, dup := where[id]; dup {
				errs = append(errs, fmt.Errorf("event %s appears twice: %s@%d and %s@%d", id, prev.entity, prev.version, e, i+1))
			}
			where[id] = struct {
				entity  string
				version uint64
			}{e, uint64(i + 1)}
		}
	}
	for _, o := range ops {
		present := 0
		for i, id := range o.ids {
			loc, ok := where[id]
			if !ok {
				continue
			}
			present++
			if loc.entity != o.entity {
				errs = append(errs, fmt.Errorf("event %s appended to %s found in %s", id, o.entity, loc.entity))
			}
			if o.outcome == "ok" && loc.version != o.first+uint64(i) {
				errs = append(errs, fmt.Errorf("acknowledged event %s (client %d via %s) at version %d, acknowledged as %d", id, o.client, o.node, loc.version, o.first+uint64(i)))
			}
		}
		switch {
		case o.outcome == "ok" && present != len(o.ids):
			errs = append(errs, fmt.Errorf("lost acknowledged write: %d of %d events of an append to %s acknowledged at %d..%d (client %d via %s at %s)", len(o.ids)-present, len(o.ids), o.entity, o.first, o.last, o.client, o.node, o.end.Format(time.RFC3339Nano)))
		case o.outcome == "unknown" && present != 0 && present != len(o.ids):
			errs = append(errs, fmt.Errorf("partially applied append to %s: %d of %d events present (%s)", o.entity, present, len(o.ids), o.errText))
		case o.outcome == "failed" && present != 0:
			errs = append(errs, fmt.Errorf("append to %s failed with %q but %d of its events are present", o.entity, o.errText, present))
		}
	}
	return errors.Join(errs...)
}
