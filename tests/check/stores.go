package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/meridiandb/meridian/tests/history"
)

// NoLostWrites checks that every acknowledged append (OK, including ones
// resolved from unknown) is present on every replica, once, in its entity,
// at the versions it was acknowledged with; and that an append reported as
// failed (with no other attempt of the same ids) is stored nowhere.
func NoLostWrites(h history.History, replicas Replicas) Report {
	rep := Report{Check: NameLostWrites}
	if len(replicas) == 0 {
		rep.add(Violation{Kind: "no-replicas", Message: "no final streams given: nothing to check against"})
		return rep
	}
	names := replicas.names()
	idx := make(map[string]map[string][]location, len(names))
	for _, n := range names {
		idx[n] = replicas[n].index()
	}
	// Ids some attempt may have applied (ok or unknown), to tell a failed
	// retry of an applied append from a failed append that applied.
	mayApply := map[string]bool{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind == history.Append && op.Outcome != history.Failed {
			for _, id := range op.EventIDs {
				mayApply[id] = true
			}
		}
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind == history.Append && op.Outcome == history.Failed && !op.Resolved {
			for _, n := range names {
				for _, id := range op.EventIDs {
					if locs := idx[n][id]; len(locs) > 0 && !mayApply[id] {
						rep.add(Violation{Kind: "failed-but-present", Entity: op.Entity, Replica: n, Ops: []int{op.ID},
							Message: fmt.Sprintf("append failed with %q but its event %s is stored at %s", op.Error, id, describeLocs(locs))})
					}
				}
			}
			continue
		}
		if op.Kind != history.Append || op.Outcome != history.OK {
			continue
		}
		rep.Checked++
		for _, n := range names {
			for k, id := range op.EventIDs {
				locs := idx[n][id]
				want := uint64(0)
				if op.FirstVersion > 0 {
					want = op.FirstVersion + uint64(k)
				}
				switch {
				case len(locs) == 0:
					rep.add(Violation{Kind: "lost", Entity: op.Entity, Replica: n, Ops: []int{op.ID},
						Message: fmt.Sprintf("acknowledged event %s (version %d) is missing", id, want)})
				case len(locs) > 1:
					rep.add(Violation{Kind: "duplicated", Entity: op.Entity, Replica: n, Ops: []int{op.ID},
						Message: fmt.Sprintf("acknowledged event %s is stored %d times: %s", id, len(locs), describeLocs(locs))})
				case locs[0].entity != op.Entity:
					rep.add(Violation{Kind: "wrong-entity", Entity: op.Entity, Replica: n, Ops: []int{op.ID},
						Message: fmt.Sprintf("acknowledged event %s is stored in entity %s", id, locs[0].entity)})
				case want != 0 && locs[0].version != want:
					rep.add(Violation{Kind: "renumbered", Entity: op.Entity, Replica: n, Ops: []int{op.ID},
						Message: fmt.Sprintf("acknowledged event %s at version %d is stored at version %d", id, want, locs[0].version)})
				}
			}
		}
	}
	return rep
}

func describeLocs(locs []location) string {
	parts := make([]string, len(locs))
	for i, l := range locs {
		parts[i] = fmt.Sprintf("%s@%d", l.entity, l.version)
	}
	return strings.Join(parts, ", ")
}

// Convergence checks that every replica's streams are well formed (versions
// 1..n without gaps, no event id twice) and identical on every replica:
// same ids at the same versions, entity by entity. The caller polls until
// its stated convergence bound and checks the final snapshot.
func Convergence(replicas Replicas) Report {
	rep := Report{Check: NameConvergence}
	names := replicas.names()
	entities := map[string]bool{}
	for _, n := range names {
		ids := map[string]string{}
		for e, evs := range replicas[n] {
			entities[e] = true
			for i, ev := range evs {
				rep.Checked++
				if ev.Version != uint64(i+1) {
					rep.add(Violation{Kind: "gap", Entity: e, Replica: n,
						Message: fmt.Sprintf("event #%d (%s) has version %d: streams are 1-based without gaps", i+1, ev.ID, ev.Version)})
					break
				}
				if prev, dup := ids[ev.ID]; dup {
					rep.add(Violation{Kind: "duplicate-id", Entity: e, Replica: n,
						Message: fmt.Sprintf("event id %s stored twice (%s and %s@%d)", ev.ID, prev, e, ev.Version)})
				}
				ids[ev.ID] = fmt.Sprintf("%s@%d", e, ev.Version)
			}
		}
	}
	if len(names) < 2 {
		return rep
	}
	ents := make([]string, 0, len(entities))
	for e := range entities {
		ents = append(ents, e)
	}
	sort.Strings(ents)
	ref := names[0]
	for _, e := range ents {
		a := replicas[ref][e]
		for _, n := range names[1:] {
			b := replicas[n][e]
			if d := firstDifference(a, b); d != "" {
				rep.add(Violation{Kind: "diverged", Entity: e, Replica: n,
					Message: fmt.Sprintf("differs from %s: %s", ref, d)})
			}
		}
	}
	return rep
}

