package placement

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// Limits of the placement table. They are constants, not configuration:
// apply validates with them and every replica must decide alike.
const (
	// RulesMax bounds the rules of one table (count). 10,000 keeps a
	// SetRules entry, the t/rules record and a rule-set rebuild small
	// (a few MiB, a few milliseconds) while leaving room for per-tenant rules.
	RulesMax = 10000
	// EntityBytesMax bounds an entity id and a rule prefix (bytes); the
	// same bound as region's entity ids.
	EntityBytesMax = 256
	// RuleFailoverMax bounds one rule's failover list (regions).
	RuleFailoverMax = 16
	// NodeNameBytesMax bounds a member's node name (bytes).
	NodeNameBytesMax = 64
	// AddressBytesMax bounds a member's raft and api addresses (bytes).
	AddressBytesMax = 256
	// knownRegionsListedMax bounds the known regions an error message names (regions).
	knownRegionsListedMax = 16
	// errorTextBytesMax bounds user text echoed in an error message (bytes).
	errorTextBytesMax = 64
)

// ValidateEntity checks an entity id: 1 to EntityBytesMax bytes of
// [A-Za-z0-9._:/-], not starting with '/'. The error names the field "entity".
func ValidateEntity(entity string) error { return validateName("entity", entity) }

// validateName checks entity-id syntax, which rule prefixes share.
func validateName(field, s string) error {
	if len(s) == 0 {
		if field == "entity" {
			return invalidf(field, "empty entity; must be 1 to %d bytes of [A-Za-z0-9._:/-]", EntityBytesMax)
		}
		return invalidf(field, "empty prefix; must be 1 to %d bytes of [A-Za-z0-9._:/-]", EntityBytesMax)
	}
	if len(s) > EntityBytesMax {
		return invalidf(field, "must be 1 to %d bytes, got %d", EntityBytesMax, len(s))
	}
	if s[0] == '/' {
		return invalidf(field, "must not start with '/'")
	}
	for i := 0; i < len(s); i++ {
		if !entityByte(s[i]) {
			return invalidf(field, "byte %d is %q; allowed are [A-Za-z0-9._:/-]", i, s[i])
		}
	}
	return nil
}

func entityByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

// nodeByte is the alphabet of node names: [A-Za-z0-9._-].
func nodeByte(c byte) bool { return entityByte(c) && c != ':' && c != '/' }

// validateKnownRegion checks that region is one of known.
func validateKnownRegion(field, region string, known map[string]bool) error {
	if region == "" {
		return invalidf(field, "required; known regions: %s", knownList(known))
	}
	if !known[region] {
		return invalidf(field, "unknown region %q; known regions: %s", truncate(region, errorTextBytesMax), knownList(known))
	}
	return nil
}

