package placement

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// persist takes a snapshot of f into store and returns its id.
func persist(t testing.TB, f *FSM, store raft.SnapshotStore) string {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	sink, err := store.Create(raft.SnapshotVersionMax, f.AppliedIndex(), 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	require.NoError(t, snap.Persist(sink))
	return sink.ID()
}

// snapshotBytes returns a snapshot of f as bytes.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	store := raft.NewInmemSnapshotStore()
	id := persist(t, f, store)
	_, rc, err := store.Open(id)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// populate builds a table with every kind of record.
func populate(t testing.TB, d *driver) {
	t.Helper()
	d.joinRegions("eu", "us", "ap")
	require.NoError(t, d.join(member("eu", "n2")).Err)
	d.mustSetRules("us", rl("eu/acct/", "ap", "eu"), rlMode("eu/", "eu", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE), rl("us/", "us"))
	for i := range 50 {
		require.NoError(t, d.pin(fmt.Sprintf("pinned/%d", i), []string{"eu", "us", "ap"}[i%3]).Err)
	}
	require.True(t, d.unpin("pinned/7").Existed)
}

func TestSnapshotRestoreIntoAnotherFSM(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	populate(t, d)
	want := dumpOf(t, f)

	g := newTestFSM(t)
	gd := newDriver(t, g)
	gd.joinRegions("zz") // state that the restore replaces
	require.NoError(t, gd.pin("zz/1", "zz").Err)
	ch := g.Changed()
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))))
	select {
	case <-ch:
	default:
		t.Fatal("Restore did not signal Changed")
	}
	requireSameDump(t, want, dumpOf(t, g))
	for i := range 50 {
		e := fmt.Sprintf("pinned/%d", i)
		assert.Equal(t, f.Lookup(e), g.Lookup(e), e)
	}
	assert.Equal(t, Placement{Entity: "zz/1", Home: "us", Mode: meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME,
		Epoch: want.DefaultEpoch, Source: meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT}, g.Lookup("zz/1"))

	// The restored state is in Badger too, and applies continue from it.
	dir := g.cfg.Dir
	require.NoError(t, g.Close())
	h := openTestFSM(t, dir)
	defer h.Close()
	requireSameDump(t, want, dumpOf(t, h))
	d.f = h
	require.NoError(t, d.pin("after/1", "ap").Err)
	assert.Equal(t, "ap", h.Lookup("after/1").Home)

	// And a snapshot of the restored state is byte-identical.
	assert.Equal(t, snapshotBytes(t, f), func() []byte {
		k := newTestFSM(t)
		require.NoError(t, k.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))))
		return snapshotBytes(t, k)
	}())
}

func TestSnapshotOfAnEmptyTable(t *testing.T) {
	f := newTestFSM(t)
	g := newTestFSM(t)
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))))
	requireSameDump(t, dumpOf(t, f), dumpOf(t, g))
}

// TestSnapshotIsAtItsReadTimestamp: entries applied after Snapshot are not in it.
func TestSnapshotIsAtItsReadTimestamp(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	populate(t, d)
	want := dumpOf(t, f)
	snap, err := f.Snapshot()
	require.NoError(t, err)
	require.NoError(t, d.pin("later/1", "eu").Err)
	d.mustSetRules("eu")

	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, want.Applied, 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	require.NoError(t, snap.Persist(sink))
	snap.Release()
	snap.Release() // twice is fine
	_, rc, err := store.Open(sink.ID())
	require.NoError(t, err)
	g := newTestFSM(t)
	require.NoError(t, g.Restore(rc))
	requireSameDump(t, want, dumpOf(t, g))
}

// corruptions returns named corruptions of a valid snapshot.
func corruptions(t testing.TB, good []byte) map[string][]byte {
	t.Helper()
	flip := func(i int) []byte {
		b := slices.Clone(good)
		b[i] ^= 0xff
		return b
	}
	// Re-encode the records with one changed, to break invariants rather than bytes.
	records := decodeRecords(t, good)
	reencode := func(edit func([]*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord) []byte {
		var rs []*meridianv1.PlacementSnapshotRecord
		for _, r := range records {
			rs = append(rs, proto.Clone(r).(*meridianv1.PlacementSnapshotRecord))
		}
		return encodeRecords(t, good, edit(rs))
	}
	last := len(records) - 1 // a pin
	return map[string][]byte{
		"empty":          nil,
		"bad magic":      flip(0),
		"header cut":     good[:10],
		"huge header":    append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff),
		"cut mid-record": good[:len(good)-5],
		"no end record":  good[:len(good)-1],
		"trailing bytes": append(slices.Clone(good), 0),
		"flipped byte":   flip(len(good) / 2),
		"state mismatch": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			r[0].GetState().AppliedIndex++
			return r
		}),
		"rules missing": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			return slices.Delete(r, 1, 2)
		}),
		"pins out of order": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			r[last], r[last-1] = r[last-1], r[last]
			return r
		}),
		"duplicate pin": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			return append(r, r[last])
		}),
		"pin to unknown region": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			r[last].GetPin().Region = "zz"
			return r
		}),
		"pin epoch above applied": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			r[last].GetPin().Epoch = 1 << 40
			return r
		}),
		"shadowed rules": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			r[1].GetRules().Rules[0].Prefix = "e"
			return r
		}),
		"bad member": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			r[2].GetMember().Id = "nope"
			return r
		}),
		"empty record kind": reencode(func(r []*meridianv1.PlacementSnapshotRecord) []*meridianv1.PlacementSnapshotRecord {
			return append(r[:2], append([]*meridianv1.PlacementSnapshotRecord{{}}, r[2:]...)...)
		}),
	}
}

