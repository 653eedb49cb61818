package placement

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// A change that moves some entity's home (a SetRules, Pin or Unpin whose
// command has stage set) does not take effect when it is applied: it is
// staged as a transition (ADR 0004). While it is in progress every lookup
// reports the entities whose home it moves as moving (writes to them wait),
// each old home fences itself in its own region log and reports its own
// origin sequence at that point (frozen), each new home reports once it has
// applied the old home's log up to there (drained), and the entry that
// brings the last report applies the change (the flip): the moved mappings
// get that entry's index as their epoch. At most one transition is in
// progress; any other change is refused until it completes or is aborted.

// transition is a transition record and what lookups need of it: the table
// as it will be after the flip, as an overlay on the current one.
// Immutable once published.
type transition struct {
	rec *meridianv1.PlacementTransition
	// pendingRules are the rules after the change; nil: unchanged.
	pendingRules *ruleSet
	// pinEntity's pin becomes pinRegion ("" removes it), when pinChange.
	pinChange            bool
	pinEntity, pinRegion string
}

// active reports whether the transition is in progress.
func (tr *transition) active() bool {
	return tr != nil && tr.rec.GetCompletedIndex() == 0 && tr.rec.GetAborted() == ""
}

// ruleHome is the home and mode that rs (rules and default) gives entity.
func ruleHome(rs *ruleSet, entity string) (string, meridianv1.PlacementMode) {
	if i := rs.match(entity); i >= 0 {
		return rs.rules[i].home, rs.rules[i].mode
	}
	return rs.defaultRegion, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
}

// pendingHome is entity's home and mode after tr's flip, over s.
func (s *tableState) pendingHome(tr *transition, entity string) (string, meridianv1.PlacementMode) {
	rules := s.rules
	if tr.pendingRules != nil {
		rules = tr.pendingRules
	}
	if tr.pinChange && tr.pinEntity == entity {
		if tr.pinRegion != "" {
			return tr.pinRegion, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
		}
		return ruleHome(rules, entity)
	}
	if pe, ok := s.pins[entity]; ok {
		return s.names.list[pe.region], meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
	}
	return ruleHome(rules, entity)
}

// Moving describes an entity whose home a transition in progress moves.
type Moving struct {
	// Transition is the index at which the change was staged.
	Transition uint64
	// From and To are the entity's old and new home.
	From, To string
	// Reason says what asked for the change.
	Reason string
	// StartedAt is the proposing leader's wall clock at staging.
	StartedAt time.Time
}

// single reports whether a (home, mode) pair is one region ordering writes.
func single(home string, mode meridianv1.PlacementMode) bool {
	return home != "" && mode != meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
}

// moveSet collects distinct (from, to) pairs in a fixed order.
type moveSet struct {
	// regions are the deployment's regions: a switch between single-home
	// and active-active hands over between the home and every other one.
	regions []string
	moves   []*meridianv1.HomeMove
}

// add records the handovers of entities going from (from, fromMode) to
// (to, toMode):
//   - single home to another single home: from freezes, to drains from;
//   - single home to active-active: from freezes and every other region
//     drains it, so that each region's first active-active write to an
//     entity follows every single-home event of it (ADR 0005);
//   - active-active to single home: every other region freezes and to
//     drains each, so that the new home's first write follows every
//     region's active-active events;
//   - active-active to active-active: nothing (every region writes before
//     and after).
func (ms *moveSet) add(from string, fromMode meridianv1.PlacementMode, to string, toMode meridianv1.PlacementMode) {
	fromAA := from != "" && fromMode == meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
	toAA := to != "" && toMode == meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
	switch {
	case single(from, fromMode) && single(to, toMode):
		ms.pair(from, to)
	case single(from, fromMode) && toAA:
		for _, r := range ms.regions {
			ms.pair(from, r)
		}
	case fromAA && single(to, toMode):
		for _, r := range ms.regions {
			ms.pair(r, to)
		}
	}
}

