package region

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// Snapshot format: a header, then Badger's backup format (what DB.Backup
// writes and DB.Load reads: repeated [uint64 little-endian length][pb.KVList]).
//
//	"MRDNSNP1" | uint32 big-endian n | n bytes ApplyState (proto)
const (
	snapshotMagic = "MRDNSNP1"
	// snapshotHeaderBytesMax bounds the ApplyState in a header (a vector of regions).
	snapshotHeaderBytesMax = 1 << 20
	// snapshotChunkBytes is how many key/value bytes one backup KVList holds.
	snapshotChunkBytes = 1 << 20
	// snapshotBufferBytes buffers writes into the Raft snapshot sink.
	snapshotBufferBytes = 256 << 10
)

// Snapshot makes Badger durable (db.Sync), so that Raft compacts its log only
// once Badger covers it, then pins a Badger read timestamp. Persist streams
// the database at that timestamp, concurrently with later applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	if err := h.db.Sync(); err != nil {
		h.refs.Done()
		return nil, fmt.Errorf("region: snapshot: sync badger: %w", err)
	}
	if k := f.cfg.Knobs; k != nil && k.AfterSnapshotSync != nil {
		k.AfterSnapshotSync()
	}
	// Raft calls Snapshot on the apply goroutine: no apply runs between the
	// state read and the transaction's read timestamp.
	f.mu.RLock()
	st := proto.Clone(f.state).(*meridianv1.ApplyState)
	f.mu.RUnlock()
	return &fsmSnapshot{h: h, txn: h.beginRead(), state: st}, nil
}

type fsmSnapshot struct {
	h     *dbHandle
	txn   *badger.Txn
	state *meridianv1.ApplyState
	once  sync.Once
}

// Persist writes the snapshot into sink and closes it (or cancels it on error).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("region: persist snapshot at index %d: %w", s.state.GetAppliedIndex(), err)
	}
	return sink.Close()
}

// Release frees the pinned read timestamp and the database reference.
func (s *fsmSnapshot) Release() {
	s.once.Do(func() {
		s.h.endRead(s.txn)
		s.h.refs.Done()
	})
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, snapshotBufferBytes)
	if err := writeSnapshotHeader(bw, s.state); err != nil {
		return err
	}
	it := s.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	list := &pb.KVList{}
	size := 0
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		val, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read %q: %w", item.Key(), err)
		}
		list.Kv = append(list.Kv, &pb.KV{
			Key: item.KeyCopy(nil), Value: val, Version: item.Version(), ExpiresAt: item.ExpiresAt(),
			UserMeta: []byte{item.UserMeta()}, Meta: []byte{0},
		})
		size += len(item.Key()) + len(val)
		if size >= snapshotChunkBytes {
			if err := writeKVList(bw, list); err != nil {
				return err
			}
			list, size = &pb.KVList{}, 0
		}
	}
	if len(list.Kv) > 0 {
		if err := writeKVList(bw, list); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writeKVList(w io.Writer, list *pb.KVList) error {
	b, err := proto.Marshal(list)
	if err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, uint64(len(b))); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func writeSnapshotHeader(w io.Writer, st *meridianv1.ApplyState) error {
	b, err := marshalDeterministic.Marshal(st)
	if err != nil {
		return err
	}
	hdr := make([]byte, 0, len(snapshotMagic)+4+len(b))
	hdr = append(hdr, snapshotMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(b)))
	_, err = w.Write(append(hdr, b...))
	return err
}

// readSnapshotHeader decodes a snapshot header (fuzzed by FuzzSnapshotHeader).
func readSnapshotHeader(r io.Reader) (*meridianv1.ApplyState, error) {
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
	st := &meridianv1.ApplyState{}
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: snapshot header: %v", ErrCorruptState, err)
	}
	if st.Applied == nil {
		st.Applied = map[string]uint64{}
	}
	return st, nil
}

