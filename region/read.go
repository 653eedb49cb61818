package region

import (
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

const (
	// ReadCountDefault is the number of events a read returns when max <= 0.
	ReadCountDefault = 100
	// ReadCountMax bounds the events of one read (larger max is clamped), so
	// that a read's memory is bounded.
	ReadCountMax = 1000
)

func clampCount(max int) int {
	if max <= 0 {
		return ReadCountDefault
	}
	return min(max, ReadCountMax)
}

// ReadStream returns up to max events of entity and the stream's head version,
// from one consistent Badger snapshot. Forward reads start at version from
// (0 means 1) and go up; backward reads start at from (0 or beyond the head
// means the head) and go down. max <= 0 means ReadCountDefault; it is clamped
// to ReadCountMax. A missing stream returns no events and head 0.
func (f *FSM) ReadStream(entity string, from uint64, max int, backward bool) ([]*meridianv1.Event, uint64, error) {
	events, head, err := f.ReadStreamWithHead(entity, from, max, backward)
	return events, head.GetVersion(), err
}

// ReadStreamWithHead is ReadStream returning the whole stream head (version,
// last dot, last HLC, epoch) read in the same snapshot as the events, so a
// caller can cover the head in a session token without a second read.
func (f *FSM) ReadStreamWithHead(entity string, from uint64, maxCount int, backward bool) ([]*meridianv1.Event, *meridianv1.StreamHead, error) {
	if err := ValidateEntity(entity, HardLimits().EntityBytesMax); err != nil {
		return nil, nil, err
	}
	n := clampCount(maxCount)
	// The apply state is read before the snapshot, so that the stability
	// watermark it gives is at most the snapshot's (a lower watermark only
	// reports fewer events stable). The watermark itself is computed only
	// for a merged stream.
	applied := f.ApplyState()
	h, err := f.acquire()
	if err != nil {
		return nil, nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)

	head := &meridianv1.StreamHead{}
	if _, err := readProto(txn, headKey(entity), head); err != nil {
		return nil, nil, fmt.Errorf("region: read %q: %w", entity, err)
	}
	last := head.GetVersion()
	if last == 0 {
		return nil, nil, nil
	}
	// The stream's lifecycle hides the versions below floor
	// (lifecycle.go).
	floor, err := firstVisible(txn, entity, head, time.Now())
	if err != nil {
		return nil, nil, err
	}
	start := from
	if backward {
		if start == 0 || start > last {
			start = last
		}
		if start < floor {
			return nil, head, nil
		}
	} else {
		start = max(start, floor, 1)
		if start > last {
			return nil, head, nil
		}
	}
	want := n
	if backward {
		want = int(min(uint64(n), start-floor+1))
	} else {
		want = int(min(uint64(n), last-start+1))
	}
	events := make([]*meridianv1.Event, 0, want)
	// The single-home part: every version of an unmerged stream, the
	// versions below merged_from of a merged one.
	singleEnd := last
	if head.GetMerged() {
		singleEnd = head.GetMergedFrom() - 1
	}
	readSingle := func(start uint64, want int) error {
		if want <= 0 {
			return nil
		}
		evs, err := readSingleRange(txn, entity, start, want, backward)
		if err != nil {
			return err
		}
		if head.GetMerged() {
			for _, ev := range evs {
				ev.Stable = true
			}
		}
		events = append(events, evs...)
		return nil
	}
	readMerged := func(start uint64, want int) error {
		if want <= 0 {
			return nil
		}
		evs, err := readMergedRange(txn, entity, head, start, want, backward, f.stableWatermark(applied))
		events = append(events, evs...)
		return err
	}
	switch {
	case !backward && start <= singleEnd:
		k := int(min(uint64(want), singleEnd-start+1))
		if err := readSingle(start, k); err != nil {
			return nil, nil, err
		}
		if err := readMerged(singleEnd+1, want-k); err != nil {
			return nil, nil, err
		}
	case !backward:
		if err := readMerged(start, want); err != nil {
			return nil, nil, err
		}
	case start > singleEnd:
		k := int(min(uint64(want), start-singleEnd))
		if err := readMerged(start, k); err != nil {
			return nil, nil, err
		}
		if err := readSingle(singleEnd, want-k); err != nil {
			return nil, nil, err
		}
	default:
		if err := readSingle(start, want); err != nil {
			return nil, nil, err
		}
	}
	if len(events) != want {
		return nil, nil, fmt.Errorf("%w: stream %q head %d but %d of %d events found from version %d",
			ErrCorruptState, entity, last, len(events), want, start)
	}
	// Stubs (reclaim.go) lie below the lifecycle's floor; one above it is
	// left by a failover that superseded the event hiding it, and is not
	// the event any more: never returned.
	return slices.DeleteFunc(events, (*meridianv1.Event).GetReclaimed), head, nil
}

// readSingleRange reads want consecutive versions of a single-home stream
// (e/ keys) from start, up or down.
func readSingleRange(txn *badger.Txn, entity string, start uint64, want int, backward bool) ([]*meridianv1.Event, error) {
	events := make([]*meridianv1.Event, 0, want)
	// One iterator pass over the window. Versions are contiguous, so point
	// reads would also do, but each Txn.Get looks the key up from the top
	// of the LSM tree again and copies the value once more than
	// Item.Value: the iterator halves the allocation of a 10-event read of
	// 1 KiB events and is faster even for 10 (BenchmarkReadStreamLast10).
	// Prefetching copies values ahead of use, into buffers of its own, for
	// no gain here: it doubled the allocation again.
	opts := badger.IteratorOptions{Reverse: backward, Prefix: eventPrefix(entity)}
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(eventKey(entity, start)); it.Valid() && len(events) < want; it.Next() {
		v := start + uint64(len(events))
		if backward {
			v = start - uint64(len(events))
		}
		ev := &meridianv1.Event{}
		if err := it.Item().Value(func(b []byte) error { return proto.Unmarshal(b, ev) }); err != nil {
			return nil, fmt.Errorf("%w: event %q: %v", ErrCorruptState, it.Item().Key(), err)
		}
		if ev.GetVersion() != v {
			return nil, fmt.Errorf("%w: stream %q: found version %d where %d belongs", ErrCorruptState, entity, ev.GetVersion(), v)
		}
		events = append(events, ev)
	}
	return events, nil
}

// readMergedRange reads want consecutive versions of a merged stream's a/
// part (versions merged_from..head) from start, up or down. Each event's
// version is its position in merged order here, and it is stable when its
// HLC is at or below stableAt.
func readMergedRange(txn *badger.Txn, entity string, head *meridianv1.StreamHead, start uint64, want int, backward bool, stableAt hlc) ([]*meridianv1.Event, error) {
	base, last := head.GetMergedFrom(), head.GetVersion()
	if start < base || start > last {
		return nil, fmt.Errorf("%w: stream %q: merged version %d outside %d..%d", ErrCorruptState, entity, start, base, last)
	}
	// Skip to start by keys alone (no values are read for them).
	skip := start - base
	if backward {
		skip = last - start
	}
	it := txn.NewIterator(badger.IteratorOptions{Reverse: backward, Prefix: mergedPrefix(entity)})
	defer it.Close()
	seek := mergedPrefix(entity)
	if backward {
		// Just above every key of the stream: its prefix with the
		// terminator raised.
		seek[len(seek)-1] = 1
	}
	it.Seek(seek)
	for ; skip > 0 && it.Valid(); skip-- {
		it.Next()
	}
	events := make([]*meridianv1.Event, 0, want)
	for ; it.Valid() && len(events) < want; it.Next() {
		v := start + uint64(len(events))
		if backward {
			v = start - uint64(len(events))
		}
		ev := &meridianv1.Event{}
		if err := it.Item().Value(func(b []byte) error { return proto.Unmarshal(b, ev) }); err != nil {
			return nil, fmt.Errorf("%w: event %q: %v", ErrCorruptState, it.Item().Key(), err)
		}
		ev.Version = v
		ev.Stable = !stableAt.less(hlcOf(ev.GetHlc()))
		events = append(events, ev)
	}
	if len(events) != want {
		return nil, fmt.Errorf("%w: merged stream %q holds fewer events than its head %d", ErrCorruptState, entity, last)
	}
	return events, nil
}

// ReadLog returns up to max events of the region apply log, in position
// order, starting at fromPosition (0 means 1). Event.Position is set.
func (f *FSM) ReadLog(fromPosition uint64, max int) ([]*meridianv1.Event, error) {
	n := clampCount(max)
	if fromPosition == 0 {
		fromPosition = 1
	}
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)

	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: min(n, 64), Prefix: []byte(prefixLog)})
	defer it.Close()
	var events []*meridianv1.Event
	for it.Seek(logKey(fromPosition)); it.Valid() && len(events) < n; it.Next() {
		ev, err := readRef(txn, it.Item())
		if err != nil {
			return nil, fmt.Errorf("region: read log: %w", err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// readRef reads the event a log entry (x/ or o/ key) points at.
func readRef(txn *badger.Txn, item *badger.Item) (*meridianv1.Event, error) {
	r, err := itemRef(item)
	if err != nil {
		return nil, err
	}
	return readRefOf(txn, item, r)
}

// itemRef decodes the ref a log entry holds.
func itemRef(item *badger.Item) (ref, error) {
	var r ref
	if err := item.Value(func(v []byte) (err error) { r, err = decodeRef(v); return err }); err != nil {
		return ref{}, fmt.Errorf("entry %q: %w", item.Key(), err)
	}
	return r, nil
}

// readRefOf reads the event r, the decoded value of item, points at.
func readRefOf(txn *badger.Txn, item *badger.Item, r ref) (*meridianv1.Event, error) {
	ev := &meridianv1.Event{}
	key := eventKey(r.Entity, r.Version)
	if r.Version == refMerged {
		key = r.Merged
	} else if r.Version == 0 {
		// A superseded event of an origin log (supersede.go).
		k, err := ParseKey(item.KeyCopy(nil))
		if err != nil || k.Kind != KeyOrigin {
			return nil, fmt.Errorf("%w: entry %q: a superseded ref outside an origin log", ErrCorruptState, item.Key())
		}
		key = supersededKey(k.Name, k.N)
	}
	ok, err := readProto(txn, key, ev)
	if err == nil && !ok {
		err = fmt.Errorf("%w: entry %q points at missing event %q@%d", ErrCorruptState, item.Key(), r.Entity, r.Version)
	}
	return ev, err
}

// ReadOrigin returns up to max (clamped like ReadStream) consecutive events
// of origin's log as this region holds it, from origin sequence fromSeq (0
// means 1): a contiguous prefix of the origin's log, so the result stops at
// the region's applied entry for origin. One consistent snapshot.
// Replication reads it to ship events to other regions.
func (f *FSM) ReadOrigin(origin string, fromSeq uint64, max int) ([]*meridianv1.Event, error) {
	n := clampCount(max)
	if fromSeq == 0 {
		fromSeq = 1
	}
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)

	prefix := originKey(origin, 0)
	prefix = prefix[:len(prefix)-8] // "o/<origin>\x00": every seq of this origin
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var events []*meridianv1.Event
	next := fromSeq
	for it.Seek(originKey(origin, fromSeq)); it.Valid() && len(events) < n; it.Next() {
		ev, err := readRef(txn, it.Item())
		if err != nil {
			return nil, fmt.Errorf("region: read origin log: %w", err)
		}
		if ev.GetOrigin().GetSeq() != next || ev.GetOrigin().GetRegion() != origin {
			return nil, fmt.Errorf("%w: origin log of %q at seq %d holds %s:%d", ErrCorruptState, origin, next, ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq())
		}
		events = append(events, ev)
		next++
	}
	return events, nil
}

// Recoveries returns up to max events that a failover superseded in this
// region and that no region has appended again yet (q/ markers), in
// origin order.
func (f *FSM) Recoveries(max int) ([]*meridianv1.Event, error) {
	return f.RecoveriesAfter(nil, max)
}

// RecoveriesAfter is Recoveries from the first marker after the dot after
// (from the first when nil), so a caller that skips some can go on past
// them.
func (f *FSM) RecoveriesAfter(after *meridianv1.Dot, max int) ([]*meridianv1.Event, error) {
	n := clampCount(max)
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRecovery)})
	defer it.Close()
	var out []*meridianv1.Event
	if after != nil {
		it.Seek(recoveryKey(after.GetRegion(), after.GetSeq()+1))
	} else {
		it.Rewind()
	}
	for ; it.Valid() && len(out) < n; it.Next() {
		k, err := ParseKey(it.Item().KeyCopy(nil))
		if err != nil {
			return nil, err
		}
		ev := &meridianv1.Event{}
		ok, err := readProto(txn, supersededKey(k.Name, k.N), ev)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: recovery marker %s:%d without its superseded event", ErrCorruptState, k.Name, k.N)
		}
		out = append(out, ev)
	}
	return out, nil
}

// Superseded returns the event a failover superseded at origin:seq here.
func (f *FSM) Superseded(origin string, seq uint64) (*meridianv1.Event, bool, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, false, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	ev := &meridianv1.Event{}
	ok, err := readProto(txn, supersededKey(origin, seq), ev)
	return ev, ok, err
}

// SupersededEntities returns the entities that have events a failover
// superseded in this region (tests and diagnostics: it reads the whole u/
// family).
func (f *FSM) SupersededEntities() (map[string]bool, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte(prefixSuperseded)})
	defer it.Close()
	out := map[string]bool{}
	for it.Rewind(); it.Valid(); it.Next() {
		ev := &meridianv1.Event{}
		if err := it.Item().Value(func(b []byte) error { return proto.Unmarshal(b, ev) }); err != nil {
			return nil, fmt.Errorf("%w: superseded event %q: %v", ErrCorruptState, it.Item().Key(), err)
		}
		out[ev.GetEntity()] = true
	}
	return out, nil
}
