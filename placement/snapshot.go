package placement

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Snapshot format:
//
//	"MRDNPLC1" | uint32 big-endian n | n bytes PlacementApplyState (proto)
//	then records, each: uvarint length | PlacementSnapshotRecord (proto)
//	  one state record (equal to the header's), one rules record,
//	  at most one transition record, member records in id order, lease
//	  records in region order, pin records in entity order,
//	  and an empty record (length 0) that ends the snapshot.
//
// The end record makes a snapshot cut at a record boundary detectable;
// record order makes duplicates detectable. Nothing may follow it.
const (
	snapshotMagic = "MRDNPLC1"
	// snapshotHeaderBytesMax bounds the apply state in the header (bytes).
	snapshotHeaderBytesMax = 1 << 10
	// snapshotRecordBytesMax bounds one record (bytes): the rules record is
	// the largest, at most about 14 MiB (RulesMax rules of a 256-byte
	// prefix, a home and RuleFailoverMax failover regions of 64 bytes).
	snapshotRecordBytesMax = 64 << 20
	// snapshotBufferBytes buffers the snapshot stream, both ways (bytes).
	snapshotBufferBytes = 256 << 10
	// snapshotPrefetchValues is the iterator's prefetch depth while
	// streaming members and pins (values).
	snapshotPrefetchValues = 256
)

// Field numbers of PlacementSnapshotRecord's oneof: Persist wraps stored
// values in a record without decoding them.
const (
	recordFieldState  protowire.Number = 1
	recordFieldRules  protowire.Number = 2
	recordFieldMember protowire.Number = 3
	recordFieldPin    protowire.Number = 4
	// recordFieldTransition follows the rules record when a transition is
	// stored (snapshots written before fenced homes have none).
	recordFieldTransition protowire.Number = 5
	// recordFieldLease records follow the members (none before leases).
	recordFieldLease protowire.Number = 6
)

// Snapshot pins a Badger read timestamp; Persist streams the state at that
// timestamp concurrently with later applies. Nothing is copied on the apply
// goroutine. Raft calls Snapshot on the apply goroutine, so the timestamp
// covers exactly the entries applied so far; SyncWrites made them durable.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrStoreClosed
	}
	if f.restoring.Load() {
		return nil, fmt.Errorf("placement: snapshot: a restore did not finish; the stored state is partial")
	}
	f.snaps.Add(1)
	return &fsmSnapshot{f: f, txn: f.db.NewTransaction(false), index: f.state.GetAppliedIndex()}, nil
}

type fsmSnapshot struct {
	f     *FSM
	txn   *badger.Txn
	index uint64
	once  sync.Once
}

// Persist writes the snapshot into sink and closes it (or cancels it on error).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.txn); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("placement: persist snapshot at index %d: %w", s.index, err)
	}
	return sink.Close()
}

// Release frees the pinned read timestamp.
func (s *fsmSnapshot) Release() {
	s.once.Do(func() {
		s.txn.Discard()
		s.f.snaps.Done()
	})
}

// writeSnapshot streams the state txn reads, in the format above.
func writeSnapshot(w io.Writer, txn *badger.Txn) error {
	bw := bufio.NewWriterSize(w, snapshotBufferBytes)
	state, err := getValue(txn, keyApplyState)
	if err != nil {
		return err
	}
	if len(state) > snapshotHeaderBytesMax {
		return fmt.Errorf("%w: apply state of %d bytes", ErrCorruptState, len(state))
	}
	hdr := make([]byte, 0, len(snapshotMagic)+4+len(state))
	hdr = append(hdr, snapshotMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(state)))
	if _, err := bw.Write(append(hdr, state...)); err != nil {
		return err
	}
	if err := writeRecord(bw, recordFieldState, state); err != nil {
		return err
	}
	rules, err := getValue(txn, keyRules)
	if err != nil {
		return err
	}
	if err := writeRecord(bw, recordFieldRules, rules); err != nil {
		return err
	}
	switch tr, err := getValue(txn, keyTransition); {
	case err != nil:
		return err
	case tr != nil:
		if err := writeRecord(bw, recordFieldTransition, tr); err != nil {
			return err
		}
	}
	for _, fam := range []struct {
		prefix string
		field  protowire.Number
	}{{prefixMember, recordFieldMember}, {prefixLease, recordFieldLease}, {prefixPin, recordFieldPin}} {
		if err := writeFamily(bw, txn, fam.prefix, fam.field); err != nil {
			return err
		}
	}
	if _, err := bw.Write(protowire.AppendVarint(nil, 0)); err != nil { // end record
		return err
	}
	return bw.Flush()
}

func writeFamily(bw *bufio.Writer, txn *badger.Txn, prefix string, field protowire.Number) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: snapshotPrefetchValues, Prefix: []byte(prefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(v []byte) error { return writeRecord(bw, field, v) })
		if err != nil {
			return fmt.Errorf("read %q: %w", it.Item().Key(), err)
		}
	}
	return nil
}

// getValue returns key's value, nil if absent.
func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	return item.ValueCopy(nil)
}

