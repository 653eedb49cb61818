package placement

import (
	"slices"
	"strings"
	"sync"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// Placement is one entity's place in the table, as Lookup returns it.
type Placement struct {
	// Entity is the entity looked up.
	Entity string
	// Home is the entity's home region; "" when the table has no default
	// region yet (no member has joined): callers treat that as "no
	// placement yet".
	Home string
	// Mode is never PLACEMENT_MODE_UNSPECIFIED once Home is set: the table
	// stores SINGLE_HOME for it. A pin's mode is SINGLE_HOME.
	Mode meridianv1.PlacementMode
	// Epoch is the placement log index at which this entity's mapping (the
	// pin, rule or default that decides it) last changed. It never decreases
	// for an entity, and it increases whenever (Home, Mode) changes.
	Epoch uint64
	// Failover is the matching rule's failover order; nil for pins and the
	// default. Shared with the table: read-only.
	Failover []string
	// FailoverPolicy is the matching rule's policy, normalised (SAFE or
	// NEVER); unset for pins and the default, which never fail over.
	FailoverPolicy meridianv1.FailoverPolicy
	// Source says whether a pin, a rule or the default decided;
	// PLACEMENT_SOURCE_UNSPECIFIED when Home is "".
	Source meridianv1.PlacementSource
	// RulePrefix is the matching rule's prefix when Source is RULE.
	RulePrefix string
	// Merge are the matching active-active rule's merge declarations;
	// shared with the table: read-only.
	Merge []*meridianv1.MergeRule
	// Moving is set while a placement change in progress moves the
	// entity's home: Home is still the old home, which no longer orders
	// its writes (or will not once it has frozen); nil otherwise.
	Moving *Moving
}

// table is the in-memory placement table: what Lookup reads. Apply and
// Restore (the apply goroutine) are its only writers and hold mu for a
// pointer swap or one map write; readers hold mu's read lock for the whole
// lookup, so that a pin and the rule it falls back to are read from the same
// applied state (an Unpin removes the pin and bumps the rule's epoch under
// one write lock: no reader sees the lower epoch in between).
type table struct {
	mu sync.RWMutex
	s  tableState // guarded by mu
}

// tableState is one complete table. rules, names' existing entries and
// members are immutable once published; pins is written only under
// table.mu.
type tableState struct {
	rules   *ruleSet
	pins    map[string]pinEntry
	names   *regionNames
	members *memberDir
	// transition is the last change that moved homes (nil: none stored);
	// immutable, replaced whole.
	transition *transition
	// leases are the regions' home leases by region; the records are
	// immutable, written only under table.mu.
	leases map[string]*meridianv1.RegionLease
}

// pinEntry is a pin without its entity (the map key): 16 bytes, the region
// interned as an index into regionNames.
type pinEntry struct {
	epoch  uint64
	region uint32
}

// regionNames interns region names, so that a pin holds 4 bytes instead of a
// 16-byte string header pointing at its own copy. It only grows (by the
// regions that members joined from: a handful); a Restore starts a new one.
type regionNames struct {
	list []string
	ids  map[string]uint32
}

func newRegionNames() *regionNames { return &regionNames{ids: map[string]uint32{}} }

// intern returns name's id, adding it if new. Callers hold table.mu for
// writing (or own an unpublished tableState).
func (n *regionNames) intern(name string) uint32 {
	if id, ok := n.ids[name]; ok {
		return id
	}
	id := uint32(len(n.list))
	n.list = append(n.list, name)
	n.ids[name] = id
	return id
}

func newTableState() tableState {
	return tableState{
		rules:   &ruleSet{index: newPrefixIndex(nil)},
		pins:    map[string]pinEntry{},
		names:   newRegionNames(),
		members: newMemberDir(nil),
		leases:  map[string]*meridianv1.RegionLease{},
	}
}

// rule is one stored rule: validated, mode normalised.
type rule struct {
	prefix   string
	home     string
	mode     meridianv1.PlacementMode
	failover []string
	policy   meridianv1.FailoverPolicy
	epoch    uint64
	// merge are an active-active rule's merge declarations (read-only).
	merge []*meridianv1.MergeRule
}

func (r *rule) proto() *meridianv1.PlacementRule {
	return &meridianv1.PlacementRule{
		Prefix: r.prefix, HomeRegion: r.home, Mode: r.mode,
		Failover: slices.Clone(r.failover), Epoch: r.epoch, FailoverPolicy: r.policy,
		Merge: cloneMerge(r.merge),
	}
}

// sameMapping reports whether r and o map their prefix alike (epochs aside).
func (r *rule) sameMapping(o *rule) bool {
	return r.prefix == o.prefix && r.home == o.home && r.mode == o.mode && slices.Equal(r.failover, o.failover) && r.policy == o.policy
}

// normalisePolicy stores UNSPECIFIED as SAFE.
func normalisePolicy(p meridianv1.FailoverPolicy) meridianv1.FailoverPolicy {
	if p == meridianv1.FailoverPolicy_FAILOVER_POLICY_UNSPECIFIED {
		return meridianv1.FailoverPolicy_FAILOVER_POLICY_SAFE
	}
	return p
}

// normaliseMode stores UNSPECIFIED as SINGLE_HOME.
func normaliseMode(m meridianv1.PlacementMode) meridianv1.PlacementMode {
	if m == meridianv1.PlacementMode_PLACEMENT_MODE_UNSPECIFIED {
		return meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
	}
	return m
}

// ruleSet is the rules in the user's order, their longest-prefix index, and
// the default. Immutable once published: a change builds a new one (an
// epoch bump copies rules and shares index).
type ruleSet struct {
	rules         []rule
	index         *prefixIndex
	defaultRegion string
	defaultEpoch  uint64
	rulesIndex    uint64
}

// newRuleSet builds a rule set from rules that passed ValidateRules (no
// shadowing: first match is longest match).
func newRuleSet(rules []rule, defaultRegion string, defaultEpoch, rulesIndex uint64) *ruleSet {
	prefixes := make([]string, len(rules))
	for i := range rules {
		prefixes[i] = rules[i].prefix
	}
	return &ruleSet{rules: rules, index: newPrefixIndex(prefixes),
		defaultRegion: defaultRegion, defaultEpoch: defaultEpoch, rulesIndex: rulesIndex}
}

// match returns the index of the first rule whose prefix is a prefix of
// entity, or -1.
func (rs *ruleSet) match(entity string) int { return rs.index.longest(entity) }

// withRuleEpoch returns a copy of rs with rule i's epoch set to e.
func (rs *ruleSet) withRuleEpoch(i int, e uint64) *ruleSet {
	n := *rs
	n.rules = slices.Clone(rs.rules)
	n.rules[i].epoch = e
	return &n
}

// withDefault returns a copy of rs with the default set.
func (rs *ruleSet) withDefault(region string, epoch uint64) *ruleSet {
	n := *rs
	n.defaultRegion, n.defaultEpoch = region, epoch
	return &n
}

func (rs *ruleSet) proto() *meridianv1.PlacementRuleSet {
	return &meridianv1.PlacementRuleSet{
		Rules: rs.rulesProto(), DefaultRegion: rs.defaultRegion,
		DefaultEpoch: rs.defaultEpoch, RulesIndex: rs.rulesIndex,
	}
}

func (rs *ruleSet) rulesProto() []*meridianv1.PlacementRule {
	out := make([]*meridianv1.PlacementRule, len(rs.rules))
	for i := range rs.rules {
		out[i] = rs.rules[i].proto()
	}
	return out
}

// prefixIndex answers longest-prefix queries over a set of prefixes in
// O(log n + d) string comparisons, d being how many prefixes of the
// candidate are nested in each other (at most EntityBytesMax), without
// allocating.
//
// sorted holds the distinct prefixes in byte order. For an entity e, let P
// be the greatest prefix <= e. Every prefix Q of e in the set satisfies
// Q <= P <= e, and any string between Q and e (Q a prefix of e) starts with
// Q: so Q is a prefix of P. The longest match is therefore the longest of
// P's own prefixes in the set (P included) that is a prefix of e, found by
// walking parent links: parent[k] is the position of the longest proper
// prefix of sorted[k] in the set, or -1.
type prefixIndex struct {
	sorted []string
	// rule[k] is the smallest rule index whose prefix is sorted[k].
	rule   []int32
	parent []int32
	// position[i] is the position in sorted of rule i's prefix.
	position []int32
}

func newPrefixIndex(prefixes []string) *prefixIndex {
	order := make([]int32, len(prefixes))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return strings.Compare(prefixes[a], prefixes[b]) })
	ix := &prefixIndex{position: make([]int32, len(prefixes))}
	for _, i := range order {
		p := prefixes[i]
		if n := len(ix.sorted); n > 0 && ix.sorted[n-1] == p {
			ix.position[i] = int32(n - 1)
			continue
		}
		ix.sorted = append(ix.sorted, p)
		ix.rule = append(ix.rule, i)
		ix.position[i] = int32(len(ix.sorted) - 1)
	}
	// In sorted order the set is a preorder walk of its prefix trie: a
	// stack of the current prefix chain gives each prefix its parent.
	ix.parent = make([]int32, len(ix.sorted))
	stack := make([]int32, 0, 16)
	for k, p := range ix.sorted {
		for len(stack) > 0 && !strings.HasPrefix(p, ix.sorted[stack[len(stack)-1]]) {
			stack = stack[:len(stack)-1]
		}
		ix.parent[k] = -1
		if len(stack) > 0 {
			ix.parent[k] = stack[len(stack)-1]
		}
		stack = append(stack, int32(k))
	}
	return ix
}

