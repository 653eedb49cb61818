package region

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// originFence applies an OriginFence entry.
func (d *fsmDriver) originFence(m *meridianv1.OriginFence) *FenceResult {
	d.t.Helper()
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_ORIGIN_FENCE, m)
	require.NoError(d.t, err)
	d.index++
	res, ok := d.f.Apply(d.entry0(data)).(*FenceResult)
	require.True(d.t, ok)
	return res
}

func openRegionFSM(t *testing.T, region string) (*FSM, *fsmDriver) {
	t.Helper()
	f, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: region, Logger: fsmTestLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f, newFSMDriver(t, f)
}

// TestALostHomesTailIsSupersededOnArrival: once a failover of ap-south is
// over (cut 2), ap-south's events beyond the cut, ordered under an epoch
// before the failover, for the entities it moved, are superseded as soon
// as they arrive, even where no event of the new home's era is there yet,
// and wait for the new home to append them again. Events of entities the
// failover left with ap-south (a rule it kept, a pin), events up to the
// cut and events ordered under a later epoch go into their streams.
func TestALostHomesTailIsSupersededOnArrival(t *testing.T) {
	f, d := openRegionFSM(t, "eu-west")
	ev := func(seq uint64, entity string, v, epoch uint64, deps map[string]uint64) *meridianv1.Event {
		e := shipped("ap-south", seq, entity, v, deps)
		e.Epoch = epoch
		return e
	}
	s1 := ev(1, "ap/x", 1, 5, nil)
	s2 := ev(2, "ap/x", 2, 5, map[string]uint64{"ap-south": 1})
	require.Equal(t, 2, d.replicate(s1, s2).Applied)
	assert.Equal(t, uint64(2), d.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 20}).Seq)
	tail := &meridianv1.FailoverTail{Transition: 20, CompletedIndex: 22, Cut: 2,
		Moved: []string{"ap/"}, Kept: []string{"ap/keep/"}, Pinned: []string{"ap/pinned"}}
	d.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 20, Release: true, Tail: tail})
	assert.Empty(t, f.ApplyState().GetOriginFences(), "the entry that records the tail released the fence")
	require.True(t, f.hasTail("ap-south", 20))
	// Recording it again (the homes loop and Replicate may both) changes nothing.
	d.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 20, Tail: tail})
	require.Len(t, f.ApplyState().GetOriginTails()["ap-south"].GetTails(), 1)

	s3 := ev(3, "ap/x", 3, 5, map[string]uint64{"ap-south": 2})
	s4 := ev(4, "ap/keep/y", 1, 5, nil)
	s5 := ev(5, "ap/pinned", 1, 5, nil)
	s6 := ev(6, "ap/x", 4, 5, map[string]uint64{"ap-south": 5})
	s7 := ev(7, "ap/z", 1, 25, nil) // ordered after ap/z came back to ap-south
	s8 := ev(8, "other/w", 1, 5, nil)
	res := d.replicate(s3, s4, s5, s6, s7, s8)
	require.Empty(t, res.Stopped)
	assert.Equal(t, 6, res.Applied, "every dot is applied once, in its stream or as superseded")
	assert.Equal(t, []string{"ap/x v3 (ap-south:3, epoch 5)", "ap/x v4 (ap-south:6, epoch 5)"}, res.Superseded)
	assert.Equal(t, uint64(8), f.ApplyState().GetApplied()["ap-south"])

	_, head := fsmReadAll(t, f, "ap/x")
	assert.Equal(t, uint64(2), head, "the tail is out of the stream though nothing else holds v3 here")
	for _, e := range []string{"ap/keep/y", "ap/pinned", "ap/z", "other/w"} {
		_, head := fsmReadAll(t, f, e)
		assert.Equal(t, uint64(1), head, "%s is not in the tail", e)
	}
	rec, err := f.Recoveries(10)
	require.NoError(t, err)
	require.Len(t, rec, 2)
	assert.Equal(t, []string{s3.GetId(), s6.GetId()}, []string{rec[0].GetId(), rec[1].GetId()})
	origin, err := f.ReadOrigin("ap-south", 1, 10)
	require.NoError(t, err)
	assert.Len(t, origin, 8, "the lost home's log stays whole for replication")
}

