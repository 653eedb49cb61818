package check

import (
	"fmt"
	"sort"

	"github.com/meridiandb/meridian/tests/history"
)

// Session guarantees across regions.
//
// Sessions compares an append's deps with what the session had read, and a
// read with the dots the session had observed, one level deep: the deps of
// the events themselves. In one region that is the whole causal past (one
// origin, whose log order already orders everything). Across regions it is
// not: an event's deps are its writer's token and its entity's previous
// event, and a token covers the dots of what was returned, not their deps.
// The causal past is still complete, because every region applies an event
// only once its applied vector covers the event's deps, so an applied vector
// is causally closed; but it has to be followed transitively. A session that
// read x1 (us:1, deps eu:1) writes y1 with deps {us:1}: y1 follows x1 and,
// through it, eu:1, yet Sessions alone reports writes-follow-reads because
// {us:1} does not cover eu:1.
//
// SessionsAcrossRegions therefore runs Sessions over the final streams with
// every event's deps replaced by its whole causal past (CausalClosure). That
// removes the false positive and makes causal order stronger: a read must
// include every event of its entity in the transitive past of what the
// session observed. It adds one check of the token itself: a SESSION or
// STRONG read includes every event of its entity that the request's token
// covers, transitively (the server promised as much when it accepted the
// token, whichever region served the token and whichever serves the read;
// tokens learnt from EVENTUAL reads count too).

// CausalClosure returns a copy of replicas in which every event's deps are
// its whole causal past: its own deps and its origin predecessor, closed
// under the deps of every event they cover. The events of every replica are
// pooled by id (the first replica holding an id wins), so replicas should
// have converged. Dots no replica holds contribute nothing.
func CausalClosure(replicas Replicas) Replicas {
	cl := newClosure(replicas)
	out := make(Replicas, len(replicas))
	for n, streams := range replicas {
		cs := make(Streams, len(streams))
		for e, evs := range streams {
			ces := make([]history.EventRef, len(evs))
			for i, ev := range evs {
				ces[i] = ev
				if past := cl.past(ev); len(past) > 0 {
					ces[i].Deps = past
				}
			}
			cs[e] = ces
		}
		out[n] = cs
	}
	return out
}

// closure holds, per origin, the events in origin order with the merge of
// the direct deps of every event up to each one (the prefix deps).
type closure struct {
	seqs   map[string][]uint64         // origin -> seqs, ascending
	prefix map[string][]history.Vector // origin -> deps merged over seqs[0..i]
}

func newClosure(replicas Replicas) *closure {
	type dotted struct {
		seq  uint64
		deps history.Vector
	}
	byOrigin := map[string][]dotted{}
	seen := map[string]bool{}
	for _, n := range replicas.names() {
		for _, evs := range replicas[n] {
			for _, ev := range evs {
				if ev.Origin.IsZero() || seen[ev.ID] {
					continue
				}
				seen[ev.ID] = true
				byOrigin[ev.Origin.Region] = append(byOrigin[ev.Origin.Region], dotted{ev.Origin.Seq, ev.Deps})
			}
		}
	}
	c := &closure{seqs: map[string][]uint64{}, prefix: map[string][]history.Vector{}}
	for o, ds := range byOrigin {
		sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
		acc := history.Vector{}
		for _, d := range ds {
			acc = acc.Merge(d.deps)
			c.seqs[o] = append(c.seqs[o], d.seq)
			c.prefix[o] = append(c.prefix[o], acc)
		}
	}
	return c
}

// close returns v closed under deps: the least vector covering v and the
// deps of every known event it covers.
func (c *closure) close(v history.Vector) history.Vector {
	out := v.Merge(nil)
	for changed := true; changed; {
		changed = false
		for o, s := range out {
			seqs := c.seqs[o]
			i := sort.Search(len(seqs), func(i int) bool { return seqs[i] > s }) - 1
			if i < 0 {
				continue
			}
			for r, q := range c.prefix[o][i] {
				if out[r] < q {
					out[r] = q
					changed = true
				}
			}
		}
	}
	return out
}

// past is ev's causal past: its deps and origin predecessor, closed.
func (c *closure) past(ev history.EventRef) history.Vector {
	v := ev.Deps.Merge(nil)
	if !ev.Origin.IsZero() && ev.Origin.Seq > 1 && v[ev.Origin.Region] < ev.Origin.Seq-1 {
		v[ev.Origin.Region] = ev.Origin.Seq - 1
	}
	return c.close(v)
}

// SessionsAcrossRegions checks the session guarantees of a multi-region
// history: Sessions over CausalClosure(replicas), plus token coverage (a
// SESSION or STRONG read includes every event of its entity within the
// transitive closure of the token it sent). Violations of token coverage
// are of kind CausalOrder.
func SessionsAcrossRegions(h history.History, replicas Replicas) Report {
	closed := CausalClosure(replicas)
	// Events a read returned carry their direct deps, which Sessions would
	// prefer to the final streams' (closed) ones: drop them.
	direct := h.Clone()
	for i := range direct.Ops {
		op := &direct.Ops[i]
		if len(op.Events) == 0 {
			continue
		}
		evs := make([]history.EventRef, len(op.Events))
		for k, ev := range op.Events {
			evs[k] = ev
			evs[k].Deps = nil
		}
		op.Events = evs
	}
	rep := Sessions(direct, closed)
	cl := newClosure(replicas)
	fi := newFinalIndex(closed)
	for i := range h.Ops {
		b := &h.Ops[i]
		if !sessionRead(b) || len(b.VectorIn) == 0 {
			continue
		}
		need := cl.close(b.VectorIn)
		var missing history.EventRef
		for _, ev := range fi.byEntity[b.Entity] {
			if ev.Version > b.Head && need.CoversDot(ev.Origin) && ev.Version > missing.Version {
				missing = ev
			}
		}
		if missing.Version > 0 {
			rep.add(Violation{Kind: CausalOrder, Entity: b.Entity, Ops: []int{b.ID},
				Message: fmt.Sprintf("session %s read head %d%s with a token covering %v (closed: %v), which includes %s at version %d, dot %s/%d",
					b.SessionID(), b.Head, servedBy(b), b.VectorIn, need, missing.ID, missing.Version, missing.Origin.Region, missing.Origin.Seq)})
		}
	}
	return rep
}