// longestPos returns the position in sorted of the longest prefix of s, or -1.
func (ix *prefixIndex) longestPos(s string) int {
	lo, hi := 0, len(ix.sorted)
	for lo < hi { // first position whose prefix is > s
		m := int(uint(lo+hi) >> 1)
		if ix.sorted[m] <= s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	k := lo - 1
	for k >= 0 && !strings.HasPrefix(s, ix.sorted[k]) {
		k = int(ix.parent[k])
	}
	return k
}

// longest returns the rule index of the longest prefix of s, or -1.
func (ix *prefixIndex) longest(s string) int {
	if k := ix.longestPos(s); k >= 0 {
		return int(ix.rule[k])
	}
	return -1
}

// memberDir is the member directory. Immutable once published: Join builds
// a new one (members are few: one per node).
type memberDir struct {
	byID    map[string]*meridianv1.Member
	sorted  []*meridianv1.Member // by id
	regions []string             // distinct, sorted
	known   map[string]bool      // regions with at least one member
}

func newMemberDir(members []*meridianv1.Member) *memberDir {
	d := &memberDir{byID: make(map[string]*meridianv1.Member, len(members)), known: map[string]bool{}}
	for _, m := range members {
		d.byID[m.GetId()] = m
	}
	for _, m := range d.byID {
		d.sorted = append(d.sorted, m)
		if !d.known[m.GetRegion()] {
			d.known[m.GetRegion()] = true
			d.regions = append(d.regions, m.GetRegion())
		}
	}
	slices.SortFunc(d.sorted, func(a, b *meridianv1.Member) int { return strings.Compare(a.GetId(), b.GetId()) })
	slices.Sort(d.regions)
	return d
}

// with returns a directory with m upserted by id.
func (d *memberDir) with(m *meridianv1.Member) *memberDir {
	all := make([]*meridianv1.Member, 0, len(d.sorted)+1)
	for _, o := range d.sorted {
		if o.GetId() != m.GetId() {
			all = append(all, o)
		}
	}
	return newMemberDir(append(all, m))
}

// lookup is Lookup: pin, else first matching rule, else the default; and
// whether a transition in progress moves it.
func (t *table) lookup(entity string) Placement {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.s.lookup(entity)
	if tr := t.s.transition; tr.active() && p.Home != "" {
		if to, mode := t.s.pendingHome(tr, entity); to != p.Home || mode != p.Mode {
			p.Moving = &Moving{Transition: tr.rec.GetIndex(), From: p.Home, To: to, Reason: tr.rec.GetReason(),
				StartedAt: tr.rec.GetStartedAt().AsTime()}
		}
	}
	return p
}

// lookup is the committed table's answer for entity.
func (s *tableState) lookup(entity string) Placement {
	if pe, ok := s.pins[entity]; ok {
		return Placement{
			Entity: entity, Home: s.names.list[pe.region], Mode: meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME,
			Epoch: pe.epoch, Source: meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN,
		}
	}
	rs := s.rules
	if i := rs.match(entity); i >= 0 {
		r := &rs.rules[i]
		return Placement{
			Entity: entity, Home: r.home, Mode: r.mode, Epoch: r.epoch, Failover: r.failover, FailoverPolicy: r.policy,
			Source: meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, RulePrefix: r.prefix, Merge: r.merge,
		}
	}
	if rs.defaultRegion == "" {
		return Placement{Entity: entity}
	}
	return Placement{
		Entity: entity, Home: rs.defaultRegion, Mode: meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME,
		Epoch: rs.defaultEpoch, Source: meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT,
	}
}

// view returns the published rule set and member directory (immutable).
func (t *table) view() (*ruleSet, *memberDir) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.s.rules, t.s.members
}

