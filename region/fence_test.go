package region

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func (d *fsmDriver) fence(floor, transition uint64) *FenceResult {
	d.t.Helper()
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_PLACEMENT_FENCE, &meridianv1.PlacementFence{Floor: floor, Transition: transition})
	require.NoError(d.t, err)
	d.index++
	res, ok := d.f.Apply(&raft.Log{Index: d.index, Term: 1, Type: raft.LogCommand, Data: data}).(*FenceResult)
	require.True(d.t, ok)
	return res
}

// routed is an append routed by a placement copy at index under epoch.
func routed(entity string, index, epoch uint64, evs ...*meridianv1.ProposedEvent) *meridianv1.AppendOp {
	op := aop(entity, nil, evs...)
	op.PlacementIndex, op.Epoch = index, epoch
	return op
}

func TestApplyFenceRefusesAppendsRoutedBelowTheFloor(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	first := d.mustAppend(routed("a", 5, 2, pev(1, "T", "x")))
	d.mustAppend(routed("b", 5, 2, pev(2, "T", "y")))

	res := d.fence(10, 10)
	assert.Equal(t, &FenceResult{Floor: 10, Transition: 10, Seq: 2}, res, "the freeze reports this region's own sequence at the fence")

	before := f.ApplyState()
	r := d.one(routed("a", 9, 2, pev(3, "T", "z")))
	require.ErrorIs(t, r.Err, ErrStalePlacement)
	assert.Contains(t, r.Err.Error(), "placement index 9, below this region's placement floor 10")
	after := f.ApplyState()
	assert.Equal(t, before.GetApplied(), after.GetApplied(), "nothing written")
	evs, _ := fsmReadAll(t, f, "a")
	assert.Len(t, evs, 1)

	// A retry of an append that committed before the fence is refused too
	// when routed by the old copy (the entity's current home answers it: a
	// failover may have superseded the original); routed by a current copy
	// it gets its original result and writes nothing.
	stale := d.one(routed("a", 5, 2, pev(1, "T", "x")))
	require.ErrorIs(t, stale.Err, ErrStalePlacement)
	again := d.one(routed("a", 10, 2, pev(1, "T", "x")))
	require.NoError(t, again.Err)
	assert.True(t, again.Resp.GetDuplicate())
	assert.Equal(t, first.GetFirstVersion(), again.Resp.GetFirstVersion())

	// Routed by a copy that knows the change: served.
	d.mustAppend(routed("a", 10, 2, pev(4, "T", "w")))

	// The floor never goes down; a repeated freeze of the same change keeps
	// its sequence; a later change's freeze records its own.
	assert.Equal(t, &FenceResult{Floor: 10, Transition: 10, Seq: 2}, d.fence(4, 10))
	assert.Equal(t, &FenceResult{Floor: 12, Transition: 12, Seq: 3}, d.fence(12, 12))
	assert.Equal(t, &FenceResult{Floor: 12, Transition: 12, Seq: 3}, d.fence(11, 11), "an older change's late freeze changes nothing")

	// The floor survives a restart (it is in the apply state).
	dir := f.cfg.Dir
	require.NoError(t, f.Close())
	f2 := openTestFSM(t, dir)
	t.Cleanup(func() { _ = f2.Close() })
	assert.Equal(t, uint64(12), f2.ApplyState().GetPlacementFloor())
}

func TestApplyRefusesAnEpochOlderThanTheStream(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	d.mustAppend(routed("a", 1, 7, pev(1, "T", "x")))
	r := d.one(routed("a", 1, 6, pev(2, "T", "y")))
	require.ErrorIs(t, r.Err, ErrStalePlacement)
	assert.Contains(t, r.Err.Error(), "append under epoch 6, the stream's last event has epoch 7")
	d.mustAppend(routed("a", 1, 7, pev(3, "T", "z")))
	d.mustAppend(routed("a", 1, 9, pev(4, "T", "w")))
	evs, _ := fsmReadAll(t, f, "a")
	require.Len(t, evs, 3)
	assert.Equal(t, []uint64{7, 7, 9}, []uint64{evs[0].GetEpoch(), evs[1].GetEpoch(), evs[2].GetEpoch()})
}

// TestHomesLoopFreezesAsOldHomeAndDrainsAsNewHome: the region leader's side
// of a placement change, against a hand-set placement table.
func TestHomesLoopFreezesAsOldHomeAndDrainsAsNewHome(t *testing.T) {
	own := newFakeOwnership()
	own.set("", Home{Region: "r1", Epoch: 1})
	own.setIndex(3)
	r := newTestRegion(t, 1, func(c *Config) { c.Region = "r1"; c.Ownership = own })
	r.waitLeader()
	own.setEndpoints("r1", r.peers[0].APIAddr)
	ctx := testContext(t, 20*time.Second)
	for i := range 3 {
		_, err := r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
		require.NoError(t, err, "append %d", i)
	}

	// r1 is the old home of a change staged at index 9.
	own.setTransition(&Transition{Index: 9, Moves: []TransitionMove{{From: "r1", To: "r2"}}})
	require.Eventually(t, func() bool { return len(own.reported()) > 0 }, 10*time.Second, 10*time.Millisecond)
	ack := own.reported()[0]
	assert.Equal(t, TransitionAck{Transition: 9, Kind: AckFrozen, Region: "r1", Seq: 3}, ack)
	st := r.node(0).FSM().ApplyState()
	assert.Equal(t, uint64(9), st.GetPlacementFloor())
	assert.Equal(t, uint64(3), st.GetFreezeSeq())

	// An append routed by the copy that predates the change is refused at
	// apply and routed again once the copy catches up; the copy here never
	// does within the wait, so it fails, having written nothing.
	short := testContext(t, 2*time.Second)
	_, err := r.client(0).Append(short, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.Error(t, err)
	assert.Len(t, readStreamAll(t, r.node(0), "x/1"), 3, "nothing written after the fence")
	own.setTransition(nil)
	own.setIndex(9)
	_, err = r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.NoError(t, err, "a copy at the floor routes it again")

	// r1 is the new home of a change whose old home r2 froze at its
	// sequence 2: r1 reports once it has applied r2's log that far.
	_, err = r.node(0).Replicate(ctx, []*meridianv1.Event{shipped("r2", 1, "y/1", 1, nil)})
	require.NoError(t, err)
	own.setTransition(&Transition{Index: 11, Moves: []TransitionMove{{From: "r2", To: "r1", Frozen: true, FrozenSeq: 2}}})
	drained := func() []TransitionAck {
		var out []TransitionAck
		for _, a := range own.reported() {
			if a.Transition == 11 {
				out = append(out, a)
			}
		}
		return out
	}
	time.Sleep(3 * homesPollInterval)
	assert.Empty(t, drained(), "r1 has applied r2's log only to 1 of 2")
	_, err = r.node(0).Replicate(ctx, []*meridianv1.Event{shipped("r2", 2, "y/1", 2, nil)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(drained()) > 0 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, TransitionAck{Transition: 11, Kind: AckDrained, Region: "r1", Origin: "r2", Seq: 2}, drained()[0])
}
