package region

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// applier is the stateless core of apply: given a Badger database, the apply
// state before an entry, and the entry, it writes the entry's effects and the
// next apply state (in one Badger transaction, or several for an entry too
// large for one: see txnWriter). It reads no clock, no
// randomness and no configuration that replicas may disagree on (region is
// the group's name; window is a fallback when the batch does not stamp one).
type applier struct {
	region string
	window time.Duration
	limits Limits
	knobs  *TestingKnobs // nil in production
	// heads caches stream heads across entries (headcache.go); nil: none.
	heads *headCache
}

// Named budget of one apply transaction, below Badger's own limits
// (MaxBatchSize, MaxBatchCount), which depend only on constant options.
const (
	// txnReserveBytes leaves room for the ApplyState write and estimate slack.
	txnReserveBytes = 64 << 10
	// txnReserveEntries leaves room for the ApplyState write.
	txnReserveEntries = 16
	// entryOverheadBytes over-estimates Badger's per-entry accounting
	// (meta, version, value pointer or header) so that the budget is conservative.
	entryOverheadBytes = 32
)

// txnWriter is the Badger side of one Raft entry. An entry normally applies
// in one transaction. When the next op would not fit the transaction,
// the writer commits what it holds first, with an ApplyState whose counters
// (vector, last position, last HLC) cover it but whose applied index is still
// the previous entry's, and continues in a new transaction. A crash between
// the two leaves the entry unapplied: on replay, the ops already committed are
// idempotent retries (their event ids are recorded) and write nothing, and the
// counters continue where they stopped, so the outcome is the same state as
// an uninterrupted apply.
type txnWriter struct {
	h                   *dbHandle
	txn                 *badger.Txn
	bytes, entries      int64 // left in txn
	dirty               bool  // txn holds writes
	prevIndex, prevTerm uint64
	knobs               *TestingKnobs
	heads               *headCache // nil: no cache
}

func newTxnWriter(h *dbHandle, prevIndex, prevTerm uint64, knobs *TestingKnobs, heads *headCache) *txnWriter {
	w := &txnWriter{h: h, prevIndex: prevIndex, prevTerm: prevTerm, knobs: knobs, heads: heads}
	w.reset()
	return w
}

func (w *txnWriter) reset() {
	w.txn = w.h.beginWrite()
	w.bytes = w.h.db.MaxBatchSize() - txnReserveBytes
	w.entries = w.h.db.MaxBatchCount() - txnReserveEntries
	w.dirty = false
}

// fit makes room for writes of the given size: in the current transaction,
// or in a new one after committing the current one. It fails only when the
// writes do not fit even an empty transaction.
func (w *txnWriter) fit(st *meridianv1.ApplyState, bytes, entries int64) error {
	if bytes <= w.bytes && entries <= w.entries {
		return nil
	}
	empty := w.h.db.MaxBatchSize()-txnReserveBytes >= bytes && w.h.db.MaxBatchCount()-txnReserveEntries >= entries
	if !empty {
		return fmt.Errorf("%w: an append needs %d bytes in %d writes, one transaction holds %d bytes in %d writes",
			ErrEntryTooLarge, bytes, entries, w.h.db.MaxBatchSize()-txnReserveBytes, w.h.db.MaxBatchCount()-txnReserveEntries)
	}
	if w.dirty {
		partial := proto.Clone(st).(*meridianv1.ApplyState)
		partial.AppliedIndex, partial.AppliedTerm = w.prevIndex, w.prevTerm
		w.commit(partial)
		if w.knobs != nil && w.knobs.AfterPartialCommit != nil {
			w.knobs.AfterPartialCommit(st.GetAppliedIndex())
		}
		w.reset()
	}
	return nil
}

func (w *txnWriter) set(key, value []byte, expiresAt uint64) {
	e := badger.NewEntry(key, value)
	e.ExpiresAt = expiresAt
	if err := w.txn.SetEntry(e); err != nil {
		// fit() is meant to make this impossible; an op would be half-written.
		panic(fmt.Errorf("region: apply: write %q: %w", key, err))
	}
	if w.heads != nil && isHeadKey(key) {
		w.heads.put(key, value)
	}
	w.dirty = true
}