// decodeRecords splits a snapshot into its records (without the end record).
func decodeRecords(t testing.TB, b []byte) []*meridianv1.PlacementSnapshotRecord {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	_, err := readSnapshotHeader(br)
	require.NoError(t, err)
	var out []*meridianv1.PlacementSnapshotRecord
	for {
		n, err := readUvarint(br)
		require.NoError(t, err)
		if n == 0 {
			return out
		}
		buf := make([]byte, n)
		_, err = io.ReadFull(br, buf)
		require.NoError(t, err)
		r := &meridianv1.PlacementSnapshotRecord{}
		require.NoError(t, proto.Unmarshal(buf, r))
		out = append(out, r)
	}
}

func readUvarint(br *bufio.Reader) (uint64, error) {
	var x uint64
	for s := uint(0); ; s += 7 {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << s
		if c < 0x80 {
			return x, nil
		}
	}
}

// encodeRecords writes good's header and the given records and an end record.
func encodeRecords(t testing.TB, good []byte, records []*meridianv1.PlacementSnapshotRecord) []byte {
	t.Helper()
	hdr, err := readSnapshotHeader(bytes.NewReader(good))
	require.NoError(t, err)
	hb, err := proto.Marshal(hdr)
	require.NoError(t, err)
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	buf.Write([]byte{0, 0, 0, byte(len(hb))})
	buf.Write(hb)
	for _, r := range records {
		b, err := proto.Marshal(r)
		require.NoError(t, err)
		buf.Write(appendUvarint(nil, uint64(len(b))))
		buf.Write(b)
	}
	buf.WriteByte(0)
	return buf.Bytes()
}

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

func TestRestoreRejectsCorruptSnapshotAndKeepsState(t *testing.T) {
	src := newTestFSM(t)
	populate(t, newDriver(t, src))
	good := snapshotBytes(t, src)
	// The re-encoder itself is faithful.
	g0 := newTestFSM(t)
	require.NoError(t, g0.Restore(io.NopCloser(bytes.NewReader(encodeRecords(t, good, decodeRecords(t, good))))))

	for name, bad := range corruptions(t, good) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := openTestFSM(t, dir)
			d := newDriver(t, f)
			d.joinRegions("eu")
			require.NoError(t, d.pin("mine/1", "eu").Err)
			want := dumpOf(t, f)
			err := f.Restore(io.NopCloser(bytes.NewReader(bad)))
			require.ErrorIs(t, err, ErrCorruptState)
			requireSameDump(t, want, dumpOf(t, f))
			require.NoError(t, d.pin("mine/2", "eu").Err, "apply continues after a rejected snapshot")
			want = dumpOf(t, f)
			require.NoError(t, f.Close())
			g := openTestFSM(t, dir)
			defer g.Close()
			requireSameDump(t, want, dumpOf(t, g))
		})
	}
}

var errCrash = errors.New("crash point")

