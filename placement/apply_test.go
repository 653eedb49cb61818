package placement

import (
	"fmt"
	"os"
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// ruleEpochs returns each stored rule's epoch by prefix.
func ruleEpochs(f *FSM) map[string]uint64 {
	rules, _, _, _ := f.Rules()
	out := map[string]uint64{}
	for _, r := range rules {
		out[r.GetPrefix()] = r.GetEpoch()
	}
	return out
}

func TestSetRulesEpochs(t *testing.T) {
	base := []*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("eu/", "eu", "us"), rl("us/", "us")}
	for _, tc := range []struct {
		name   string
		def    string
		rules  []*meridianv1.PlacementRule
		bumped []string // prefixes whose epoch becomes the new index; "" = the default
	}{
		{"identical resubmit keeps every epoch", "us", base, nil},
		{"home change bumps that rule", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("eu/", "ap", "us"), rl("us/", "us")}, []string{"eu/"}},
		{"mode change bumps that rule", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("eu/", "eu", "us"), rlMode("us/", "us", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE)}, []string{"us/"}},
		{"failover change bumps that rule", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("eu/", "eu", "ap"), rl("us/", "us")}, []string{"eu/"}},
		{"explicit SINGLE_HOME equals UNSPECIFIED", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("eu/", "eu", "us"), rlMode("us/", "us", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME)}, nil},
		{"order change alone keeps epochs", "us",
			[]*meridianv1.PlacementRule{rl("us/", "us"), rl("eu/acct/", "ap"), rl("eu/", "eu", "us")}, nil},
		{"new more specific rule: only it is new", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/vip/", "us"), rl("eu/acct/", "ap"), rl("eu/", "eu", "us"), rl("us/", "us")}, []string{"eu/acct/vip/"}},
		{"removed specific rule bumps the rule it falls to and the default", "us",
			[]*meridianv1.PlacementRule{rl("eu/", "eu", "us"), rl("us/", "us")}, []string{"eu/", ""}},
		{"removed unrelated rule bumps only the default", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("eu/", "eu", "us")}, []string{""}},
		{"removed general rule bumps the default, not its more specific rule", "us",
			[]*meridianv1.PlacementRule{rl("eu/acct/", "ap"), rl("us/", "us")}, []string{""}},
		{"default change bumps only the default", "ap", base, []string{""}},
		{"all rules removed", "us", nil, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newDriver(t, f)
			d.joinRegions("eu", "us", "ap")
			first := d.mustSetRules("us", base...)
			_, _, defBefore, _ := f.Rules()
			before := ruleEpochs(f)
			for _, e := range before {
				require.Equal(t, first.Index, e)
			}
			res := d.mustSetRules(tc.def, tc.rules...)
			_, _, defAfter, rulesIndex := f.Rules()
			assert.Equal(t, res.Index, rulesIndex)
			assert.Equal(t, res.DefaultEpoch, defAfter)
			after := ruleEpochs(f)
			want := map[string]uint64{}
			wantDef := defBefore
			for _, r := range tc.rules {
				want[r.GetPrefix()] = before[r.GetPrefix()]
			}
			for _, p := range tc.bumped {
				if p == "" {
					wantDef = res.Index
				} else {
					want[p] = res.Index
				}
			}
			assert.Equal(t, want, after)
			assert.Equal(t, wantDef, defAfter, "default epoch")
			require.Len(t, res.Rules, len(tc.rules))
			for i, r := range res.Rules {
				assert.Equal(t, want[r.GetPrefix()], r.GetEpoch(), "result rules[%d]", i)
			}
		})
	}
}

func TestPinEpochs(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	d.mustSetRules("us", rl("eu/", "eu"))

	p1 := d.pin("eu/7", "us")
	require.NoError(t, p1.Err)
	assert.Equal(t, p1.Index, p1.Epoch)
	assert.False(t, p1.Existed)
	assert.Equal(t, Placement{Entity: "eu/7", Home: "us", Mode: meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME,
		Epoch: p1.Index, Source: meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN}, f.Lookup("eu/7"))

	same := d.pin("eu/7", "us")
	require.NoError(t, same.Err)
	assert.True(t, same.Existed)
	assert.Equal(t, p1.Index, same.Epoch, "the same region keeps the pin's epoch")
	assert.Equal(t, same.Index, f.AppliedIndex())
	assert.Equal(t, p1.Index, f.Lookup("eu/7").Epoch)

	moved := d.pin("eu/7", "eu")
	require.NoError(t, moved.Err)
	assert.False(t, moved.Existed)
	assert.Equal(t, moved.Index, moved.Epoch)
	assert.Equal(t, "eu", f.Lookup("eu/7").Home)
	assert.Equal(t, 1, f.PinCount())
}

