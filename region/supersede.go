package region

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// Failover and the replication path (ADR 0004). A region that lost its
// home lease may have ordered events the failover's new home never
// received (its unreplicated tail); the new home then orders the same
// versions under a newer epoch. Every region resolves such a fork alike,
// whatever order the two histories reach it in: an entity's events belong
// to eras, (epoch, origin region), ordered by epoch then region name, and
// at any version the event of the later era wins. An event of an earlier
// era that conflicts is superseded: kept under u/ with its dot (its origin
// log stays whole for replication), out of the stream, and queued (q/) for
// the entity's home to append again, marked recovered with its original
// version. Events of the earlier era that were already in the stream at or
// above the version where the later era begins are rolled back the same
// way. The applied vector is not rolled back: every dot is still applied
// exactly once, in the stream or as superseded.

// eraBefore reports whether era (e1, o1) is earlier than (e2, o2).
func eraBefore(e1 uint64, o1 string, e2 uint64, o2 string) bool {
	return e1 < e2 || e1 == e2 && o1 < o2
}

// supersededRef is the o/ value of a superseded event.
func supersededRef(entity string) []byte { return encodeRef(ref{Entity: entity}) }

// supersedeWrites are the writes that record ev as superseded: the event
// at u/, its o/ ref pointing there, and (unless it was re-appended already,
// or its id is in this region's streams, a client's retry) the recovery
// marker.
func supersedeWrites(txn *badger.Txn, ev *meridianv1.Event) []kv {
	o, seq := ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()
	stored := proto.Clone(ev).(*meridianv1.Event)
	stored.Position = 0
	writes := []kv{
		{key: supersededKey(o, seq), value: mustMarshal(stored)},
		{key: originKey(o, seq), value: supersededRef(ev.GetEntity())},
	}
	if !exists(txn, recoveredKey(o, seq)) && !idInStream(txn, ev) {
		writes = append(writes, kv{key: recoveryKey(o, seq)})
	}
	return writes
}

// idInStream reports whether ev's id is recorded here as another event of
// ev's entity (a client retried the append after the failover, and it
// was ordered again).
func idInStream(txn *badger.Txn, ev *meridianv1.Event) bool {
	id, err := uuid.Parse(ev.GetId())
	if err != nil {
		return false
	}
	rec := getIdempotency(txn, id)
	return rec != nil && rec.GetEntity() == ev.GetEntity() && !sameDot(rec.GetOrigin(), ev.GetOrigin())
}

func sameDot(a, b *meridianv1.Dot) bool {
	return a.GetRegion() == b.GetRegion() && a.GetSeq() == b.GetSeq()
}

// exists reports whether key is present (apply side: a read error panics).
func exists(txn *badger.Txn, key []byte) bool {
	_, err := txn.Get(key)
	if err == nil {
		return true
	}
	if err == badger.ErrKeyNotFound {
		return false
	}
	panic(fmt.Errorf("region: apply: read %q: %w", key, err))
}

// rollbackWrites are the writes and deletes that take entity's events at
// versions from..head out of the stream as superseded, and put the head
// back at from-1. ok is false when one of them is not of an era before
// (epoch, origin): then nothing may be rolled back (see applyReplicate).
func rollbackWrites(txn *badger.Txn, entity string, from uint64, head *meridianv1.StreamHead, epoch uint64, origin string) (writes []kv, deletes [][]byte, rolled []*meridianv1.Event, newHead *meridianv1.StreamHead, ok bool) {
	for v := head.GetVersion(); v >= from; v-- {
		ev := &meridianv1.Event{}
		if !getProto(txn, eventKey(entity, v), ev) {
			panic(fmt.Errorf("region: apply: stream %q: version %d below head %d is missing", entity, v, head.GetVersion()))
		}
		if !eraBefore(ev.GetEpoch(), ev.GetOrigin().GetRegion(), epoch, origin) {
			return nil, nil, nil, nil, false
		}
		rolled = append(rolled, ev)
		deletes = append(deletes, eventKey(entity, v), logKey(ev.GetPosition()))
		if id, err := uuid.Parse(ev.GetId()); err == nil {
			if rec := getIdempotency(txn, id); rec != nil && sameDot(rec.GetOrigin(), ev.GetOrigin()) {
				deletes = append(deletes, idempotencyKey(id))
			}
		}
	}
	for _, ev := range rolled {
		o, seq := ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()
		stored := proto.Clone(ev).(*meridianv1.Event)
		stored.Position = 0
		writes = append(writes, kv{key: supersededKey(o, seq), value: mustMarshal(stored)},
			kv{key: originKey(o, seq), value: supersededRef(entity)})
		if !exists(txn, recoveredKey(o, seq)) && !idInStream(txn, ev) {
			writes = append(writes, kv{key: recoveryKey(o, seq)})
		}
	}
	// The lifecycle events rolled back no longer count: the head's
	// lifecycle is folded again from those below from.
	newHead = &meridianv1.StreamHead{}
	deletes = append(deletes, lifecycleBelow(txn, entity, from, newHead)...)
	if from == 1 {
		deletes = append(deletes, headKey(entity))
		return writes, deletes, rolled, newHead, true
	}
	prev := &meridianv1.Event{}
	if !getProto(txn, eventKey(entity, from-1), prev) {
		panic(fmt.Errorf("region: apply: stream %q: version %d below head %d is missing", entity, from-1, head.GetVersion()))
	}
	newHead.Version, newHead.LastOrigin, newHead.LastHlc, newHead.Epoch = from-1, prev.GetOrigin(), prev.GetHlc(), prev.GetEpoch()
	writes = append(writes, kv{key: headKey(entity), value: mustMarshal(newHead)})
	return writes, deletes, rolled, newHead, true
}