// pin returns entity's pin: region, epoch, and whether there is one.
func (t *table) pin(entity string) (string, uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	pe, ok := t.s.pins[entity]
	if !ok {
		return "", 0, false
	}
	return t.s.names.list[pe.region], pe.epoch, true
}

func (t *table) pinCount() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.s.pins)
}

// putPin stores a pin in s (owned by the caller or guarded by table.mu).
func (s *tableState) putPin(entity, region string, epoch uint64) {
	s.pins[entity] = pinEntry{epoch: epoch, region: s.names.intern(region)}
}

// update is the in-memory side of one applied entry, computed before the
// Badger write and published after it.
type update struct {
	// rules, when set, replaces the rule set (and is written at t/rules).
	rules *ruleSet
	// members, when set, replaces the directory; member is the record to write.
	members *memberDir
	member  *meridianv1.Member
	// pin, when set, is written at p/<entity>.
	pin *meridianv1.PlacementPin
	// unpin, when not "", is the entity whose pin is deleted.
	unpin string
	// transition, when set, replaces the transition (t/transition).
	transition *transition
	// leases are regions' lease records to write (l/<region>); renewed
	// names the region whose lease this entry renewed (a flip rewrites
	// records without renewing them).
	leases  []*meridianv1.RegionLease
	renewed string
}

