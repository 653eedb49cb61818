package region

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/causal"
)

func ackCmd(name string, cp map[string]uint64, acked ...causal.Dot) *meridianv1.GroupCommand {
	a := &meridianv1.GroupAck{Name: name, Checkpoint: cp}
	for _, d := range acked {
		a.Acked = append(a.Acked, &meridianv1.Dot{Region: d.Region, Seq: d.Seq})
	}
	return &meridianv1.GroupCommand{UnixNanos: 300, Op: &meridianv1.GroupCommand_Ack{Ack: a}}
}

func parkCmd(name string, cp map[string]uint64, dots ...causal.Dot) *meridianv1.GroupCommand {
	a := &meridianv1.GroupAck{Name: name, Checkpoint: cp}
	for _, d := range dots {
		a.Parked = append(a.Parked, &meridianv1.ParkedEvent{
			Event:      &meridianv1.Event{Entity: "orders/1", Type: "Poison", Origin: &meridianv1.Dot{Region: d.Region, Seq: d.Seq}},
			Deliveries: 3, Reason: "bad",
		})
	}
	return &meridianv1.GroupCommand{UnixNanos: 400, Op: &meridianv1.GroupCommand_Ack{Ack: a}}
}

func dropCmd(name string, dots ...causal.Dot) *meridianv1.GroupCommand {
	a := &meridianv1.GroupAck{Name: name}
	for _, d := range dots {
		a.DropParked = append(a.DropParked, &meridianv1.Dot{Region: d.Region, Seq: d.Seq})
	}
	return &meridianv1.GroupCommand{UnixNanos: 500, Op: &meridianv1.GroupCommand_Ack{Ack: a}}
}

func dot(seq uint64) causal.Dot { return causal.Dot{Region: "r1", Seq: seq} }

func dotsOf(g *meridianv1.ConsumerGroup) []causal.Dot {
	var out []causal.Dot
	for _, d := range g.GetAcked() {
		out = append(out, causalDot(d))
	}
	return out
}