// commit writes st and commits the transaction.
func (w *txnWriter) commit(st *meridianv1.ApplyState) {
	val, err := marshalDeterministic.Marshal(st)
	if err != nil {
		panic(fmt.Errorf("region: apply entry %d: marshal apply state: %w", st.GetAppliedIndex(), err))
	}
	if err := w.txn.Set(keyApplyState, val); err != nil {
		panic(fmt.Errorf("region: apply entry %d: write apply state: %w", st.GetAppliedIndex(), err))
	}
	if err := w.h.commitWrite(w.txn); err != nil {
		panic(fmt.Errorf("region: apply entry %d: commit: %w", st.GetAppliedIndex(), err))
	}
}

func (w *txnWriter) del(key []byte) {
	if err := w.txn.Delete(key); err != nil {
		panic(fmt.Errorf("region: apply: delete %q: %w", key, err))
	}
	if w.heads != nil && isHeadKey(key) {
		w.heads.del(key)
	}
	w.dirty = true
}

// stage makes room for writes and deletes (in this transaction or a new
// one) and puts them in, deletes first.
func (w *txnWriter) stage(st *meridianv1.ApplyState, writes []kv, deletes [][]byte) error {
	var bytes, entries int64
	for _, x := range writes {
		bytes += int64(len(x.key) + len(x.value) + entryOverheadBytes)
		entries++
	}
	for _, k := range deletes {
		bytes += int64(len(k) + entryOverheadBytes)
		entries++
	}
	if err := w.fit(st, bytes, entries); err != nil {
		return err
	}
	w.bytes -= bytes
	w.entries -= entries
	for _, k := range deletes {
		w.del(k)
	}
	for _, x := range writes {
		w.set(x.key, x.value, x.expiresAt)
	}
	return nil
}

func (w *txnWriter) discard() { w.txn.Discard() }

// kv is one staged write.
type kv struct {
	key, value []byte
	expiresAt  uint64
}

// apply applies entry l on top of cur and returns the next apply state and,
// for append batches, the per-op results (applyLogs of one entry).
func (a applier) apply(h *dbHandle, cur *meridianv1.ApplyState, l *raft.Log) (*meridianv1.ApplyState, any) {
	next, res := a.applyLogs(h, cur, []*raft.Log{l})
	return next, res[0]
}

// applyLogs applies consecutive entries, all above cur's applied index, on
// top of cur in one Badger transaction (more only when they do not fit
// one: see txnWriter, whose partial commits then record the entries before
// the one being written as applied). It returns the next apply state and
// one result per entry. It panics on anything that would let replicas
// diverge: an undecodable or unknown committed entry, a failed Badger read
// or write.
func (a applier) applyLogs(h *dbHandle, cur *meridianv1.ApplyState, logs []*raft.Log) (*meridianv1.ApplyState, []any) {
	next := proto.Clone(cur).(*meridianv1.ApplyState)
	if next.Applied == nil {
		next.Applied = map[string]uint64{}
	}
	w := newTxnWriter(h, cur.GetAppliedIndex(), cur.GetAppliedTerm(), a.knobs, a.heads)
	defer func() { w.discard() }()

	res := make([]any, len(logs))
	for i, l := range logs {
		w.prevIndex, w.prevTerm = next.GetAppliedIndex(), next.GetAppliedTerm()
		next.AppliedIndex, next.AppliedTerm = l.Index, l.Term
		if l.Type != raft.LogCommand {
			// Other entry types (configuration, no-op, barrier) only
			// advance the index.
			continue
		}
		cmd, err := DecodeCommand(l.Data)
		if err != nil {
			panic(fmt.Errorf("region: apply entry %d (term %d): undecodable committed command: %w", l.Index, l.Term, err))
		}
		payload, err := DecodePayload(cmd)
		if err != nil {
			panic(fmt.Errorf("region: apply entry %d (term %d): %w", l.Index, l.Term, err))
		}
		handle, ok := commandHandlers[cmd.GetType()]
		if !ok {
			panic(fmt.Errorf("region: apply entry %d: no handler for %v", l.Index, cmd.GetType()))
		}
		res[i] = handle(a, w, next, payload)
	}
	w.commit(next)
	return next, res
}