func TestFailoverMovedFollowsTheLongestPrefixAndPins(t *testing.T) {
	ft := &meridianv1.FailoverTail{Moved: []string{"a/", "a/b/c/"}, Kept: []string{"a/b/"}, Pinned: []string{"a/p", "a/q"}}
	for entity, want := range map[string]bool{
		"a/x": true, "a/b/x": false, "a/b/c/x": true, "a/p": false, "a/q": false, "a/pp": true, "b/x": false, "": false,
	} {
		assert.Equal(t, want, failoverMoved(ft, entity), entity)
	}
}

// streamView is entity's stream in f as "v<version> <data> <origin>:<seq>".
func streamView(t *testing.T, f *FSM, entity string) []string {
	t.Helper()
	evs, _ := fsmReadAll(t, f, entity)
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("v%d %s %s:%d", e.GetVersion(), e.GetData(), e.GetOrigin().GetRegion(), e.GetOrigin().GetSeq()))
	}
	return s
}

// recoverAll does what a new home's homes loop does (recoverSuperseded):
// append again, marked recovered, each superseded event it holds.
func recoverAll(t *testing.T, f *FSM, d *fsmDriver, index, epoch uint64) {
	t.Helper()
	evs, err := f.Recoveries(100)
	require.NoError(t, err)
	for _, ev := range evs {
		op := routed(ev.GetEntity(), index, epoch, proposedOf(ev))
		op.Deps = map[string]uint64{ev.GetOrigin().GetRegion(): ev.GetOrigin().GetSeq()}
		op.RecoveredFrom, op.OriginalVersion = ev.GetOrigin(), ev.GetVersion()
		d.mustAppend(op)
	}
}

