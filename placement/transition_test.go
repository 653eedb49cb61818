package placement

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"pgregory.net/rapid"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func (d *driver) stagePin(entity, region string) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, &meridianv1.PinCommand{Entity: entity, Region: region, Stage: true})
}

func (d *driver) stageRules(def string, rules ...*meridianv1.PlacementRule) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES,
		&meridianv1.SetRulesCommand{Rules: rules, DefaultRegion: def, Stage: true})
}

func (d *driver) ack(transition uint64, kind meridianv1.TransitionAckKind, region, origin string, seq uint64) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ACK_TRANSITION, &meridianv1.AckTransitionCommand{
		Transition: transition, Kind: kind, Region: region, Origin: origin, Seq: seq,
	})
}

const (
	frozen  = meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_FROZEN
	drained = meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_DRAINED
)

func TestStagedPinTakesEffectOnlyOnceTheOldHomeFrozeAndTheNewHomeDrained(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu"))

	res := d.stagePin("eu/x", "ap")
	require.NoError(t, res.Err)
	require.True(t, res.Staged)
	tr := res.Transition
	assert.Equal(t, d.index, tr)

	p := f.Lookup("eu/x")
	assert.Equal(t, "eu", p.Home, "the old home stays the home until the flip")
	require.NotNil(t, p.Moving)
	assert.Equal(t, Moving{Transition: tr, From: "eu", To: "ap", Reason: "pin eu/x to ap", StartedAt: p.Moving.StartedAt}, *p.Moving)
	assert.Nil(t, f.Lookup("eu/y").Moving, "other entities are not moving")
	_, _, pinned := f.Pin("eu/x")
	assert.False(t, pinned)

	// At most one change in progress: the next is refused, naming it.
	busy := d.stagePin("us/z", "eu")
	require.ErrorIs(t, busy.Err, ErrBusy)
	assert.Contains(t, busy.Err.Error(), "pin eu/x to ap, staged at index")

	// Reports for another change, and a drain report before the freeze's
	// sequence is known, do not complete it.
	assert.False(t, d.ack(tr+100, frozen, "eu", "", 1).Completed)
	assert.False(t, d.ack(tr, drained, "ap", "eu", 3).Completed)
	assert.False(t, d.ack(tr, frozen, "eu", "", 5).Completed)
	assert.NotNil(t, f.Lookup("eu/x").Moving)
	assert.False(t, d.ack(tr, drained, "ap", "eu", 4).Completed, "ap applied eu's log to 4 of 5")
	rec, active := f.Transition()
	require.True(t, active)
	assert.Equal(t, []*meridianv1.HomeMove{{From: "eu", To: "ap", Frozen: true, FrozenSeq: 5, DrainedSeq: 4}}, rec.GetMoves())

	done := d.ack(tr, drained, "ap", "eu", 5)
	require.NoError(t, done.Err)
	require.True(t, done.Completed)
	assert.Equal(t, tr, done.Transition)
	p = f.Lookup("eu/x")
	assert.Equal(t, "ap", p.Home)
	assert.Nil(t, p.Moving)
	assert.Equal(t, done.Index, p.Epoch, "the flip's index is the new epoch")
	assert.Greater(t, p.Epoch, tr)
	rec, active = f.Transition()
	assert.False(t, active)
	assert.Equal(t, done.Index, rec.GetCompletedIndex())
	out, ok := f.outcomes.get(tr)
	require.True(t, ok)
	assert.Equal(t, done.Index, out.res.Index)

	// The next change goes through.
	require.True(t, d.stagePin("us/z", "eu").Staged)
}

