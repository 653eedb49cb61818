package region

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// fsmSink is a raft.SnapshotSink in memory.
type fsmSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *fsmSink) ID() string    { return "test" }
func (s *fsmSink) Cancel() error { s.cancelled = true; return nil }
func (s *fsmSink) Close() error  { s.closed = true; return nil }

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	var sink fsmSink
	require.NoError(t, snap.Persist(&sink))
	require.True(t, sink.closed)
	return sink.Bytes()
}

// fsmPopulate writes a few streams with several batches.
func fsmPopulate(t testing.TB, d *fsmDriver, streams, perStream int) {
	t.Helper()
	n := 1000
	for v := 0; v < perStream; v++ {
		var ops []*meridianv1.AppendOp
		for s := 0; s < streams; s++ {
			n++
			e := pev(n, "T", fmt.Sprintf("data-%d-%d", s, v))
			e.Metadata = map[string]string{"k": fmt.Sprint(v)}
			ops = append(ops, &meridianv1.AppendOp{Entity: fmt.Sprintf("stream-%d", s), Expected: expExact(uint64(v)),
				Events: []*meridianv1.ProposedEvent{e}, Deps: map[string]uint64{testRegion: uint64(v * streams)}, Epoch: 3})
		}
		for _, r := range d.batch(ops...) {
			require.NoError(t, r.Err)
		}
	}
}

// requireSameState compares every stream, the apply log and ApplyState.
func requireSameState(t testing.TB, a, b *FSM, streams int) {
	t.Helper()
	require.True(t, proto.Equal(a.ApplyState(), b.ApplyState()), "%v\n%v", a.ApplyState(), b.ApplyState())
	for s := 0; s < streams; s++ {
		ea, ha := fsmReadAll(t, a, fmt.Sprintf("stream-%d", s))
		eb, hb := fsmReadAll(t, b, fmt.Sprintf("stream-%d", s))
		require.Equal(t, ha, hb)
		require.Equal(t, len(ea), len(eb))
		for i := range ea {
			require.True(t, proto.Equal(ea[i], eb[i]), "stream-%d event %d", s, i)
		}
	}
	la, lb := fsmReadLog(t, a), fsmReadLog(t, b)
	require.Equal(t, len(la), len(lb))
	for i := range la {
		require.True(t, proto.Equal(la[i], lb[i]), "position %d", i+1)
	}
}

func TestSnapshotRestoreIntoAnotherFSM(t *testing.T) {
	src := newTestFSM(t)
	d := newFSMDriver(t, src)
	fsmPopulate(t, d, 5, 8)
	data := snapshotBytes(t, src)

	dst := newTestFSM(t)
	// dst has state of its own, which the restore must discard.
	dd := newFSMDriver(t, dst)
	dd.mustAppend(aop("stream-0", nil, pev(1, "Other", "x")))
	dd.mustAppend(aop("only-in-dst", nil, pev(2, "Other", "x")))
	changed := dst.Changed()

	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(data))))
	requireSameState(t, src, dst, 5)
	_, head := fsmReadAll(t, dst, "only-in-dst")
	assert.Zero(t, head, "restore discards previous state")
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not signal Changed")
	}

	// Both continue identically: the same entry applies the same way,
	// including idempotency records carried by the snapshot.
	retry := pev(1001+2, "T", "data-2-0") // stream-2's first event, as fsmPopulate wrote it
	retry.Metadata = map[string]string{"k": "0"}
	cont := aop("stream-1", expExact(8), pev(5000, "T", ""))
	cont.Epoch = 3
	next := d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: d.wall + 1},
		Ops: []*meridianv1.AppendOp{cont, aop("stream-2", nil, retry)}})
	ra, rb := src.Apply(next).(*BatchResult), dst.Apply(next).(*BatchResult)
	require.NoError(t, ra.Ops[0].Err)
	assert.True(t, ra.Ops[1].Resp.GetDuplicate(), "%v", ra.Ops[1].Err)
	for i := range ra.Ops {
		assert.True(t, proto.Equal(ra.Ops[i].Resp, rb.Ops[i].Resp))
	}
	requireSameState(t, src, dst, 5)

	// Only the new Badger directory remains, and a reopen keeps the restored state.
	dirs, err := filepath.Glob(filepath.Join(dst.cfg.Dir, dbDirPrefix+"*"))
	require.NoError(t, err)
	assert.Equal(t, []string{dbDir(dst.cfg.Dir, 2)}, dirs)
	dir := dst.cfg.Dir
	require.NoError(t, dst.Close())
	re := openTestFSM(t, dir)
	defer re.Close()
	requireSameState(t, src, re, 5)
}

func TestSnapshotOfEmptyFSM(t *testing.T) {
	src := newTestFSM(t)
	dst := newTestFSM(t)
	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, src)))))
	assert.Zero(t, dst.AppliedIndex())
	assert.Empty(t, fsmReadLog(t, dst))
}