// TestChainedFailoversAgreeInEveryRegion is the fork a chaos run stalled
// on: ap-south orders ap/x v3, v4 and is lost (failover F to us-east, cut
// at v2); eu-west receives that tail, us-east does not and orders its own
// v3; then us-east is lost too (failover G to eu-west, cut before its v3)
// and eu-west orders ap/x. When eu-west took the tail into the stream and
// built on it, ap-south and us-east (which held us-east's v3 there) could
// not apply eu-west's next event: replication of eu-west stalled in both.
// With failover tails every region supersedes both lost tails on arrival,
// the last home appends them again, and the three streams agree, in every
// delivery order of the rest.
func TestChainedFailoversAgreeInEveryRegion(t *testing.T) {
	names := []string{"ap-south", "us-east", "eu-west"}
	orders := [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}}
	var want []string
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			fsms, drivers := map[string]*FSM{}, map[string]*fsmDriver{}
			for _, n := range names {
				fsms[n], drivers[n] = openRegionFSM(t, n)
			}
			ap, us, eu := drivers["ap-south"], drivers["us-east"], drivers["eu-west"]
			ship := func(to, from string, fromSeq, toSeq uint64) {
				t.Helper()
				evs, err := fsms[from].ReadOrigin(from, fromSeq, int(toSeq-fromSeq+1))
				require.NoError(t, err)
				res := drivers[to].replicate(evs...)
				require.Empty(t, res.Stopped, "%s applying %s:%d..%d", to, from, fromSeq, toSeq)
			}
			// ap-south homes ap/x under epoch 5 and orders v1..v4.
			for i := 1; i <= 4; i++ {
				ap.mustAppend(routed("ap/x", 5, 5, pev(100+i, "T", fmt.Sprintf("ap-%d", i))))
			}
			ship("us-east", "ap-south", 1, 2)
			ship("eu-west", "ap-south", 1, 2)
			// F: ap-south lost, ap/ to us-east, cut 2 (staged at 10, flipped at 12).
			tailF := &meridianv1.FailoverTail{Transition: 10, CompletedIndex: 12, Cut: 2, Moved: []string{"ap/"}}
			us.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 10, Release: true, Tail: tailF})
			eu.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 10, Release: true, Tail: tailF})
			// eu-west gets the tail; us-east does not yet, and orders its own v3.
			ship("eu-west", "ap-south", 3, 4)
			us.mustAppend(routed("ap/x", 12, 12, pev(200, "T", "us-1")))
			// G: us-east lost, ap/ to eu-west, cut 0 (staged at 20, flipped at 22).
			tailG := &meridianv1.FailoverTail{Transition: 20, CompletedIndex: 22, Cut: 0, Moved: []string{"ap/"}}
			ap.originFence(&meridianv1.OriginFence{Origin: "us-east", Transition: 20, Release: true, Tail: tailG})
			eu.originFence(&meridianv1.OriginFence{Origin: "us-east", Transition: 20, Release: true, Tail: tailG})
			// eu-west, the home now, appends the tail it holds again, and a client's event.
			recoverAll(t, fsms["eu-west"], eu, 22, 22)
			eu.mustAppend(routed("ap/x", 22, 22, pev(300, "T", "eu-1")))

			// The rest of every log reaches every region, region by region in order.
			last := func(r string) uint64 { return fsms[r].ApplyState().GetApplied()[r] }
			for _, i := range order {
				to := names[i]
				for _, from := range names {
					if from != to {
						if next := fsms[to].ApplyState().GetApplied()[from] + 1; next <= last(from) {
							ship(to, from, next, last(from))
						}
					}
				}
			}
			// eu-west appends again what arrived superseded (us-east's v3),
			// and that reaches the others.
			recoverAll(t, fsms["eu-west"], eu, 22, 22)
			for _, to := range []string{"ap-south", "us-east"} {
				if next := fsms[to].ApplyState().GetApplied()["eu-west"] + 1; next <= last("eu-west") {
					ship(to, "eu-west", next, last("eu-west"))
				}
			}

			var streams [][]string
			for _, n := range names {
				streams = append(streams, streamView(t, fsms[n], "ap/x"))
				rec, err := fsms[n].Recoveries(10)
				require.NoError(t, err)
				if n == "eu-west" {
					assert.Empty(t, rec, "the home appended every superseded event again")
				}
			}
			assert.Equal(t, streams[2], streams[0], "ap-south and eu-west agree")
			assert.Equal(t, streams[2], streams[1], "us-east and eu-west agree")
			if want == nil {
				want = streams[2]
			}
			assert.Equal(t, want, streams[2], "every delivery order ends alike")
			// Every acknowledged event is in the stream once: ap-south's four
			// (two recovered), us-east's one (recovered) and eu-west's own.
			var data []string
			for _, e := range streams[2] {
				data = append(data, e[len("v1 "):len("v1 ")+4])
			}
			assert.ElementsMatch(t, []string{"ap-1", "ap-2", "ap-3", "ap-4", "us-1", "eu-1"}, data)
		})
	}
}