func TestStagedChangeThatMovesNoHomeAppliesAtOnce(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu"))
	for _, c := range []struct {
		name  string
		apply func() *ApplyResult
	}{
		{"pin to the current home", func() *ApplyResult { return d.stagePin("eu/x", "eu") }},
		{"failover list only", func() *ApplyResult { return d.stageRules("us", rl("eu/", "eu", "ap")) }},
		{"new rule to the default's home", func() *ApplyResult { return d.stageRules("us", rl("eu/", "eu", "ap"), rl("us/", "us")) }},
	} {
		res := c.apply()
		require.NoError(t, res.Err, c.name)
		assert.False(t, res.Staged, c.name)
		_, active := f.Transition()
		assert.False(t, active, c.name)
	}
	_, _, pinned := f.Pin("eu/x")
	assert.True(t, pinned)
	assert.Equal(t, []string{"ap"}, f.Lookup("eu/1").Failover)
}

// TestSwitchToActiveActiveIsAHandover: a rule that makes a single home's
// entities active-active stages a change in which the old home freezes and
// every other region drains it; nothing changes until then.
func TestSwitchToActiveActiveIsAHandover(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu"))
	res := d.stageRules("us", rl("eu/", "eu"), rlMode("aa/", "ap", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE))
	require.NoError(t, res.Err)
	require.True(t, res.Staged)
	tr, active := f.Transition()
	require.True(t, active)
	var pairs []string
	for _, m := range tr.GetMoves() {
		pairs = append(pairs, m.GetFrom()+">"+m.GetTo())
	}
	assert.Equal(t, []string{"us>ap", "us>eu"}, pairs, "the old home (the default) hands over to every other region")
	p := f.Lookup("aa/1")
	assert.Equal(t, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, p.Mode, "nothing changes before the flip")
	require.NotNil(t, p.Moving, "writes wait during the handover")
}

func TestRefusedStagedChangeIsNotStaged(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	res := d.stagePin("eu/x", "mars")
	require.ErrorIs(t, res.Err, ErrInvalidArgument)
	_, active := f.Transition()
	assert.False(t, active)
}

func TestAbortedTransitionLeavesTheTableAsItWas(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu"), rl("ap/", "ap"))
	before := f.Lookup("eu/1")
	res := d.stageRules("us", rl("eu/", "ap"), rl("ap/", "ap"))
	require.True(t, res.Staged)
	assert.NotNil(t, f.Lookup("eu/1").Moving)
	ab := d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ABORT_TRANSITION,
		&meridianv1.AbortTransitionCommand{Transition: res.Transition, Reason: "eu did not freeze"})
	require.NoError(t, ab.Err)
	after := f.Lookup("eu/1")
	assert.Equal(t, before, after)
	rec, active := f.Transition()
	assert.False(t, active)
	assert.Equal(t, "eu did not freeze", rec.GetAborted())
	out, ok := f.outcomes.get(res.Transition)
	require.True(t, ok)
	assert.Nil(t, out.res, "aborted: no result")
	// Late reports change nothing.
	assert.False(t, d.ack(res.Transition, frozen, "eu", "", 0).Completed)
	assert.Equal(t, before, f.Lookup("eu/1"))
}

func TestTransitionInProgressSurvivesRestartAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu"))
	res := d.stageRules("ap", rl("eu/", "us"))
	require.True(t, res.Staged)
	require.False(t, d.ack(res.Transition, frozen, "eu", "", 3).Completed)
	want := f.Lookup("eu/1")
	require.NotNil(t, want.Moving)
	wantRec, _ := f.Transition()
	snap := snapshotBytes(t, f)
	require.NoError(t, f.Close())

	f2 := openTestFSM(t, dir)
	t.Cleanup(func() { _ = f2.Close() })
	assert.Equal(t, want, f2.Lookup("eu/1"))
	gotRec, active := f2.Transition()
	assert.True(t, active)
	assert.True(t, proto.Equal(wantRec, gotRec))

	f3 := newTestFSM(t)
	require.NoError(t, f3.Restore(io.NopCloser(bytes.NewReader(snap))))
	assert.Equal(t, want, f3.Lookup("eu/1"))
	assert.NotNil(t, f3.Lookup("x").Moving, "the default moves too (us to ap)")

	// The reopened copy completes it like the original would have.
	d2 := &driver{t: t, f: f2, index: f2.AppliedIndex()}
	require.False(t, d2.ack(res.Transition, drained, "us", "eu", 3).Completed, "us (the old default) has not frozen")
	assert.Equal(t, "eu", f2.Lookup("eu/1").Home, "nothing moves before the whole change completes")
	// us froze with nothing ordered (sequence 0): ap has nothing to drain,
	// so that report completes the change.
	done := d2.ack(res.Transition, frozen, "us", "", 0)
	require.True(t, done.Completed)
	assert.Equal(t, "us", f2.Lookup("eu/1").Home)
	assert.Equal(t, "ap", f2.Lookup("x").Home)
}