// commandHandlers applies a decoded payload, by command type. Every type in
// commandPayloads (command.go) has a handler here.
var commandHandlers = map[meridianv1.CommandType]func(a applier, w *txnWriter, st *meridianv1.ApplyState, m proto.Message) any{
	meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH: func(a applier, w *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		return a.applyBatch(w, st, m.(*meridianv1.AppendBatch))
	},
	meridianv1.CommandType_COMMAND_TYPE_REPLICATE_BATCH: func(a applier, w *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		return a.applyReplicate(w, st, m.(*meridianv1.ReplicateBatch))
	},
	meridianv1.CommandType_COMMAND_TYPE_PLACEMENT_FENCE: func(a applier, _ *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		return a.applyFence(st, m.(*meridianv1.PlacementFence))
	},
	meridianv1.CommandType_COMMAND_TYPE_ORIGIN_FENCE: func(a applier, w *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		return a.applyOriginFence(w, st, m.(*meridianv1.OriginFence))
	},
	meridianv1.CommandType_COMMAND_TYPE_GROUP: func(a applier, w *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		return a.applyGroup(w, st, m.(*meridianv1.GroupCommand))
	},
	meridianv1.CommandType_COMMAND_TYPE_RECLAIM: func(a applier, w *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		return a.applyReclaim(w, st, m.(*meridianv1.Reclaim))
	},
	meridianv1.CommandType_COMMAND_TYPE_CLOCK_TICK: func(a applier, _ *txnWriter, st *meridianv1.ApplyState, m proto.Message) any {
		st.LastHlc = maxHLC(hlcOf(st.GetLastHlc()), hlcOf(m.(*meridianv1.ClockTick).GetHlc())).proto()
		return nil
	},
}

// FenceResult is what Apply returns for a COMMAND_TYPE_PLACEMENT_FENCE
// entry: the floor after it, and, for a freeze, the transition it was for
// and this region's own origin sequence at that point.
type FenceResult struct {
	Floor      uint64
	Transition uint64
	Seq        uint64
	// Superseded counts, for a region's own failover's tail rule, its own
	// tail events taken out of its streams.
	Superseded int
}

// applyFence raises the placement floor (never lowers it) and records a
// freeze. Everything this region ordered before the entry is at or below
// Seq in its own origin log, and no append routed by an older placement
// copy commits after it: the old home's side of a placement change.
func (a applier) applyFence(st *meridianv1.ApplyState, f *meridianv1.PlacementFence) *FenceResult {
	st.PlacementFloor = max(st.GetPlacementFloor(), f.GetFloor())
	if t := f.GetTransition(); t != 0 && t >= st.GetFreezeTransition() {
		if t != st.GetFreezeTransition() {
			st.FreezeSeq = st.Applied[a.region]
		}
		st.FreezeTransition = t
	}
	return &FenceResult{Floor: st.GetPlacementFloor(), Transition: st.GetFreezeTransition(), Seq: st.GetFreezeSeq()}
}

// idempotencyWindowMax bounds a stamped window (a year), so that expiry
// arithmetic cannot overflow.
const idempotencyWindowMax = 365 * 24 * time.Hour

// applyBatch applies each op alone: a failed op writes nothing.
func (a applier) applyBatch(w *txnWriter, st *meridianv1.ApplyState, b *meridianv1.AppendBatch) *BatchResult {
	window := a.window
	if s := b.GetIdempotencyWindowSeconds(); s > 0 {
		window = time.Duration(min(s, uint64(idempotencyWindowMax/time.Second))) * time.Second
	}
	window = min(window, idempotencyWindowMax)
	now := hlcOf(b.GetHlc())
	clk := stamper{next: maxHLC(now, hlcOf(st.GetLastHlc()).tick())}
	res := &BatchResult{Ops: make([]OpResult, len(b.GetOps()))}
	for i, op := range b.GetOps() {
		resp, err := a.applyOp(w, st, op, &clk, window, now)
		res.Ops[i] = OpResult{Resp: resp, Err: err}
	}
	return res
}

