package region

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestApplyExpectedVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing int // events already in the stream
		expected *meridianv1.ExpectedVersion
		wantText string // "" = success, else VersionConflictError.Expected
	}{
		{"unset on empty", 0, anyV(), ""},
		{"unset on existing", 2, anyV(), ""},
		{"any on empty", 0, explicitAny(), ""},
		{"any on existing", 2, explicitAny(), ""},
		{"no_stream on empty", 0, noStream(), ""},
		{"no_stream on existing", 2, noStream(), "no_stream"},
		{"stream_exists on empty", 0, streamExists(), "stream_exists"},
		{"stream_exists on existing", 2, streamExists(), ""},
		{"exact 0 on empty", 0, exact(0), ""},
		{"exact 0 on existing", 2, exact(0), "0"},
		{"exact head", 2, exact(2), ""},
		{"exact behind head", 2, exact(1), "1"},
		{"exact beyond head", 2, exact(3), "3"},
		{"exact on empty", 0, exact(1), "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newDriver(t, f)
			for i := 0; i < tc.existing; i++ {
				d.mustAppend(op("s", nil, ev(100+i, "Seed", "")))
			}
			before := f.ApplyState()
			r := d.one(op("s", tc.expected, ev(1, "T", "x"), ev(2, "T", "y")))
			evs, head := readAll(t, f, "s")
			if tc.wantText == "" {
				require.NoError(t, r.Err)
				assert.Equal(t, uint64(tc.existing+1), r.Resp.GetFirstVersion())
				assert.Equal(t, uint64(tc.existing+2), r.Resp.GetLastVersion())
				assert.Equal(t, uint64(tc.existing+2), head)
				assert.Len(t, evs, tc.existing+2)
				return
			}
			require.ErrorIs(t, r.Err, ErrWrongExpectedVersion)
			var vc *VersionConflictError
			require.True(t, errors.As(r.Err, &vc))
			assert.Equal(t, "s", vc.Entity)
			assert.Equal(t, tc.wantText, vc.Expected)
			assert.Equal(t, uint64(tc.existing), vc.Current)
			assert.Contains(t, r.Err.Error(), "current version is")
			// Nothing written: same head, same log, same vector.
			assert.Equal(t, uint64(tc.existing), head)
			after := f.ApplyState()
			assert.Equal(t, before.GetApplied(), after.GetApplied())
			assert.Equal(t, before.GetLastPosition(), after.GetLastPosition())
			assert.Equal(t, before.GetAppliedIndex()+1, after.GetAppliedIndex(), "a failed op still advances the applied index")
		})
	}
}

func TestApplyAtomicMultiEventAppend(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.mustAppend(op("other", nil, ev(50, "T", "o")))
	resp := d.mustAppend(op("order/1", noStream(), ev(1, "A", "1"), ev(2, "B", "2"), ev(3, "C", "3")))
	assert.Equal(t, uint64(1), resp.GetFirstVersion())
	assert.Equal(t, uint64(3), resp.GetLastVersion())
	assert.Equal(t, testRegion, resp.GetRegion())
	assert.True(t, proto.Equal(&meridianv1.Dot{Region: testRegion, Seq: 2}, resp.GetOrigin()), "%v", resp.GetOrigin())
	assert.False(t, resp.GetDuplicate())

	evs, head := readAll(t, f, "order/1")
	require.Len(t, evs, 3)
	assert.Equal(t, uint64(3), head)
	var prev hlc
	for i, e := range evs {
		assert.Equal(t, uint64(i+1), e.GetVersion())
		assert.Equal(t, id(i+1), e.GetId())
		assert.Equal(t, uint64(i+2), e.GetOrigin().GetSeq(), "dots are consecutive")
		assert.Equal(t, uint64(i+2), e.GetPosition(), "positions are consecutive")
		h := hlcOf(e.GetHlc())
		assert.True(t, prev.less(h), "HLCs strictly increase")
		prev = h
	}
	assert.True(t, proto.Equal(resp.GetHlc(), evs[0].GetHlc()))

	// A failing three-event append writes none of its events.
	r := d.one(op("order/1", exact(1), ev(4, "A", ""), ev(5, "B", ""), ev(6, "C", "")))
	require.ErrorIs(t, r.Err, ErrWrongExpectedVersion)
	evs, head = readAll(t, f, "order/1")
	assert.Len(t, evs, 3)
	assert.Equal(t, uint64(3), head)
	assert.Len(t, readLog(t, f), 4)
	st := f.ApplyState()
	assert.Equal(t, uint64(4), st.GetApplied()[testRegion])
	assert.Equal(t, uint64(4), st.GetLastPosition())
	// Its ids were not recorded: they can be used by a later append.
	d.mustAppend(op("order/1", exact(3), ev(4, "A", "")))
}