// pair records one handover from -> to (none when they are one region).
func (ms *moveSet) pair(from, to string) {
	if from == to {
		return
	}
	for _, m := range ms.moves {
		if m.GetFrom() == from && m.GetTo() == to {
			return
		}
	}
	ms.moves = append(ms.moves, &meridianv1.HomeMove{From: from, To: to})
}

func (ms *moveSet) sorted() []*meridianv1.HomeMove {
	slices.SortFunc(ms.moves, func(a, b *meridianv1.HomeMove) int {
		if c := strings.Compare(a.GetFrom(), b.GetFrom()); c != 0 {
			return c
		}
		return strings.Compare(a.GetTo(), b.GetTo())
	})
	return ms.moves
}

// ruleMoves lists the (old home, new home) pairs of replacing the rules
// cur with next. Every entity not pinned falls in one cell: the longest
// prefix of it among both rule sets' prefixes (or none: the default). Within
// a cell both rule sets decide alike, by the cell's own longest match, so
// the cells' homes are the exact set of moves (pinned entities do not move
// with the rules: at worst a pair is listed that only pinned entities
// share, which costs a freeze and no correctness).
func ruleMoves(cur, next *ruleSet, regions []string) []*meridianv1.HomeMove {
	ms := &moveSet{regions: regions}
	from, fm := cur.defaultRegion, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
	to, tm := next.defaultRegion, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
	ms.add(from, fm, to, tm)
	for _, rs := range []*ruleSet{cur, next} {
		for i := range rs.rules {
			cell := rs.rules[i].prefix
			from, fm := ruleHome(cur, cell)
			to, tm := ruleHome(next, cell)
			ms.add(from, fm, to, tm)
		}
	}
	return ms.sorted()
}

// mergeKindsKept refuses a rule change after which entities that stay
// active-active would merge some target as another kind of CRDT (a counter
// becoming a set, say). Such a change takes effect with no handover
// (active-active to active-active moves no home), so regions whose copies
// lag would stamp events under the old declaration while others stamp
// under the new one, and each region's state would take the kind of
// whichever event reached it first. A target keeps its kind; another name
// is always possible. Cells as in ruleMoves.
func mergeKindsKept(cur, next *ruleSet) error {
	aa := meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
	for _, rs := range []*ruleSet{cur, next} {
		for i := range rs.rules {
			cell := rs.rules[i].prefix
			ci, ni := cur.match(cell), next.match(cell)
			if ci < 0 || ni < 0 || cur.rules[ci].mode != aa || next.rules[ni].mode != aa {
				continue
			}
			was := map[string]meridianv1.MergeOp{}
			for _, m := range cur.rules[ci].merge {
				was[m.GetTarget()] = mergeKind(m.GetOp())
			}
			for k, m := range next.rules[ni].merge {
				if old, ok := was[m.GetTarget()]; ok && old != mergeKind(m.GetOp()) {
					return invalidf(fmt.Sprintf("rules[%d].merge[%d].op", ni, k),
						"entities under %q stay active-active and their target %q is a %s under the current rules: a target keeps its kind (writes stamped under both rule versions would merge differently in different regions); name a new target for %v",
						cell, m.GetTarget(), mergeKindName(old), m.GetOp())
				}
			}
		}
	}
	return nil
}