func TestRuleMoves(t *testing.T) {
	aa := meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
	rs := func(def string, rules ...*meridianv1.PlacementRule) *ruleSet {
		out := make([]rule, len(rules))
		for i, r := range rules {
			out[i] = ruleOf(r, 1)
		}
		return newRuleSet(out, def, 1, 1)
	}
	mv := func(from, to string) *meridianv1.HomeMove { return &meridianv1.HomeMove{From: from, To: to} }
	for _, c := range []struct {
		name      string
		cur, next *ruleSet
		want      []*meridianv1.HomeMove
	}{
		{"nothing changes", rs("us", rl("eu/", "eu")), rs("us", rl("eu/", "eu", "ap")), nil},
		{"default moves", rs("us", rl("eu/", "eu")), rs("ap", rl("eu/", "eu")), []*meridianv1.HomeMove{mv("us", "ap")}},
		{"rule moves", rs("us", rl("eu/", "eu")), rs("us", rl("eu/", "ap")), []*meridianv1.HomeMove{mv("eu", "ap")}},
		{"new specific rule takes entities from its parent", rs("us", rl("eu/", "eu")),
			rs("us", rl("eu/acct/", "ap"), rl("eu/", "eu")), []*meridianv1.HomeMove{mv("eu", "ap")}},
		{"removed rule gives entities to the default", rs("us", rl("eu/", "eu")), rs("us"), []*meridianv1.HomeMove{mv("eu", "us")}},
		{"swap", rs("us", rl("eu/", "eu"), rl("ap/", "ap")), rs("us", rl("eu/", "ap"), rl("ap/", "eu")),
			[]*meridianv1.HomeMove{mv("ap", "eu"), mv("eu", "ap")}},
		{"active-active to active-active needs no handover", rs("us", rlMode("aa/", "ap", aa)),
			rs("us", rlMode("aa/", "eu", aa)), nil},
		{"to active-active: every other region drains the old home", rs("us", rl("eu/", "eu")),
			rs("us", rlMode("eu/", "eu", aa)), []*meridianv1.HomeMove{mv("eu", "ap"), mv("eu", "us")}},
		{"from active-active: the new home drains every other region", rs("us", rlMode("aa/", "ap", aa)),
			rs("us", rl("aa/", "us")), []*meridianv1.HomeMove{mv("ap", "us"), mv("eu", "us")}},
	} {
		assert.Equal(t, c.want, ruleMoves(c.cur, c.next, []string{"ap", "eu", "us"}), c.name)
	}
}