// writeRecord writes one PlacementSnapshotRecord whose oneof field holds
// the encoded message v.
func writeRecord(bw *bufio.Writer, field protowire.Number, v []byte) error {
	var head [3 * binary.MaxVarintLen64]byte
	inner := protowire.SizeTag(field) + protowire.SizeBytes(len(v))
	h := protowire.AppendVarint(head[:0], uint64(inner))
	h = protowire.AppendTag(h, field, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(len(v)))
	if _, err := bw.Write(h); err != nil {
		return err
	}
	_, err := bw.Write(v)
	return err
}

// readSnapshotHeader decodes a snapshot header (FuzzRestore).
func readSnapshotHeader(r io.Reader) (*meridianv1.PlacementApplyState, error) {
	var fixed [len(snapshotMagic) + 4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return nil, fmt.Errorf("%w: snapshot header: %v", ErrCorruptState, err)
	}
	if string(fixed[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: snapshot header: magic %q, want %q", ErrCorruptState, fixed[:len(snapshotMagic)], snapshotMagic)
	}
	n := binary.BigEndian.Uint32(fixed[len(snapshotMagic):])
	if n > snapshotHeaderBytesMax {
		return nil, fmt.Errorf("%w: snapshot header: apply state of %d bytes, at most %d", ErrCorruptState, n, snapshotHeaderBytesMax)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: snapshot header: %v", ErrCorruptState, err)
	}
	st := &meridianv1.PlacementApplyState{}
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: snapshot header: %v", ErrCorruptState, err)
	}
	return st, nil
}

// readSnapshot decodes a whole snapshot into a new table, checking record
// order and every invariant the table keeps. It touches nothing shared.
func readSnapshot(r io.Reader) (*meridianv1.PlacementApplyState, tableState, error) {
	br := bufio.NewReaderSize(r, snapshotBufferBytes)
	hdr, err := readSnapshotHeader(br)
	if err != nil {
		return nil, tableState{}, err
	}
	const (
		wantState = iota
		wantRules
		inMembers
		inLeases
		inPins
	)
	phase := wantState
	b := newTableBuilder(0)
	var lastMember, lastPin, lastLease string
	buf := make([]byte, 0, 4<<10)
	for n := 0; ; n++ {
		size, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: length: %v (the end record is missing?)", ErrCorruptState, n, noEOF(err))
		}
		if size > snapshotRecordBytesMax {
			return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: %d bytes, at most %d", ErrCorruptState, n, size, snapshotRecordBytesMax)
		}
		if size == 0 {
			break
		}
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: %v", ErrCorruptState, n, noEOF(err))
		}
		rec := &meridianv1.PlacementSnapshotRecord{}
		if err := proto.Unmarshal(buf, rec); err != nil {
			return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: %v", ErrCorruptState, n, err)
		}
		switch x := rec.GetRecord().(type) {
		case *meridianv1.PlacementSnapshotRecord_State:
			if phase != wantState {
				return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: a second state record", ErrCorruptState, n)
			}
			if !proto.Equal(x.State, hdr) {
				return nil, tableState{}, fmt.Errorf("%w: snapshot state record %v differs from the header %v", ErrCorruptState, x.State, hdr)
			}
			phase = wantRules
		case *meridianv1.PlacementSnapshotRecord_Rules:
			if phase != wantRules {
				return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: rules out of order", ErrCorruptState, n)
			}
			if err := b.setRules(x.Rules); err != nil {
				return nil, tableState{}, err
			}
			phase = inMembers
		case *meridianv1.PlacementSnapshotRecord_Transition:
			if phase != inMembers || lastMember != "" || b.transition != nil {
				return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: transition out of order", ErrCorruptState, n)
			}
			b.transition = x.Transition
		case *meridianv1.PlacementSnapshotRecord_Member:
			if phase != inMembers || (lastMember != "" && x.Member.GetId() <= lastMember) {
				return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: member %q out of order", ErrCorruptState, n, truncate(x.Member.GetId(), errorTextBytesMax))
			}
			if err := b.addMember(x.Member); err != nil {
				return nil, tableState{}, err
			}
			lastMember = x.Member.GetId()
		case *meridianv1.PlacementSnapshotRecord_Lease:
			if (phase != inMembers && phase != inLeases) || (lastLease != "" && x.Lease.GetRegion() <= lastLease) {
				return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: lease of %q out of order", ErrCorruptState, n, truncate(x.Lease.GetRegion(), errorTextBytesMax))
			}
			if err := b.addLease(x.Lease); err != nil {
				return nil, tableState{}, err
			}
			phase, lastLease = inLeases, x.Lease.GetRegion()
		case *meridianv1.PlacementSnapshotRecord_Pin:
			if (phase != inMembers && phase != inLeases && phase != inPins) || (lastPin != "" && x.Pin.GetEntity() <= lastPin) {
				return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: pin %q out of order", ErrCorruptState, n, truncate(x.Pin.GetEntity(), errorTextBytesMax))
			}
			if err := b.addPin(x.Pin); err != nil {
				return nil, tableState{}, err
			}
			phase, lastPin = inPins, x.Pin.GetEntity()
		default:
			return nil, tableState{}, fmt.Errorf("%w: snapshot record %d: no or unknown record", ErrCorruptState, n)
		}
	}
	if phase < inMembers {
		return nil, tableState{}, fmt.Errorf("%w: snapshot ends before its state and rules records", ErrCorruptState)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, tableState{}, fmt.Errorf("%w: bytes after the snapshot's end record", ErrCorruptState)
	}
	s, err := b.finish(hdr.GetAppliedIndex())
	if err != nil {
		return nil, tableState{}, err
	}
	return hdr, s, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Restore replaces the state with a snapshot. It decodes the whole
