package region

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
		{"unset on empty", 0, expUnset(), ""},
		{"unset on existing", 2, expUnset(), ""},
		{"any on empty", 0, expAny(), ""},
		{"any on existing", 2, expAny(), ""},
		{"no_stream on empty", 0, expNoStream(), ""},
		{"no_stream on existing", 2, expNoStream(), "no_stream"},
		{"stream_exists on empty", 0, expStreamExists(), "stream_exists"},
		{"stream_exists on existing", 2, expStreamExists(), ""},
		{"exact 0 on empty", 0, expExact(0), ""},
		{"exact 0 on existing", 2, expExact(0), "0"},
		{"exact head", 2, expExact(2), ""},
		{"exact behind head", 2, expExact(1), "1"},
		{"exact beyond head", 2, expExact(3), "3"},
		{"exact on empty", 0, expExact(1), "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newFSMDriver(t, f)
			for i := 0; i < tc.existing; i++ {
				d.mustAppend(aop("s", nil, pev(100+i, "Seed", "")))
			}
			before := f.ApplyState()
			r := d.one(aop("s", tc.expected, pev(1, "T", "x"), pev(2, "T", "y")))
			evs, head := fsmReadAll(t, f, "s")
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
	d := newFSMDriver(t, f)
	d.mustAppend(aop("other", nil, pev(50, "T", "o")))
	resp := d.mustAppend(aop("order/1", expNoStream(), pev(1, "A", "1"), pev(2, "B", "2"), pev(3, "C", "3")))
	assert.Equal(t, uint64(1), resp.GetFirstVersion())
	assert.Equal(t, uint64(3), resp.GetLastVersion())
	assert.Equal(t, testRegion, resp.GetRegion())
	assert.True(t, proto.Equal(&meridianv1.Dot{Region: testRegion, Seq: 2}, resp.GetOrigin()), "%v", resp.GetOrigin())
	assert.False(t, resp.GetDuplicate())

	evs, head := fsmReadAll(t, f, "order/1")
	require.Len(t, evs, 3)
	assert.Equal(t, uint64(3), head)
	var prev hlc
	for i, e := range evs {
		assert.Equal(t, uint64(i+1), e.GetVersion())
		assert.Equal(t, eid(i+1), e.GetId())
		assert.Equal(t, uint64(i+2), e.GetOrigin().GetSeq(), "dots are consecutive")
		assert.Equal(t, uint64(i+2), e.GetPosition(), "positions are consecutive")
		h := hlcOf(e.GetHlc())
		assert.True(t, prev.less(h), "HLCs strictly increase")
		prev = h
	}
	assert.True(t, proto.Equal(resp.GetHlc(), evs[0].GetHlc()))

	// A failing three-event append writes none of its events.
	r := d.one(aop("order/1", expExact(1), pev(4, "A", ""), pev(5, "B", ""), pev(6, "C", "")))
	require.ErrorIs(t, r.Err, ErrWrongExpectedVersion)
	evs, head = fsmReadAll(t, f, "order/1")
	assert.Len(t, evs, 3)
	assert.Equal(t, uint64(3), head)
	assert.Len(t, fsmReadLog(t, f), 4)
	st := f.ApplyState()
	assert.Equal(t, uint64(4), st.GetApplied()[testRegion])
	assert.Equal(t, uint64(4), st.GetLastPosition())
	// Its ids were not recorded: they can be used by a later append.
	d.mustAppend(aop("order/1", expExact(3), pev(4, "A", "")))
}

func TestApplyBatchOpsSucceedOrFailAlone(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	res := d.batch(
		aop("a", expNoStream(), pev(1, "T", "")),
		aop("a", expNoStream(), pev(2, "T", "")), // fails: the first op created the stream
		aop("a", expExact(1), pev(3, "T", "")),   // sees the first op's write
		aop("", nil, pev(4, "T", "")),            // invalid
		aop("b", nil, pev(5, "T", ""), pev(6, "T", "")),
	)
	require.NoError(t, res[0].Err)
	require.ErrorIs(t, res[1].Err, ErrWrongExpectedVersion)
	require.NoError(t, res[2].Err)
	require.ErrorIs(t, res[3].Err, ErrInvalidArgument)
	require.NoError(t, res[4].Err)
	assert.Equal(t, uint64(2), res[2].Resp.GetFirstVersion())
	assert.Equal(t, uint64(3), res[4].Resp.GetOrigin().GetSeq())

	log := fsmReadLog(t, f)
	require.Len(t, log, 4)
	var got []string
	for i, e := range log {
		assert.Equal(t, uint64(i+1), e.GetPosition())
		assert.Equal(t, uint64(i+1), e.GetOrigin().GetSeq())
		got = append(got, e.GetId())
	}
	assert.Equal(t, []string{eid(1), eid(3), eid(5), eid(6)}, got)
	// HLCs increase along the apply log, across ops and batches.
	d.mustAppend(aop("c", nil, pev(7, "T", "")))
	log = fsmReadLog(t, f)
	for i := 1; i < len(log); i++ {
		assert.True(t, hlcOf(log[i-1].GetHlc()).less(hlcOf(log[i].GetHlc())), "position %d", i+1)
	}
}

