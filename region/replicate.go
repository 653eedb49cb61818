package region

import (
	"fmt"

	"github.com/google/uuid"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// ReplicateResult is what Apply returns for a COMMAND_TYPE_REPLICATE_BATCH
// entry.
type ReplicateResult struct {
	// Applied counts the events newly applied.
	Applied int
	// Duplicates counts events at or below the applied vector (skipped).
	Duplicates int
	// Stopped names, per origin whose remaining events were not applied, why
	// the first of them was not: a gap in its sequence, deps not covered, a
	// failover's fence, or (never expected: stallInvariant) an event that
	// does not continue its stream. The shipper re-reads the applied vector
	// and proposes again from there.
	Stopped map[string]string
	// Superseded and RolledBack describe the events a failover's fork put
	// out of their streams here: shipped ones taken as superseded, and
	// earlier ones rolled back (supersede.go).
	Superseded []string
	RolledBack []string
}

// stallInvariant marks a stop that no correct history can cause; the node
// logs it as an error (replication cannot go on for that origin).
const stallInvariant = "invariant broken, replication of this origin is stalled"

// applyReplicate applies events shipped from other regions (ARCHITECTURE.md
// section 5). Each is taken exactly once, in its origin's order, and only
// when the applied vector covers its deps, so the applied vector stays
// causally closed: a region that has applied a dot has applied everything
// that dot depends on. An origin stops at its first event that does not
// qualify; the rest of that origin's events in the entry are skipped, and
// other origins go on. Nothing here reads a clock or configuration.
func (a applier) applyReplicate(w *txnWriter, st *meridianv1.ApplyState, b *meridianv1.ReplicateBatch) *ReplicateResult {
	res := &ReplicateResult{}
	rolledBefore := 0
	stop := func(origin, format string, args ...any) {
		if res.Stopped == nil {
			res.Stopped = map[string]string{}
		}
		if _, ok := res.Stopped[origin]; !ok {
			res.Stopped[origin] = fmt.Sprintf(format, args...)
		}
	}
	for _, ev := range b.GetEvents() {
		origin, seq := ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq()
		switch {
		case origin == "" || seq == 0:
			stop(origin, "event without an origin dot")
			continue
		case origin == a.region:
			// This region's own log is written only by its appends.
			res.Duplicates++
			continue
		case res.Stopped[origin] != "":
			continue
		case seq <= st.Applied[origin]:
			res.Duplicates++
			continue
		case seq != st.Applied[origin]+1:
			stop(origin, "gap: next is %d, got %d", st.Applied[origin]+1, seq)
			continue
		}
		if f := st.GetOriginFences()[origin]; f != nil && seq > f.GetLimit() {
			stop(origin, "seq %d: held back: the failover staged at placement index %d fences %s's log at %d", seq, f.GetTransition(), origin, f.GetLimit())
			continue
		}
		if missing, ok := firstUncovered(st.Applied, ev.GetDeps()); ok {
			stop(origin, "seq %d depends on %s", seq, missing)
			continue
		}
		if err := validateReplicated(ev); err != nil {
			// The origin wrote it, so it is well-formed there; refusing it
			// here keeps a corrupt message from entering the state.
			stop(origin, "seq %d: %v", seq, err)
			continue
		}
		entity := ev.GetEntity()
		head := w.head(entity)
		// A single-home event of an era before the stream became merged (a
		// lost home's tail, cut off while a failover and a switch to
		// active-active went by) is superseded, as in every region that had
		// merged events before it arrived.
		staleTail := head.GetMerged() && !ev.GetActiveActive() && ev.GetEpoch() < head.GetEpoch()
		// A lost home's unreplicated tail is superseded on arrival
		// (supersede.go, failover tails), whatever the stream holds.
		lostTail := !ev.GetActiveActive() && inFailoverTail(st.GetOriginTails()[origin].GetTails(), ev)
		if !staleTail && !lostTail && (ev.GetActiveActive() || head.GetMerged()) {
			// A merged stream's event goes to its place in merged order.
			pos := st.GetLastPosition() + 1
			rw, rd := recoveredWrites(ev)
			if err := w.stage(st, append(a.mergedReplicateWrites(w.txn, ev, head, pos), rw...), rd); err != nil {
				stop(origin, "seq %d: %v", seq, err)
				continue
			}
			st.Applied[origin] = seq
			st.LastPosition = pos
			st.LastHlc = maxHLC(hlcOf(st.GetLastHlc()), hlcOf(ev.GetHlc())).proto()
			noteOrigin(st, origin, ev.GetHlc())
			res.Applied++
			continue
		}
		v, epoch := ev.GetVersion(), ev.GetEpoch()
		var pre []kv
		var dels [][]byte
		var rolledHead *meridianv1.StreamHead
		superseded := staleTail || lostTail
		switch {
		case superseded:
		case v == head.GetVersion()+1 && !eraBefore(epoch, origin, head.GetEpoch(), head.GetLastOrigin().GetRegion()):
			// The stream's next event: the common case.
		case v <= head.GetVersion():
			// Another event holds this version here: a fork, which only a
			// failover makes (a lost home's unreplicated tail against its
			// new home's writes). The later era wins, in every region.
			at := &meridianv1.Event{}
			getProto(w.txn, eventKey(entity, v), at)
			if eraBefore(at.GetEpoch(), at.GetOrigin().GetRegion(), epoch, origin) {
				var rolled []*meridianv1.Event
				var ok bool
				if pre, dels, rolled, rolledHead, ok = rollbackWrites(w.txn, entity, v, head, epoch, origin); ok {
					for _, r := range rolled {
						res.RolledBack = append(res.RolledBack, fmt.Sprintf("%s v%d (%s:%d, epoch %d)", entity, r.GetVersion(),
							r.GetOrigin().GetRegion(), r.GetOrigin().GetSeq(), r.GetEpoch()))
					}
					break
				}
			}
			superseded = true
		case eraBefore(epoch, origin, head.GetEpoch(), head.GetLastOrigin().GetRegion()):
			// Beyond the head, but the stream has moved on to a later era:
			// the rest of a superseded tail.
			superseded = true
		default:
			// A later version than the next with its predecessor missing:
			// deps make this impossible (each event depends on the one
			// before it in its stream). Stop loudly rather than leave a gap.
			stop(origin, "seq %d: %s v%d does not continue the stream here (head %d, epoch %d): %s", seq, entity, v,
				head.GetVersion(), head.GetEpoch(), stallInvariant)
			continue
		}
		if superseded {
			writes := supersedeWrites(w.txn, ev)
			if err := w.stage(st, writes, nil); err != nil {
				stop(origin, "seq %d: %v", seq, err)
				continue
			}
			st.Applied[origin] = seq
			st.LastHlc = maxHLC(hlcOf(st.GetLastHlc()), hlcOf(ev.GetHlc())).proto()
			noteOrigin(st, origin, ev.GetHlc())
			st.Superseded++
			res.Superseded = append(res.Superseded, fmt.Sprintf("%s v%d (%s:%d, epoch %d)", entity, v, origin, seq, epoch))
			res.Applied++
			continue
		}
		id, _ := uuid.Parse(ev.GetId())
		pos := st.GetLastPosition() + 1
		stored := proto.Clone(ev).(*meridianv1.Event)
		stored.Position = pos
		stamp := hlcOf(ev.GetHlc())
		// The idempotency record makes a retry of the same append in this
		// region (after a failover, say) return the original result.
		rec := &meridianv1.IdempotencyRecord{
			Entity: entity, Version: ev.GetVersion(), ContentHash: contentHash(entity, proposedOf(ev)),
			Origin: ev.GetOrigin(), FirstVersion: ev.GetVersion(), LastVersion: ev.GetVersion(),
			Hlc: ev.GetHlc(), Epoch: ev.GetEpoch(), FirstOrigin: ev.GetOrigin(),
		}
		r := encodeRef(ref{Entity: entity, Version: ev.GetVersion()})
		// The lifecycle the event continues: the head's, or after a
		// rollback the one recomputed below the rolled-back versions.
		lc := carryLifecycle(&meridianv1.StreamHead{ReclaimedBelow: head.GetReclaimedBelow()}, head)
		if rolledHead != nil {
			// Rolled back below the reclaimed versions: those above the
			// new head are gone, the stubs below it stay.
			lc = carryLifecycle(&meridianv1.StreamHead{ReclaimedBelow: min(head.GetReclaimedBelow(), rolledHead.GetVersion()+1)}, rolledHead)
		}
		next := carryLifecycle(&meridianv1.StreamHead{
			Version: ev.GetVersion(), LastOrigin: ev.GetOrigin(), LastHlc: ev.GetHlc(), Epoch: ev.GetEpoch(),
			ReclaimedBelow: lc.GetReclaimedBelow(),
		}, lc)
		writes := append(pre,
			kv{key: eventKey(entity, ev.GetVersion()), value: mustMarshal(stored)},
			kv{key: originKey(origin, seq), value: r},
			kv{key: logKey(pos), value: r},
			kv{key: idempotencyKey(id), value: mustMarshal(rec), expiresAt: idempotencyExpiry(stamp, a.window)},
		)
		if foldLifecycle(next, stored) {
			writes = append(writes, kv{key: lifecycleKey(entity, ev.GetVersion())})
		}
		writes = append(writes, kv{key: headKey(entity), value: mustMarshal(next)})
		rw, rd := recoveredWrites(ev)
		writes, dels = append(writes, rw...), append(dels, rd...)
		if err := w.stage(st, writes, dels); err != nil {
			stop(origin, "seq %d: %v", seq, err)
			continue
		}
		st.Superseded += uint64(len(res.RolledBack) - rolledBefore)
		rolledBefore = len(res.RolledBack)
		st.Applied[origin] = seq
		st.LastPosition = pos
		// Local stamps stay above every event applied here (HLC receive rule).
		st.LastHlc = maxHLC(hlcOf(st.GetLastHlc()), stamp).proto()
		noteOrigin(st, origin, ev.GetHlc())
		res.Applied++
	}
	for _, c := range b.GetClocks() {
		// The origin's events after c.seq all stamp above c.hlc; those up
		// to it must be here for c to say anything about this region.
		if o := c.GetOrigin(); o != "" && o != a.region && c.GetHlc() != nil && st.Applied[o] >= c.GetSeq() {
			noteOrigin(st, o, c.GetHlc())
		}
	}
	return res
}

// firstUncovered returns the first dep (in a fixed order) that applied does
// not cover.
func firstUncovered(applied, deps map[string]uint64) (string, bool) {
	var worst string
	for r, s := range deps {
		if applied[r] < s && (worst == "" || r < worst) {
			worst = r
		}
	}
	if worst == "" {
		return "", false
	}
	return fmt.Sprintf("%s:%d (applied %d)", worst, deps[worst], applied[worst]), true
}

// validateReplicated checks what apply relies on in a shipped event.
func validateReplicated(ev *meridianv1.Event) error {
	if err := ValidateEntity(ev.GetEntity(), HardLimits().EntityBytesMax); err != nil {
		return err
	}
	if ev.GetVersion() == 0 {
		return fmt.Errorf("version 0")
	}
	if _, err := uuid.Parse(ev.GetId()); err != nil {
		return fmt.Errorf("id %q: %v", ev.GetId(), err)
	}
	return nil
}

// proposedOf is the client's view of a stored event, for its content hash.
func proposedOf(ev *meridianv1.Event) *meridianv1.ProposedEvent {
	return &meridianv1.ProposedEvent{Id: ev.GetId(), Type: ev.GetType(), Data: ev.GetData(), Metadata: ev.GetMetadata(), ContentType: ev.GetContentType()}
}