// TestRuleMovesCoverEveryMovedEntity is the cell argument of ruleMoves as
// a law: for random rule sets before and after, every entity whose
// (single) home differs has its (old home, new home) pair listed, and every
// entity switching between single-home and active-active has its handover
// between the single home and every other region listed.
func TestRuleMovesCoverEveryMovedEntity(t *testing.T) {
	regions := []string{"r1", "r2", "r3"}
	prefixes := []string{"a", "a/", "a/b", "a/b/", "ab", "b", "b/a", "c/"}
	probes := []string{"a", "a/", "a/b", "a/b/c", "a/bc", "ab", "abc", "b", "b/a/1", "c/", "c/x", "d"}
	rules := func(rt *rapid.T, name string) *ruleSet {
		n := rapid.IntRange(0, 5).Draw(rt, name+"-n")
		seen := map[string]bool{}
		var out []rule
		for range n {
			p := rapid.SampledFrom(prefixes).Draw(rt, name+"-prefix")
			if seen[p] {
				continue
			}
			seen[p] = true
			mode := meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
			if rapid.IntRange(0, 5).Draw(rt, name+"-aa") == 0 {
				mode = meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
			}
			out = append(out, rule{prefix: p, home: rapid.SampledFrom(regions).Draw(rt, name+"-home"), mode: mode, epoch: 1})
		}
		return newRuleSet(out, rapid.SampledFrom(regions).Draw(rt, name+"-default"), 1, 1)
	}
	rapid.Check(t, func(rt *rapid.T) {
		cur, next := rules(rt, "cur"), rules(rt, "next")
		moves := ruleMoves(cur, next, regions)
		listed := func(from, to string) bool {
			for _, m := range moves {
				if m.GetFrom() == from && m.GetTo() == to {
					return true
				}
			}
			return false
		}
		for _, e := range probes {
			from, fm := ruleHome(cur, e)
			to, tm := ruleHome(next, e)
			switch {
			case single(from, fm) && single(to, tm):
				if from != to && !listed(from, to) {
					rt.Fatalf("entity %q moves %s -> %s, not in %v", e, from, to, moves)
				}
			case single(from, fm) != single(to, tm):
				home := from
				if !single(from, fm) {
					home = to
				}
				for _, r := range regions {
					if r == home {
						continue
					}
					if single(from, fm) && !listed(home, r) || !single(from, fm) && !listed(r, home) {
						rt.Fatalf("entity %q switches mode (%s %v -> %s %v): handover with %s not in %v", e, from, fm, to, tm, r, moves)
					}
				}
			}
		}
	})
}

func (d *driver) renew(region string, dur time.Duration) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_RENEW_LEASE, &meridianv1.RenewLeaseCommand{
		Lease: &meridianv1.RegionLease{Region: region, Holder: "n1", Duration: durationpb.New(dur)},
	})
}

func TestLeaseRenewalsAndTheirExpiry(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu"))
	_, ok := f.LeaseStatus("eu", 0)
	assert.False(t, ok, "no renewal yet")

	res := d.renew("eu", 50*time.Millisecond)
	require.NoError(t, res.Err)
	assert.Equal(t, uint64(0), res.Epoch, "nothing moved away from eu yet: no index to wait for")
	st, ok := f.LeaseStatus("eu", 20*time.Millisecond)
	require.True(t, ok)
	assert.False(t, st.GetExpired())
	assert.Equal(t, d.index, st.GetLease().GetRenewedIndex())
	require.Eventually(t, func() bool {
		st, _ := f.LeaseStatus("eu", 20*time.Millisecond)
		return st.GetExpired()
	}, 5*time.Second, 5*time.Millisecond, "expires duration + offset after the renewal")

	bad := d.renew("mars", time.Second)
	require.ErrorIs(t, bad.Err, ErrInvalidArgument)
	bad = d.renew("eu", 2*time.Hour)
	require.ErrorIs(t, bad.Err, ErrInvalidArgument)

	// A change that moves homes away from eu records where, so that eu's
	// next lease waits for its copy to have it.
	staged := d.stagePin("eu/x", "ap")
	require.True(t, d.ack(staged.Transition, frozen, "eu", "", 0).Completed, "eu froze with nothing to drain")
	done := f.outcomesDone(t, staged.Transition)
	again := d.renew("eu", time.Second)
	assert.Equal(t, done, again.Epoch, "the renewal names the index eu's copy must reach")
	assert.Equal(t, done, f.Leases()["eu"].GetMovedAwayIndex())
}