func (u *update) empty() bool {
	return u.rules == nil && u.members == nil && u.pin == nil && u.unpin == "" && u.transition == nil && len(u.leases) == 0
}

// commit publishes u: every reader sees all of it or none of it.
func (t *table) commit(u *update) {
	if u.empty() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if u.rules != nil {
		t.s.rules = u.rules
	}
	if u.members != nil {
		t.s.members = u.members
	}
	if u.pin != nil {
		t.s.putPin(u.pin.GetEntity(), u.pin.GetRegion(), u.pin.GetEpoch())
	}
	if u.unpin != "" {
		delete(t.s.pins, u.unpin)
	}
	if u.transition != nil {
		t.s.transition = u.transition
	}
	for _, l := range u.leases {
		t.s.leases[l.GetRegion()] = l
	}
}

// swap replaces the whole table (Restore).
func (t *table) swap(s tableState) {
	t.mu.Lock()
	t.s = s
	t.mu.Unlock()
}

// rulesCopy returns the rules (fresh messages), the default and its epoch,
// and the rules index.
func (t *table) rulesCopy() ([]*meridianv1.PlacementRule, string, uint64, uint64) {
	rs, _ := t.view()
	return rs.rulesProto(), rs.defaultRegion, rs.defaultEpoch, rs.rulesIndex
}

func (t *table) membersCopy() []*meridianv1.Member {
	_, d := t.view()
	out := make([]*meridianv1.Member, len(d.sorted))
	for i, m := range d.sorted {
		out[i] = proto.Clone(m).(*meridianv1.Member)
	}
	return out
}