// pendingOf computes what a change would do at index: the transition view
// (overlay) and its moves. A change the table refuses returns the refusal.
// It writes nothing.
func pendingOf(t *table, typ meridianv1.PlacementCommandType, m proto.Message, index uint64) (*transition, []*meridianv1.HomeMove, error) {
	t.mu.RLock()
	s := t.s
	t.mu.RUnlock()
	tr := &transition{}
	ms := &moveSet{regions: s.members.regions}
	switch c := m.(type) {
	case *meridianv1.SetRulesCommand:
		now := proto.Clone(c).(*meridianv1.SetRulesCommand)
		now.Stage = false
		u, res := applySetRules(t, now, index)
		if res.Err != nil {
			return nil, nil, res.Err
		}
		if err := mergeKindsKept(s.rules, u.rules); err != nil {
			return nil, nil, err
		}
		tr.pendingRules = u.rules
		return tr, ruleMoves(s.rules, u.rules, s.members.regions), nil
	case *meridianv1.PinCommand:
		now := proto.Clone(c).(*meridianv1.PinCommand)
		now.Stage = false
		if _, res := applyPin(t, now, index); res.Err != nil {
			return nil, nil, res.Err
		}
		cur := t.lookup(c.GetEntity())
		tr.pinChange, tr.pinEntity, tr.pinRegion = true, c.GetEntity(), c.GetRegion()
		ms.add(cur.Home, cur.Mode, c.GetRegion(), meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME)
		return tr, ms.sorted(), nil
	case *meridianv1.UnpinCommand:
		if err := ValidateEntity(c.GetEntity()); err != nil {
			return nil, nil, err
		}
		region, _, ok := t.pin(c.GetEntity())
		if !ok {
			return tr, nil, nil
		}
		to, tm := ruleHome(s.rules, c.GetEntity())
		tr.pinChange, tr.pinEntity = true, c.GetEntity()
		ms.add(region, meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME, to, tm)
		return tr, ms.sorted(), nil
	}
	return nil, nil, fmt.Errorf("%w: %T cannot be staged", ErrUnknownCommand, m)
}

// changeReason describes a change for operators.
func changeReason(m proto.Message) string {
	switch c := m.(type) {
	case *meridianv1.SetRulesCommand:
		if c.GetReason() != "" {
			return c.GetReason()
		}
		return fmt.Sprintf("set rules (%d rules, default %s)", len(c.GetRules()), c.GetDefaultRegion())
	case *meridianv1.PinCommand:
		return fmt.Sprintf("pin %s to %s", c.GetEntity(), c.GetRegion())
	case *meridianv1.UnpinCommand:
		return fmt.Sprintf("unpin %s", c.GetEntity())
	}
	return fmt.Sprintf("%T", m)
}

// stageOrApply is a change whose command asks to be staged: refused while
// another transition is in progress; applied at once when it moves no home;
// otherwise staged at index. now applies the change at once.
func stageOrApply(t *table, typ meridianv1.PlacementCommandType, m proto.Message, index uint64,
	proposedAt *timestamppb.Timestamp, now func() (update, *ApplyResult)) (update, *ApplyResult) {
	if cur := t.transitionView(); cur.active() {
		return rejected(&BusyError{Transition: cur.rec.GetIndex(), Reason: cur.rec.GetReason()})
	}
	tr, moves, err := pendingOf(t, typ, m, index)
	if err != nil {
		return rejected(err)
	}
	if len(moves) == 0 {
		return now()
	}
	payload, err := marshalDeterministic.Marshal(m)
	if err != nil {
		panic(fmt.Errorf("placement: stage entry %d: marshal %v: %w", index, typ, err))
	}
	tr.rec = &meridianv1.PlacementTransition{
		Index: index, CommandType: typ, Command: payload, Moves: moves,
		StartedAt: proposedAt, Reason: changeReason(m),
	}
	cur, _ := t.view()
	return update{transition: tr}, &ApplyResult{Staged: true, Transition: index, DefaultEpoch: cur.defaultEpoch}
}

