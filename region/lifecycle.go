package region

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/encoding/protojson"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Stream lifecycle (issue 17): a stream's metadata, soft delete and hard
// delete are events of the stream itself, with reserved types. They are
// ordered by the stream's home and replicate like any other event, in
// causal order and exactly once, so every region that applied the same
// events folds them into the same head (StreamHead.metadata,
// truncate_before, tombstone) and its reads return the same versions.
// Each is also keyed under l/<entity>\x00<version>, so that a failover
// that supersedes one recomputes the head from those that remain.
//
// Reads hide what the lifecycle says (below truncate_before, beyond
// max_count, older than max_age); space reclaim (reclaim.go) then drops
// the hidden events' data, leaving stubs in their places in the region
// log and the origin logs other regions pull from.

// Reserved event types of the stream lifecycle.
const (
	// TypeStreamMetadata: data is a StreamMetadata as protojson.
	TypeStreamMetadata = "$metadata"
	// TypeStreamDeleted (soft delete): hides every version up to and
	// including its own; appends go on after it.
	TypeStreamDeleted = "$deleted"
	// TypeStreamTombstone (hard delete): hides the stream and refuses
	// every later append, in every region.
	TypeStreamTombstone = "$tombstone"

	// StreamCustomKeysMax bounds StreamMetadata.custom.
	StreamCustomKeysMax = 64
)

// ErrStreamDeleted: an append to a stream with a $tombstone.
var ErrStreamDeleted = errors.New("region: stream deleted")

func lifecycleType(t string) bool {
	return t == TypeStreamMetadata || t == TypeStreamDeleted || t == TypeStreamTombstone
}

// ParseStreamMetadata decodes a $metadata event's data.
func ParseStreamMetadata(data []byte) (*meridianv1.StreamMetadata, error) {
	m := &meridianv1.StreamMetadata{}
	if err := protojson.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("want a StreamMetadata as JSON ({\"maxCount\": 100, \"maxAgeMs\": 86400000, \"truncateBefore\": 7, \"custom\": {\"k\": \"v\"}}): %v", err)
	}
	if len(m.GetCustom()) > StreamCustomKeysMax {
		return nil, fmt.Errorf("custom holds %d keys, at most %d", len(m.GetCustom()), StreamCustomKeysMax)
	}
	return m, nil
}

// validateLifecycle checks the lifecycle events of an append before it is
// proposed. Apply is lenient (a $metadata whose data does not parse is a
// plain event there), so a log written before these types were reserved
// replays as it applied.
func validateLifecycle(op *meridianv1.AppendOp) error {
	for i, e := range op.GetEvents() {
		if !lifecycleType(e.GetType()) {
			continue
		}
		field := fmt.Sprintf("events[%d]", i)
		if op.GetActiveActive() {
			return invalidf(field+".type", "%s applies to single-home streams; %q is written active-active", e.GetType(), op.GetEntity())
		}
		switch e.GetType() {
		case TypeStreamMetadata:
			if _, err := ParseStreamMetadata(e.GetData()); err != nil {
				return invalidf(field+".data", "%s: %v", TypeStreamMetadata, err)
			}
		default:
			if len(e.GetData()) > 0 {
				return invalidf(field+".data", "%s carries no data, got %d bytes", e.GetType(), len(e.GetData()))
			}
		}
		if e.GetType() == TypeStreamTombstone && i != len(op.GetEvents())-1 {
			return invalidf(field+".type", "%s must be the append's last event: nothing is appended after it", TypeStreamTombstone)
		}
	}
	return nil
}

// foldLifecycle applies ev to head's lifecycle fields and reports whether
// ev is a lifecycle event.
func foldLifecycle(head *meridianv1.StreamHead, ev *meridianv1.Event) bool {
	switch ev.GetType() {
	case TypeStreamMetadata:
		// Fields a newer build wrote are ignored, so that replicas of
		// different builds fold the same event alike.
		m := &meridianv1.StreamMetadata{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(ev.GetData(), m); err != nil {
			return false
		}
		head.Metadata = m
		head.TruncateBefore = max(head.GetTruncateBefore(), m.GetTruncateBefore())
	case TypeStreamDeleted:
		head.TruncateBefore = max(head.GetTruncateBefore(), ev.GetVersion()+1)
	case TypeStreamTombstone:
		head.Tombstone = ev.GetVersion()
		head.TruncateBefore = max(head.GetTruncateBefore(), ev.GetVersion()+1)
	default:
		return false
	}
	return true
}

// carryLifecycle copies from's lifecycle fields to to and returns to.
func carryLifecycle(to, from *meridianv1.StreamHead) *meridianv1.StreamHead {
	to.Metadata, to.TruncateBefore, to.Tombstone = from.GetMetadata(), from.GetTruncateBefore(), from.GetTombstone()
	return to
}

// lifecycleKey is l/<entity>\x00<version>: a lifecycle event's version.
func lifecycleKey(entity string, version uint64) []byte {
	return nameNumKey(prefixLifecycle, entity, version)
}

// lifecycleBelow folds the lifecycle events of entity below version below
// into head (whose lifecycle fields it resets first), and lists the l/
// keys at or above it.
func lifecycleBelow(txn *badger.Txn, entity string, below uint64, head *meridianv1.StreamHead) (above [][]byte) {
	carryLifecycle(head, &meridianv1.StreamHead{})
	prefix := []byte(prefixLifecycle + entity + "\x00")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k, err := ParseKey(it.Item().Key())
		if err != nil {
			panic(fmt.Errorf("region: apply: %w", err))
		}
		if k.N >= below {
			above = append(above, it.Item().KeyCopy(nil))
			continue
		}
		ev := &meridianv1.Event{}
		if !getProto(txn, eventKey(entity, k.N), ev) {
			panic(fmt.Errorf("region: apply: %w: stream %q: lifecycle event v%d is missing", ErrCorruptState, entity, k.N))
		}
		foldLifecycle(head, ev)
	}
	return above
}

// firstVisible is the first version reads of the stream return at now:
// above truncate_before, within max_count of the head, and (max_age) the
// first version stamped after now - max_age, found by binary search (a
// single-home stream's stamps increase with its versions).
func firstVisible(txn *badger.Txn, entity string, head *meridianv1.StreamHead, now time.Time) (uint64, error) {
	last := head.GetVersion()
	// Never beyond the head: a truncate_before above it hides the stream
	// as it is, not versions not written yet.
	first := min(max(head.GetTruncateBefore(), head.GetReclaimedBelow(), 1), last+1)
	if m := head.GetMetadata().GetMaxCount(); m > 0 && last > m {
		first = max(first, last-m+1)
	}
	if age := head.GetMetadata().GetMaxAgeMs(); age > 0 && first <= last && !head.GetMerged() {
		cutoff := now.Add(-time.Duration(age) * time.Millisecond).UnixNano()
		lo := first
		var err error
		n := int(last - lo + 1)
		i := sort.Search(n, func(i int) bool {
			if err != nil {
				return true
			}
			ev := &meridianv1.Event{}
			ok, rerr := readProto(txn, eventKey(entity, lo+uint64(i)), ev)
			if rerr != nil || !ok {
				err = fmt.Errorf("region: read %q v%d: missing or unreadable (%v)", entity, lo+uint64(i), rerr)
				return true
			}
			return ev.GetHlc().GetWallNanos() >= cutoff
		})
		if err != nil {
			return 0, err
		}
		first = lo + uint64(i)
	}
	return first, nil
}