func (a applier) applyOp(w *txnWriter, st *meridianv1.ApplyState, op *meridianv1.AppendOp,
	clk *stamper, window time.Duration, now hlc) (*meridianv1.AppendResponse, error) {
	ids, err := validateAppend(op, a.limits)
	if err != nil {
		return nil, err
	}
	entity := op.GetEntity()
	evs := op.GetEvents()
	hashes := make([][]byte, len(evs))
	for i, e := range evs {
		hashes[i] = contentHash(entity, e)
	}

	// Fenced homes: an op routed by a placement copy older than a change
	// this region has fenced may be for an entity that moved away. Not
	// even a retry's original result is given then: the entity's current
	// home answers it (a failover may have superseded the original).
	if floor := st.GetPlacementFloor(); op.GetPlacementIndex() < floor {
		return nil, fmt.Errorf("%w: entity %q was routed by placement index %d, below this region's placement floor %d",
			ErrStalePlacement, entity, op.GetPlacementIndex(), floor)
	}

	// Idempotency first: a retry of a successful append must get the original
	// result even though its expected version no longer holds.
	recs := make([]*meridianv1.IdempotencyRecord, len(ids))
	known := 0
	for i, id := range ids {
		rec := getIdempotency(w.txn, id)
		if rec != nil && hlcOf(rec.GetHlc()).wall+int64(window) > now.wall {
			recs[i] = rec
			known++
		}
	}
	if known > 0 {
		resp, err := a.retryResult(op, recs, hashes)
		if err == nil && op.GetRecoveredFrom().GetSeq() != 0 {
			// A superseded event whose id is already in the stream (the
			// client retried it after the failover): recovered as it is.
			from := op.GetRecoveredFrom()
			if err := w.stage(st, []kv{{key: recoveredKey(from.GetRegion(), from.GetSeq()),
				value: encodeRef(ref{Entity: entity, Version: resp.GetFirstVersion()})}},
				[][]byte{recoveryKey(from.GetRegion(), from.GetSeq())}); err != nil {
				return nil, err
			}
		}
		return resp, err
	}

	head := w.head(entity)
	// An op under an older epoch than the stream's last event would write
	// behind a newer home's history: not written; the node routes it again
	// with a current copy.
	if op.GetEpoch() < head.GetEpoch() {
		return nil, fmt.Errorf("%w: entity %q: append under epoch %d, the stream's last event has epoch %d",
			ErrStalePlacement, entity, op.GetEpoch(), head.GetEpoch())
	}
	if t := head.GetTombstone(); t != 0 {
		return nil, fmt.Errorf("%w: %q was deleted by its %s at version %d: appends to it are refused in every region",
			ErrStreamDeleted, entity, TypeStreamTombstone, t)
	}
	// A merged stream (active-active, ADR 0005) has no global version to
	// compare with and depends on every origin's latest event of it.
	merged := op.GetActiveActive() || head.GetMerged()
	for i, e := range evs {
		switch {
		case !lifecycleType(e.GetType()):
		case merged:
			return nil, invalidf(fmt.Sprintf("events[%d].type", i), "%s applies to single-home streams; %q is active-active", e.GetType(), entity)
		case e.GetType() == TypeStreamTombstone && i != len(evs)-1:
			return nil, fmt.Errorf("%w: events[%d] is a %s: nothing is appended after it", ErrStreamDeleted, i, TypeStreamTombstone)
		}
	}
	var deps map[string]uint64
	var merges []*meridianv1.MergeRule
	switch {
	case merged:
		check := checkExpected(entity, op.GetExpected(), head.GetVersion()) // a single home writing a stream that was active-active
		if op.GetActiveActive() {
			check = checkMergedExpected(op)
		}
		if check != nil {
			return nil, check
		}
		deps = mergedDeps(op.GetDeps(), head)
		var err error
		if merges, err = mergeRules(op); err != nil {
			return nil, err
		}
	default:
		if err := checkExpected(entity, op.GetExpected(), head.GetVersion()); err != nil {
			return nil, err
		}
		deps = appendDeps(op.GetDeps(), head.GetLastOrigin())
	}
	// The applied vector stays causally closed (replicate.go): an event is
	// written only after everything it depends on, here as in every replica.
	if missing, ok := firstUncovered(st.Applied, deps); ok {
		return nil, fmt.Errorf("%w: entity %q: the session token covers %s, which this region has not applied yet",
			ErrDepsNotApplied, entity, missing)
	}

	// The events take this region's next dots, positions and stamps, and
	// the versions after the head; in a merged stream they sort after every
	// event this region holds (their stamps are above all of them), so
	// head+1.. are their positions here, at apply time.
	n := uint64(len(evs))
	first := head.GetVersion() + 1
	seq0 := st.Applied[a.region] + 1
	pos0 := st.GetLastPosition() + 1
	firstOrigin := &meridianv1.Dot{Region: a.region, Seq: seq0}
	epoch := max(op.GetEpoch(), head.GetEpoch()) // op's: checked above
	writes := make([]kv, 0, 4*len(evs)+1)
	var recoveryDone [][]byte
	var sw *stateWriter
	if merged {
		sw = newStateWriter(w.txn, entity)
	}
	saved := *clk
	var firstHLC, lastHLC hlc
	next := head
	lc := carryLifecycle(&meridianv1.StreamHead{}, head)
	for i, e := range evs {
		v, seq, pos := first+uint64(i), seq0+uint64(i), pos0+uint64(i)
		stamp := clk.take()
		if i == 0 {
			firstHLC = stamp
		}
		lastHLC = stamp
		origin := &meridianv1.Dot{Region: a.region, Seq: seq}
		ev := &meridianv1.Event{
			Entity: entity, Version: v, Id: e.GetId(), Type: e.GetType(), Data: e.GetData(),
			Metadata: e.GetMetadata(), ContentType: e.GetContentType(), Origin: origin,
			Hlc: stamp.proto(), Epoch: epoch, Deps: deps, Position: pos, ActiveActive: op.GetActiveActive(),
		}
		key, r := eventKey(entity, v), encodeRef(ref{Entity: entity, Version: v})
		if merged {
			ev.Merge = merges[i]
			key = mergedKeyOf(ev)
			r = mergedRef(key)
		}
		if from := op.GetRecoveredFrom(); from.GetSeq() != 0 {
			// The re-append of an event a failover superseded (homes.go).
			ev.Recovered, ev.RecoveredFrom, ev.OriginalVersion = true, from, op.GetOriginalVersion()
			writes = append(writes, kv{key: recoveredKey(from.GetRegion(), from.GetSeq()), value: r})
			recoveryDone = append(recoveryDone, recoveryKey(from.GetRegion(), from.GetSeq()))
		}
		rec := &meridianv1.IdempotencyRecord{
			Entity: entity, Version: v, ContentHash: hashes[i], Origin: origin,
			FirstVersion: first, LastVersion: first + n - 1, Hlc: stamp.proto(),
			Epoch: epoch, FirstOrigin: firstOrigin,
		}
		writes = append(writes,
			kv{key: key, value: mustMarshal(ev)},
			kv{key: originKey(a.region, seq), value: r},
			kv{key: logKey(pos), value: r},
			kv{key: idempotencyKey(ids[i]), value: mustMarshal(rec), expiresAt: idempotencyExpiry(stamp, window)},
		)
		if merged {
			sw.apply(ev)
			next = mergeHead(next, ev)
		} else if foldLifecycle(lc, ev) {
			writes = append(writes, kv{key: lifecycleKey(entity, v)})
		}
	}
	if !merged {
		next = carryLifecycle(&meridianv1.StreamHead{
			Version: first + n - 1, LastOrigin: &meridianv1.Dot{Region: a.region, Seq: seq0 + n - 1},
			LastHlc: lastHLC.proto(), Epoch: epoch, ReclaimedBelow: head.GetReclaimedBelow(),
		}, lc)
	}
	writes = append(writes, kv{key: headKey(entity), value: mustMarshal(next)})
	if merged {
		writes = append(writes, sw.kvs()...)
	}

	if err := w.stage(st, writes, recoveryDone); err != nil {
		*clk = saved // stamps are consumed only by written events
		return nil, err
	}
	st.Applied[a.region] = seq0 + n - 1
	st.LastPosition = pos0 + n - 1
	st.LastHlc = lastHLC.proto()
	return &meridianv1.AppendResponse{
		FirstVersion: first, LastVersion: first + n - 1, Origin: firstOrigin,
		Hlc: firstHLC.proto(), Epoch: epoch, Region: a.region,
	}, nil
}