// recoveredWrites record, for an event that re-appends a superseded one
// (recovered_from set), where it now is, and drop the recovery marker.
func recoveredWrites(ev *meridianv1.Event) (writes []kv, deletes [][]byte) {
	from := ev.GetRecoveredFrom()
	if from.GetSeq() == 0 {
		return nil, nil
	}
	return []kv{{key: recoveredKey(from.GetRegion(), from.GetSeq()), value: encodeRef(ref{Entity: ev.GetEntity(), Version: ev.GetVersion()})}},
		[][]byte{recoveryKey(from.GetRegion(), from.GetSeq())}
}

// applyOriginFence fences, raises or releases the hold on another region's
// log (a failover's survivors: see OriginFence), and records a completed
// failover's tail rule. It returns the limit.
func (a applier) applyOriginFence(w *txnWriter, st *meridianv1.ApplyState, f *meridianv1.OriginFence) *FenceResult {
	o := f.GetOrigin()
	if o == a.region && f.GetTail() != nil {
		return &FenceResult{Transition: f.GetTransition(), Superseded: a.supersedeOwnTail(w, st, f.GetTail())}
	}
	if o == "" || o == a.region {
		return &FenceResult{}
	}
	cur := st.GetOriginFences()[o]
	if t := f.GetTail(); t != nil {
		recordTail(st, o, t)
		if !f.GetRelease() {
			// Only the record: never a fence.
			return &FenceResult{Transition: f.GetTransition()}
		}
	}
	switch {
	case f.GetRelease():
		if cur != nil && cur.GetTransition() <= f.GetTransition() {
			delete(st.OriginFences, o)
		}
		return &FenceResult{Transition: f.GetTransition()}
	case f.GetLimit() > 0:
		if cur != nil && cur.GetTransition() == f.GetTransition() {
			cur.Limit = max(cur.GetLimit(), f.GetLimit())
			return &FenceResult{Transition: f.GetTransition(), Seq: cur.GetLimit()}
		}
		return &FenceResult{Transition: f.GetTransition()}
	}
	if cur == nil || cur.GetTransition() < f.GetTransition() {
		if st.OriginFences == nil {
			st.OriginFences = map[string]*meridianv1.OriginFenceState{}
		}
		cur = &meridianv1.OriginFenceState{Transition: f.GetTransition(), Limit: st.GetApplied()[o]}
		st.OriginFences[o] = cur
	}
	return &FenceResult{Transition: cur.GetTransition(), Seq: cur.GetLimit()}
}

// Failover tails. A failover's survivors hold the lost region's log back
// beyond what they have of it, and let it through to the cut, which the new
// home applies before it orders anything; what the lost home ordered beyond
// the cut for the entities it lost is its unreplicated tail. Superseding
// that tail only when a later era's event of the same stream arrives is not
// enough: a region that received the tail before any event of the new
// home's era took it into the stream, and when a second failover then made
// that region the home, it ordered its own era on top of the tail while
// another region held the first new home's events at those versions
// (three histories, no era order that agrees with all of them). So every
// region applies the same rule as soon as a failover is over, recorded in
// its state in the entry that releases the fence (before any event beyond
// the fence): the lost origin's single-home events beyond the cut, ordered
// under an epoch before the failover, for an entity the failover moved,
// are superseded on arrival and appended again by the entity's new home,
// marked recovered. Entities the failover kept with the lost region (rules
// that do not fail over, pins) keep their events.

// The lost region itself records its own failovers too, when it is back:
// its tail is in its streams as its own events, which nothing else takes
// out before the new home's copies arrive, and an entity moved back to it
// before then would have it order on top of a tail every other region
// superseded. So it rolls its own tail back out of its streams, queued for
// recovery like anywhere else, before it can be the home of a moved entity
// again (the homes loop records tails before it reports any move).