func TestApplyBatchOpsSucceedOrFailAlone(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	res := d.batch(
		op("a", noStream(), ev(1, "T", "")),
		op("a", noStream(), ev(2, "T", "")), // fails: the first op created the stream
		op("a", exact(1), ev(3, "T", "")),   // sees the first op's write
		op("", nil, ev(4, "T", "")),         // invalid
		op("b", nil, ev(5, "T", ""), ev(6, "T", "")),
	)
	require.NoError(t, res[0].Err)
	require.ErrorIs(t, res[1].Err, ErrWrongExpectedVersion)
	require.NoError(t, res[2].Err)
	require.ErrorIs(t, res[3].Err, ErrInvalidArgument)
	require.NoError(t, res[4].Err)
	assert.Equal(t, uint64(2), res[2].Resp.GetFirstVersion())
	assert.Equal(t, uint64(3), res[4].Resp.GetOrigin().GetSeq())

	log := readLog(t, f)
	require.Len(t, log, 4)
	var got []string
	for i, e := range log {
		assert.Equal(t, uint64(i+1), e.GetPosition())
		assert.Equal(t, uint64(i+1), e.GetOrigin().GetSeq())
		got = append(got, e.GetId())
	}
	assert.Equal(t, []string{id(1), id(3), id(5), id(6)}, got)
	// HLCs increase along the apply log, across ops and batches.
	d.mustAppend(op("c", nil, ev(7, "T", "")))
	log = readLog(t, f)
	for i := 1; i < len(log); i++ {
		assert.True(t, hlcOf(log[i-1].GetHlc()).less(hlcOf(log[i].GetHlc())), "position %d", i+1)
	}
}

// TestApplyHLCMonotonicAcrossBatches: a batch whose leader stamp is at or
// below the last applied HLC still gets strictly increasing event HLCs.
func TestApplyHLCMonotonicAcrossBatches(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.batchAt(testBase, op("a", nil, ev(1, "T", ""), ev(2, "T", ""), ev(3, "T", "")))
	d.batchAt(testBase, op("a", nil, ev(4, "T", "")))   // same stamp
	d.batchAt(testBase-5, op("a", nil, ev(5, "T", ""))) // older stamp (new leader with a slower clock)
	evs, _ := readAll(t, f, "a")
	require.Len(t, evs, 5)
	for i := 1; i < len(evs); i++ {
		assert.True(t, hlcOf(evs[i-1].GetHlc()).less(hlcOf(evs[i].GetHlc())), "version %d", i+1)
	}
	assert.True(t, proto.Equal(evs[4].GetHlc(), f.ApplyState().GetLastHlc()))
	// Logical overflow carries into the wall.
	assert.Equal(t, hlc{wall: 8}, hlc{wall: 7, logical: ^uint32(0)}.tick())
}

