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
	// the first of them was not: a gap in its sequence, deps not covered, or
	// an event that does not continue its stream. The shipper re-reads the
	// applied vector and proposes again from there.
	Stopped map[string]string
}

// applyReplicate applies events shipped from other regions (ARCHITECTURE.md
// section 5). Each is taken exactly once, in its origin's order, and only
// when the applied vector covers its deps, so the applied vector stays
// causally closed: a region that has applied a dot has applied everything
// that dot depends on. An origin stops at its first event that does not
// qualify; the rest of that origin's events in the entry are skipped, and
// other origins go on. Nothing here reads a clock or configuration.
func (a applier) applyReplicate(w *txnWriter, st *meridianv1.ApplyState, b *meridianv1.ReplicateBatch) *ReplicateResult {
	res := &ReplicateResult{}
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
		head := getHead(w.txn, entity)
		if ev.GetVersion() != head.GetVersion()+1 {
			stop(origin, "seq %d: %s v%d does not continue the stream here (head %d)", seq, entity, ev.GetVersion(), head.GetVersion())
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
		writes := []kv{
			{key: eventKey(entity, ev.GetVersion()), value: mustMarshal(stored)},
			{key: originKey(origin, seq), value: r},
			{key: logKey(pos), value: r},
			{key: idempotencyKey(id), value: mustMarshal(rec), expiresAt: idempotencyExpiry(stamp, a.window)},
			{key: headKey(entity), value: mustMarshal(&meridianv1.StreamHead{
				Version: ev.GetVersion(), LastOrigin: ev.GetOrigin(), LastHlc: ev.GetHlc(), Epoch: ev.GetEpoch(),
			})},
		}
		var bytes, entries int64
		for _, x := range writes {
			bytes += int64(len(x.key) + len(x.value) + entryOverheadBytes)
			entries++
		}
		if err := w.fit(st, bytes, entries); err != nil {
			stop(origin, "seq %d: %v", seq, err)
			continue
		}
		w.bytes -= bytes
		w.entries -= entries
		for _, x := range writes {
			w.set(x.key, x.value, x.expiresAt)
		}
		st.Applied[origin] = seq
		st.LastPosition = pos
		// Local stamps stay above every event applied here (HLC receive rule).
		st.LastHlc = maxHLC(hlcOf(st.GetLastHlc()), stamp).proto()
		res.Applied++
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