func TestUnpinEpochs(t *testing.T) {
	for _, tc := range []struct {
		name, entity string
		source       meridianv1.PlacementSource
	}{
		{"falls back to a rule", "eu/7", meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE},
		{"falls back to the default", "other", meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			d := newDriver(t, f)
			d.joinRegions("eu", "us")
			set := d.mustSetRules("us", rl("eu/", "eu"), rl("x/", "eu"))
			require.NoError(t, d.pin(tc.entity, "us").Err)
			pinned := f.Lookup(tc.entity)

			res := d.unpin(tc.entity)
			require.NoError(t, res.Err)
			assert.True(t, res.Existed)
			assert.Equal(t, res.Index, res.Epoch)
			p := f.Lookup(tc.entity)
			assert.Equal(t, tc.source, p.Source)
			assert.Greater(t, p.Epoch, pinned.Epoch, "the fallback's epoch is bumped above the pin's")
			assert.Equal(t, res.Index, p.Epoch)
			assert.Zero(t, f.PinCount())

			_, _, defEpoch, rulesIndex := f.Rules()
			assert.Equal(t, set.Index, rulesIndex, "an unpin is not a rule change")
			epochs := ruleEpochs(f)
			assert.Equal(t, set.Index, epochs["x/"], "other rules keep their epochs")
			if tc.source == meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE {
				assert.Equal(t, res.Index, epochs["eu/"])
				assert.Equal(t, set.DefaultEpoch, defEpoch)
			} else {
				assert.Equal(t, set.Index, epochs["eu/"])
				assert.Equal(t, res.Index, defEpoch)
			}

			again := d.unpin(tc.entity)
			require.NoError(t, again.Err)
			assert.False(t, again.Existed)
			assert.Zero(t, again.Epoch)
			assert.Equal(t, p, f.Lookup(tc.entity), "no pin: nothing changes")
		})
	}
}

func TestSetRulesExpectedIndex(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	first := d.setRules("us", 0, rl("eu/", "eu"))
	require.NoError(t, first.Err)
	ok := d.setRules("us", first.Index, rl("eu/", "us"))
	require.NoError(t, ok.Err)

	stale := d.setRules("eu", first.Index)
	require.ErrorIs(t, stale.Err, ErrConflict)
	var ce *ConflictError
	require.ErrorAs(t, stale.Err, &ce)
	assert.Equal(t, ConflictError{Expected: first.Index, Current: ok.Index}, *ce)
	assert.Contains(t, stale.Err.Error(), fmt.Sprintf("expected_index %d", first.Index))
	assert.Contains(t, stale.Err.Error(), fmt.Sprintf("index %d", ok.Index))
	_, def, _, idx := f.Rules()
	assert.Equal(t, "us", def)
	assert.Equal(t, ok.Index, idx)
}

// TestRejectedCommandsWriteNothing: a rejected command changes neither the
// table nor Badger, but advances the applied index.
func TestRejectedCommandsWriteNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(d *driver) *ApplyResult
		want error
	}{
		{"overlapping rules", func(d *driver) *ApplyResult { return d.setRules("eu", 0, rl("a", "eu"), rl("ab", "us")) }, ErrInvalidArgument},
		{"unknown home", func(d *driver) *ApplyResult { return d.setRules("eu", 0, rl("a", "zz")) }, ErrInvalidArgument},
		{"missing default", func(d *driver) *ApplyResult { return d.setRules("", 0) }, ErrInvalidArgument},
		{"stale expected index", func(d *driver) *ApplyResult { return d.setRules("eu", 1) }, ErrConflict},
		{"pin to an unknown region", func(d *driver) *ApplyResult { return d.pin("e", "zz") }, ErrInvalidArgument},
		{"pin of an empty entity", func(d *driver) *ApplyResult { return d.pin("", "eu") }, ErrInvalidArgument},
		{"unpin of a bad entity", func(d *driver) *ApplyResult { return d.unpin("/x") }, ErrInvalidArgument},
		{"join of a bad member", func(d *driver) *ApplyResult { return d.join(&meridianv1.Member{Id: "eu/x"}) }, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := openTestFSM(t, dir)
			d := newDriver(t, f)
			d.joinRegions("eu", "us")
			d.mustSetRules("us", rl("eu/", "eu"))
			require.NoError(t, d.pin("pinned/1", "eu").Err)
			before := dumpOf(t, f)

			res := tc.run(d)
			require.ErrorIs(t, res.Err, tc.want)
			assert.Zero(t, res.Epoch)
			after := dumpOf(t, f)
			assert.Equal(t, before.Applied+1, after.Applied, "a rejected command still advances the applied index")
			before.Applied = after.Applied
			requireSameDump(t, before, after)

			require.NoError(t, f.Close())
			g := openTestFSM(t, dir)
			defer g.Close()
			requireSameDump(t, before, dumpOf(t, g))
		})
	}
}