// snapshot into a new in-memory table first (a snapshot that fails to decode
// leaves everything untouched), then rewrites Badger: the s/restoring marker
// (synced), drop every data key, write the new records and apply state, drop
// the marker, sync. Only then is the new table swapped in: readers see the
// old table or the new one, never a mix. A crash in between leaves the
// marker, and RestoreIfNeeded restores again at the next open.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrStoreClosed
	}
	st, s, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("placement: restore: %w", err)
	}
	if err := f.rewrite(st, s); err != nil {
		f.logger.Error("restore failed after the stored state was dropped; apply is stopped until a restore succeeds", "err", err)
		return fmt.Errorf("placement: restore: %w", err)
	}
	f.table.swap(s)
	f.state = st
	f.applied.Store(st.GetAppliedIndex())
	f.restoring.Store(false)
	f.leaseSeen.reset()
	f.notify()
	f.logger.Info("state restored from snapshot", "applied_index", st.GetAppliedIndex(),
		"rules", len(s.rules.rules), "pins", len(s.pins), "members", len(s.members.sorted))
	return nil
}

// rewrite replaces Badger's contents with s and st, between a synced
// s/restoring marker and its removal.
func (f *FSM) rewrite(st *meridianv1.PlacementApplyState, s tableState) error {
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set(keyRestoring, nil) }); err != nil {
		return fmt.Errorf("write restore marker: %w", err)
	}
	f.restoring.Store(true)
	if err := f.db.DropPrefix(dataPrefixes...); err != nil {
		return fmt.Errorf("drop old state: %w", err)
	}
	if k := f.cfg.Knobs; k != nil && k.AfterRestoreDrop != nil {
		if err := k.AfterRestoreDrop(); err != nil {
			return err
		}
	}
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	set := func(key []byte, m proto.Message) error {
		v, err := marshalDeterministic.Marshal(m)
		if err != nil {
			return fmt.Errorf("marshal %q: %w", key, err)
		}
		if err := wb.Set(key, v); err != nil {
			return fmt.Errorf("write %q: %w", key, err)
		}
		return nil
	}
	for _, m := range s.members.sorted {
		if err := set(memberKey(m.GetId()), m); err != nil {
			return err
		}
	}
	for _, l := range s.leases {
		if err := set(leaseKey(l.GetRegion()), l); err != nil {
			return err
		}
	}
	pin := &meridianv1.PlacementPin{}
	for e, pe := range s.pins {
		pin.Entity, pin.Region, pin.Epoch = e, s.names.list[pe.region], pe.epoch
		if err := set(pinKey(e), pin); err != nil {
			return err
		}
	}
	if err := set(keyRules, s.rules.proto()); err != nil {
		return err
	}
	if s.transition != nil {
		if err := set(keyTransition, s.transition.rec); err != nil {
			return err
		}
	}
	if err := set(keyApplyState, st); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write new state: %w", err)
	}
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Delete(keyRestoring) }); err != nil {
		return fmt.Errorf("remove restore marker: %w", err)
	}
	if err := f.db.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// RestoreIfNeeded restores the newest snapshot in store when a Restore did
// not finish (the s/restoring marker is present) or when the stored applied
// index is below that snapshot's index, and reports whether it did. Call it
// after OpenFSM and before raft.NewRaft.
func (f *FSM) RestoreIfNeeded(store raft.SnapshotStore) (bool, error) {
	metas, err := store.List()
	if err != nil {
		return false, fmt.Errorf("placement: list snapshots: %w", err)
	}
	restoring := f.restoring.Load()
	if len(metas) == 0 {
		if restoring {
			return false, fmt.Errorf("%w: a restore did not finish and no snapshot is left to restore", ErrCorruptState)
		}
		return false, nil
	}
	meta := metas[0]
	if !restoring && meta.Index <= f.AppliedIndex() {
		return false, nil
	}
	f.logger.Warn("restoring the newest snapshot at open", "unfinished_restore", restoring,
		"applied_index", f.AppliedIndex(), "snapshot_index", meta.Index, "snapshot", meta.ID)
	_, rc, err := store.Open(meta.ID)
	if err != nil {
		return false, fmt.Errorf("placement: open snapshot %s: %w", meta.ID, err)
	}
	if err := f.Restore(rc); err != nil {
		return false, err
	}
	return true, nil
}