func TestApplyIdempotency(t *testing.T) {
	window := 24 * time.Hour
	for _, tc := range []struct {
		name    string
		retry   *meridianv1.AppendOp
		at      time.Duration // retry's batch time after the original
		wantErr error         // nil = duplicate with the original result
		wantNew bool          // the retry is a fresh append (window expired)
		wantIn  string
	}{
		{name: "same content", retry: op("s", noStream(), ev(1, "A", "x"), ev(2, "B", "y")), at: time.Second},
		{name: "same content any expected", retry: op("s", nil, ev(1, "A", "x"), ev(2, "B", "y")), at: time.Second},
		{name: "same content metadata order", retry: op("s", noStream(), ev(1, "A", "x"), ev(2, "B", "y")), at: time.Hour},
		{name: "different data", retry: op("s", noStream(), ev(1, "A", "x"), ev(2, "B", "z")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "events[1].id"},
		{name: "different type", retry: op("s", noStream(), ev(1, "X", "x"), ev(2, "B", "y")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "other content"},
		{name: "different entity", retry: op("t", noStream(), ev(1, "A", "x"), ev(2, "B", "y")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: `entity "s"`},
		{name: "subset of ids", retry: op("s", nil, ev(1, "A", "x")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "held 2 events"},
		{name: "second id only", retry: op("s", nil, ev(2, "B", "y")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "versions 1 to 2"},
		{name: "known and new ids", retry: op("s", nil, ev(1, "A", "x"), ev(2, "B", "y"), ev(3, "C", "")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "events[2].id"},
		{name: "new then known id", retry: op("s", nil, ev(3, "C", ""), ev(1, "A", "x")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "was appended before but events[0].id"},
		{name: "reordered", retry: op("s", nil, ev(2, "B", "y"), ev(1, "A", "x")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "repeat that append exactly"},
		{name: "after the window", retry: op("s", nil, ev(1, "A", "x"), ev(2, "B", "y")), at: window + time.Second, wantNew: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newDriver(t, f)
			t0 := testBase
			orig := d.batchAt(t0, op("s", noStream(), ev(1, "A", "x"), ev(2, "B", "y")))[0]
			require.NoError(t, orig.Err)
			d.mustAppend(op("u", nil, ev(9, "T", ""))) // the stream moves on elsewhere
			before := f.ApplyState()
			logBefore := readLog(t, f)

			r := d.batchAt(t0+int64(tc.at), tc.retry)[0]
			switch {
			case tc.wantNew:
				require.NoError(t, r.Err)
				assert.False(t, r.Resp.GetDuplicate())
				assert.Equal(t, uint64(3), r.Resp.GetFirstVersion())
				return
			case tc.wantErr != nil:
				require.ErrorIs(t, r.Err, tc.wantErr)
				assert.Contains(t, r.Err.Error(), tc.wantIn)
			default:
				require.NoError(t, r.Err)
				assert.True(t, r.Resp.GetDuplicate())
				want := proto.Clone(orig.Resp).(*meridianv1.AppendResponse)
				want.Duplicate = true
				assert.True(t, proto.Equal(want, r.Resp), "retry %v, original %v", r.Resp, orig.Resp)
			}
			// Nothing written by the retry.
			after := f.ApplyState()
			assert.Equal(t, before.GetApplied(), after.GetApplied())
			assert.Equal(t, before.GetLastPosition(), after.GetLastPosition())
			assert.Len(t, readLog(t, f), len(logBefore))
			_, head := readAll(t, f, "s")
			assert.Equal(t, uint64(2), head)
		})
	}
}

func TestApplyIdempotencyMetadataOrderIrrelevant(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	mk := func() *meridianv1.ProposedEvent {
		e := ev(1, "T", "x")
		e.Metadata = map[string]string{"a": "1", "b": "2", "c": "3"}
		return e
	}
	d.mustAppend(op("s", nil, mk()))
	r := d.one(op("s", nil, mk()))
	require.NoError(t, r.Err)
	assert.True(t, r.Resp.GetDuplicate())
	e := mk()
	e.Metadata["a"] = "other"
	require.ErrorIs(t, d.one(op("s", nil, e)).Err, ErrIdempotencyConflict)
}

// TestApplyIdempotencyWithinOneBatch: two ops with the same ids in one entry
// (a client retry that raced its original into the same batch).
func TestApplyIdempotencyWithinOneBatch(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	res := d.batch(op("s", noStream(), ev(1, "A", "x")), op("s", noStream(), ev(1, "A", "x")), op("s", nil, ev(1, "A", "other")))
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	assert.True(t, res[1].Resp.GetDuplicate())
	assert.True(t, proto.Equal(res[0].Resp.GetOrigin(), res[1].Resp.GetOrigin()))
	require.ErrorIs(t, res[2].Err, ErrIdempotencyConflict)
	evs, _ := readAll(t, f, "s")
	assert.Len(t, evs, 1)
}

// TestApplyIdempotencyWindowStampedByBatch: the batch's window wins over the
// configured one, so replicas with different configs still agree.
func TestApplyIdempotencyWindowStampedByBatch(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	e := func(n int) *raft.Log {
		return d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: testBase + int64(n)*int64(time.Minute)},
			IdempotencyWindowSeconds: 60, Ops: []*meridianv1.AppendOp{op("s", nil, ev(1, "A", "x"))}})
	}
	first := f.Apply(e(0)).(*BatchResult).Ops[0]
	require.NoError(t, first.Err)
	second := f.Apply(e(2)).(*BatchResult).Ops[0] // 2 minutes later, window 1 minute
	require.NoError(t, second.Err)
	assert.False(t, second.Resp.GetDuplicate())
	assert.Equal(t, uint64(2), second.Resp.GetFirstVersion())
}

func TestApplyRejectsMalformedAndOversized(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	huge := ev(1, "T", "")
	huge.Data = make([]byte, HardLimits().EventBytesMax+1)
	for _, tc := range []struct {
		name  string
		op    *meridianv1.AppendOp
		field string
	}{
		{"nil op (an empty op on the wire)", nil, "entity"},
		{"bad entity", op("/x", nil, ev(1, "T", "")), "entity"},
		{"empty append", op("x", nil), "events"},
		{"bad uuid", op("x", nil, &meridianv1.ProposedEvent{Id: "1234", Type: "T"}), "events[0].id"},
		{"duplicate ids", op("x", nil, ev(1, "T", ""), ev(1, "T", "")), "events[1].id"},
		{"event over the hard limit", op("x", nil, huge), "events[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.one(tc.op)
			var ia *InvalidArgumentError
			require.True(t, errors.As(r.Err, &ia), "%v", r.Err)
			assert.Equal(t, tc.field, ia.Field)
			assert.Nil(t, r.Resp)
		})
	}
	assert.Empty(t, readLog(t, f))
}

// TestApplyEntryTooLarge: ops that do not fit the entry's Badger transaction
// fail alone and deterministically; the others apply.
func TestApplyEntryTooLarge(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	bigOp := func(entity string, firstID int) *meridianv1.AppendOp {
		o := op(entity, nil)
		for i := 0; i < 4; i++ {
			e := ev(firstID+i, "T", "")
			e.Data = make([]byte, 1<<20-64)
			o.Events = append(o.Events, e)
		}
		return o
	}
	res := d.batch(bigOp("a", 10), bigOp("b", 20), bigOp("c", 30), op("d", nil, ev(1, "T", "small")))
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	require.ErrorIs(t, res[2].Err, ErrEntryTooLarge)
	require.NoError(t, res[3].Err, "a small op after a rejected one still fits")
	_, head := readAll(t, f, "c")
	assert.Zero(t, head)
	assert.Less(t, int64(EntryBytesMax), f.h.db.MaxBatchSize(), "EntryBytesMax must fit Badger's transaction")
}

func TestApplyNonCommandEntriesAdvanceIndex(t *testing.T) {
	f := newTestFSM(t)
	for i, typ := range []raft.LogType{raft.LogNoop, raft.LogConfiguration, raft.LogBarrier} {
		assert.Nil(t, f.Apply(&raft.Log{Index: uint64(i + 1), Term: 2, Type: typ}))
		assert.Equal(t, uint64(i+1), f.AppliedIndex())
	}
	assert.Equal(t, uint64(2), f.ApplyState().GetAppliedTerm())
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte{0xff, 0x01}},
		{"unknown version", func() []byte {
			b, _ := proto.Marshal(&meridianv1.Command{Version: 9, Type: meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH})
			return b
		}()},
		{"unknown type", func() []byte { b, _ := proto.Marshal(&meridianv1.Command{Version: 1, Type: 42}); return b }()},
		{"bad payload", func() []byte {
			b, _ := proto.Marshal(&meridianv1.Command{Version: 1, Type: meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, Payload: []byte{0xff}})
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			require.Panics(t, func() { f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: tc.data}) })
			assert.Zero(t, f.AppliedIndex(), "a panicking entry is not recorded as applied")
		})
	}
}

