package region

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// What a group's competing consumers leave in its stored state: acked
// dots beyond the checkpoint, parked events under p/, counters. The
// region leader's dispatcher (dispatch.go) proposes them as GroupAck
// commands; apply decides every count from the stored state, so each
// replica counts alike.

// Bounds of a group's stored state and of one call.
const (
	// GroupAckedMax bounds the acked dots a group keeps beyond its
	// checkpoint (and a create's acked list). The dispatcher's lookahead
	// counts finished events beyond the checkpoint too, and is below it.
	GroupAckedMax = 8192
	// GroupParkedMax bounds a group's parked list; parking beyond it is
	// refused (ErrGroupParkedFull) and the event is delivered again.
	GroupParkedMax = 10000
	// GroupDotsMax bounds the dots of one Ack, Nack or DropParked call.
	GroupDotsMax = 1000
	// GroupReasonBytesMax bounds a nack's reason.
	GroupReasonBytesMax = 1024

	defaultMaxDeliveries = 5
	defaultAckTimeout    = 30 * time.Second
	defaultMaxInFlight   = 100
	maxDeliveriesMax     = 100
	ackTimeoutMinMs      = 100
	ackTimeoutMaxMs      = 3_600_000
	maxInFlightMax       = 10_000
)

// ErrGroupParkedFull: a group's parked list holds GroupParkedMax events.
var ErrGroupParkedFull = errors.New("region: consumer group's parked list is full")

// AckCounts is what one GroupAck did.
type AckCounts struct {
	// Acked: dots acked for the first time; Duplicate: already acked,
	// parked or covered by the checkpoint.
	Acked, Duplicate int
	// Parked: events parked; ParkRefused: not parked because the list
	// was full (the command's checkpoint was then not taken).
	Parked, ParkRefused int
	// Dropped: parked events removed.
	Dropped int
	// Refused are the dots of the refused parks.
	Refused []causal.Dot
}

// groupSettings are a group's settings with defaults filled in.
type groupSettings struct {
	maxDeliveries uint32
	ackTimeout    time.Duration
	maxInFlight   int
}

func resolveSettings(s *meridianv1.GroupSettings) groupSettings {
	out := groupSettings{maxDeliveries: s.GetMaxDeliveries(), ackTimeout: time.Duration(s.GetAckTimeoutMs()) * time.Millisecond, maxInFlight: int(s.GetMaxInFlight())}
	if out.maxDeliveries == 0 {
		out.maxDeliveries = defaultMaxDeliveries
	}
	if out.ackTimeout == 0 {
		out.ackTimeout = defaultAckTimeout
	}
	if out.maxInFlight == 0 {
		out.maxInFlight = defaultMaxInFlight
	}
	return out
}

func validateGroupSettings(s *meridianv1.GroupSettings) error {
	if v := s.GetMaxDeliveries(); v > maxDeliveriesMax {
		return invalidf("settings.max_deliveries", "must be 1 to %d (0: %d), got %d", maxDeliveriesMax, defaultMaxDeliveries, v)
	}
	if v := s.GetAckTimeoutMs(); v != 0 && (v < ackTimeoutMinMs || v > ackTimeoutMaxMs) {
		return invalidf("settings.ack_timeout_ms", "must be %d to %d (0: %d), got %d", ackTimeoutMinMs, ackTimeoutMaxMs, defaultAckTimeout.Milliseconds(), v)
	}
	if v := s.GetMaxInFlight(); v > maxInFlightMax {
		return invalidf("settings.max_in_flight", "must be 1 to %d (0: %d), got %d", maxInFlightMax, defaultMaxInFlight, v)
	}
	return nil
}

// validateDots checks a list of event dots: at most max, each with a
// region name and a sequence of at least 1.
func validateDots(field string, dots []*meridianv1.Dot, max int) error {
	if len(dots) > max {
		return invalidf(field, "at most %d dots, got %d", max, len(dots))
	}
	for i, d := range dots {
		if err := validateRegionName(fmt.Sprintf("%s[%d].region", field, i), d.GetRegion()); err != nil {
			return err
		}
		if d.GetSeq() == 0 {
			return invalidf(fmt.Sprintf("%s[%d].seq", field, i), "must be at least 1 (an event's origin.seq)")
		}
	}
	return nil
}

