package region

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// forkEvent is an event of entity "x" at version v, ordered by origin at
// seq under epoch, following the stream's previous event prev.
func forkEvent(origin string, seq, v, epoch uint64, prev *meridianv1.Dot, extra map[string]uint64) *meridianv1.Event {
	deps := map[string]uint64{}
	for r, s := range extra {
		deps[r] = s
	}
	if prev != nil {
		deps[prev.GetRegion()] = max(deps[prev.GetRegion()], prev.GetSeq())
	}
	ev := shipped(origin, seq, "x", v, deps)
	ev.Epoch = epoch
	ev.Id = eid(int(epoch)*1000 + int(seq))
	ev.Data = []byte(fmt.Sprintf("%s-%d", origin, seq))
	return ev
}

func dotOf(ev *meridianv1.Event) *meridianv1.Dot { return ev.GetOrigin() }

// TestApplyReplicateResolvesAFailoverForkAlikeInEveryOrder: the lost home
// "lost" ordered x v1..v4 under epoch 5; the failover's new home "heir"
// had only v1..v2 and ordered its own v3, v4 under epoch 9. Whatever order
// the two histories reach a region in, it ends with the same stream (the
// later era wins from v3 on), every dot applied once, the lost tail kept
// as superseded (still readable in its origin log) and queued for recovery.
func TestApplyReplicateResolvesAFailoverForkAlikeInEveryOrder(t *testing.T) {
	l1 := forkEvent("lost", 1, 1, 5, nil, nil)
	l2 := forkEvent("lost", 2, 2, 5, dotOf(l1), nil)
	l3 := forkEvent("lost", 3, 3, 5, dotOf(l2), nil)
	l4 := forkEvent("lost", 4, 4, 5, dotOf(l3), nil)
	h1 := forkEvent("heir", 1, 3, 9, dotOf(l2), nil)
	h2 := forkEvent("heir", 2, 4, 9, dotOf(h1), nil)
	orders := map[string][][]*meridianv1.Event{
		"lost tail first":         {{l1, l2, l3, l4}, {h1, h2}},
		"heir first":              {{l1, l2}, {h1, h2}, {l3, l4}},
		"interleaved":             {{l1, l2, l3}, {h1}, {l4}, {h2}},
		"all in one entry, mixed": {{l1, l2, l3, h1, l4, h2}},
	}
	var ref []*meridianv1.Event
	for name, entries := range orders {
		t.Run(name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newFSMDriver(t, f)
			for _, e := range entries {
				d.replicate(e...)
			}
			assert.Equal(t, map[string]uint64{"lost": 4, "heir": 2}, f.ApplyState().GetApplied(), "every dot applied once")
			evs, head := fsmReadAll(t, f, "x")
			require.Equal(t, uint64(4), head)
			got := []string{}
			for _, e := range evs {
				got = append(got, fmt.Sprintf("%s:%d@v%d", e.GetOrigin().GetRegion(), e.GetOrigin().GetSeq(), e.GetVersion()))
			}
			assert.Equal(t, []string{"lost:1@v1", "lost:2@v2", "heir:1@v3", "heir:2@v4"}, got)
			if ref == nil {
				ref = evs
			}
			// The lost home's log is whole: replication can still ship it.
			origin, err := f.ReadOrigin("lost", 1, 10)
			require.NoError(t, err)
			require.Len(t, origin, 4)
			assert.Equal(t, l3.GetId(), origin[2].GetId())
			assert.Equal(t, l4.GetId(), origin[3].GetId())
			rec, err := f.Recoveries(10)
			require.NoError(t, err)
			require.Len(t, rec, 2, "the lost tail waits for its home to append it again")
			assert.Equal(t, []string{l3.GetId(), l4.GetId()}, []string{rec[0].GetId(), rec[1].GetId()})
			assert.Equal(t, uint64(2), f.ApplyState().GetSuperseded())
			// The region log has no entry for a superseded event.
			all, err := f.ReadLog(1, 100)
			require.NoError(t, err)
			for _, e := range all {
				assert.NotEqual(t, "lost:3", fmt.Sprintf("%s:%d", e.GetOrigin().GetRegion(), e.GetOrigin().GetSeq()))
			}
			assert.Len(t, all, 4)
		})
	}
}