// outcomesDone returns the completion index of transition tr.
func (f *FSM) outcomesDone(t *testing.T, tr uint64) uint64 {
	t.Helper()
	out, ok := f.outcomes.get(tr)
	require.True(t, ok)
	return out.rec.GetCompletedIndex()
}

func (d *driver) failover(region string, renewed uint64, targets map[string]string, fencers ...string) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_FAILOVER, &meridianv1.FailoverCommand{
		Region: region, ExpectedRenewedIndex: renewed, Targets: targets, Fencers: fencers, Reason: "test",
	})
}

func TestFailoverFencesTheLostLogAndFlipsOnceTheNewHomeHoldsTheCut(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu", "us", "ap"), rlPolicy("nv/", "eu", meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER, "us"))
	require.NoError(t, d.pin("eu/pinned", "eu").Err)
	require.NoError(t, d.pin("eu/elsewhere", "ap").Err)
	require.NoError(t, d.pin("nv/pinned", "eu").Err) // under a kept rule: kept anyway, not listed
	require.NoError(t, d.renew("eu", time.Second).Err)
	renewed := d.index

	// Refused: a stale renewal index, a rule with policy never, a target
	// outside the rule's list.
	require.ErrorIs(t, d.failover("eu", renewed-1, map[string]string{"eu/": "us"}, "us", "ap").Err, ErrInvalidArgument)
	require.ErrorIs(t, d.failover("eu", renewed, map[string]string{"nv/": "us"}, "us", "ap").Err, ErrInvalidArgument)
	require.ErrorIs(t, d.failover("eu", renewed, map[string]string{"eu/": "mars"}, "us", "ap").Err, ErrInvalidArgument)

	res := d.failover("eu", renewed, map[string]string{"eu/": "us"}, "ap", "us")
	require.NoError(t, res.Err)
	require.True(t, res.Staged)
	tr := res.Transition
	rec, active := f.Transition()
	require.True(t, active)
	assert.True(t, rec.GetFailover())
	require.Len(t, rec.GetMoves(), 1)
	assert.True(t, rec.GetMoves()[0].GetLost())
	assert.Equal(t, "eu", f.Lookup("eu/1").Home)
	assert.NotNil(t, f.Lookup("eu/1").Moving)
	assert.Nil(t, f.Lookup("nv/1").Moving, "policy never: stays")

	fenced := meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_FENCED
	assert.False(t, d.ack(tr, frozen, "eu", "", 9).Completed, "a lost home's freeze is not asked for")
	assert.False(t, d.ack(tr, fenced, "us", "eu", 7).Completed)
	assert.False(t, d.ack(tr, drained, "us", "eu", 7).Completed, "the cut is not known until every survivor fenced")
	assert.False(t, d.ack(tr, fenced, "mars", "eu", 50).Completed, "not a fencer")
	assert.False(t, d.ack(tr, fenced, "ap", "eu", 9).Completed)
	rec, _ = f.Transition()
	assert.Equal(t, uint64(9), rec.GetMoves()[0].GetCut(), "the longest prefix a survivor holds")
	done := d.ack(tr, drained, "us", "eu", 9)
	require.True(t, done.Completed)
	p := f.Lookup("eu/1")
	assert.Equal(t, "us", p.Home)
	assert.Equal(t, done.Index, p.Epoch)
	assert.Equal(t, []string{"ap", "eu"}, p.Failover, "the lost home goes to the end of the list")
	assert.Equal(t, done.Index, f.Leases()["eu"].GetMovedAwayIndex())

	// The lost region's lease record keeps what every region needs to
	// tell its unreplicated tail (region/supersede.go), across renewals.
	want := &meridianv1.FailoverTail{Transition: tr, CompletedIndex: done.Index, Cut: 9,
		Moved: []string{"eu/"}, Kept: []string{"nv/"}, Pinned: []string{"eu/pinned"}}
	require.Len(t, f.Failovers("eu"), 1)
	assert.True(t, proto.Equal(want, f.Failovers("eu")[0]), "got %v", f.Failovers("eu")[0])
	require.NoError(t, d.renew("eu", time.Second).Err)
	require.Len(t, f.Failovers("eu"), 1, "a renewal keeps the region's failovers")
	assert.True(t, proto.Equal(want, f.Failovers("eu")[0]))
	assert.Empty(t, f.Failovers("us"))
}