// firstDifference describes where two streams first differ, or "".
func firstDifference(a, b []history.EventRef) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return fmt.Sprintf("head %d vs %d: extra %s at version %d", len(a), len(b), b[i].ID, i+1)
		case i >= len(b):
			return fmt.Sprintf("head %d vs %d: missing %s at version %d", len(a), len(b), a[i].ID, i+1)
		case a[i].ID != b[i].ID:
			return fmt.Sprintf("version %d is %s, reference has %s", i+1, b[i].ID, a[i].ID)
		}
	}
	return ""
}

// Idempotency checks retries: appends carrying the same event ids (a
// client's retries after an unknown outcome) must take effect at most once.
// Every OK attempt reports the same versions, and on every replica each id
// of the group is stored at most once (exactly once when an attempt was
// acknowledged; NoLostWrites reports the missing case).
func Idempotency(h history.History, replicas Replicas) Report {
	rep := Report{Check: NameIdempotency}
	groups := map[string][]*history.Op{}
	var keys []string
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != history.Append || len(op.EventIDs) == 0 {
			continue
		}
		k := op.Entity + "\x00" + strings.Join(op.EventIDs, "\x00")
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], op)
	}
	names := replicas.names()
	idx := make(map[string]map[string][]location, len(names))
	for _, n := range names {
		idx[n] = replicas[n].index()
	}
	for _, k := range keys {
		ops := groups[k]
		rep.Checked++
		var ref *history.Op
		for _, op := range ops {
			if op.Outcome != history.OK || op.FirstVersion == 0 {
				continue
			}
			if ref == nil {
				ref = op
				continue
			}
			if op.FirstVersion != ref.FirstVersion || op.LastVersion != ref.LastVersion {
				rep.add(Violation{Kind: "retry-applied-twice", Entity: op.Entity, Ops: []int{op.ID, ref.ID},
					Message: fmt.Sprintf("retry of %v acknowledged at %d..%d, an earlier attempt at %d..%d", op.EventIDs, op.FirstVersion, op.LastVersion, ref.FirstVersion, ref.LastVersion)})
			}
		}
		ids := make([]int, len(ops))
		for i, op := range ops {
			ids[i] = op.ID
		}
		for _, n := range names {
			for _, id := range ops[0].EventIDs {
				if locs := idx[n][id]; len(locs) > 1 {
					rep.add(Violation{Kind: "duplicate", Entity: ops[0].Entity, Replica: n, Ops: ids,
						Message: fmt.Sprintf("event %s, sent by %d attempt(s), is stored %d times: %s", id, len(ops), len(locs), describeLocs(locs))})
				}
			}
		}
	}
	return rep
}

// Subscriptions checks what subscriptions delivered, per (client, entity):
// versions strictly increasing by one after the first delivery (no gap, no
// duplicate, no reordering) and, when replicas are given, the same id at
// each version as the final stream of the first replica.
func Subscriptions(h history.History, replicas Replicas) Report {
	rep := Report{Check: NameSubscriptions}
	type key struct {
		client int
		entity string
	}
	last := map[key]*history.Op{}
	var ref Streams
	if names := replicas.names(); len(names) > 0 {
		ref = replicas[names[0]]
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != history.Delivery || len(op.Events) == 0 {
			continue
		}
		rep.Checked++
		ev := op.Events[0]
		k := key{op.Client, op.Entity}
		if prev, ok := last[k]; ok {
			pv := prev.Events[0].Version
			if ev.Version != pv+1 {
				kind := "gap"
				if ev.Version <= pv {
					kind = "redelivered"
				}
				rep.add(Violation{Kind: kind, Entity: op.Entity, Ops: []int{op.ID, prev.ID},
					Message: fmt.Sprintf("client %d got version %d after version %d", op.Client, ev.Version, pv)})
			}
		}
		last[k] = op
		if ref != nil {
			s := ref[op.Entity]
			if ev.Version == 0 || ev.Version > uint64(len(s)) || s[ev.Version-1].ID != ev.ID {
				rep.add(Violation{Kind: "phantom", Entity: op.Entity, Ops: []int{op.ID},
					Message: fmt.Sprintf("delivered %s at version %d, which the final stream does not hold there", ev.ID, ev.Version)})
			}
		}
	}
	return rep
}