func validateGroupAck(a *meridianv1.GroupAck) error {
	if err := ValidateGroupName(a.GetName()); err != nil {
		return err
	}
	if err := validateDots("acked", a.GetAcked(), GroupAckedMax); err != nil {
		return err
	}
	if err := validateDots("drop_parked", a.GetDropParked(), GroupDotsMax); err != nil {
		return err
	}
	if len(a.GetParked()) > GroupDotsMax {
		return invalidf("parked", "at most %d events, got %d", GroupDotsMax, len(a.GetParked()))
	}
	for i, p := range a.GetParked() {
		if err := validateDots(fmt.Sprintf("parked[%d].event.origin", i), []*meridianv1.Dot{p.GetEvent().GetOrigin()}, 1); err != nil {
			return err
		}
		if len(p.GetReason()) > GroupReasonBytesMax {
			return invalidf(fmt.Sprintf("parked[%d].reason", i), "at most %d bytes, got %d", GroupReasonBytesMax, len(p.GetReason()))
		}
	}
	return validateVector("checkpoint", a.GetCheckpoint())
}

func causalDot(d *meridianv1.Dot) causal.Dot {
	return causal.Dot{Region: d.GetRegion(), Seq: d.GetSeq()}
}

// pruneAcked returns the acked dots the checkpoint does not cover, sorted
// by origin then sequence (so the stored group is the same on every replica).
func pruneAcked(acked []*meridianv1.Dot, checkpoint causal.Vector) []*meridianv1.Dot {
	out := slices.DeleteFunc(slices.Clone(acked), func(d *meridianv1.Dot) bool { return checkpoint.CoversDot(causalDot(d)) })
	slices.SortFunc(out, func(a, b *meridianv1.Dot) int {
		if c := strings.Compare(a.GetRegion(), b.GetRegion()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetSeq(), b.GetSeq())
	})
	return slices.CompactFunc(out, func(a, b *meridianv1.Dot) bool { return proto.Equal(a, b) })
}

// parkedKey is p/<group>\x00<origin>\x00<seq u64>.
func parkedKey(group string, d causal.Dot) []byte {
	return nameNumKey(prefixParked+group+"\x00", d.Region, d.Seq)
}

func parkedPrefix(group string) []byte { return []byte(prefixParked + group + "\x00") }

// parkedKeys lists the p/ keys of group in txn.
func parkedKeys(txn *badger.Txn, group string) ([][]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: parkedPrefix(group)})
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, it.Item().KeyCopy(nil))
	}
	return out, nil
}