// TestApplyHLCMonotonicAcrossBatches: a batch whose leader stamp is at or
// below the last applied HLC still gets strictly increasing event HLCs.
func TestApplyHLCMonotonicAcrossBatches(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	d.batchAt(testBase, aop("a", nil, pev(1, "T", ""), pev(2, "T", ""), pev(3, "T", "")))
	d.batchAt(testBase, aop("a", nil, pev(4, "T", "")))   // same stamp
	d.batchAt(testBase-5, aop("a", nil, pev(5, "T", ""))) // older stamp (new leader with a slower clock)
	evs, _ := fsmReadAll(t, f, "a")
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
		{name: "same content", retry: aop("s", expNoStream(), pev(1, "A", "x"), pev(2, "B", "y")), at: time.Second},
		{name: "same content any expected", retry: aop("s", nil, pev(1, "A", "x"), pev(2, "B", "y")), at: time.Second},
		{name: "same content an hour later", retry: aop("s", expNoStream(), pev(1, "A", "x"), pev(2, "B", "y")), at: time.Hour},
		{name: "different data", retry: aop("s", expNoStream(), pev(1, "A", "x"), pev(2, "B", "z")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "events[1].id"},
		{name: "different type", retry: aop("s", expNoStream(), pev(1, "X", "x"), pev(2, "B", "y")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "other content"},
		{name: "different entity", retry: aop("t", expNoStream(), pev(1, "A", "x"), pev(2, "B", "y")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: `entity "s"`},
		{name: "subset of ids", retry: aop("s", nil, pev(1, "A", "x")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "held 2 events"},
		{name: "second id only", retry: aop("s", nil, pev(2, "B", "y")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "versions 1 to 2"},
		{name: "known and new ids", retry: aop("s", nil, pev(1, "A", "x"), pev(2, "B", "y"), pev(3, "C", "")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "events[2].id"},
		{name: "new then known id", retry: aop("s", nil, pev(3, "C", ""), pev(1, "A", "x")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "was appended before but events[0].id"},
		{name: "reordered", retry: aop("s", nil, pev(2, "B", "y"), pev(1, "A", "x")), at: time.Second, wantErr: ErrIdempotencyConflict, wantIn: "repeat that append exactly"},
		{name: "after the window", retry: aop("s", nil, pev(1, "A", "x"), pev(2, "B", "y")), at: window + time.Second, wantNew: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newFSMDriver(t, f)
			t0 := testBase
			orig := d.batchAt(t0, aop("s", expNoStream(), pev(1, "A", "x"), pev(2, "B", "y")))[0]
			require.NoError(t, orig.Err)
			d.mustAppend(aop("u", nil, pev(9, "T", ""))) // the stream moves on elsewhere
			before := f.ApplyState()
			logBefore := fsmReadLog(t, f)

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
			assert.Len(t, fsmReadLog(t, f), len(logBefore))
			_, head := fsmReadAll(t, f, "s")
			assert.Equal(t, uint64(2), head)
		})
	}
}

func TestApplyIdempotencyMetadataOrderIrrelevant(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	mk := func() *meridianv1.ProposedEvent {
		e := pev(1, "T", "x")
		e.Metadata = map[string]string{"a": "1", "b": "2", "c": "3"}
		return e
	}
	d.mustAppend(aop("s", nil, mk()))
	r := d.one(aop("s", nil, mk()))
	require.NoError(t, r.Err)
	assert.True(t, r.Resp.GetDuplicate())
	e := mk()
	e.Metadata["a"] = "other"
	require.ErrorIs(t, d.one(aop("s", nil, e)).Err, ErrIdempotencyConflict)
}

// TestApplyIdempotencyWithinOneBatch: two ops with the same ids in one entry
// (a client retry that raced its original into the same batch).
func TestApplyIdempotencyWithinOneBatch(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	res := d.batch(aop("s", expNoStream(), pev(1, "A", "x")), aop("s", expNoStream(), pev(1, "A", "x")), aop("s", nil, pev(1, "A", "other")))
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	assert.True(t, res[1].Resp.GetDuplicate())
	assert.True(t, proto.Equal(res[0].Resp.GetOrigin(), res[1].Resp.GetOrigin()))
	require.ErrorIs(t, res[2].Err, ErrIdempotencyConflict)
	evs, _ := fsmReadAll(t, f, "s")
	assert.Len(t, evs, 1)
}

// TestApplyIdempotencyWindowStampedByBatch: the batch's window wins over the
// configured one, so replicas with different configs still agree.
func TestApplyIdempotencyWindowStampedByBatch(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	e := func(n int) *raft.Log {
		return d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: testBase + int64(n)*int64(time.Minute)},
			IdempotencyWindowSeconds: 60, Ops: []*meridianv1.AppendOp{aop("s", nil, pev(1, "A", "x"))}})
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
	d := newFSMDriver(t, f)
	huge := pev(1, "T", "")
	huge.Data = make([]byte, HardLimits().EventBytesMax+1)
	for _, tc := range []struct {
		name  string
		op    *meridianv1.AppendOp
		field string
	}{
		{"nil op (an empty op on the wire)", nil, "entity"},
		{"bad entity", aop("/x", nil, pev(1, "T", "")), "entity"},
		{"empty append", aop("x", nil), "events"},
		{"bad uuid", aop("x", nil, &meridianv1.ProposedEvent{Id: "1234", Type: "T"}), "events[0].id"},
		{"duplicate ids", aop("x", nil, pev(1, "T", ""), pev(1, "T", "")), "events[1].id"},
		{"event over the hard limit", aop("x", nil, huge), "events[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.one(tc.op)
			var ia *InvalidArgumentError
			require.True(t, errors.As(r.Err, &ia), "%v", r.Err)
			assert.Equal(t, tc.field, ia.Field)
			assert.Nil(t, r.Resp)
		})
	}
	assert.Empty(t, fsmReadLog(t, f))
}

// bigOp is an append of four ~1 MiB events.
func bigOp(entity string, firstID int) *meridianv1.AppendOp {
	o := aop(entity, nil)
	for i := 0; i < 4; i++ {
		e := pev(firstID+i, "T", "")
		e.Data = make([]byte, 1<<20-64)
		e.Data[0] = byte(firstID + i)
		o.Events = append(o.Events, e)
	}
	return o
}

// TestApplyLargeEntrySplitsTransactions: an entry whose ops do not fit one
// Badger transaction commits in several; every op applies.
func TestApplyLargeEntrySplitsTransactions(t *testing.T) {
	var splits atomic.Int32
	f, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: testRegion, Logger: fsmTestLogger(),
		Knobs: &TestingKnobs{AfterPartialCommit: func(uint64) { splits.Add(1) }}})
	require.NoError(t, err)
	defer f.Close()
	d := newFSMDriver(t, f)
	res := d.batch(bigOp("a", 10), bigOp("b", 20), bigOp("c", 30), aop("d", nil, pev(1, "T", "small")), bigOp("a", 40))
	for i, r := range res {
		require.NoError(t, r.Err, "op %d", i)
	}
	assert.Positive(t, splits.Load())
	log := fsmReadLog(t, f)
	require.Len(t, log, 17)
	for i, e := range log {
		assert.Equal(t, uint64(i+1), e.GetPosition())
		assert.Equal(t, uint64(i+1), e.GetOrigin().GetSeq())
	}
	_, head := fsmReadAll(t, f, "a")
	assert.Equal(t, uint64(8), head)
	assert.Equal(t, d.index, f.AppliedIndex())
}