// TestEpochsMonotonic is the epoch law, on random command sequences: for
// every probe entity, the epoch Lookup returns never decreases, and it
// increases whenever the entity's (home, mode) changes. Sequences mix valid
// and invalid commands and reopen the state machine at random points.
// rapid prints the seed of a failing case and replays it with -rapid.seed.
func TestEpochsMonotonic(t *testing.T) {
	regions := []string{"r1", "r2", "r3"}
	prefixPool := []string{"a", "a/", "a/b", "a/b/", "ab", "b", "b/a"}
	probes := []string{"a", "a/b", "a/b/c", "a/bc", "ab", "b/a/1", "c"}
	modes := []meridianv1.PlacementMode{0, 1, 2}
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "placement-law-")
		require.NoError(rt, err)
		defer os.RemoveAll(dir)
		f := openTestFSM(rt, dir)
		defer func() { _ = f.Close() }()
		d := &driver{t: rt, f: f}
		prev := map[string]Placement{}
		check := func(step string) {
			for _, e := range probes {
				p := d.f.Lookup(e)
				old, seen := prev[e]
				if seen {
					if p.Epoch < old.Epoch {
						rt.Fatalf("%s: %q epoch went back: %+v -> %+v", step, e, old, p)
					}
					if (p.Home != old.Home || p.Mode != old.Mode) && p.Epoch <= old.Epoch {
						rt.Fatalf("%s: %q moved without a new epoch: %+v -> %+v", step, e, old, p)
					}
				}
				prev[e] = p
			}
		}
		check("open")
		d.join(member("r1", "n1")) // the default region
		check("first join")
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for i := range steps {
			step := fmt.Sprintf("step %d", i)
			switch rapid.IntRange(0, 19).Draw(rt, "op") {
			case 0, 1:
				d.join(member(rapid.SampledFrom(regions).Draw(rt, "region"), rapid.SampledFrom([]string{"n1", "n2"}).Draw(rt, "node")))
			case 2, 3, 4, 5, 6, 7:
				n := rapid.IntRange(0, len(prefixPool)).Draw(rt, "rules")
				picked := rapid.Permutation(prefixPool).Draw(rt, "prefixes")[:n]
				if rapid.IntRange(0, 4).Draw(rt, "shuffled") > 0 { // longest first never shadows
					for a := 1; a < len(picked); a++ {
						for b := a; b > 0 && len(picked[b]) > len(picked[b-1]); b-- {
							picked[b], picked[b-1] = picked[b-1], picked[b]
						}
					}
				}
				known := d.f.Regions()
				var rules []*meridianv1.PlacementRule
				for _, p := range picked {
					r := rl(p, rapid.SampledFrom(known).Draw(rt, "home"))
					r.Mode = rapid.SampledFrom(modes).Draw(rt, "mode")
					if rapid.IntRange(0, 3).Draw(rt, "failover") == 0 {
						r.Failover = []string{rapid.SampledFrom(regions).Draw(rt, "fo")}
					}
					rules = append(rules, r)
				}
				_, _, _, idx := d.f.Rules()
				exp := rapid.SampledFrom([]uint64{0, 0, 0, idx, idx + 1}).Draw(rt, "expected")
				d.setRules(rapid.SampledFrom(known).Draw(rt, "default"), exp, rules...)
			case 8, 9, 10, 11, 12:
				d.pin(rapid.SampledFrom(probes).Draw(rt, "entity"), rapid.SampledFrom(regions).Draw(rt, "region"))
			case 13, 14, 15, 16, 17, 18:
				d.unpin(rapid.SampledFrom(probes).Draw(rt, "entity"))
			case 19:
				require.NoError(rt, d.f.Close())
				d.f = openTestFSM(rt, dir)
				f = d.f
				step += " (reopen)"
			}
			check(step)
		}
	})
}
