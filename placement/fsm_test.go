package placement

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tb is what the helpers need of a *testing.T, a *testing.B or a *rapid.T.
type tb interface {
	require.TestingT
	Helper()
	Fatalf(format string, args ...any)
}

func openTestFSM(t tb, dir string) *FSM {
	t.Helper()
	f, err := OpenFSM(StoreConfig{Dir: dir, Logger: testLogger()})
	require.NoError(t, err)
	return f
}

func newTestFSM(t testing.TB) *FSM {
	t.Helper()
	f := openTestFSM(t, t.TempDir())
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func member(region, node string) *meridianv1.Member {
	return &meridianv1.Member{Id: region + "/" + node, Region: region, Node: node,
		RaftAddress: "10.0.0.1:7000", ApiAddress: "10.0.0.1:8000"}
}

func rl(prefix, home string, failover ...string) *meridianv1.PlacementRule {
	return &meridianv1.PlacementRule{Prefix: prefix, HomeRegion: home, Failover: failover}
}

func rlMode(prefix, home string, mode meridianv1.PlacementMode) *meridianv1.PlacementRule {
	return &meridianv1.PlacementRule{Prefix: prefix, HomeRegion: home, Mode: mode}
}

func rlPolicy(prefix, home string, policy meridianv1.FailoverPolicy, failover ...string) *meridianv1.PlacementRule {
	return &meridianv1.PlacementRule{Prefix: prefix, HomeRegion: home, FailoverPolicy: policy, Failover: failover}
}

// driver feeds an FSM entries at consecutive indexes and keeps them for replay.
type driver struct {
	t       tb
	f       *FSM
	index   uint64
	entries []*raft.Log
}

func newDriver(t tb, f *FSM) *driver { return &driver{t: t, f: f, index: f.AppliedIndex()} }

func (d *driver) entry(typ meridianv1.PlacementCommandType, m proto.Message) *raft.Log {
	d.t.Helper()
	data, err := EncodeCommand(typ, m)
	require.NoError(d.t, err)
	d.index++
	l := &raft.Log{Index: d.index, Term: 1, Type: raft.LogCommand, Data: data}
	d.entries = append(d.entries, l)
	return l
}

func (d *driver) apply(typ meridianv1.PlacementCommandType, m proto.Message) *ApplyResult {
	d.t.Helper()
	r := d.f.Apply(d.entry(typ, m))
	res, ok := r.(*ApplyResult)
	require.True(d.t, ok, "Apply returned %T (%v)", r, r)
	assert.Equal(d.t, d.index, res.Index)
	return res
}

func (d *driver) join(m *meridianv1.Member) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_JOIN, &meridianv1.JoinCommand{Member: m})
}

// joinRegions joins one member per region.
func (d *driver) joinRegions(regions ...string) {
	d.t.Helper()
	for _, r := range regions {
		require.NoError(d.t, d.join(member(r, "n1")).Err)
	}
}

func (d *driver) setRules(def string, expected uint64, rules ...*meridianv1.PlacementRule) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES,
		&meridianv1.SetRulesCommand{Rules: rules, DefaultRegion: def, ExpectedIndex: expected})
}

func (d *driver) mustSetRules(def string, rules ...*meridianv1.PlacementRule) *ApplyResult {
	d.t.Helper()
	res := d.setRules(def, 0, rules...)
	require.NoError(d.t, res.Err)
	return res
}

func (d *driver) pin(entity, region string) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, &meridianv1.PinCommand{Entity: entity, Region: region})
}

func (d *driver) unpin(entity string) *ApplyResult {
	d.t.Helper()
	return d.apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNPIN, &meridianv1.UnpinCommand{Entity: entity})
}

// dump is everything an FSM answers, for comparisons.
type dump struct {
	Rules        []*meridianv1.PlacementRule
	Default      string
	DefaultEpoch uint64
	RulesIndex   uint64
	Members      []*meridianv1.Member
	Regions      []string
	Pins         int
	Applied      uint64
	Lookups      []Placement
}

var probeEntities = []string{"a", "eu/acct/1", "eu/acct/2", "eu/x", "eu/", "us/1", "us/acct/9", "order-1", "order-2", "z", "pinned/1", "pinned/2"}

func dumpOf(t testing.TB, f *FSM) dump {
	t.Helper()
	var d dump
	d.Rules, d.Default, d.DefaultEpoch, d.RulesIndex = f.Rules()
	d.Members, d.Regions, d.Pins, d.Applied = f.Members(), f.Regions(), f.PinCount(), f.AppliedIndex()
	for _, e := range probeEntities {
		d.Lookups = append(d.Lookups, f.Lookup(e))
	}
	return d
}