// applyAckTransition records a region's report; the report that completes
// the transition flips it. A report for another transition, or one that
// adds nothing, changes nothing.
func applyAckTransition(t *table, c *meridianv1.AckTransitionCommand, index uint64) (update, *ApplyResult) {
	cur, _ := t.view()
	tr := t.transitionView()
	if !tr.active() || tr.rec.GetIndex() != c.GetTransition() {
		return update{}, &ApplyResult{Transition: c.GetTransition(), DefaultEpoch: cur.defaultEpoch}
	}
	rec := proto.Clone(tr.rec).(*meridianv1.PlacementTransition)
	changed := false
	for _, mv := range rec.GetMoves() {
		switch c.GetKind() {
		case meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_FROZEN:
			if mv.GetFrom() == c.GetRegion() && !mv.GetFrozen() && !mv.GetLost() {
				mv.Frozen, mv.FrozenSeq, changed = true, c.GetSeq(), true
			}
		case meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_DRAINED:
			if mv.GetTo() == c.GetRegion() && mv.GetFrom() == c.GetOrigin() && c.GetSeq() > mv.GetDrainedSeq() {
				mv.DrainedSeq, changed = c.GetSeq(), true
			}
		case meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_FENCED:
			if _, done := mv.GetFenced()[c.GetRegion()]; mv.GetLost() && mv.GetFrom() == c.GetOrigin() && !done &&
				slices.Contains(rec.GetFencers(), c.GetRegion()) {
				if mv.Fenced == nil {
					mv.Fenced = map[string]uint64{}
				}
				mv.Fenced[c.GetRegion()], changed = c.GetSeq(), true
				if cut, ok := fencedCut(rec.GetFencers(), mv); ok {
					mv.Cut = cut
				}
			}
		}
	}
	if !changed {
		return update{}, &ApplyResult{Transition: c.GetTransition(), DefaultEpoch: cur.defaultEpoch}
	}
	if transitionComplete(rec) {
		return flip(t, rec, index, c.GetAckedAt())
	}
	next := *tr
	next.rec = rec
	return update{transition: &next}, &ApplyResult{Transition: c.GetTransition(), DefaultEpoch: cur.defaultEpoch}
}

// transitionComplete reports whether every old home froze and every new
// home applied the old home's log up to the freeze.
func transitionComplete(rec *meridianv1.PlacementTransition) bool {
	for _, mv := range rec.GetMoves() {
		if mv.GetLost() {
			if cut, ok := fencedCut(rec.GetFencers(), mv); !ok || mv.GetDrainedSeq() < cut {
				return false
			}
			continue
		}
		if !mv.GetFrozen() || mv.GetDrainedSeq() < mv.GetFrozenSeq() {
			return false
		}
	}
	return true
}

// flip applies the staged change at index: the moved mappings get index as
// their epoch, above every epoch the table gave so far.
func flip(t *table, rec *meridianv1.PlacementTransition, index uint64, at *timestamppb.Timestamp) (update, *ApplyResult) {
	done := proto.Clone(rec).(*meridianv1.PlacementTransition)
	done.CompletedIndex, done.CompletedAt = index, at
	m, err := decodePayload(rec.GetCommandType(), rec.GetCommand())
	var (
		u    update
		res  *ApplyResult
		next *meridianv1.SetRulesCommand
	)
	if err == nil {
		switch c := m.(type) {
		case *meridianv1.SetRulesCommand:
			c.Stage = false
			next = c
			u, res = applySetRules(t, c, index)
		case *meridianv1.PinCommand:
			c.Stage = false
			u, res = applyPin(t, c, index)
		case *meridianv1.UnpinCommand:
			c.Stage = false
			u, res = applyUnpin(t, c, index)
		default:
			err = fmt.Errorf("%w: a transition of %v", ErrUnknownCommand, rec.GetCommandType())
		}
	}
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if err != nil {
		// The table did not change since staging (every other change is
		// refused meanwhile), so the change cannot fail now; if it does,
		// drop it rather than apply half of it.
		done.CompletedIndex, done.Aborted = 0, fmt.Sprintf("the change failed at the flip: %v", err)
		cur, _ := t.view()
		return update{transition: &transition{rec: done}}, &ApplyResult{Transition: rec.GetIndex(), DefaultEpoch: cur.defaultEpoch}
	}
	u.transition = &transition{rec: done}
	u.leases = append(u.leases, movedAway(t, rec, index, next)...)
	res.Transition, res.Completed = rec.GetIndex(), true
	return u, res
}