func TestRestoreRejectsCorruptSnapshotAndKeepsState(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	fsmPopulate(t, d, 2, 3)
	good := snapshotBytes(t, f)
	want := f.ApplyState()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XXXXXXXX"), good[8:]...)},
		{"truncated header", good[:10]},
		{"truncated body", good[:len(good)-7]},
		{"header says other state", func() []byte {
			var b bytes.Buffer
			require.NoError(t, writeSnapshotHeader(&b, &meridianv1.ApplyState{AppliedIndex: 99}))
			hdrLen := len(snapshotMagic) + 4 + int(uint32(good[8])<<24|uint32(good[9])<<16|uint32(good[10])<<8|uint32(good[11]))
			return append(b.Bytes(), good[hdrLen:]...)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, f.Restore(io.NopCloser(bytes.NewReader(tc.data))))
			assert.True(t, proto.Equal(want, f.ApplyState()))
			evs, _ := fsmReadAll(t, f, "stream-1")
			assert.Len(t, evs, 3)
			dirs, _ := filepath.Glob(filepath.Join(f.cfg.Dir, dbDirPrefix+"*"))
			assert.Len(t, dirs, 1, "a failed restore leaves no directory behind")
		})
	}
}

// TestSnapshotSyncsBeforeReturning: Snapshot makes Badger durable before it
// returns (Raft compacts its log after the snapshot is persisted).
func TestSnapshotSyncsBeforeReturning(t *testing.T) {
	var synced atomic.Bool
	f, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: testRegion, Logger: fsmTestLogger(),
		Knobs: &TestingKnobs{AfterSnapshotSync: func() { synced.Store(true) }}})
	require.NoError(t, err)
	defer f.Close()
	newFSMDriver(t, f).mustAppend(aop("a", nil, pev(1, "T", "")))
	snap, err := f.Snapshot()
	require.NoError(t, err)
	assert.True(t, synced.Load())
	snap.Release()
	snap.Release() // idempotent
}

// TestSnapshotIsAtItsReadTimestamp: applies after Snapshot returns are not in it.
func TestSnapshotIsAtItsReadTimestamp(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	fsmPopulate(t, d, 2, 2)
	want := f.ApplyState()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	populate2 := aop("stream-0", nil, pev(9999, "Late", ""))
	populate2.Epoch = 3
	d.mustAppend(populate2)
	var sink fsmSink
	require.NoError(t, snap.Persist(&sink))
	snap.Release()

	dst := newTestFSM(t)
	require.NoError(t, dst.Restore(io.NopCloser(&sink.Buffer)))
	assert.True(t, proto.Equal(want, dst.ApplyState()))
	_, head := fsmReadAll(t, dst, "stream-0")
	assert.Equal(t, uint64(2), head)
}

// TestRestoreWhileReading: readers run throughout a restore and always see
// either the old or the new state, never an error or a mix.
func TestRestoreWhileReading(t *testing.T) {
	src := newTestFSM(t)
	fsmPopulate(t, newFSMDriver(t, src), 1, 6)
	data := snapshotBytes(t, src)

	f := newTestFSM(t)
	fsmPopulate(t, newFSMDriver(t, f), 1, 3)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				evs, head, err := f.ReadStream("stream-0", 0, 100, false)
				if err == nil && (head != 3 && head != 6 || len(evs) != int(head)) {
					err = fmt.Errorf("saw head %d with %d events", head, len(evs))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(data))))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	_, head := fsmReadAll(t, f, "stream-0")
	assert.Equal(t, uint64(6), head)
}

func TestOpenRemovesStaleRestoreDirs(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	newFSMDriver(t, f).mustAppend(aop("a", nil, pev(1, "T", "")))
	require.NoError(t, f.Close())
	// A restore that crashed before pointing CURRENT at its directory.
	require.NoError(t, os.MkdirAll(dbDir(dir, 2), 0o755))
	f = openTestFSM(t, dir)
	defer f.Close()
	_, err := os.Stat(dbDir(dir, 2))
	assert.True(t, os.IsNotExist(err))
	_, head := fsmReadAll(t, f, "a")
	assert.Equal(t, uint64(1), head)
}

func FuzzSnapshotHeader(f *testing.F) {
	var b bytes.Buffer
	_ = writeSnapshotHeader(&b, &meridianv1.ApplyState{AppliedIndex: 7, Applied: map[string]uint64{"r": 3}, LastPosition: 3})
	f.Add(b.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := readSnapshotHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		require.NoError(t, writeSnapshotHeader(&out, st))
		st2, err := readSnapshotHeader(&out)
		require.NoError(t, err)
		require.True(t, proto.Equal(st, st2))
	})
}

// TestRestoreIfBehind: with Raft's NoSnapshotRestoreOnStart, a state machine
// below the newest snapshot (Badger lost its unsynced tail) is caught up from
// the snapshot; one at or beyond it is left alone.
func TestRestoreIfBehind(t *testing.T) {
	src := newTestFSM(t)
	fsmPopulate(t, newFSMDriver(t, src), 2, 3)
	store := raft.NewInmemSnapshotStore()
	snap, err := src.Snapshot()
	require.NoError(t, err)
	sink, err := store.Create(raft.SnapshotVersionMax, src.AppliedIndex(), 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	require.NoError(t, snap.Persist(sink))
	snap.Release()

	restored, err := src.RestoreIfBehind(store)
	require.NoError(t, err)
	assert.False(t, restored, "at the snapshot's index")

	behind := newTestFSM(t)
	restored, err = behind.RestoreIfBehind(store)
	require.NoError(t, err)
	assert.True(t, restored)
	requireSameState(t, src, behind, 2)

	restored, err = newTestFSM(t).RestoreIfBehind(raft.NewInmemSnapshotStore())
	require.NoError(t, err)
	assert.False(t, restored, "no snapshot")
}