// knownList names the known regions, sorted, at most knownRegionsListedMax.
func knownList(known map[string]bool) string {
	if len(known) == 0 {
		return "none (no member has joined)"
	}
	names := make([]string, 0, len(known))
	for r, ok := range known {
		if ok {
			names = append(names, r)
		}
	}
	slices.Sort(names)
	if len(names) > knownRegionsListedMax {
		return strings.Join(names[:knownRegionsListedMax], ", ") + fmt.Sprintf(", ... (%d in all)", len(names))
	}
	return strings.Join(names, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ValidateRules checks a SetRules request against the regions known to the
// table (regions with at least one member): at most RulesMax rules, each
// with a valid prefix, a known home region, a known mode and a failover list
// of distinct known regions other than the home; no rule shadowed by an
// earlier one (an earlier prefix that is a prefix of, or equal to, a later
// rule's prefix); and a known default region. The error is an
// *InvalidArgumentError naming the field.
func ValidateRules(rules []*meridianv1.PlacementRule, defaultRegion string, known map[string]bool) error {
	if len(rules) > RulesMax {
		return invalidf("rules", "must hold at most %d rules, got %d", RulesMax, len(rules))
	}
	for i, r := range rules {
		if err := validateRule(i, r, known); err != nil {
			return err
		}
	}
	if err := checkShadowing(rules); err != nil {
		return err
	}
	return validateKnownRegion("default_region", defaultRegion, known)
}

func validateRule(i int, r *meridianv1.PlacementRule, known map[string]bool) error {
	f := func(name string) string { return fmt.Sprintf("rules[%d]%s", i, name) }
	if r == nil {
		return invalidf(f(""), "must be set")
	}
	if err := validateName(f(".prefix"), r.GetPrefix()); err != nil {
		return err
	}
	if err := validateKnownRegion(f(".home_region"), r.GetHomeRegion(), known); err != nil {
		return err
	}
	if _, ok := meridianv1.PlacementMode_name[int32(r.GetMode())]; !ok {
		return invalidf(f(".mode"), "unknown mode %d; allowed are PLACEMENT_MODE_SINGLE_HOME and PLACEMENT_MODE_ACTIVE_ACTIVE", r.GetMode())
	}
	if _, ok := meridianv1.FailoverPolicy_name[int32(r.GetFailoverPolicy())]; !ok {
		return invalidf(f(".failover_policy"), "unknown policy %d; allowed are FAILOVER_POLICY_SAFE and FAILOVER_POLICY_NEVER", r.GetFailoverPolicy())
	}
	fo := r.GetFailover()
	if len(fo) > RuleFailoverMax {
		return invalidf(f(".failover"), "must name at most %d regions, got %d", RuleFailoverMax, len(fo))
	}
	for k, reg := range fo {
		field := fmt.Sprintf("rules[%d].failover[%d]", i, k)
		if err := validateKnownRegion(field, reg, known); err != nil {
			return err
		}
		if reg == r.GetHomeRegion() {
			return invalidf(field, "region %q is the rule's home_region; failover lists the other regions", reg)
		}
		if j := slices.Index(fo[:k], reg); j >= 0 {
			return invalidf(field, "region %q repeats failover[%d]; the list must be distinct", reg, j)
		}
	}
	return validateMerge(f, r)
}

// RuleMergeMax bounds the merge rules of one placement rule.
const RuleMergeMax = 64

// validateMerge checks a rule's merge declarations: only on active-active
// rules; each event type once; each target one kind of op.
func validateMerge(f func(string) string, r *meridianv1.PlacementRule) error {
	ms := r.GetMerge()
	if len(ms) == 0 {
		return nil
	}
	if r.GetMode() != meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE {
		return invalidf(f(".merge"), "merge rules need mode PLACEMENT_MODE_ACTIVE_ACTIVE (a single home's events are one ordered stream)")
	}
	if len(ms) > RuleMergeMax {
		return invalidf(f(".merge"), "must hold at most %d merge rules, got %d", RuleMergeMax, len(ms))
	}
	types := map[string]int{}
	kinds := map[string]meridianv1.MergeOp{}
	for k, m := range ms {
		field := f(fmt.Sprintf(".merge[%d]", k))
		if t := m.GetEventType(); t == "" || len(t) > 256 {
			return invalidf(field+".event_type", "must be 1 to 256 bytes, got %d", len(t))
		}
		if j, dup := types[m.GetEventType()]; dup {
			return invalidf(field+".event_type", "%q is declared by merge[%d] already; one rule per event type", m.GetEventType(), j)
		}
		types[m.GetEventType()] = k
		if err := validateTarget(m.GetTarget()); err != nil {
			return invalidf(field+".target", "%v", err)
		}
		op := m.GetOp()
		if _, ok := meridianv1.MergeOp_name[int32(op)]; !ok || op == meridianv1.MergeOp_MERGE_OP_UNSPECIFIED {
			return invalidf(field+".op", "must be one of COUNTER_ADD, SET_ADD, SET_REMOVE, LWW_WRITE, MV_WRITE, MAP_PUT, MAP_DELETE, got %v", op)
		}
		kind := mergeKind(op)
		if prev, ok := kinds[m.GetTarget()]; ok && prev != kind {
			return invalidf(field+".op", "target %q is a %s (by an earlier merge rule); %v needs a %s", m.GetTarget(), mergeKindName(prev), op, mergeKindName(kind))
		}
		kinds[m.GetTarget()] = kind
	}
	return nil
}

// mergeKind is the target kind an op needs (region.targetKind's rule).
func mergeKind(op meridianv1.MergeOp) meridianv1.MergeOp {
	switch op {
	case meridianv1.MergeOp_MERGE_OP_SET_REMOVE:
		return meridianv1.MergeOp_MERGE_OP_SET_ADD
	case meridianv1.MergeOp_MERGE_OP_MAP_DELETE:
		return meridianv1.MergeOp_MERGE_OP_MAP_PUT
	}
	return op
}

func mergeKindName(op meridianv1.MergeOp) string {
	return map[meridianv1.MergeOp]string{
		meridianv1.MergeOp_MERGE_OP_COUNTER_ADD: "counter", meridianv1.MergeOp_MERGE_OP_SET_ADD: "set",
		meridianv1.MergeOp_MERGE_OP_LWW_WRITE: "lww register", meridianv1.MergeOp_MERGE_OP_MV_WRITE: "mv register",
		meridianv1.MergeOp_MERGE_OP_MAP_PUT: "map",
	}[op]
}

// validateTarget: 1 to 64 bytes of [A-Za-z0-9_.-].
func validateTarget(t string) error {
	if t == "" || len(t) > 64 {
		return fmt.Errorf("must be 1 to 64 bytes, got %d", len(t))
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%q: allowed are [A-Za-z0-9_.-]", t)
		}
	}
	return nil
}

// checkShadowing reports the first rule (in list order) that an earlier rule
// shadows: an earlier prefix that is a prefix of, or equal to, its prefix.
// It runs in O(n log n): the prefixes are sorted, and in sorted order the
// prefixes of a prefix in the set are its ancestors in the chain that
// sortedPrefixes builds. Prefixes must already be non-empty.
func checkShadowing(rules []*meridianv1.PlacementRule) error {
	if len(rules) < 2 {
		return nil
	}
	prefixes := make([]string, len(rules))
	for i, r := range rules {
		prefixes[i] = r.GetPrefix()
	}
	ix := newPrefixIndex(prefixes)
	// groupMin[k]: the smallest rule index with sorted prefix k (duplicates
	// share k); ancMin[k]: the smallest rule index with a proper prefix of it.
	n := len(ix.sorted)
	groupMin := make([]int, n)
	ancMin := make([]int, n)
	for k := range n {
		groupMin[k] = len(rules)
	}
	for i := range rules {
		k := ix.position[i]
		groupMin[k] = min(groupMin[k], i)
	}
	for k := range n {
		ancMin[k] = len(rules)
		if p := ix.parent[k]; p >= 0 {
			ancMin[k] = min(groupMin[p], ancMin[p])
		}
	}
	for j := range rules {
		k := ix.position[j]
		by := ancMin[k]
		if g := groupMin[k]; g < j {
			by = min(by, g)
		}
		if by < j {
			how := "list more specific prefixes first"
			if prefixes[by] == prefixes[j] {
				how = "the same prefix twice; prefixes must be distinct"
			}
			return invalidf(fmt.Sprintf("rules[%d].prefix", j), "rules[%d] (prefix %q) is shadowed by rules[%d] (prefix %q): %s",
				j, prefixes[j], by, prefixes[by], how)
		}
	}
	return nil
}

// ValidatePin checks a Pin request: a valid entity id (field "entity") and a
// known region (field "region").
func ValidatePin(entity, region string, known map[string]bool) error {
	if err := ValidateEntity(entity); err != nil {
		return err
	}
	return validateKnownRegion("region", region, known)
}

// ValidateMember checks a Join request's member: region passes
// causal.ValidateRegion, node is 1 to NodeNameBytesMax bytes of
// [A-Za-z0-9._-], id is region + "/" + node, and both addresses are
// host:port with a non-empty host and a port of 1 to 65535.
func ValidateMember(m *meridianv1.Member) error {
	if m == nil {
		return invalidf("member", "must be set")
	}
	if err := causal.ValidateRegion(m.GetRegion()); err != nil {
		return invalidf("member.region", "%v", err)
	}
	node := m.GetNode()
	if len(node) == 0 || len(node) > NodeNameBytesMax {
		return invalidf("member.node", "must be 1 to %d bytes, got %d", NodeNameBytesMax, len(node))
	}
	for i := 0; i < len(node); i++ {
		if !nodeByte(node[i]) {
			return invalidf("member.node", "byte %d is %q; allowed are [A-Za-z0-9._-]", i, node[i])
		}
	}
	if want := m.GetRegion() + "/" + node; m.GetId() != want {
		return invalidf("member.id", "must be region/node, %q; got %q", want, truncate(m.GetId(), errorTextBytesMax+NodeNameBytesMax))
	}
	if err := validateAddress("member.raft_address", m.GetRaftAddress()); err != nil {
		return err
	}
	return validateAddress("member.api_address", m.GetApiAddress())
}

func validateAddress(field, addr string) error {
	if len(addr) == 0 || len(addr) > AddressBytesMax {
		return invalidf(field, "must be host:port of 1 to %d bytes, got %d bytes", AddressBytesMax, len(addr))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf(field, "must be host:port, got %q: %v", truncate(addr, errorTextBytesMax), err)
	}
	if host == "" {
		return invalidf(field, "must name a host, got %q", truncate(addr, errorTextBytesMax))
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return invalidf(field, "port must be 1 to 65535, got %q", truncate(port, errorTextBytesMax))
	}
	return nil
}
