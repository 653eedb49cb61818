package check

import (
	"fmt"

	"github.com/meridiandb/meridian/tests/history"
)

// ResolveUnknown decides every Unknown (or Pending) append from what
// persisted, by event id, across all replicas:
//   - every id stored, once, in the op's entity at consecutive versions in
//     order, at the same versions in every replica that has them: the append
//     took effect; it becomes OK with those versions, Resolved. Events that
//     a failover superseded and a new home appended again (Recovered) need
//     only be in order: recovery appends each event on its own, so other
//     appends can land between them (a known limitation, ADR 0004);
//   - no id stored anywhere: it did not take effect; it becomes Failed,
//     Resolved;
//   - anything else (some ids only, other order, other entity, differing
//     versions): a violation (appends are atomic), and the op stays Unknown.
//
// Resolving to "did not take effect" is sound only if nothing can still
// commit: the run must end with a successful write after heal (a new leader
// commits an entry of its own term, which settles every earlier entry).
// Resolved OK ops keep their recorded Return, but checkers treat their real
// completion time as unknown (the linearizability checker puts it at the end
// of the history).
func ResolveUnknown(h history.History, replicas Replicas) (history.History, Report) {
	rep := Report{Check: NameResolve}
	out := h.Clone()
	idx := map[string]map[string][]location{} // replica -> id -> locations
	for _, name := range replicas.names() {
		idx[name] = replicas[name].index()
	}
	for i := range out.Ops {
		op := &out.Ops[i]
		if op.Kind != history.Append || (op.Outcome != history.Unknown && op.Outcome != history.Pending) {
			continue
		}
		rep.Checked++
		if len(op.EventIDs) == 0 {
			rep.add(Violation{Kind: "no-event-ids", Entity: op.Entity, Ops: []int{op.ID}, Message: "an unknown append without event ids cannot be resolved; every append must carry unique ids"})
			continue
		}
		first, last, found, problem := resolveOne(op, replicas.names(), idx)
		switch {
		case problem != "":
			rep.add(Violation{Kind: "partial-append", Entity: op.Entity, Ops: []int{op.ID}, Message: problem})
		case found == 0:
			op.Outcome, op.Resolved = history.Failed, true
			op.Error = fmt.Sprintf("resolved: not persisted (%s)", op.Error)
		default:
			op.Outcome, op.Resolved = history.OK, true
			op.FirstVersion = first
			op.LastVersion = last
			if op.Return == 0 {
				op.Return = h.End() + 1
			}
		}
	}
	return out, rep
}

// resolveOne returns the first and last versions of op's events if stored,
// how many ids were found, or a problem.
func resolveOne(op *history.Op, names []string, idx map[string]map[string][]location) (uint64, uint64, int, string) {
	var first, last uint64
	foundIDs := map[string]bool{}
	for _, name := range names {
		var base, prev uint64
		recovered := false
		present := 0
		for k, id := range op.EventIDs {
			locs := idx[name][id]
			if len(locs) == 0 {
				continue
			}
			present++
			foundIDs[id] = true
			if len(locs) > 1 {
				return 0, 0, 0, fmt.Sprintf("event %s stored %d times on %s", id, len(locs), name)
			}
			l := locs[0]
			if l.entity != op.Entity {
				return 0, 0, 0, fmt.Sprintf("event %s stored in entity %s on %s, appended to %s", id, l.entity, name, op.Entity)
			}
			recovered = recovered || l.recovered
			switch {
			case k == 0:
				base = l.version
			case base == 0 || l.version <= prev:
				return 0, 0, 0, fmt.Sprintf("event %s (#%d of the append) at version %d on %s: the append's events are out of order (previous at %d)", id, k, l.version, name, prev)
			case l.version != base+uint64(k) && !recovered:
				return 0, 0, 0, fmt.Sprintf("event %s (#%d of the append) at version %d on %s: the append's events are not consecutive from %d", id, k, l.version, name, base)
			}
			prev = l.version
		}
		if present != 0 && present != len(op.EventIDs) {
			return 0, 0, 0, fmt.Sprintf("%d of %d events of the append stored on %s: appends must be atomic", present, len(op.EventIDs), name)
		}
		if present > 0 {
			if (first != 0 && first != base) || (last != 0 && last != prev) {
				return 0, 0, 0, fmt.Sprintf("append stored at versions %d..%d on %s but at %d..%d on another replica", base, prev, name, first, last)
			}
			first, last = base, prev
		}
	}
	return first, last, len(foundIDs), ""
}