// TestApplyCrashBetweenPartialCommits: a crash after an entry committed part
// of itself, then a replay of the entry, ends in the same state as an
// uninterrupted apply.
func TestApplyCrashBetweenPartialCommits(t *testing.T) {
	ref := newTestFSM(t)
	crashDir := t.TempDir()
	crashing, err := OpenFSM(StoreConfig{Dir: crashDir, Region: testRegion, Logger: fsmTestLogger(),
		Knobs: &TestingKnobs{AfterPartialCommit: func(uint64) { panic("crash point") }}})
	require.NoError(t, err)

	dr, dc := newFSMDriver(t, ref), newFSMDriver(t, crashing)
	first := aop("stream-0", nil, pev(1, "T", "x"))
	dr.mustAppend(first)
	dc.mustAppend(first)
	batch := &meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: testBase + 5}, Ops: []*meridianv1.AppendOp{
		bigOp("stream-0", 10), bigOp("stream-1", 20), aop("stream-0", expExact(5), pev(2, "T", "")), bigOp("stream-2", 30),
		aop("stream-1", nil, pev(20, "T", "")), // a retry of bigOp("stream-1")'s first id with other content
	}}
	lr, lc := dr.entry(batch), dc.entry(batch)
	want := ref.Apply(lr).(*BatchResult)
	require.NoError(t, want.Ops[2].Err)
	require.ErrorIs(t, want.Ops[4].Err, ErrIdempotencyConflict)

	require.PanicsWithValue(t, "crash point", func() { crashing.Apply(lc) })
	require.NoError(t, crashing.Close())
	re := openTestFSM(t, crashDir)
	defer re.Close()
	assert.Equal(t, lc.Index-1, re.AppliedIndex(), "a partly committed entry is not applied")
	got := re.Apply(lc).(*BatchResult)
	for i := range want.Ops {
		assert.Equal(t, want.Ops[i].Err == nil, got.Ops[i].Err == nil, "op %d: %v vs %v", i, want.Ops[i].Err, got.Ops[i].Err)
	}
	requireSameState(t, ref, re, 3)
}