// TestFailoverWaitsWhileAnotherRegionIsLost: the leader's failover of a
// lost region needs every other region to fence (any of them may hold a
// MULTI_REGION write of the lost home), so it waits while a second
// region's lease has expired too, and moves each rule to the first live
// region of its list once only one region is lost.
func TestFailoverWaitsWhileAnotherRegionIsLost(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	d.mustSetRules("us", rl("eu/", "eu", "ap", "us"), rlPolicy("nv/", "eu", meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER, "us"))
	cfg := DefaultConfig()
	cfg.MaxClockOffset = 10 * time.Millisecond
	n := &Node{cfg: cfg, fsm: f, logger: testLogger()}
	short, long := 30*time.Millisecond, time.Hour
	require.NoError(t, d.renew("eu", short).Err)
	require.NoError(t, d.renew("ap", short).Err)
	require.NoError(t, d.renew("us", long).Err)
	require.Eventually(t, func() bool { return n.leaseExpired("eu") && n.leaseExpired("ap") }, 5*time.Second, 5*time.Millisecond)
	assert.Nil(t, n.failoverCommand("eu"), "ap is lost too: ap could hold eu's MULTI_REGION writes")

	require.NoError(t, d.renew("ap", long).Err)
	cmd := n.failoverCommand("eu")
	require.NotNil(t, cmd)
	assert.Equal(t, map[string]string{"eu/": "ap"}, cmd.GetTargets(), "the first live region of the list; nv/ never fails over")
	assert.Equal(t, []string{"ap", "us"}, cmd.GetFencers(), "every other region")
}

// TestMergeTargetsKeepTheirKind: while entities stay active-active, a rule
// change may add, drop or remap merge rules but not change a target's
// kind (there is no handover between the two rule versions); after a
// refusal nothing changed.
func TestMergeTargetsKeepTheirKind(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	aaRule := func(prefix string, ms ...*meridianv1.MergeRule) *meridianv1.PlacementRule {
		return withMerge(rlMode(prefix, "eu", aaMode), ms...)
	}
	d.mustSetRules("us", aaRule("c/", mr("Counted", counterOp, "n")))
	before := f.Lookup("c/1").Merge
	require.Len(t, before, 1)

	for _, tc := range []struct {
		name  string
		rules []*meridianv1.PlacementRule
	}{
		{"same prefix", []*meridianv1.PlacementRule{aaRule("c/", mr("Tagged", addOp, "n"))}},
		{"a more specific prefix takes the entities", []*meridianv1.PlacementRule{aaRule("c/x", mr("Tagged", addOp, "n")), aaRule("c/", mr("Counted", counterOp, "n"))}},
	} {
		res := d.stageRules("us", tc.rules...)
		require.Error(t, res.Err, tc.name)
		requireInvalid(t, res.Err, "rules[0].merge[0].op", `target "n" is a counter`, "name a new target")
		assert.Equal(t, before, f.Lookup("c/1").Merge, "%s: nothing changed", tc.name)
	}
	// Another target, or the same kind from another event type, is fine.
	res := d.stageRules("us", aaRule("c/", mr("Counted", counterOp, "n"), mr("Bumped", counterOp, "n"), mr("Tagged", addOp, "tags")))
	require.NoError(t, res.Err)
	require.False(t, res.Staged, "active-active to active-active moves no home")
	assert.Len(t, f.Lookup("c/1").Merge, 3)
	// Leaving active-active (a handover) may reuse the name afterwards.
	require.NoError(t, d.stageRules("us", rl("c/", "eu")).Err)
}