// Restore replaces the state with a snapshot. It loads the snapshot into a
// NEW Badger directory, makes it durable, points CURRENT at it, then swaps it
// in; readers keep using the old database until the swap and never see a
// partial state. The old directory is removed once its readers are done.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		return ErrStoreClosed
	}
	seq := f.h.seq + 1
	f.mu.RUnlock()

	st, err := f.loadSnapshot(rc, seq)
	if err != nil {
		_ = os.RemoveAll(dbDir(f.cfg.Dir, seq))
		return err
	}
	if err := writeCurrent(f.cfg.Dir, seq); err != nil {
		_ = os.RemoveAll(dbDir(f.cfg.Dir, seq))
		return err
	}
	nh, err := openHandle(f.cfg, seq, f.logger)
	if err != nil {
		// CURRENT already names the new directory: the next open uses it.
		return fmt.Errorf("region: restore: reopen: %w", err)
	}

	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = nh.db.Close()
		return ErrStoreClosed
	}
	old := f.h
	f.h, f.state = nh, st
	// The restored database has other heads.
	f.ap.heads.clear()
	f.mu.Unlock()
	f.applied.Store(st.GetAppliedIndex())
	f.notify()

	old.refs.Wait()
	if err := old.db.Close(); err != nil {
		f.logger.Warn("close replaced badger", "dir", old.dir, "err", err)
	}
	if err := os.RemoveAll(old.dir); err != nil {
		f.logger.Warn("remove replaced badger", "dir", old.dir, "err", err)
	}
	f.logger.Info("state restored from snapshot", "applied_index", st.GetAppliedIndex(), "dir", nh.dir)
	return nil
}

// loadSnapshot loads a snapshot into badger-<seq>, syncs and closes it, and
// returns its apply state (checked against the header).
func (f *FSM) loadSnapshot(r io.Reader, seq int) (*meridianv1.ApplyState, error) {
	path := dbDir(f.cfg.Dir, seq)
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("region: restore: clear %s: %w", path, err)
	}
	br := bufio.NewReaderSize(r, snapshotBufferBytes)
	hdr, err := readSnapshotHeader(br)
	if err != nil {
		return nil, fmt.Errorf("region: restore: %w", err)
	}
	h, err := openHandle(f.cfg, seq, f.logger)
	if err != nil {
		return nil, err
	}
	if err := h.db.Load(br, restoreLoadPendingMax); err != nil {
		_ = h.db.Close()
		return nil, fmt.Errorf("region: restore: load backup: %w", err)
	}
	st, err := loadApplyState(h.db)
	if err == nil && !proto.Equal(st, hdr) {
		err = fmt.Errorf("%w: restore: loaded apply state %v differs from the snapshot header %v", ErrCorruptState, st, hdr)
	}
	if err == nil {
		err = h.db.Sync()
	}
	if cerr := h.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("region: restore: close loaded badger: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// RestoreIfBehind restores the newest snapshot in store when the state
// machine's applied index is below that snapshot's index, and reports whether
// it did. Call it before raft.NewRaft when raft.Config.NoSnapshotRestoreOnStart
// is set: Raft then assumes the FSM holds everything up to its newest
// snapshot and replays only the log after it, so a Badger that lost its
// unsynced tail (see doc.go, "What it does not guarantee") must be caught
// up from the snapshot first.
func (f *FSM) RestoreIfBehind(store raft.SnapshotStore) (bool, error) {
	metas, err := store.List()
	if err != nil {
		return false, fmt.Errorf("region: list snapshots: %w", err)
	}
	if len(metas) == 0 || metas[0].Index <= f.AppliedIndex() {
		return false, nil
	}
	meta := metas[0]
	f.logger.Warn("state machine is behind the newest snapshot; restoring it",
		"applied_index", f.AppliedIndex(), "snapshot_index", meta.Index, "snapshot", meta.ID)
	_, rc, err := store.Open(meta.ID)
	if err != nil {
		return false, fmt.Errorf("region: open snapshot %s: %w", meta.ID, err)
	}
	if err := f.Restore(rc); err != nil {
		return false, err
	}
	return true, nil
}