// applyAbortTransition drops the transition in progress, if it is the one
// named: the table stays as it was before it was staged.
func applyAbortTransition(t *table, c *meridianv1.AbortTransitionCommand, _ uint64) (update, *ApplyResult) {
	cur, _ := t.view()
	tr := t.transitionView()
	if !tr.active() || tr.rec.GetIndex() != c.GetTransition() {
		return update{}, &ApplyResult{Transition: c.GetTransition(), DefaultEpoch: cur.defaultEpoch}
	}
	done := proto.Clone(tr.rec).(*meridianv1.PlacementTransition)
	done.Aborted = c.GetReason()
	if done.Aborted == "" {
		done.Aborted = "aborted"
	}
	return update{transition: &transition{rec: done}}, &ApplyResult{Transition: c.GetTransition(), DefaultEpoch: cur.defaultEpoch}
}

// rebuildTransition makes the lookup overlay of a stored record over s (at
// open and restore). A record that is not in progress needs none.
func rebuildTransition(s tableState, rec *meridianv1.PlacementTransition) (*transition, error) {
	tr := &transition{rec: rec}
	if !tr.active() {
		return tr, nil
	}
	m, err := decodePayload(rec.GetCommandType(), rec.GetCommand())
	if err != nil {
		return nil, err
	}
	tmp := &table{s: s}
	tmp.s.transition = nil
	view, _, err := pendingOf(tmp, rec.GetCommandType(), m, rec.GetIndex())
	if err != nil {
		return nil, fmt.Errorf("%w: transition staged at %d: %v", ErrCorruptState, rec.GetIndex(), err)
	}
	view.rec = rec
	return view, nil
}

// ChangeOf describes a transition record for the API.
func ChangeOf(rec *meridianv1.PlacementTransition) *meridianv1.PlacementChange {
	if rec == nil {
		return nil
	}
	c := &meridianv1.PlacementChange{
		Index: rec.GetIndex(), Reason: rec.GetReason(), StartedAt: rec.GetStartedAt(),
		CompletedIndex: rec.GetCompletedIndex(), Aborted: rec.GetAborted(), Failover: rec.GetFailover(),
	}
	for _, m := range rec.GetMoves() {
		c.Moves = append(c.Moves, proto.Clone(m).(*meridianv1.HomeMove))
	}
	if rec.GetCompletedAt() != nil && rec.GetStartedAt() != nil {
		c.Duration = durationpb.New(rec.GetCompletedAt().AsTime().Sub(rec.GetStartedAt().AsTime()))
	}
	return c
}

// transitionView returns the published transition (nil: none since open).
func (t *table) transitionView() *transition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.s.transition
}

// outcomesMax bounds the remembered transition outcomes (count).
const outcomesMax = 256

// outcome is how a transition ended: its final record, and the flip's
// result (nil when it was aborted).
type outcome struct {
	rec *meridianv1.PlacementTransition
	res *ApplyResult
}

// outcomeRing remembers the last outcomesMax outcomes by transition index.
type outcomeRing struct {
	mu    sync.Mutex
	byIdx map[uint64]outcome
	order []uint64
}

func (r *outcomeRing) add(rec *meridianv1.PlacementTransition, res *ApplyResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byIdx == nil {
		r.byIdx = map[uint64]outcome{}
	}
	if rec.GetAborted() != "" {
		res = nil
	}
	if _, ok := r.byIdx[rec.GetIndex()]; !ok {
		r.order = append(r.order, rec.GetIndex())
	}
	r.byIdx[rec.GetIndex()] = outcome{rec: rec, res: res}
	for len(r.order) > outcomesMax {
		delete(r.byIdx, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *outcomeRing) get(index uint64) (outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.byIdx[index]
	return o, ok
}

// Transition returns the last change that moved homes (a fresh message;
// nil when there was none) and whether it is still in progress.
func (f *FSM) Transition() (*meridianv1.PlacementTransition, bool) {
	tr := f.table.transitionView()
	if tr == nil {
		return nil, false
	}
	return proto.Clone(tr.rec).(*meridianv1.PlacementTransition), tr.active()
}

// TransitionIndex returns the index of the transition in progress, 0 if none.
func (f *FSM) TransitionIndex() uint64 {
	if tr := f.table.transitionView(); tr.active() {
		return tr.rec.GetIndex()
	}
	return 0
}