// TestRestoreIfNeeded: at open, the newest snapshot is restored after a
// crash mid-restore (the marker) and when Badger is behind it.
func TestRestoreIfNeeded(t *testing.T) {
	src := newTestFSM(t)
	populate(t, newDriver(t, src))
	want := dumpOf(t, src)
	store := raft.NewInmemSnapshotStore()
	persist(t, src, store)

	t.Run("crash mid-restore", func(t *testing.T) {
		dir := t.TempDir()
		crash := true
		f, err := OpenFSM(StoreConfig{Dir: dir, Logger: testLogger(), Knobs: &TestingKnobs{AfterRestoreDrop: func() error {
			if crash {
				return errCrash
			}
			return nil
		}}})
		require.NoError(t, err)
		d := newDriver(t, f)
		d.joinRegions("zz")
		old := dumpOf(t, f)
		_, rc, err := store.Open(persistID(t, store))
		require.NoError(t, err)
		require.ErrorIs(t, f.Restore(rc), errCrash)
		requireSameDump(t, old, dumpOf(t, f)) // readers still see the old table
		require.Panics(t, func() { d.join(member("zz", "n2")) }, "apply must not build on a partial state")
		_, err = f.Snapshot()
		require.Error(t, err)
		require.NoError(t, f.Close())

		crash = false
		g, err := OpenFSM(StoreConfig{Dir: dir, Logger: testLogger()})
		require.NoError(t, err)
		defer g.Close()
		restored, err := g.RestoreIfNeeded(store)
		require.NoError(t, err)
		assert.True(t, restored)
		requireSameDump(t, want, dumpOf(t, g))
		restored, err = g.RestoreIfNeeded(store)
		require.NoError(t, err)
		assert.False(t, restored, "once restored, nothing to do")
	})
	t.Run("behind the newest snapshot", func(t *testing.T) {
		f := newTestFSM(t)
		restored, err := f.RestoreIfNeeded(store)
		require.NoError(t, err)
		assert.True(t, restored)
		requireSameDump(t, want, dumpOf(t, f))
	})
	t.Run("up to date", func(t *testing.T) {
		f := newTestFSM(t)
		require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, src)))))
		restored, err := f.RestoreIfNeeded(store)
		require.NoError(t, err)
		assert.False(t, restored)
	})
	t.Run("no snapshot", func(t *testing.T) {
		f := newTestFSM(t)
		restored, err := f.RestoreIfNeeded(raft.NewInmemSnapshotStore())
		require.NoError(t, err)
		assert.False(t, restored)
	})
	t.Run("marker without a snapshot", func(t *testing.T) {
		dir := t.TempDir()
		f, err := OpenFSM(StoreConfig{Dir: dir, Logger: testLogger(), Knobs: &TestingKnobs{AfterRestoreDrop: func() error { return errCrash }}})
		require.NoError(t, err)
		require.ErrorIs(t, f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, src)))), errCrash)
		require.NoError(t, f.Close())
		g := openTestFSM(t, dir)
		defer g.Close()
		_, err = g.RestoreIfNeeded(raft.NewInmemSnapshotStore())
		require.ErrorIs(t, err, ErrCorruptState)
	})
}

func persistID(t testing.TB, store raft.SnapshotStore) string {
	t.Helper()
	metas, err := store.List()
	require.NoError(t, err)
	require.NotEmpty(t, metas)
	return metas[0].ID
}

// TestLookupsDuringApplyAndRestore: readers run while entries apply and a
// snapshot is restored; every entity's epoch only grows, and after the
// restore readers see exactly the snapshot's table. Run with -race.
func TestLookupsDuringApplyAndRestore(t *testing.T) {
	src := newTestFSM(t)
	sd := newDriver(t, src)
	populate(t, sd)
	for i := range 20 {
		require.NoError(t, sd.pin(fmt.Sprintf("pinned/%d", i), "ap").Err)
		require.True(t, sd.unpin(fmt.Sprintf("pinned/%d", i+20)).Existed)
	}
	want := dumpOf(t, src)
	snap := snapshotBytes(t, src)

	f := newTestFSM(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var lookups atomic.Int64
	entities := append(slices.Clone(probeEntities), "pinned/1", "pinned/21", "pinned/33")
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]uint64{}
			for !stop.Load() {
				for _, e := range entities {
					p := f.Lookup(e)
					if p.Epoch < last[e] {
						errs <- fmt.Errorf("%q: epoch %d after %d", e, p.Epoch, last[e])
						return
					}
					last[e] = p.Epoch
					_ = f.PinCount()
					lookups.Add(1)
				}
			}
		}()
	}
	// Apply the first half of src's log, then restore src's snapshot.
	half := len(sd.entries) / 2
	for _, l := range sd.entries[:half] {
		_ = f.Apply(l)
	}
	waitFor(t, 10*time.Second, "readers to run", func() bool { return lookups.Load() > 1000 })
	require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(snap))))
	for _, l := range sd.entries[half:] {
		assert.Nil(t, f.Apply(l), "covered by the snapshot")
	}
	start := lookups.Load()
	waitFor(t, 10*time.Second, "readers to run after the restore", func() bool { return lookups.Load() > start+1000 })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	requireSameDump(t, want, dumpOf(t, f))
}

// FuzzRestore: the snapshot decoder rejects what it cannot hold to the
// table's invariants, never panics, and what it accepts survives a second
// trip through Badger and a snapshot unchanged. Seeds: testdata/fuzz/FuzzRestore.
func FuzzRestore(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		st, s, err := readSnapshot(bytes.NewReader(b))
		if err != nil {
			require.ErrorIs(t, err, ErrCorruptState)
			return
		}
		require.NotNil(t, st)
		for e, pe := range s.pins {
			require.NoError(t, ValidateEntity(e))
			require.True(t, s.members.known[s.names.list[pe.region]])
		}
		fsm := newTestFSM(t)
		require.NoError(t, fsm.Restore(io.NopCloser(bytes.NewReader(b))))
		again := snapshotBytes(t, fsm)
		_, s2, err := readSnapshot(bytes.NewReader(again))
		require.NoError(t, err)
		require.Equal(t, len(s.pins), len(s2.pins))
		require.True(t, proto.Equal(s.rules.proto(), s2.rules.proto()))
		require.Equal(t, len(s.members.sorted), len(s2.members.sorted))
	})
}