// TestHomesLoopReleasesALostLogWithItsTailRule: as a failover's survivor
// the region holds the lost region's log back; once the failover is over it
// lets the log through in the same entry that records the failover's tail
// rule, so the tail beyond the cut is superseded when it arrives. A
// failover this region did not fence for (it was not a survivor) is
// recorded before Replicate applies any event of that origin.
func TestHomesLoopReleasesALostLogWithItsTailRule(t *testing.T) {
	own := newFakeOwnership()
	own.set("r1/", Home{Region: "r1", Epoch: 1})
	own.set("r2/", Home{Region: "r3", Epoch: 22}) // not homed here: nothing is appended again here
	own.set("r3/", Home{Region: "r2", Epoch: 31})
	own.setIndex(3)
	r := newTestRegion(t, 1, func(c *Config) { c.Region = "r1"; c.Ownership = own })
	r.waitLeader()
	for _, reg := range []string{"r1", "r2", "r3"} {
		own.setEndpoints(reg, r.peers[0].APIAddr)
	}
	ctx := testContext(t, 20*time.Second)
	n := r.node(0)
	_, err := n.Replicate(ctx, []*meridianv1.Event{shipped("r2", 1, "r2/x", 1, nil), shipped("r2", 2, "r2/x", 2, nil)})
	require.NoError(t, err)

	own.setTransition(&Transition{Index: 20, Fencers: []string{"r1", "r3"}, Moves: []TransitionMove{{From: "r2", To: "r3", Lost: true}}})
	require.Eventually(t, func() bool {
		for _, a := range own.reported() {
			if a.Kind == AckFenced {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	applied, err := n.Replicate(ctx, []*meridianv1.Event{shipped("r2", 3, "r2/x", 3, nil)})
	require.NoError(t, err)
	assert.Equal(t, 0, applied, "held back beyond the fence")

	own.completeFailover("r2", &meridianv1.FailoverTail{Transition: 20, CompletedIndex: 22, Cut: 2, Moved: []string{"r2/"}})
	require.Eventually(t, func() bool {
		return n.FSM().hasTail("r2", 20) && len(n.FSM().ApplyState().GetOriginFences()) == 0
	}, 10*time.Second, 10*time.Millisecond)
	applied, err = n.Replicate(ctx, []*meridianv1.Event{shipped("r2", 3, "r2/x", 3, nil)})
	require.NoError(t, err)
	assert.Equal(t, 1, applied)
	_, head := fsmReadAll(t, n.FSM(), "r2/x")
	assert.Equal(t, uint64(2), head, "r2's v3 is beyond the cut: superseded, not in the stream")

	own.completeFailover("r3", &meridianv1.FailoverTail{Transition: 30, CompletedIndex: 31, Cut: 0, Moved: []string{"r3/"}})
	applied, err = n.Replicate(ctx, []*meridianv1.Event{shipped("r3", 1, "r3/x", 1, nil)})
	require.NoError(t, err)
	assert.Equal(t, 1, applied)
	assert.True(t, n.FSM().hasTail("r3", 30))
	_, head = fsmReadAll(t, n.FSM(), "r3/x")
	assert.Equal(t, uint64(0), head)
	rec, err := n.FSM().Recoveries(10)
	require.NoError(t, err)
	assert.Len(t, rec, 2, "both tails wait for their new homes")
}

// TestALostRegionTakesItsOwnTailOutWhenItLearnsItsFailover: the lost
// region holds its tail in its streams as its own events. Back, it records
// its own failover and rolls that tail out (queued for recovery), so when
// the moved entity comes back to it before the new home appended the tail
// again, it does not order on top of events every other region superseded:
// the three streams agree. Events of an entity it kept stay.
func TestALostRegionTakesItsOwnTailOutWhenItLearnsItsFailover(t *testing.T) {
	names := []string{"ap-south", "us-east", "eu-west"}
	fsms, drivers := map[string]*FSM{}, map[string]*fsmDriver{}
	for _, n := range names {
		fsms[n], drivers[n] = openRegionFSM(t, n)
	}
	ap := drivers["ap-south"]
	ship := func(to string, fromSeq, toSeq uint64) {
		t.Helper()
		evs, err := fsms["ap-south"].ReadOrigin("ap-south", fromSeq, int(toSeq-fromSeq+1))
		require.NoError(t, err)
		res := drivers[to].replicate(evs...)
		require.Empty(t, res.Stopped, "%s applying ap-south:%d..%d", to, fromSeq, toSeq)
	}
	for i := 1; i <= 4; i++ {
		ap.mustAppend(routed("ap/x", 5, 5, pev(100+i, "T", fmt.Sprintf("ap-%d", i))))
	}
	ap.mustAppend(routed("ap/keep/y", 5, 5, pev(200, "T", "kept")))
	for _, to := range []string{"us-east", "eu-west"} {
		ship(to, 1, 2)
	}
	tail := &meridianv1.FailoverTail{Transition: 10, CompletedIndex: 12, Cut: 2, Moved: []string{"ap/"}, Kept: []string{"ap/keep/"}}
	for _, n := range []string{"us-east", "eu-west"} {
		drivers[n].originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 10, Release: true, Tail: tail})
	}
	res := ap.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 10, Tail: tail})
	assert.Equal(t, 2, res.Superseded, "ap/x v3, v4")
	assert.Equal(t, 0, ap.originFence(&meridianv1.OriginFence{Origin: "ap-south", Transition: 10, Tail: tail}).Superseded, "once")
	_, head := fsmReadAll(t, fsms["ap-south"], "ap/x")
	assert.Equal(t, uint64(2), head)
	_, head = fsmReadAll(t, fsms["ap-south"], "ap/keep/y")
	assert.Equal(t, uint64(1), head, "kept with ap-south")
	assert.Empty(t, fsms["ap-south"].ApplyState().GetOriginFences())
	for _, to := range []string{"us-east", "eu-west"} {
		ship(to, 3, 5)
	}
	// ap/ moves back to ap-south (epoch 30) before us-east appended the
	// tail again: ap-south, the home now, does it, then orders more.
	recoverAll(t, fsms["ap-south"], ap, 30, 30)
	ap.mustAppend(routed("ap/x", 30, 30, pev(300, "T", "ap-new")))
	last := fsms["ap-south"].ApplyState().GetApplied()["ap-south"]
	for _, to := range []string{"us-east", "eu-west"} {
		ship(to, 6, last)
	}
	var streams [][]string
	for _, n := range names {
		streams = append(streams, streamView(t, fsms[n], "ap/x"))
	}
	assert.Len(t, streams[0], 5)
	assert.Equal(t, streams[0], streams[1])
	assert.Equal(t, streams[0], streams[2])
}