func requireSameDump(t testing.TB, want, got dump) {
	t.Helper()
	require.Equal(t, len(want.Rules), len(got.Rules))
	for i := range want.Rules {
		require.True(t, proto.Equal(want.Rules[i], got.Rules[i]), "rules[%d]: %v vs %v", i, want.Rules[i], got.Rules[i])
	}
	require.Equal(t, len(want.Members), len(got.Members))
	for i := range want.Members {
		require.True(t, proto.Equal(want.Members[i], got.Members[i]), "members[%d]", i)
	}
	want.Rules, got.Rules, want.Members, got.Members = nil, nil, nil, nil
	require.Equal(t, want, got)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStoreConfigValidate(t *testing.T) {
	require.ErrorIs(t, DefaultStoreConfig().Validate(), ErrInvalidConfig)
	_, err := OpenFSM(StoreConfig{})
	require.ErrorIs(t, err, ErrInvalidConfig)
	c := DefaultStoreConfig()
	c.Dir = t.TempDir()
	require.NoError(t, c.Validate())
}

func TestEmptyTableHasNoPlacement(t *testing.T) {
	f := newTestFSM(t)
	p := f.Lookup("order-1")
	assert.Equal(t, Placement{Entity: "order-1"}, p)
	rules, def, defEpoch, idx := f.Rules()
	assert.Empty(t, rules)
	assert.Equal(t, "", def)
	assert.Zero(t, defEpoch)
	assert.Zero(t, idx)
	assert.Empty(t, f.Members())
	assert.Empty(t, f.Regions())
	assert.Empty(t, f.KnownRegions())
}

func TestLookupPrecedence(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us", "ap")
	set := d.mustSetRules("us",
		rl("eu/acct/", "ap", "us"),
		rlMode("eu/", "eu", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE),
		rl("order-", "ap"))
	require.NoError(t, d.pin("eu/acct/7", "us").Err)
	pin := d.index
	for _, tc := range []struct {
		name, entity, home string
		source             meridianv1.PlacementSource
		prefix             string
		mode               meridianv1.PlacementMode
		epoch              uint64
		failover           []string
	}{
		{"pin beats the matching rule", "eu/acct/7", "us", meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN, "", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, pin, nil},
		{"first (most specific) rule", "eu/acct/8", "ap", meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, "eu/acct/", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, set.Index, []string{"us"}},
		{"shorter rule", "eu/acct", "eu", meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, "eu/", meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE, set.Index, nil},
		{"prefix equal to the entity", "order-", "ap", meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, "order-", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, set.Index, nil},
		{"other rule", "order-42", "ap", meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, "order-", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, set.Index, nil},
		{"default", "eu", "us", meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT, "", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, set.DefaultEpoch, nil},
		{"default for a longer non-match", "ordex-1", "us", meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT, "", meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, set.DefaultEpoch, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := f.Lookup(tc.entity)
			var policy meridianv1.FailoverPolicy // pins and the default never fail over
			if tc.source == meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE {
				policy = meridianv1.FailoverPolicy_FAILOVER_POLICY_SAFE // the default of a rule
			}
			assert.Equal(t, Placement{Entity: tc.entity, Home: tc.home, Mode: tc.mode, Epoch: tc.epoch,
				Failover: tc.failover, FailoverPolicy: policy, Source: tc.source, RulePrefix: tc.prefix}, p)
		})
	}
}

func TestRulesAndDirectoryAccessors(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	require.NoError(t, d.join(member("us", "b")).Err)
	require.NoError(t, d.join(member("eu", "a")).Err)
	require.NoError(t, d.join(member("us", "a")).Err)
	ids := []string{}
	for _, m := range f.Members() {
		ids = append(ids, m.GetId())
	}
	assert.Equal(t, []string{"eu/a", "us/a", "us/b"}, ids)
	assert.Equal(t, []string{"eu", "us"}, f.Regions())
	assert.Equal(t, map[string]bool{"eu": true, "us": true}, f.KnownRegions())

	res := d.mustSetRules("eu", rl("x/", "us", "eu"))
	rules, def, defEpoch, idx := f.Rules()
	require.Len(t, rules, 1)
	assert.Equal(t, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, rules[0].GetMode(), "UNSPECIFIED is stored as SINGLE_HOME")
	assert.True(t, proto.Equal(res.Rules[0], rules[0]))
	assert.Equal(t, "eu", def)
	assert.Equal(t, res.DefaultEpoch, defEpoch)
	assert.Equal(t, res.Index, idx)
	// Copies: changing them changes nothing inside.
	rules[0].Failover[0] = "zz"
	f.Members()[0].Region = "zz"
	f.KnownRegions()["zz"] = true
	again, _, _, _ := f.Rules()
	assert.Equal(t, []string{"eu"}, again[0].GetFailover())
	assert.Equal(t, "eu", f.Members()[0].GetRegion())
	assert.False(t, f.KnownRegions()["zz"])
}

