package region

import (
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func eventVersions(evs []*meridianv1.Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.GetVersion())
	}
	return out
}

func TestReadStream(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	for i := 1; i <= 10; i++ {
		d.mustAppend(aop("s", nil, pev(i, "T", "")))
	}
	d.mustAppend(aop("s/child", nil, pev(100, "T", ""))) // shares the prefix "s" but is another stream
	d.mustAppend(aop("s.x", nil, pev(101, "T", "")))
	for _, tc := range []struct {
		name     string
		entity   string
		from     uint64
		max      int
		backward bool
		want     []uint64
		head     uint64
	}{
		{"all forward", "s", 0, 0, false, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10},
		{"forward from 4 max 3", "s", 4, 3, false, []uint64{4, 5, 6}, 10},
		{"forward near the end", "s", 9, 5, false, []uint64{9, 10}, 10},
		{"forward beyond head", "s", 11, 5, false, []uint64{}, 10},
		{"backward from head", "s", 0, 3, true, []uint64{10, 9, 8}, 10},
		{"backward from 2", "s", 2, 5, true, []uint64{2, 1}, 10},
		{"backward beyond head", "s", 50, 2, true, []uint64{10, 9}, 10},
		{"backward last 10", "s", 0, 10, true, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 10},
		{"missing stream", "nope", 0, 10, false, []uint64{}, 0},
		{"prefix-sharing stream", "s/child", 0, 10, false, []uint64{1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, head, err := f.ReadStream(tc.entity, tc.from, tc.max, tc.backward)
			require.NoError(t, err)
			assert.Equal(t, tc.want, eventVersions(evs))
			assert.Equal(t, tc.head, head)
			for _, e := range evs {
				assert.Equal(t, tc.entity, e.GetEntity())
			}
		})
	}
	_, _, err := f.ReadStream("/bad", 0, 1, false)
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestReadStreamClampsCount(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	o := aop("s", nil)
	for i := 1; i <= ReadCountMax+5; i++ {
		o.Events = append(o.Events, pev(i, "T", ""))
	}
	for _, r := range d.batch(aop("s", nil, o.Events[:1000]...), aop("s", nil, o.Events[1000:]...)) {
		require.NoError(t, r.Err)
	}
	evs, head, err := f.ReadStream("s", 0, 1<<30, false)
	require.NoError(t, err)
	assert.Len(t, evs, ReadCountMax)
	assert.Equal(t, uint64(ReadCountMax+5), head)
	evs, _, err = f.ReadStream("s", 0, 0, false)
	require.NoError(t, err)
	assert.Len(t, evs, ReadCountDefault)
}

func TestReadLog(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	d.batch(aop("a", nil, pev(1, "T", ""), pev(2, "T", "")), aop("b", nil, pev(3, "T", "")))
	d.mustAppend(aop("a", nil, pev(4, "T", "")))
	for _, tc := range []struct {
		name string
		from uint64
		max  int
		want []string
	}{
		{"all", 0, 0, []string{"a", "a", "b", "a"}},
		{"from 3", 3, 10, []string{"b", "a"}},
		{"max 1", 2, 1, []string{"a"}},
		{"beyond", 5, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := f.ReadLog(tc.from, tc.max)
			require.NoError(t, err)
			var got []string
			for i, e := range evs {
				got = append(got, e.GetEntity())
				assert.Equal(t, max(tc.from, 1)+uint64(i), e.GetPosition())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestChangedSignalsEveryApply(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any apply")
	default:
	}
	d.mustAppend(aop("a", nil, pev(1, "T", "")))
	<-ch // closed by the apply
	ch2 := f.Changed()
	assert.NotEqual(t, ch, ch2)
	require.NoError(t, f.Close())
	<-ch2 // closed by Close, so waiters wake and see ErrStoreClosed
}

// TestCloseReopenKeepsEverything: a clean close and reopen keeps events,
// heads, the apply log, idempotency records and ApplyState.
func TestCloseReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	d := newFSMDriver(t, f)
	fsmPopulate(t, d, 3, 4)
	orig := d.mustAppend(aop("z", nil, pev(77, "T", "x")))
	want := f.ApplyState()
	wantEvents, _ := fsmReadAll(t, f, "stream-2")
	require.NoError(t, f.Close())

	_, _, err := f.ReadStream("z", 0, 1, false)
	require.ErrorIs(t, err, ErrStoreClosed)
	_, err = f.ReadLog(0, 1)
	require.ErrorIs(t, err, ErrStoreClosed)
	_, err = f.Snapshot()
	require.ErrorIs(t, err, ErrStoreClosed)

	f = openTestFSM(t, dir)
	defer f.Close()
	assert.True(t, proto.Equal(want, f.ApplyState()))
	got, _ := fsmReadAll(t, f, "stream-2")
	require.Len(t, got, len(wantEvents))
	for i := range got {
		assert.True(t, proto.Equal(wantEvents[i], got[i]))
	}
	assert.Len(t, fsmReadLog(t, f), 13)
	d = newFSMDriver(t, f)
	d.wall = testBase + int64(1e9)
	r := d.one(aop("z", nil, pev(77, "T", "x")))
	require.NoError(t, r.Err)
	assert.True(t, r.Resp.GetDuplicate(), "idempotency records survive a reopen")
	assert.Equal(t, orig.GetOrigin().GetSeq(), r.Resp.GetOrigin().GetSeq())
}