// appendDeps is an append's causal dependencies: the writer's session token
// merged with the entity's previous event (ARCHITECTURE.md section 5), so
// a replica never applies an event before the one it follows. Nil when
// empty, as before deps existed.
func appendDeps(token map[string]uint64, prev *meridianv1.Dot) map[string]uint64 {
	if prev.GetSeq() == 0 || token[prev.GetRegion()] >= prev.GetSeq() {
		return token
	}
	deps := make(map[string]uint64, len(token)+1)
	for r, s := range token {
		deps[r] = s
	}
	deps[prev.GetRegion()] = prev.GetSeq()
	return deps
}

// retryResult decides an append some of whose ids are known (recs[i] != nil).
func (a applier) retryResult(op *meridianv1.AppendOp, recs []*meridianv1.IdempotencyRecord, hashes [][]byte) (*meridianv1.AppendResponse, error) {
	evs := op.GetEvents()
	for i, r := range recs {
		if r == nil {
			j := slices.IndexFunc(recs, func(r *meridianv1.IdempotencyRecord) bool { return r != nil })
			return nil, fmt.Errorf("%w: events[%d].id %s was appended before but events[%d].id %s was not: a retry must repeat the earlier append exactly, with all of its ids",
				ErrIdempotencyConflict, j, evs[j].GetId(), i, evs[i].GetId())
		}
	}
	r0 := recs[0]
	for i, r := range recs {
		if r.GetEntity() != op.GetEntity() {
			return nil, fmt.Errorf("%w: events[%d].id %s was appended before to entity %q, not %q",
				ErrIdempotencyConflict, i, evs[i].GetId(), r.GetEntity(), op.GetEntity())
		}
		if string(r.GetContentHash()) != string(hashes[i]) {
			return nil, fmt.Errorf("%w: events[%d].id %s was appended before with other content (type, data, metadata or content type)",
				ErrIdempotencyConflict, i, evs[i].GetId())
		}
		if r.GetFirstVersion() != r0.GetFirstVersion() || r.GetLastVersion() != r0.GetLastVersion() ||
			r.GetVersion() != r0.GetFirstVersion()+uint64(i) {
			return nil, fmt.Errorf("%w: events[%d].id %s belongs to an earlier append at versions %d to %d: a retry must repeat that append exactly",
				ErrIdempotencyConflict, i, evs[i].GetId(), r.GetFirstVersion(), r.GetLastVersion())
		}
	}
	if r0.GetLastVersion()-r0.GetFirstVersion()+1 != uint64(len(evs)) {
		return nil, fmt.Errorf("%w: the earlier append with events[0].id %s held %d events (versions %d to %d), this one %d",
			ErrIdempotencyConflict, evs[0].GetId(), r0.GetLastVersion()-r0.GetFirstVersion()+1,
			r0.GetFirstVersion(), r0.GetLastVersion(), len(evs))
	}
	return &meridianv1.AppendResponse{
		FirstVersion: r0.GetFirstVersion(), LastVersion: r0.GetLastVersion(),
		Origin: proto.Clone(r0.GetFirstOrigin()).(*meridianv1.Dot), Hlc: proto.Clone(r0.GetHlc()).(*meridianv1.Hlc),
		Epoch: r0.GetEpoch(), Region: r0.GetFirstOrigin().GetRegion(), Duplicate: true,
	}, nil
}