// TestApplyGroupAck drives a group's acks, parks and drops through the
// state machine: each dot counts once, the checkpoint only grows and
// absorbs the acked dots it covers, a refused park keeps the command's
// checkpoint out, and parked events travel with the group's state.
func TestApplyGroupAck(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	require.NoError(t, d.group(createCmd("billing", map[string]uint64{"r1": 1})).Err)

	steps := []struct {
		name   string
		cmd    *meridianv1.GroupCommand
		counts AckCounts
		cp     map[string]uint64
		acked  []causal.Dot
		parked uint64
	}{
		{"ack out of order", ackCmd("billing", map[string]uint64{"r1": 1}, dot(3), dot(5)),
			AckCounts{Acked: 2}, map[string]uint64{"r1": 1}, []causal.Dot{dot(3), dot(5)}, 0},
		{"ack again, and one under the checkpoint", ackCmd("billing", nil, dot(3), dot(1)),
			AckCounts{Duplicate: 2}, map[string]uint64{"r1": 1}, []causal.Dot{dot(3), dot(5)}, 0},
		{"park the gap: the checkpoint absorbs 3", parkCmd("billing", map[string]uint64{"r1": 3}, dot(2)),
			AckCounts{Parked: 1}, map[string]uint64{"r1": 3}, []causal.Dot{dot(5)}, 1},
		{"ack a parked event", ackCmd("billing", nil, dot(2), dot(4)),
			AckCounts{Acked: 1, Duplicate: 1}, map[string]uint64{"r1": 3}, []causal.Dot{dot(4), dot(5)}, 1},
		{"an older checkpoint does not move it back", ackCmd("billing", map[string]uint64{"r1": 2, "r2": 7}, dot(6)),
			AckCounts{Acked: 1}, map[string]uint64{"r1": 3, "r2": 7}, []causal.Dot{dot(4), dot(5), dot(6)}, 1},
		{"drop the parked event", dropCmd("billing", dot(2), dot(9)),
			AckCounts{Dropped: 1}, map[string]uint64{"r1": 3, "r2": 7}, []causal.Dot{dot(4), dot(5), dot(6)}, 0},
		{"the checkpoint passes everything acked", ackCmd("billing", map[string]uint64{"r1": 6}),
			AckCounts{}, map[string]uint64{"r1": 6, "r2": 7}, nil, 0},
	}
	for _, s := range steps {
		r := d.group(s.cmd)
		require.NoError(t, r.Err, s.name)
		assert.Equal(t, s.counts, r.Ack, s.name)
		g, err := f.Group("billing")
		require.NoError(t, err, s.name)
		assert.Equal(t, s.cp, g.GetCheckpoint(), s.name)
		assert.Equal(t, s.acked, dotsOf(g), s.name)
		assert.Equal(t, s.parked, g.GetParkedCount(), s.name)
	}
	g, err := f.Group("billing")
	require.NoError(t, err)
	assert.Equal(t, uint64(4), g.GetAcks())
	assert.Equal(t, uint64(3), g.GetDuplicateAcks())

	// A dropped parked event beyond the checkpoint counts as handled: a
	// later dispatcher must not deliver it again.
	r := d.group(parkCmd("billing", nil, dot(9)))
	require.NoError(t, r.Err)
	r = d.group(dropCmd("billing", dot(9)))
	require.NoError(t, r.Err)
	g, err = f.Group("billing")
	require.NoError(t, err)
	assert.Equal(t, []causal.Dot{dot(9)}, dotsOf(g))

	// A command of an earlier incarnation of the group is refused.
	stale := ackCmd("billing", map[string]uint64{"r1": 50}, dot(10))
	stale.GetAck().CreatedUnixNanos, stale.GetAck().Generation = 100, 7
	assert.ErrorIs(t, d.group(stale).Err, ErrGroupConflict)

	// Refusals leave the group as it was.
	before := proto2(t, f, "billing")
	assert.ErrorIs(t, d.group(ackCmd("nobody", nil, dot(7))).Err, ErrGroupNotFound)
	assert.ErrorIs(t, d.group(ackCmd("billing", nil, causal.Dot{Region: "r1", Seq: 0})).Err, ErrInvalidArgument)
	assert.ErrorIs(t, d.group(ackCmd("billing", map[string]uint64{"bad region!": 1})).Err, ErrInvalidArgument)
	assert.Equal(t, before, proto2(t, f, "billing"))

	// The parked list is bounded: a park beyond it is refused, and the
	// command's checkpoint (which assumed it) is not taken.
	for i := range GroupParkedMax / GroupDotsMax {
		var dots []causal.Dot
		for j := range GroupDotsMax {
			dots = append(dots, causal.Dot{Region: "r3", Seq: uint64(i*GroupDotsMax + j + 1)})
		}
		r := d.group(parkCmd("billing", nil, dots...))
		require.NoError(t, r.Err)
		require.Equal(t, GroupDotsMax, r.Ack.Parked)
	}
	r = d.group(parkCmd("billing", map[string]uint64{"r1": 20}, dot(20)))
	require.NoError(t, r.Err)
	assert.Equal(t, AckCounts{ParkRefused: 1, Refused: []causal.Dot{dot(20)}}, r.Ack)
	g, err = f.Group("billing")
	require.NoError(t, err)
	assert.Equal(t, uint64(6), g.GetCheckpoint()["r1"])
	assert.Equal(t, uint64(GroupParkedMax), g.GetParkedCount())
	page, end, err := f.Parked("billing", &causal.Dot{Region: "r3", Seq: 9998}, 10)
	require.NoError(t, err)
	assert.True(t, end)
	require.Len(t, page, 2)
	assert.Equal(t, uint64(9999), page[0].GetEvent().GetOrigin().GetSeq())
	assert.Equal(t, int64(400), page[0].GetParkedUnixNanos())
	assert.Equal(t, "bad", page[0].GetReason())

	// Parked events travel in snapshots; deleting the group removes them.
	dst := newTestFSM(t)
	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))))
	page, _, err = dst.Parked("billing", nil, 5)
	require.NoError(t, err)
	assert.Len(t, page, 5)
	require.NoError(t, d.group(&meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Delete{Delete: "billing"}}).Err)
	require.NoError(t, d.group(createCmd("billing", nil)).Err)
	page, end, err = f.Parked("billing", nil, 5)
	require.NoError(t, err)
	assert.Empty(t, page)
	assert.True(t, end)
}

func proto2(t *testing.T, f *FSM, name string) string {
	t.Helper()
	g, err := f.Group(name)
	require.NoError(t, err)
	return g.String()
}