// TestApplySkipsAppliedEntriesAfterReopen simulates hashicorp/raft re-applying
// the log after a restart: entries at or below the stored applied index are
// skipped, later ones apply.
func TestApplySkipsAppliedEntriesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	d := newDriver(t, f)
	var entries []*raft.Log
	for i := 0; i < 3; i++ {
		l := d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: testBase + int64(i)},
			Ops: []*meridianv1.AppendOp{op("s", nil, ev(i+1, "T", strings.Repeat("x", i)))}})
		entries = append(entries, l)
		require.IsType(t, &BatchResult{}, f.Apply(l))
	}
	// Re-applying in the same process is skipped too.
	assert.Nil(t, f.Apply(entries[2]))
	want := f.ApplyState()
	require.NoError(t, f.Close())

	f = openTestFSM(t, dir)
	defer f.Close()
	assert.Equal(t, uint64(3), f.AppliedIndex())
	assert.True(t, proto.Equal(want, f.ApplyState()))
	for _, l := range entries {
		assert.Nil(t, f.Apply(l), "entry %d", l.Index)
	}
	evs, head := readAll(t, f, "s")
	assert.Equal(t, uint64(3), head)
	assert.Len(t, evs, 3)
	assert.True(t, proto.Equal(want, f.ApplyState()))

	// Entry 4 applies; a new entry with index 2 (below) is ignored whatever it holds.
	d = newDriver(t, f)
	d.mustAppend(op("s", exact(3), ev(4, "T", "")))
	assert.Nil(t, f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("garbage")}))
	_, head = readAll(t, f, "s")
	assert.Equal(t, uint64(4), head)
}

func TestApplyAfterCloseReturnsErrStoreClosed(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	require.NoError(t, f.Close())
	r := f.Apply(&raft.Log{Index: 1, Type: raft.LogNoop})
	err, ok := r.(error)
	require.True(t, ok)
	require.ErrorIs(t, err, ErrStoreClosed)
	require.NoError(t, f.Close(), "Close is idempotent")
}

func TestOpenFSMValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  StoreConfig
	}{
		{"no dir", StoreConfig{Region: "r"}},
		{"no region", StoreConfig{Dir: t.TempDir()}},
		{"region with slash", StoreConfig{Dir: t.TempDir(), Region: "a/b"}},
		{"tiny window", StoreConfig{Dir: t.TempDir(), Region: "r", IdempotencyWindow: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenFSM(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}
