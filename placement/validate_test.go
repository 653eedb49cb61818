package placement

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var knownABC = map[string]bool{"a": true, "b": true, "c": true}

// requireInvalid checks err is an *InvalidArgumentError for field whose
// message contains every one of texts.
func requireInvalid(t testing.TB, err error, field string, texts ...string) {
	t.Helper()
	require.ErrorIs(t, err, ErrInvalidArgument)
	var ia *InvalidArgumentError
	require.True(t, errors.As(err, &ia), "%T", err)
	assert.Equal(t, field, ia.Field, "%v", err)
	assert.True(t, strings.HasPrefix(err.Error(), "placement: "), "%v", err)
	assert.Contains(t, err.Error(), field)
	for _, s := range texts {
		assert.Contains(t, err.Error(), s)
	}
}

func TestValidateRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []*meridianv1.PlacementRule
		def   string
		field string // "" = valid
		texts []string
	}{
		{"valid", []*meridianv1.PlacementRule{rl("eu/acct/", "b", "a"), rl("eu/", "a", "b", "c"), rl("us", "c")}, "a", "", nil},
		{"no rules", nil, "a", "", nil},
		{"specific before general is fine", []*meridianv1.PlacementRule{rl("ab", "a"), rl("a", "b")}, "a", "", nil},
		{"overlap: general first", []*meridianv1.PlacementRule{rl("x", "a"), rl("eu/", "a"), rl("y", "a"), rl("eu/acct/", "b")}, "a",
			"rules[3].prefix", []string{`rules[3] (prefix "eu/acct/") is shadowed by rules[1] (prefix "eu/"): list more specific prefixes first`}},
		{"overlap: the earliest shadowing rule is named", []*meridianv1.PlacementRule{rl("e", "a"), rl("eu", "a"), rl("eu/x", "b")}, "a",
			"rules[1].prefix", []string{`rules[1] (prefix "eu") is shadowed by rules[0] (prefix "e")`}},
		{"duplicate prefix", []*meridianv1.PlacementRule{rl("eu/", "a"), rl("us/", "a"), rl("eu/", "b")}, "a",
			"rules[2].prefix", []string{`rules[2] (prefix "eu/") is shadowed by rules[0] (prefix "eu/")`, "distinct"}},
		{"empty prefix", []*meridianv1.PlacementRule{rl("eu/", "a"), rl("", "a")}, "a", "rules[1].prefix", []string{"empty prefix"}},
		{"bad byte in prefix", []*meridianv1.PlacementRule{rl("eu acct", "a")}, "a", "rules[0].prefix", []string{"byte 2", "[A-Za-z0-9._:/-]"}},
		{"prefix starts with /", []*meridianv1.PlacementRule{rl("/eu", "a")}, "a", "rules[0].prefix", []string{"must not start with '/'"}},
		{"prefix too long", []*meridianv1.PlacementRule{rl(strings.Repeat("x", EntityBytesMax+1), "a")}, "a", "rules[0].prefix", []string{"1 to 256 bytes, got 257"}},
		{"prefix at the limit", []*meridianv1.PlacementRule{rl(strings.Repeat("x", EntityBytesMax), "a")}, "a", "", nil},
		{"nil rule", []*meridianv1.PlacementRule{nil}, "a", "rules[0]", []string{"must be set"}},
		{"unknown home", []*meridianv1.PlacementRule{rl("p", "a"), rl("q", "b"), rl("r", "xx")}, "a",
			"rules[2].home_region", []string{`unknown region "xx"`, "known regions: a, b, c"}},
		{"missing home", []*meridianv1.PlacementRule{rl("p", "")}, "a", "rules[0].home_region", []string{"required"}},
		{"unknown mode", []*meridianv1.PlacementRule{rlMode("p", "a", 7)}, "a", "rules[0].mode", []string{"unknown mode 7"}},
		{"failover unknown", []*meridianv1.PlacementRule{rl("p", "a", "b", "zz")}, "a", "rules[0].failover[1]", []string{`unknown region "zz"`}},
		{"failover is the home", []*meridianv1.PlacementRule{rl("p", "a", "a")}, "a", "rules[0].failover[0]", []string{"home_region"}},
		{"failover repeats", []*meridianv1.PlacementRule{rl("p", "a", "b", "c", "b")}, "a", "rules[0].failover[2]", []string{"repeats failover[0]"}},
		{"merge rules", []*meridianv1.PlacementRule{withMerge(rlMode("c/", "a", aaMode), mr("Added", addOp, "items"), mr("Removed", removeOp, "items"), mr("N", counterOp, "n"))}, "a", "", nil},
		{"merge on a single-home rule", []*meridianv1.PlacementRule{withMerge(rl("c/", "a"), mr("Added", addOp, "items"))}, "a",
			"rules[0].merge", []string{"PLACEMENT_MODE_ACTIVE_ACTIVE"}},
		{"merge type twice", []*meridianv1.PlacementRule{withMerge(rlMode("c/", "a", aaMode), mr("Added", addOp, "items"), mr("Added", counterOp, "n"))}, "a",
			"rules[0].merge[1].event_type", []string{`"Added" is declared by merge[0]`}},
		{"merge target of two kinds", []*meridianv1.PlacementRule{withMerge(rlMode("c/", "a", aaMode), mr("Added", addOp, "x"), mr("N", counterOp, "x"))}, "a",
			"rules[0].merge[1].op", []string{`target "x" is a set`, "needs a counter"}},
		{"merge target charset", []*meridianv1.PlacementRule{withMerge(rlMode("c/", "a", aaMode), mr("Added", addOp, "it ems"))}, "a",
			"rules[0].merge[0].target", []string{"[A-Za-z0-9_.-]"}},
		{"merge op unset", []*meridianv1.PlacementRule{withMerge(rlMode("c/", "a", aaMode), mr("Added", 0, "items"))}, "a",
			"rules[0].merge[0].op", []string{"COUNTER_ADD"}},
		{"merge type empty", []*meridianv1.PlacementRule{withMerge(rlMode("c/", "a", aaMode), mr("", addOp, "items"))}, "a",
			"rules[0].merge[0].event_type", []string{"1 to 256 bytes"}},
		{"missing default", []*meridianv1.PlacementRule{rl("p", "a")}, "", "default_region", []string{"required"}},
		{"unknown default", nil, "zz", "default_region", []string{`unknown region "zz"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRules(tc.rules, tc.def, knownABC)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tc.field, tc.texts...)
		})
	}
}

func TestValidateRulesTooMany(t *testing.T) {
	rules := make([]*meridianv1.PlacementRule, RulesMax+1)
	for i := range rules {
		rules[i] = rl(fmt.Sprintf("t%06d/", i), "a")
	}
	requireInvalid(t, ValidateRules(rules, "a", knownABC), "rules", "at most 10000 rules, got 10001")
	require.NoError(t, ValidateRules(rules[:RulesMax], "a", knownABC))
}

func TestValidateRulesNamesAtMostSomeKnownRegions(t *testing.T) {
	known := map[string]bool{}
	for i := range 40 {
		known[fmt.Sprintf("r%02d", i)] = true
	}
	err := ValidateRules(nil, "zz", known)
	requireInvalid(t, err, "default_region", "r00, r01", "(40 in all)")
	assert.NotContains(t, err.Error(), "r39")
	requireInvalid(t, ValidateRules(nil, "a", nil), "default_region", "no member has joined")
}

func TestValidatePin(t *testing.T) {
	for _, tc := range []struct {
		name, entity, region, field string
		texts                       []string
	}{
		{"valid", "eu/acct/7", "a", "", nil},
		{"empty entity", "", "a", "entity", []string{"empty entity"}},
		{"bad entity", "a b", "a", "entity", []string{"byte 1"}},
		{"entity too long", strings.Repeat("e", EntityBytesMax+1), "a", "entity", []string{"got 257"}},
		{"unknown region", "e", "zz", "region", []string{`unknown region "zz"`, "known regions: a, b, c"}},
		{"empty region", "e", "", "region", []string{"required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePin(tc.entity, tc.region, knownABC)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tc.field, tc.texts...)
		})
	}
}

func TestValidateMember(t *testing.T) {
	with := func(f func(m *meridianv1.Member)) *meridianv1.Member {
		m := member("eu-west", "node-1")
		f(m)
		return m
	}
	for _, tc := range []struct {
		name  string
		m     *meridianv1.Member
		field string
		texts []string
	}{
		{"valid", member("eu-west", "node-1"), "", nil},
		{"ipv6 and names", with(func(m *meridianv1.Member) { m.RaftAddress, m.ApiAddress = "[::1]:7000", "api.example:443" }), "", nil},
		{"nil", nil, "member", nil},
		{"empty region", with(func(m *meridianv1.Member) { m.Region, m.Id = "", "/node-1" }), "member.region", nil},
		{"empty node", with(func(m *meridianv1.Member) { m.Node, m.Id = "", "eu-west/" }), "member.node", nil},
		{"node with slash", with(func(m *meridianv1.Member) { m.Node, m.Id = "a/b", "eu-west/a/b" }), "member.node", []string{"[A-Za-z0-9._-]"}},
		{"node too long", with(func(m *meridianv1.Member) {
			m.Node = strings.Repeat("n", NodeNameBytesMax+1)
			m.Id = "eu-west/" + m.Node
		}), "member.node", []string{"1 to 64 bytes"}},
		{"id mismatch", with(func(m *meridianv1.Member) { m.Id = "eu-west/other" }), "member.id", []string{`"eu-west/node-1"`}},
		{"raft address without port", with(func(m *meridianv1.Member) { m.RaftAddress = "10.0.0.1" }), "member.raft_address", nil},
		{"raft address port 0", with(func(m *meridianv1.Member) { m.RaftAddress = "10.0.0.1:0" }), "member.raft_address", []string{"port"}},
		{"api address empty host", with(func(m *meridianv1.Member) { m.ApiAddress = ":8000" }), "member.api_address", []string{"host"}},
		{"api address empty", with(func(m *meridianv1.Member) { m.ApiAddress = "" }), "member.api_address", nil},
		{"api address port too big", with(func(m *meridianv1.Member) { m.ApiAddress = "h:70000" }), "member.api_address", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateMember(tc.m)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tc.field, tc.texts...)
		})
	}
}

const (
	aaMode    = meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
	addOp     = meridianv1.MergeOp_MERGE_OP_SET_ADD
	removeOp  = meridianv1.MergeOp_MERGE_OP_SET_REMOVE
	counterOp = meridianv1.MergeOp_MERGE_OP_COUNTER_ADD
)

func mr(typ string, op meridianv1.MergeOp, target string) *meridianv1.MergeRule {
	return &meridianv1.MergeRule{EventType: typ, Op: op, Target: target}
}

func withMerge(r *meridianv1.PlacementRule, ms ...*meridianv1.MergeRule) *meridianv1.PlacementRule {
	r.Merge = ms
	return r
}