// TestCompetingConsumersOverConnect runs three consumers of one group
// through different nodes of a 3-node region: one stops without acking
// what it holds (its leases expire and others get the events), one event
// is always nacked (parked after max_deliveries). Every other event is
// acked exactly once by the group, each entity's events in version order;
// after the leader is stopped, a consumer of the new leader gets only the
// events appended since.
func TestCompetingConsumersOverConnect(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	ctx := testContext(t, 90*time.Second)
	groups := func(i int) meridianv1connect.ConsumerGroupsClient {
		return meridianv1connect.NewConsumerGroupsClient(newHTTPClient(TCP, 5*time.Second), "http://"+r.peers[i].APIAddr)
	}
	_, err := groups(leader).CreateGroup(ctx, connect.NewRequest(&meridianv1.CreateGroupRequest{
		Name: "billing", Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"orders/"}},
		Settings: &meridianv1.GroupSettings{AckTimeoutMs: 500, MaxDeliveries: 3, MaxInFlight: 4},
	}))
	require.NoError(t, err)

	const entities, perEntity = 8, 10
	es := r.client(leader)
	n := 0
	for v := range perEntity {
		for e := range entities {
			typ := "Ok"
			if e == 3 && v == 4 {
				typ = "Poison"
			}
			n++
			_, err := es.Append(ctx, connect.NewRequest(appendRequest(fmt.Sprintf("orders/%d", e), pev(n, typ, "x"))))
			require.NoError(t, err)
			_, err = es.Append(ctx, connect.NewRequest(appendRequest(fmt.Sprintf("other/%d", e), pev(10000+n, "Ok", "x"))))
			require.NoError(t, err)
		}
	}

	var mu sync.Mutex
	handled := map[string][]uint64{} // entity -> versions, in handling order
	var acked, duplicates, unknown uint32
	consume := func(ctx context.Context, c meridianv1connect.ConsumerGroupsClient, name string, stopAfter int) {
		got := 0
		for ctx.Err() == nil {
			resp, err := c.Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "billing", Consumer: name, MaxCount: 3, WaitMs: 200}))
			if err != nil {
				continue // the context ended, or a leader change: fetch again
			}
			for _, dl := range resp.Msg.GetDeliveries() {
				got++
				if stopAfter > 0 && got > stopAfter {
					return // a consumer that dies holding leases
				}
				ev := dl.GetEvent()
				if ev.GetType() == "Poison" {
					_, err := c.Nack(ctx, connect.NewRequest(&meridianv1.NackRequest{Name: "billing", Consumer: name, Dots: []*meridianv1.Dot{ev.GetOrigin()}, Reason: "cannot bill"}))
					assert.NoError(t, err)
					continue
				}
				mu.Lock()
				handled[ev.GetEntity()] = append(handled[ev.GetEntity()], ev.GetVersion())
				mu.Unlock()
				a, err := c.Ack(ctx, connect.NewRequest(&meridianv1.AckRequest{Name: "billing", Consumer: name, Dots: []*meridianv1.Dot{ev.GetOrigin()}}))
				if !assert.NoError(t, err) {
					continue
				}
				mu.Lock()
				acked += a.Msg.GetAcked()
				duplicates += a.Msg.GetDuplicate()
				unknown += a.Msg.GetUnknown()
				mu.Unlock()
			}
		}
	}
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, name := range []string{"c-1", "c-2", "c-dies"} {
		stopAfter := 0
		if name == "c-dies" {
			stopAfter = 5
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			consume(cctx, groups(i), name, stopAfter)
		}()
	}
	want := uint32(entities*perEntity - 1)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked == want
	}, 60*time.Second, 50*time.Millisecond, "acks")
	require.Eventually(t, func() bool {
		g, err := groups(leader).GetGroup(ctx, connect.NewRequest(&meridianv1.GetGroupRequest{Name: "billing"}))
		return err == nil && g.Msg.GetGroup().GetParkedCount() == 1 && len(g.Msg.GetGroup().GetAcked()) == 0
	}, 10*time.Second, 50*time.Millisecond, "the poison event parked, the checkpoint past every ack")
	stop()
	wg.Wait()

	mu.Lock()
	assert.Equal(t, want, acked)
	assert.Zero(t, unknown)
	t.Logf("acked %d, duplicate acks %d", acked, duplicates)
	for e := range entities {
		entity := fmt.Sprintf("orders/%d", e)
		versions := handled[entity]
		wantLen := perEntity
		if e == 3 {
			wantLen--
		}
		assert.Len(t, versions, wantLen, entity)
		for i := 1; i < len(versions); i++ {
			assert.Less(t, versions[i-1], versions[i], "%s handled out of order: %v", entity, versions)
		}
	}
	mu.Unlock()

	parked, err := groups(leader).ListParked(ctx, connect.NewRequest(&meridianv1.ListParkedRequest{Name: "billing"}))
	require.NoError(t, err)
	require.Len(t, parked.Msg.GetParked(), 1)
	p := parked.Msg.GetParked()[0]
	assert.Equal(t, "Poison", p.GetEvent().GetType())
	assert.Equal(t, "orders/3", p.GetEvent().GetEntity())
	assert.Equal(t, uint32(3), p.GetDeliveries())
	assert.Equal(t, "cannot bill", p.GetReason())

	// A new leader starts from the stored state: only new events come.
	r.stop(leader)
	next := r.waitLeader(leader)
	_, err = r.client(next).Append(ctx, connect.NewRequest(appendRequest("orders/new", pev(99999, "Ok", "x"))))
	require.NoError(t, err)
	f := r.follower(next)
	if f == leader {
		f = next
	}
	var got []string
	require.Eventually(t, func() bool {
		resp, err := groups(f).Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "billing", Consumer: "c-1", WaitMs: 100}))
		if err != nil {
			return false
		}
		for _, dl := range resp.Msg.GetDeliveries() {
			got = append(got, dl.GetEvent().GetEntity())
		}
		return len(got) > 0
	}, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, []string{"orders/new"}, got)

	// Bad requests get the field and the allowed form.
	_, err = groups(f).Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "billing", Consumer: "c 1"}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "consumer")
	_, err = groups(f).Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "billing", Consumer: "c", WaitMs: 60000}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "wait_ms")
	_, err = groups(f).Ack(ctx, connect.NewRequest(&meridianv1.AckRequest{Name: "billing", Consumer: "c"}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "dots")
	_, err = groups(f).Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "nobody", Consumer: "c"}))
	assert.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "%v", err)
}