// TestApplyLargestAppendFitsOneTransaction: the largest append HardLimits
// allow (1000 events, 256-byte entity, 4 MiB of event bytes) applies alone,
// without splitting.
func TestApplyLargestAppendFitsOneTransaction(t *testing.T) {
	var splits atomic.Int32
	f, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: testRegion, Logger: fsmTestLogger(),
		Knobs: &TestingKnobs{AfterPartialCommit: func(uint64) { splits.Add(1) }}})
	require.NoError(t, err)
	defer f.Close()
	lim := HardLimits()
	o := &meridianv1.AppendOp{Entity: strings.Repeat("e", lim.EntityBytesMax), Deps: map[string]uint64{}}
	for r := 0; r < 16; r++ {
		// Zero: covered by any applied vector (a dep this region has not
		// applied would refuse the append), and still a map entry's bytes.
		o.Deps[fmt.Sprintf("region-%d", r)] = 0
	}
	per := lim.AppendBytesMax / lim.AppendEventsMax
	for i := 0; i < lim.AppendEventsMax; i++ {
		e := pev(i+1, "T", "")
		e.Data = make([]byte, per-1)
		o.Events = append(o.Events, e)
	}
	require.NoError(t, ValidateAppend(o, lim))
	r := newFSMDriver(t, f).one(o)
	require.NoError(t, r.Err)
	assert.Zero(t, splits.Load())
	assert.Equal(t, uint64(lim.AppendEventsMax), r.Resp.GetLastVersion())
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
	d := newFSMDriver(t, f)
	var entries []*raft.Log
	for i := 0; i < 3; i++ {
		l := d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: testBase + int64(i)},
			Ops: []*meridianv1.AppendOp{aop("s", nil, pev(i+1, "T", strings.Repeat("x", i)))}})
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
	evs, head := fsmReadAll(t, f, "s")
	assert.Equal(t, uint64(3), head)
	assert.Len(t, evs, 3)
	assert.True(t, proto.Equal(want, f.ApplyState()))

	// Entry 4 applies; a new entry with index 2 (below) is ignored whatever it holds.
	d = newFSMDriver(t, f)
	d.mustAppend(aop("s", expExact(3), pev(4, "T", "")))
	assert.Nil(t, f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("garbage")}))
	_, head = fsmReadAll(t, f, "s")
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
		{"huge window", StoreConfig{Dir: t.TempDir(), Region: "r", IdempotencyWindow: 2 * idempotencyWindowMax}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenFSM(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

// batchEntries is a run of entries for the ApplyBatch tests: conflicts,
// idempotent retries across entries, a configuration entry, and big ops
// that split transactions. Entry indexes start at 1.
func batchEntries(t *testing.T) []*raft.Log {
	t.Helper()
	d := &fsmDriver{t: t, wall: testBase}
	e := func(ops ...*meridianv1.AppendOp) *raft.Log {
		d.wall += int64(time.Millisecond)
		return d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: d.wall}, Ops: ops})
	}
	logs := []*raft.Log{
		e(aop("stream-0", expNoStream(), pev(1, "T", "a")), aop("stream-1", nil, pev(2, "T", "b"))),
		e(aop("stream-0", expExact(1), pev(3, "T", "c")), aop("stream-0", expExact(1), pev(4, "T", "lost race"))),
		e(aop("stream-0", nil, pev(1, "T", "a"))), // a retry: the original result
		e(bigOp("stream-1", 10), bigOp("stream-2", 20)),
	}
	d.index++
	logs = append(logs, &raft.Log{Index: d.index, Term: 1, Type: raft.LogConfiguration})
	logs = append(logs,
		e(aop("stream-1", nil, pev(2, "T", "other content"))), // same id, other content
		e(bigOp("stream-0", 30), aop("stream-2", expExact(7), pev(40, "T", ""))),
	)
	return logs
}