// TestAFenceWaitsForThePlacementCopyToReachItsFailover: a leader whose
// placement copy is behind the failover that fenced (a new leader, say)
// sees no transition and no failover record; it keeps the fence until the
// copy reaches the failover's index, and only then, the failover being
// gone without a record (aborted), releases it alone.
func TestAFenceWaitsForThePlacementCopyToReachItsFailover(t *testing.T) {
	own := newFakeOwnership()
	own.set("r1/", Home{Region: "r1", Epoch: 1})
	own.setIndex(21)
	r := newTestRegion(t, 1, func(c *Config) { c.Region = "r1"; c.Ownership = own })
	r.waitLeader()
	for _, reg := range []string{"r1", "r2", "r3"} {
		own.setEndpoints(reg, r.peers[0].APIAddr)
	}
	n := r.node(0)
	own.setTransition(&Transition{Index: 20, Fencers: []string{"r1", "r3"}, Moves: []TransitionMove{{From: "r2", To: "r3", Lost: true}}})
	require.Eventually(t, func() bool { return len(n.FSM().ApplyState().GetOriginFences()) == 1 }, 10*time.Second, 10*time.Millisecond)

	own.setIndex(3) // the copy of a leader that is behind
	own.setTransition(nil)
	time.Sleep(5 * homesPollInterval)
	assert.Len(t, n.FSM().ApplyState().GetOriginFences(), 1, "released by a copy that does not know how the failover ended")
	own.setIndex(25)
	require.Eventually(t, func() bool { return len(n.FSM().ApplyState().GetOriginFences()) == 0 }, 10*time.Second, 10*time.Millisecond)
	assert.False(t, n.FSM().hasTail("r2", 20), "aborted: no tail rule")
}