// TestAStuckEventBoundsTheLookahead: one consumer holds an event and never
// acks it, another acks everything it gets. The checkpoint stays below
// the held event, so the acked set grows; the dispatcher stops reading
// ahead before the acked set reaches its bound, and no ack is refused.
func TestAStuckEventBoundsTheLookahead(t *testing.T) {
	r := newTestRegion(t, 1, nil)
	leader := r.waitLeader()
	ctx := testContext(t, 60*time.Second)
	c := meridianv1connect.NewConsumerGroupsClient(newHTTPClient(TCP, 10*time.Second), "http://"+r.peers[leader].APIAddr)
	_, err := c.CreateGroup(ctx, connect.NewRequest(&meridianv1.CreateGroupRequest{Name: "g", Settings: &meridianv1.GroupSettings{AckTimeoutMs: 3_600_000, MaxInFlight: 10_000}}))
	require.NoError(t, err)
	es := r.client(leader)
	const entities, per = 500, 10
	n := 0
	for e := range entities {
		var evs []*meridianv1.ProposedEvent
		for range per {
			n++
			evs = append(evs, pev(n, "T", "x"))
		}
		_, err := es.Append(ctx, connect.NewRequest(appendRequest(fmt.Sprintf("e/%d", e), evs...)))
		require.NoError(t, err)
	}
	held, err := c.Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "g", Consumer: "holder", MaxCount: 1}))
	require.NoError(t, err)
	require.Len(t, held.Msg.GetDeliveries(), 1)
	acked := 0
	for {
		resp, err := c.Fetch(ctx, connect.NewRequest(&meridianv1.FetchRequest{Name: "g", Consumer: "worker", MaxCount: 1000}))
		require.NoError(t, err)
		if len(resp.Msg.GetDeliveries()) == 0 {
			break
		}
		var dots []*meridianv1.Dot
		for _, d := range resp.Msg.GetDeliveries() {
			dots = append(dots, d.GetEvent().GetOrigin())
		}
		a, err := c.Ack(ctx, connect.NewRequest(&meridianv1.AckRequest{Name: "g", Consumer: "worker", Dots: dots}))
		require.NoError(t, err, "after %d acks", acked)
		acked += int(a.Msg.GetAcked())
	}
	assert.Less(t, acked, entities*per-per, "the worker stops short of the end while the held event holds the checkpoint")
	assert.LessOrEqual(t, acked, dispatchLookahead)
	g, err := c.GetGroup(ctx, connect.NewRequest(&meridianv1.GetGroupRequest{Name: "g"}))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(g.Msg.GetGroup().GetAcked()), GroupAckedMax)
	assert.Less(t, g.Msg.GetGroup().GetCheckpoint()["r1"], held.Msg.GetDeliveries()[0].GetEvent().GetOrigin().GetSeq())
	t.Logf("acked %d while one event was held; %d acked beyond the checkpoint", acked, len(g.Msg.GetGroup().GetAcked()))
}