// checkExpected is the optimistic-concurrency check against the head version.
func checkExpected(entity string, ex *meridianv1.ExpectedVersion, current uint64) error {
	var ok bool
	var want string
	switch k := ex.GetKind().(type) {
	case nil, *meridianv1.ExpectedVersion_Any_:
		return nil
	case *meridianv1.ExpectedVersion_NoStream_:
		ok, want = current == 0, "no_stream"
	case *meridianv1.ExpectedVersion_StreamExists_:
		ok, want = current > 0, "stream_exists"
	case *meridianv1.ExpectedVersion_Exact:
		ok, want = current == k.Exact, strconv.FormatUint(k.Exact, 10)
	default:
		return invalidf("expected", "unknown kind %T", k)
	}
	if ok {
		return nil
	}
	return &VersionConflictError{Entity: entity, Expected: want, Current: current}
}

// contentHash is SHA-256 over the event's entity, type, data, metadata
// (sorted by key) and content type, each length-prefixed.
func contentHash(entity string, e *meridianv1.ProposedEvent) []byte {
	h := sha256.New()
	var lb [binary.MaxVarintLen64]byte
	put := func(s []byte) {
		h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(s)))])
		h.Write(s)
	}
	put([]byte(entity))
	put([]byte(e.GetType()))
	put(e.GetData())
	put([]byte(e.GetContentType()))
	keys := make([]string, 0, len(e.GetMetadata()))
	for k := range e.GetMetadata() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(keys)))])
	for _, k := range keys {
		put([]byte(k))
		put([]byte(e.GetMetadata()[k]))
	}
	return h.Sum(nil)
}

