package region

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// shipped is an event as origin stored it: entity v at origin:seq with deps.
func shipped(origin string, seq uint64, entity string, version uint64, deps map[string]uint64) *meridianv1.Event {
	return &meridianv1.Event{
		Entity: entity, Version: version, Id: eid(int(seq) + 1000*len(origin)), Type: "T", Data: []byte(fmt.Sprintf("%s-%d", origin, seq)),
		Origin: &meridianv1.Dot{Region: origin, Seq: seq}, Hlc: &meridianv1.Hlc{WallNanos: testBase + int64(seq)}, Epoch: 7,
		Deps: deps, Position: 99,
	}
}

func (d *fsmDriver) replicate(events ...*meridianv1.Event) *ReplicateResult {
	d.t.Helper()
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_REPLICATE_BATCH, &meridianv1.ReplicateBatch{Events: events})
	require.NoError(d.t, err)
	d.index++
	res, ok := d.f.Apply(&raft.Log{Index: d.index, Term: 1, Type: raft.LogCommand, Data: data}).(*ReplicateResult)
	require.True(d.t, ok)
	return res
}

func TestApplyReplicateExactlyOnceInOrigin(t *testing.T) {
	f := newTestFSM(t) // region eu-west
	d := newFSMDriver(t, f)
	us := func(seq uint64) *meridianv1.Event { return shipped("us-east", seq, "us/a", seq, nil) }

	res := d.replicate(us(1), us(2), us(3))
	assert.Equal(t, 3, res.Applied)
	assert.Equal(t, uint64(3), f.ApplyState().GetApplied()["us-east"])

	res = d.replicate(us(2), us(3), us(4))
	assert.Equal(t, 1, res.Applied, "only the new one")
	assert.Equal(t, 2, res.Duplicates)

	res = d.replicate(us(6), us(7))
	assert.Zero(t, res.Applied)
	assert.Contains(t, res.Stopped["us-east"], "gap: next is 5, got 6")
	assert.Equal(t, uint64(4), f.ApplyState().GetApplied()["us-east"], "a gap never advances the vector")

	events, head := fsmReadAll(t, f, "us/a")
	require.Len(t, events, 4)
	assert.Equal(t, uint64(4), head)
	for i, e := range events {
		assert.Equal(t, uint64(i+1), e.GetVersion())
		assert.Equal(t, "us-east", e.GetOrigin().GetRegion(), "the origin's dot is kept")
		assert.Equal(t, uint64(i+1), e.GetPosition(), "positions are this region's")
		assert.Equal(t, uint64(7), e.GetEpoch())
	}
	log, err := f.ReadOrigin("us-east", 2, 10)
	require.NoError(t, err)
	require.Len(t, log, 3)
	assert.Equal(t, uint64(2), log[0].GetOrigin().GetSeq())

	// This region's own origin is never written by replication.
	res = d.replicate(shipped(testRegion, 1, "eu/x", 1, nil))
	assert.Zero(t, res.Applied)
	assert.Empty(t, fsmReadLogOf(t, f, testRegion))
}

func fsmReadLogOf(t *testing.T, f *FSM, origin string) []*meridianv1.Event {
	t.Helper()
	evs, err := f.ReadOrigin(origin, 1, 1000)
	require.NoError(t, err)
	return evs
}

func TestApplyReplicateWaitsForDeps(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	require.Equal(t, 1, d.replicate(shipped("us-east", 1, "us/a", 1, nil)).Applied)

	// ap-south's event depends on us-east:2, which is not here yet.
	ap := shipped("ap-south", 1, "ap/b", 1, map[string]uint64{"us-east": 2})
	res := d.replicate(ap, shipped("ap-south", 2, "ap/b", 2, nil))
	assert.Zero(t, res.Applied)
	assert.Contains(t, res.Stopped["ap-south"], "us-east:2")
	assert.Zero(t, f.ApplyState().GetApplied()["ap-south"], "the whole origin stops at the blocked event")

	// Once its dependency is applied (earlier in the same entry counts), it goes.
	res = d.replicate(shipped("us-east", 2, "us/a", 2, nil), ap, shipped("ap-south", 2, "ap/b", 2, nil))
	assert.Equal(t, 3, res.Applied)
	assert.Empty(t, res.Stopped)
}

func TestApplyReplicateRefusesAnEventThatDoesNotContinueItsStream(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	res := d.replicate(shipped("us-east", 1, "us/a", 2, nil))
	assert.Zero(t, res.Applied)
	assert.Contains(t, res.Stopped["us-east"], "does not continue the stream")
	res = d.replicate(&meridianv1.Event{Entity: "us/a", Version: 1, Id: "not-a-uuid", Origin: &meridianv1.Dot{Region: "us-east", Seq: 1}})
	assert.Zero(t, res.Applied)
	assert.Contains(t, res.Stopped["us-east"], "not-a-uuid")
}

func TestApplyAppendWaitsForItsTokenAndDependsOnThePreviousEvent(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)

	// The writer has seen us-east:2, which this region has not applied:
	// appending now would put the write before its cause.
	op := aop("eu/x", expUnset(), pev(1, "T", "a"))
	op.Deps = map[string]uint64{"us-east": 2}
	r := d.one(op)
	require.Error(t, r.Err)
	assert.True(t, errors.Is(r.Err, ErrDepsNotApplied), "%v", r.Err)
	assert.Contains(t, r.Err.Error(), "us-east:2")
	events, _ := fsmReadAll(t, f, "eu/x")
	assert.Empty(t, events)

	d.replicate(shipped("us-east", 1, "us/a", 1, nil), shipped("us-east", 2, "us/a", 2, nil))
	r = d.one(op)
	require.NoError(t, r.Err)
	events, _ = fsmReadAll(t, f, "eu/x")
	require.Len(t, events, 1)
	assert.Equal(t, map[string]uint64{"us-east": 2}, events[0].GetDeps())

	// A stream whose last event came from another region (a home that
	// moved): the next local event depends on it.
	d.replicate(shipped("us-east", 3, "shared/s", 1, nil))
	moved := aop("shared/s", expExact(1), pev(2, "T", "b"))
	moved.Epoch = 8 // the new home's epoch, above the shipped event's 7
	r = d.one(moved)
	require.NoError(t, r.Err)
	events, _ = fsmReadAll(t, f, "shared/s")
	require.Len(t, events, 2)
	assert.Equal(t, uint64(3), events[1].GetDeps()["us-east"])
	assert.Equal(t, testRegion, events[1].GetOrigin().GetRegion())
}

func TestApplyReplicatedEventIsAnIdempotencyRecordHere(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	ev := shipped("us-east", 1, "us/a", 1, nil)
	d.replicate(ev)
	// The same append retried in this region (after a failover, say)
	// returns the original result instead of appending again.
	r := d.one(aop("us/a", expNoStream(), &meridianv1.ProposedEvent{Id: ev.GetId(), Type: ev.GetType(), Data: ev.GetData()}))
	require.NoError(t, r.Err)
	assert.True(t, r.Resp.GetDuplicate())
	assert.Equal(t, "us-east", r.Resp.GetOrigin().GetRegion())
	events, _ := fsmReadAll(t, f, "us/a")
	assert.Len(t, events, 1)
}