// supersedeOwnTail records this region's own failover t and takes its tail
// events still in their streams out of them (rollbackWrites, against the
// era (t's transition, "")), queued for recovery. It returns how many.
func (a applier) supersedeOwnTail(w *txnWriter, st *meridianv1.ApplyState, t *meridianv1.FailoverTail) int {
	for _, have := range st.GetOriginTails()[a.region].GetTails() {
		if have.GetTransition() == t.GetTransition() {
			return 0
		}
	}
	recordTail(st, a.region, t)
	n := 0
	for seq := t.GetCut() + 1; seq <= st.GetApplied()[a.region]; seq++ {
		item, err := w.txn.Get(originKey(a.region, seq))
		if err == badger.ErrKeyNotFound {
			continue
		}
		var r ref
		if err == nil {
			err = item.Value(func(v []byte) (err error) { r, err = decodeRef(v); return err })
		}
		if err != nil {
			panic(fmt.Errorf("region: apply: read own origin %d: %w", seq, err))
		}
		if r.Version == 0 || r.Merged != nil || !failoverMoved(t, r.Entity) {
			continue // superseded already, merged, or kept with this region
		}
		ev := &meridianv1.Event{}
		if !getProto(w.txn, eventKey(r.Entity, r.Version), ev) || ev.GetOrigin().GetSeq() != seq ||
			ev.GetOrigin().GetRegion() != a.region || ev.GetActiveActive() || ev.GetEpoch() >= t.GetTransition() {
			continue
		}
		head := w.head(r.Entity)
		writes, dels, rolled, newHead, ok := rollbackWrites(w.txn, r.Entity, r.Version, head, t.GetTransition(), "")
		if !ok {
			continue // a later era holds the stream above it already
		}
		if newHead.GetVersion() > 0 && head.GetReclaimedBelow() > 0 {
			newHead.ReclaimedBelow = min(head.GetReclaimedBelow(), newHead.GetVersion()+1)
			writes = append(writes, kv{key: headKey(r.Entity), value: mustMarshal(newHead)})
		}
		if err := w.stage(st, writes, dels); err != nil {
			break // does not fit one entry (never expected): the rest stays, as before tail rules
		}
		n += len(rolled)
	}
	st.Superseded += uint64(n)
	return n
}

// originTailsMax bounds the failovers recorded per origin (the placement
// table keeps as many).
const originTailsMax = 16

// recordTail adds t to origin's tail rules, unless it is there already.
func recordTail(st *meridianv1.ApplyState, origin string, t *meridianv1.FailoverTail) {
	if st.OriginTails == nil {
		st.OriginTails = map[string]*meridianv1.FailoverTails{}
	}
	cur := st.OriginTails[origin]
	if cur == nil {
		cur = &meridianv1.FailoverTails{}
		st.OriginTails[origin] = cur
	}
	for _, have := range cur.GetTails() {
		if have.GetTransition() == t.GetTransition() {
			return
		}
	}
	cur.Tails = append(cur.Tails, proto.Clone(t).(*meridianv1.FailoverTail))
	slices.SortFunc(cur.Tails, func(x, y *meridianv1.FailoverTail) int { return cmp.Compare(x.GetTransition(), y.GetTransition()) })
	if n := len(cur.Tails); n > originTailsMax {
		cur.Tails = cur.Tails[n-originTailsMax:]
	}
}

// inFailoverTail reports whether ev, a single-home event of its origin, is
// in the unreplicated tail of one of tails (its origin's failovers).
func inFailoverTail(tails []*meridianv1.FailoverTail, ev *meridianv1.Event) bool {
	for _, t := range tails {
		if ev.GetOrigin().GetSeq() > t.GetCut() && ev.GetEpoch() < t.GetTransition() && failoverMoved(t, ev.GetEntity()) {
			return true
		}
	}
	return false
}

// failoverMoved reports whether failover t moved entity away from the lost
// region: the longest of t's rule prefixes that matches it is a moved one,
// and it was not pinned there.
func failoverMoved(t *meridianv1.FailoverTail, entity string) bool {
	if _, pinned := slices.BinarySearch(t.GetPinned(), entity); pinned {
		return false
	}
	best, moved := -1, false
	for _, p := range t.GetMoved() {
		if len(p) > best && strings.HasPrefix(entity, p) {
			best, moved = len(p), true
		}
	}
	for _, p := range t.GetKept() {
		if len(p) > best && strings.HasPrefix(entity, p) {
			best, moved = len(p), false
		}
	}
	return moved
}