// idempotencyGraceFactor: Badger drops an idempotency record (native TTL,
// judged by the wall clock of the replica that reads it) only this many
// windows after the record's HLC, while apply judges expiry by HLC alone.
// Replicas therefore decide a retry alike unless an entry is applied more
// than (1+factor)*window after it was proposed (doc.go, "Idempotency window").
const idempotencyGraceFactor = 1

func idempotencyExpiry(stamp hlc, window time.Duration) uint64 {
	if stamp.wall <= 0 {
		return 0 // no physical clock in the stamp: keep the record (never wrong, only larger)
	}
	return uint64(stamp.wall/int64(time.Second)) + uint64((1+idempotencyGraceFactor)*window/time.Second)
}

func getIdempotency(txn *badger.Txn, id uuid.UUID) *meridianv1.IdempotencyRecord {
	rec := &meridianv1.IdempotencyRecord{}
	if !getProto(txn, idempotencyKey(id), rec) {
		return nil
	}
	return rec
}

func getHead(txn *badger.Txn, entity string) *meridianv1.StreamHead {
	h := &meridianv1.StreamHead{}
	getProto(txn, headKey(entity), h)
	return h
}

// getProto reads key into m; false when absent. Apply-side: panics on a
// read error or undecodable bytes, since the outcome would differ between replicas.
func getProto(txn *badger.Txn, key []byte, m proto.Message) bool {
	ok, err := readProto(txn, key, m)
	if err != nil {
		panic(fmt.Errorf("region: apply: %w", err))
	}
	return ok
}

// readProto reads key into m; false when absent.
func readProto(txn *badger.Txn, key []byte, m proto.Message) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %q: %w", key, err)
	}
	err = item.Value(func(v []byte) error {
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrCorruptState, key, err)
		}
		return nil
	})
	return err == nil, err
}

func mustMarshal(m proto.Message) []byte {
	b, err := marshalDeterministic.Marshal(m)
	if err != nil {
		panic(fmt.Errorf("region: apply: marshal %T: %w", m, err))
	}
	return b
}

// hlc is the apply-side HLC value: (wall nanos, logical).
type hlc struct {
	wall    int64
	logical uint32
}

func hlcOf(h *meridianv1.Hlc) hlc { return hlc{wall: h.GetWallNanos(), logical: h.GetLogical()} }

func (h hlc) proto() *meridianv1.Hlc { return &meridianv1.Hlc{WallNanos: h.wall, Logical: h.logical} }

func (h hlc) less(o hlc) bool {
	return h.wall < o.wall || h.wall == o.wall && h.logical < o.logical
}

// tick is the next HLC value after h: logical+1, carrying into the wall.
func (h hlc) tick() hlc {
	if h.logical == math.MaxUint32 {
		return hlc{wall: h.wall + 1}
	}
	return hlc{wall: h.wall, logical: h.logical + 1}
}

func maxHLC(a, b hlc) hlc {
	if a.less(b) {
		return b
	}
	return a
}

// stamper hands out strictly increasing HLC stamps within one entry.
type stamper struct{ next hlc }

func (s *stamper) take() hlc {
	h := s.next
	s.next = h.tick()
	return h
}