// applyGroupAck applies a dispatcher's GroupAck to cur.
func (a applier) applyGroupAck(w *txnWriter, st *meridianv1.ApplyState, c *meridianv1.GroupCommand, cur *meridianv1.ConsumerGroup, op *meridianv1.GroupAck) *GroupResult {
	if op.GetCreatedUnixNanos() != 0 && (op.GetCreatedUnixNanos() != cur.GetCreatedUnixNanos() || op.GetGeneration() != cur.GetGeneration()) {
		// Proposed by a dispatcher of an earlier incarnation of the group
		// (deleted and created again, or repositioned): its events and
		// checkpoint say nothing about this one.
		return &GroupResult{Err: fmt.Errorf("%w: group %q was created again or repositioned since its dispatcher read it", ErrGroupConflict, cur.GetName())}
	}
	var counts AckCounts
	checkpoint := causal.Vector(cur.GetCheckpoint()).Clone()
	if checkpoint == nil {
		checkpoint = causal.Vector{}
	}
	acked := make(map[causal.Dot]bool, len(cur.GetAcked()))
	for _, d := range cur.GetAcked() {
		acked[causalDot(d)] = true
	}
	var writes []kv
	var deletes [][]byte
	staged := map[string]bool{} // p/ keys written or deleted by this command
	// done: the dot is handled (acked, parked or under the checkpoint).
	done := func(d causal.Dot) bool {
		if checkpoint.CoversDot(d) || acked[d] {
			return true
		}
		k := parkedKey(cur.GetName(), d)
		if v, ok := staged[string(k)]; ok {
			return v
		}
		return exists(w.txn, k)
	}
	for _, pd := range op.GetAcked() {
		d := causalDot(pd)
		if done(d) {
			counts.Duplicate++
			continue
		}
		acked[d] = true
		counts.Acked++
	}
	parked := cur.GetParkedCount()
	for _, p := range op.GetParked() {
		d := causalDot(p.GetEvent().GetOrigin())
		if done(d) {
			counts.Duplicate++
			continue
		}
		if parked >= GroupParkedMax {
			counts.ParkRefused++
			counts.Refused = append(counts.Refused, d)
			continue
		}
		p := proto.CloneOf(p)
		p.ParkedUnixNanos = c.GetUnixNanos()
		k := parkedKey(cur.GetName(), d)
		writes = append(writes, kv{key: k, value: mustMarshal(p)})
		staged[string(k)] = true
		parked++
		counts.Parked++
	}
	for _, pd := range op.GetDropParked() {
		k := parkedKey(cur.GetName(), causalDot(pd))
		present, ok := staged[string(k)]
		if !ok {
			present = exists(w.txn, k)
		}
		if !present {
			continue
		}
		if ok { // parked by this very command: take the write back
			writes = slices.DeleteFunc(writes, func(x kv) bool { return bytes.Equal(x.key, k) })
		} else {
			deletes = append(deletes, k)
		}
		staged[string(k)] = false
		parked--
		counts.Dropped++
		// Dropped is handled: beyond the checkpoint it joins the acked set,
		// so a later dispatcher does not deliver it again.
		if d := causalDot(pd); !checkpoint.CoversDot(d) {
			acked[d] = true
		}
	}
	if counts.ParkRefused == 0 {
		// The dispatcher computed the checkpoint assuming every park
		// succeeds; a refused park leaves the event before it undone.
		checkpoint.MergeFrom(op.GetCheckpoint())
	}
	g := proto.CloneOf(cur)
	g.Checkpoint = checkpoint
	g.Acked = g.Acked[:0]
	for d := range acked {
		g.Acked = append(g.Acked, &meridianv1.Dot{Region: d.Region, Seq: d.Seq})
	}
	g.Acked = pruneAcked(g.Acked, checkpoint)
	if len(g.Acked) > GroupAckedMax {
		return &GroupResult{Err: invalidf("acked", "group %q would keep %d acked events beyond its checkpoint, at most %d", cur.GetName(), len(g.Acked), GroupAckedMax)}
	}
	g.Acks += uint64(counts.Acked)
	g.DuplicateAcks += uint64(counts.Duplicate)
	g.ParkedCount = parked
	g.Revision++
	g.UpdatedUnixNanos = c.GetUnixNanos()
	writes = append(writes, kv{key: groupKey(g.GetName()), value: mustMarshal(g)})
	if err := w.stage(st, writes, deletes); err != nil {
		return &GroupResult{Err: err}
	}
	return &GroupResult{Group: g, Ack: counts}
}

// parkedDots lists the dots of group's parked events (keys only).
func (f *FSM) parkedDots(group string) ([]causal.Dot, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: parkedPrefix(group)})
	defer it.Close()
	var out []causal.Dot
	for it.Rewind(); it.Valid(); it.Next() {
		k, err := ParseKey(it.Item().Key())
		if err != nil {
			return nil, err
		}
		out = append(out, causal.Dot{Region: k.Origin, Seq: k.N})
	}
	return out, nil
}

// Parked returns up to max parked events of group after the dot after
// (nil: from the first), by origin then sequence, and whether none follow.
func (f *FSM) Parked(group string, after *causal.Dot, max int) ([]*meridianv1.ParkedEvent, bool, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, false, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	prefix := parkedPrefix(group)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: min(max, 64), Prefix: prefix})
	defer it.Close()
	it.Rewind()
	if after != nil {
		k := parkedKey(group, *after)
		it.Seek(k)
		if it.Valid() && bytes.Equal(it.Item().Key(), k) {
			it.Next()
		}
	}
	var out []*meridianv1.ParkedEvent
	for ; it.Valid() && len(out) < max; it.Next() {
		p := &meridianv1.ParkedEvent{}
		if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, p) }); err != nil {
			return nil, false, fmt.Errorf("%w: parked %q: %v", ErrCorruptState, it.Item().Key(), err)
		}
		out = append(out, p)
	}
	return out, !it.Valid(), nil
}