// TestApplyBatchMatchesOneByOne: entries applied together (raft's
// BatchingFSM path, one Badger transaction) leave the same state and give
// the same results as applied one at a time; entries already applied are
// skipped.
func TestApplyBatchMatchesOneByOne(t *testing.T) {
	logs := batchEntries(t)
	one, batched := newTestFSM(t), newTestFSM(t)
	var want []any
	for _, l := range logs {
		want = append(want, one.Apply(l))
	}
	// The first two already applied here (as after a restart that replays them).
	batched.ApplyBatch(logs[:2])
	got := batched.ApplyBatch(logs)
	require.Len(t, got, len(logs))
	assert.Nil(t, got[0])
	assert.Nil(t, got[1])
	for i := 2; i < len(logs); i++ {
		if want[i] == nil {
			assert.Nil(t, got[i], "entry %d", i+1)
			continue
		}
		w, g := want[i].(*BatchResult), got[i].(*BatchResult)
		require.Len(t, g.Ops, len(w.Ops), "entry %d", i+1)
		for j := range w.Ops {
			assert.Equal(t, w.Ops[j].Err, g.Ops[j].Err, "entry %d op %d", i+1, j)
			assert.True(t, proto.Equal(w.Ops[j].Resp, g.Ops[j].Resp), "entry %d op %d: %v vs %v", i+1, j, w.Ops[j].Resp, g.Ops[j].Resp)
		}
	}
	assert.ErrorIs(t, want[1].(*BatchResult).Ops[1].Err, ErrWrongExpectedVersion)
	assert.ErrorIs(t, want[5].(*BatchResult).Ops[0].Err, ErrIdempotencyConflict)
	assert.Equal(t, uint64(len(logs)), batched.AppliedIndex())
	requireSameState(t, one, batched, 3)
}

// TestApplyBatchCrashBetweenPartialCommits: a crash while a batch of
// entries is written leaves the entries before the one being written
// applied and that one not; replaying the batch ends in the state of an
// uninterrupted apply.
func TestApplyBatchCrashBetweenPartialCommits(t *testing.T) {
	logs := batchEntries(t)
	ref := newTestFSM(t)
	ref.ApplyBatch(logs)

	dir := t.TempDir()
	var crashedAt uint64
	crashing, err := OpenFSM(StoreConfig{Dir: dir, Region: testRegion, Logger: fsmTestLogger(),
		Knobs: &TestingKnobs{AfterPartialCommit: func(index uint64) { crashedAt = index; panic("crash point") }}})
	require.NoError(t, err)
	require.PanicsWithValue(t, "crash point", func() { crashing.ApplyBatch(logs) })
	require.NoError(t, crashing.Close())
	require.NotZero(t, crashedAt)

	re := openTestFSM(t, dir)
	defer re.Close()
	assert.Equal(t, crashedAt-1, re.AppliedIndex(), "the entries before the one being written are applied, that one is not")
	assert.Greater(t, re.AppliedIndex(), uint64(1), "several entries shared the first transaction")
	re.ApplyBatch(logs)
	requireSameState(t, ref, re, 3)
}