// TestRecoveredAppendMarksTheEventAndClearsItsMarker: this region (the new
// home, eu-west) ordered x v3 after a failover; the lost home's own v3
// arrives later and is superseded; the home appends it again with its id
// and content, marked recovered with its original version and dot; doing so
// twice writes nothing more.
func TestRecoveredAppendMarksTheEventAndClearsItsMarker(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	l1 := forkEvent("us-east", 1, 1, 5, nil, nil)
	l2 := forkEvent("us-east", 2, 2, 5, dotOf(l1), nil)
	l3 := forkEvent("us-east", 3, 3, 5, dotOf(l2), nil)
	d.replicate(l1, l2)
	mine := routed("x", 1, 9, pev(77, "T", "new home"))
	mine.Deps = map[string]uint64{"us-east": 2}
	d.mustAppend(mine)
	res := d.replicate(l3)
	require.Len(t, res.Superseded, 1)
	rec, err := f.Recoveries(10)
	require.NoError(t, err)
	require.Len(t, rec, 1)

	again := routed("x", 1, 9, &meridianv1.ProposedEvent{Id: l3.GetId(), Type: l3.GetType(), Data: l3.GetData()})
	again.RecoveredFrom, again.OriginalVersion = l3.GetOrigin(), 3
	again.Deps = map[string]uint64{"us-east": 3}
	resp := d.mustAppend(again)
	assert.Equal(t, uint64(4), resp.GetFirstVersion())
	evs, _ := fsmReadAll(t, f, "x")
	require.Len(t, evs, 4)
	last := evs[3]
	assert.True(t, last.GetRecovered())
	assert.Equal(t, uint64(3), last.GetOriginalVersion())
	assert.Equal(t, "us-east", last.GetRecoveredFrom().GetRegion())
	assert.Equal(t, uint64(3), last.GetRecoveredFrom().GetSeq())
	assert.Equal(t, l3.GetId(), last.GetId())
	rec, err = f.Recoveries(10)
	require.NoError(t, err)
	assert.Empty(t, rec)

	dup := d.one(again)
	require.NoError(t, dup.Err)
	assert.True(t, dup.Resp.GetDuplicate())
	evs, _ = fsmReadAll(t, f, "x")
	assert.Len(t, evs, 4)

	// A region that receives the recovered copy clears its own marker.
	g, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: "ap-south", Logger: fsmTestLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	e := newFSMDriver(t, g)
	e.replicate(l1, l2)
	copies := func(v uint64) *meridianv1.Event { return evs[v-1] }
	e.replicate(copies(3))
	e.replicate(l3)
	rec, err = g.Recoveries(10)
	require.NoError(t, err)
	assert.Len(t, rec, 1)
	e.replicate(copies(4))
	rec, err = g.Recoveries(10)
	require.NoError(t, err)
	assert.Empty(t, rec)
	got, _ := fsmReadAll(t, g, "x")
	require.Len(t, got, 4)
	assert.True(t, got[3].GetRecovered())
}

func TestApplyOriginFenceHoldsALostRegionsLogBack(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	a := func(seq uint64) *meridianv1.Event { return shipped("us-east", seq, "us/a", seq, nil) }
	d.replicate(a(1), a(2))
	fence := func(m *meridianv1.OriginFence) *FenceResult {
		data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_ORIGIN_FENCE, m)
		require.NoError(t, err)
		d.index++
		return d.f.Apply(d.entry0(data)).(*FenceResult)
	}
	assert.Equal(t, uint64(2), fence(&meridianv1.OriginFence{Origin: "us-east", Transition: 40}).Seq)
	res := d.replicate(a(3), a(4))
	assert.Equal(t, 0, res.Applied)
	assert.Contains(t, res.Stopped["us-east"], "held back")
	assert.Equal(t, uint64(3), fence(&meridianv1.OriginFence{Origin: "us-east", Transition: 40, Limit: 3}).Seq, "raised to the cut")
	assert.Equal(t, 1, d.replicate(a(3), a(4)).Applied)
	fence(&meridianv1.OriginFence{Origin: "us-east", Transition: 40, Release: true})
	assert.Equal(t, 1, d.replicate(a(4)).Applied)
	assert.Empty(t, f.ApplyState().GetOriginFences())
}