func TestJoinUpsertsAndSetsTheFirstDefault(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	first := d.join(member("eu", "a"))
	require.NoError(t, first.Err)
	assert.Equal(t, first.Index, first.DefaultEpoch)
	p := f.Lookup("anything")
	assert.Equal(t, "eu", p.Home)
	assert.Equal(t, first.Index, p.Epoch)
	assert.Equal(t, meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT, p.Source)

	second := d.join(member("us", "a"))
	require.NoError(t, second.Err)
	assert.Equal(t, first.Index, second.DefaultEpoch, "a later region does not move the default")
	assert.Equal(t, "eu", f.Lookup("anything").Home)

	again := d.join(member("us", "a"))
	require.NoError(t, again.Err)
	assert.True(t, again.Existed)

	moved := member("us", "a")
	moved.ApiAddress = "10.0.0.9:8000"
	res := d.join(moved)
	require.NoError(t, res.Err)
	assert.False(t, res.Existed)
	require.Len(t, f.Members(), 2)
	assert.Equal(t, "10.0.0.9:8000", f.Members()[1].GetApiAddress())

	bad := d.join(&meridianv1.Member{Id: "x/y", Region: "x", Node: "z", RaftAddress: "h:1", ApiAddress: "h:2"})
	require.ErrorIs(t, bad.Err, ErrInvalidArgument)
	assert.Len(t, f.Members(), 2)
}

func TestCloseReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	d.mustSetRules("us", rl("eu/", "eu", "us"), rl("order-", "eu"))
	require.NoError(t, d.pin("pinned/1", "eu").Err)
	require.NoError(t, d.pin("pinned/2", "us").Err)
	require.True(t, d.unpin("pinned/2").Existed)
	want := dumpOf(t, f)
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "Close twice is fine")
	assert.Equal(t, ErrStoreClosed, f.Apply(&raft.Log{Index: 99, Type: raft.LogCommand}))
	_, err := f.Snapshot()
	require.ErrorIs(t, err, ErrStoreClosed)

	g := openTestFSM(t, dir)
	defer g.Close()
	requireSameDump(t, want, dumpOf(t, g))
}

func TestApplySkipsAppliedEntriesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	d.mustSetRules("us", rl("eu/", "eu"))
	require.NoError(t, d.pin("pinned/1", "eu").Err)
	require.True(t, d.unpin("pinned/1").Existed)
	require.NoError(t, d.pin("pinned/2", "eu").Err)
	want := dumpOf(t, f)
	require.NoError(t, f.Close())

	// hashicorp/raft re-applies the log after the last snapshot at start.
	g := openTestFSM(t, dir)
	defer g.Close()
	for _, l := range d.entries {
		assert.Nil(t, g.Apply(l), "entry %d was applied before", l.Index)
	}
	requireSameDump(t, want, dumpOf(t, g))

	// Entries after the applied index still apply.
	d.f = g
	require.NoError(t, d.pin("pinned/3", "us").Err)
	assert.Equal(t, 2, g.PinCount(), "pinned/2 and pinned/3")
}

func TestApplyNonCommandEntriesAdvanceIndex(t *testing.T) {
	f := newTestFSM(t)
	assert.Nil(t, f.Apply(&raft.Log{Index: 5, Term: 2, Type: raft.LogNoop}))
	assert.Equal(t, uint64(5), f.AppliedIndex())
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte{0xff, 0xff}},
		{"unknown version", mustMarshal(t, &meridianv1.PlacementCommand{Version: 9, Type: meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN})},
		{"unknown type", mustMarshal(t, &meridianv1.PlacementCommand{Version: 1, Type: 42})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			require.Panics(t, func() { f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: tc.data}) })
			assert.Zero(t, f.AppliedIndex(), "the entry is not recorded as applied")
		})
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestChangedSignalsEveryApply(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	for i := range 3 {
		ch := f.Changed()
		d.join(member("eu", fmt.Sprintf("n%d", i)))
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("Changed not closed after an apply")
		}
	}
	ch := f.Changed()
	require.NoError(t, f.Close())
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by Close")
	}
}
