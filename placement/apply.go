package placement

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// ApplyResult is what Apply returns for a command entry.
type ApplyResult struct {
	// Index is the entry's placement log index.
	Index uint64
	// Epoch is, for a Pin, the pin's epoch; for an Unpin that removed a
	// pin, the epoch of the rule or default the entity falls back to (this
	// entry's index); for a SetRules, the new rules_index; for a Join, the
	// default region's epoch. 0 when Err is set or an Unpin found no pin.
	Epoch uint64
	// Existed is, for a Pin, true when the entity was already pinned to
	// that region (nothing changed); for an Unpin, true when a pin was
	// removed; for a Join, true when the same member record was already
	// stored (nothing changed).
	Existed bool
	// Rules are, for a SetRules, the rules as stored: mode normalised,
	// epochs assigned. Fresh messages.
	Rules []*meridianv1.PlacementRule
	// DefaultEpoch is the default region's epoch after the entry.
	DefaultEpoch uint64
	// Err is a deterministic rejection (an *InvalidArgumentError, a
	// *ConflictError, a *BusyError): the entry changed nothing but the
	// applied index.
	Err error
	// Staged is true when the change moves homes and was staged as a
	// transition (transition.go) instead of taking effect: Transition is
	// its index. Completed is true when this entry flipped the transition
	// Transition (the other fields then describe the change as applied).
	Staged     bool
	Completed  bool
	Transition uint64
}

// handler computes one command's effect on the published table at log
// index index. It reads the table, writes nothing: the caller writes u to
// Badger, then publishes it. Handlers read no clock, no randomness and no
// configuration.
type handler func(t *table, m proto.Message, index uint64) (update, *ApplyResult)

// commandHandlers applies a decoded payload, by command type. Every type in
// commandPayloads (command.go) has a handler here (TestEveryCommandTypeHasAHandler).
var commandHandlers = map[meridianv1.PlacementCommandType]handler{
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		c := m.(*meridianv1.SetRulesCommand)
		now := func() (update, *ApplyResult) { return applySetRules(t, c, i) }
		if c.GetStage() {
			return stageOrApply(t, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, c, i, c.GetProposedAt(), now)
		}
		return now()
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		c := m.(*meridianv1.PinCommand)
		now := func() (update, *ApplyResult) { return applyPin(t, c, i) }
		if c.GetStage() {
			return stageOrApply(t, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, c, i, c.GetProposedAt(), now)
		}
		return now()
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNPIN: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		c := m.(*meridianv1.UnpinCommand)
		now := func() (update, *ApplyResult) { return applyUnpin(t, c, i) }
		if c.GetStage() {
			return stageOrApply(t, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNPIN, c, i, c.GetProposedAt(), now)
		}
		return now()
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ACK_TRANSITION: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		return applyAckTransition(t, m.(*meridianv1.AckTransitionCommand), i)
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ABORT_TRANSITION: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		return applyAbortTransition(t, m.(*meridianv1.AbortTransitionCommand), i)
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_RENEW_LEASE: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		return applyRenewLease(t, m.(*meridianv1.RenewLeaseCommand), i)
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_FAILOVER: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		return applyFailover(t, m.(*meridianv1.FailoverCommand), i)
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_JOIN: func(t *table, m proto.Message, i uint64) (update, *ApplyResult) {
		return applyJoin(t, m.(*meridianv1.JoinCommand), i)
	},
}

// Apply applies one committed Raft entry: it decodes the command, writes
// its effect together with the new PlacementApplyState in one synced Badger
// transaction, then publishes it to the in-memory table. It returns
// *ApplyResult for command entries, nil for entries at or below the applied
// index and for other entry types (which only advance the index), and
// ErrStoreClosed after Close. A rejected command (ApplyResult.Err) writes
// only the applied index. Apply panics when the entry cannot be decoded or
// written, or while a Restore is unfinished: continuing would let replicas
// diverge.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrStoreClosed
	}
	if l.Index <= f.state.GetAppliedIndex() {
		return nil
	}
	if f.restoring.Load() {
		panic(fmt.Errorf("placement: apply entry %d: a restore did not finish (s/restoring is set); restore a snapshot first", l.Index))
	}
	var (
		u   update
		res *ApplyResult
	)
	if l.Type == raft.LogCommand {
		typ, m, err := DecodeCommand(l.Data)
		if err != nil {
			panic(fmt.Errorf("placement: apply entry %d (term %d): undecodable committed command: %w", l.Index, l.Term, err))
		}
		h, ok := commandHandlers[typ]
		if !ok {
			panic(fmt.Errorf("placement: apply entry %d: no handler for %v", l.Index, typ))
		}
		u, res = h(&f.table, m, l.Index)
		res.Index = l.Index
	}
	next := &meridianv1.PlacementApplyState{AppliedIndex: l.Index, AppliedTerm: l.Term}
	if err := writeUpdate(f.db, &u, next); err != nil {
		panic(fmt.Errorf("placement: apply entry %d (term %d): %w", l.Index, l.Term, err))
	}
	f.table.commit(&u)
	if u.transition != nil && !u.transition.active() {
		f.outcomes.add(u.transition.rec, res)
	}
	if u.renewed != "" {
		f.leaseSeen.renewed(u.renewed)
	}
	f.state = next
	f.applied.Store(l.Index)
	f.notify()
	if res == nil {
		return nil
	}
	return res
}

// writeUpdate writes u and st in one Badger transaction (synced: SyncWrites).
func writeUpdate(db *badger.DB, u *update, st *meridianv1.PlacementApplyState) error {
	txn := db.NewTransaction(true)
	defer txn.Discard()
	set := func(key []byte, m proto.Message) error {
		v, err := marshalDeterministic.Marshal(m)
		if err != nil {
			return fmt.Errorf("marshal %q: %w", key, err)
		}
		if err := txn.Set(key, v); err != nil {
			return fmt.Errorf("write %q: %w", key, err)
		}
		return nil
	}
	if u.rules != nil {
		if err := set(keyRules, u.rules.proto()); err != nil {
			return err
		}
	}
	if u.member != nil {
		if err := set(memberKey(u.member.GetId()), u.member); err != nil {
			return err
		}
	}
	if u.pin != nil {
		if err := set(pinKey(u.pin.GetEntity()), u.pin); err != nil {
			return err
		}
	}
	if u.unpin != "" {
		if err := txn.Delete(pinKey(u.unpin)); err != nil {
			return fmt.Errorf("delete pin %q: %w", u.unpin, err)
		}
	}
	if u.transition != nil {
		if err := set(keyTransition, u.transition.rec); err != nil {
			return err
		}
	}
	for _, l := range u.leases {
		if err := set(leaseKey(l.GetRegion()), l); err != nil {
			return err
		}
	}
	if err := set(keyApplyState, st); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func rejected(err error) (update, *ApplyResult) { return update{}, &ApplyResult{Err: err} }

// applySetRules replaces the rules and the default. Epochs (index I):
//   - a new rule keeps its old epoch iff an identical old rule (prefix,
//     home, mode, failover) exists and no old rule whose prefix strictly
//     extends its prefix was removed (that rule's entities now fall to it);
//     otherwise I;
//   - the default keeps its epoch iff its region is unchanged and no old
//     rule was removed (whose entities may now fall to it); otherwise I;
//   - rules_index is I.
//
// Every entity's mapping is then either unchanged with its epoch, or decided
// by a rule or default at epoch I, above every epoch stored so far.
func applySetRules(t *table, c *meridianv1.SetRulesCommand, index uint64) (update, *ApplyResult) {
	cur, members := t.view()
	if err := ValidateRules(c.GetRules(), c.GetDefaultRegion(), members.known); err != nil {
		return rejected(err)
	}
	if e := c.GetExpectedIndex(); e != 0 && e != cur.rulesIndex {
		return rejected(&ConflictError{Expected: e, Current: cur.rulesIndex})
	}
	rules := make([]rule, len(c.GetRules()))
	newPrefixes := make(map[string]bool, len(rules))
	for i, r := range c.GetRules() {
		rules[i] = ruleOf(r, index)
		newPrefixes[r.GetPrefix()] = true
	}
	next := newRuleSet(rules, c.GetDefaultRegion(), index, index)

	// bumped[k]: the new rule at sorted position k gains the entities of a
	// removed, more specific old rule. Marking walks the new prefixes of each
	// removed prefix, longest first, and stops at one already marked (its
	// shorter prefixes are marked too).
	bumped := make([]bool, len(next.index.sorted))
	removedAny := false
	for i := range cur.rules {
		p := cur.rules[i].prefix
		if newPrefixes[p] {
			continue
		}
		removedAny = true
		for k := next.index.longestPos(p); k >= 0 && !bumped[k]; k = int(next.index.parent[k]) {
			bumped[k] = true
		}
	}
	old := make(map[string]*rule, len(cur.rules))
	for i := range cur.rules {
		old[cur.rules[i].prefix] = &cur.rules[i]
	}
	for i := range rules {
		r := &rules[i]
		if o, ok := old[r.prefix]; ok && o.sameMapping(r) && !bumped[next.index.position[i]] {
			r.epoch = o.epoch
		}
	}
	if cur.defaultRegion != "" && cur.defaultRegion == next.defaultRegion && !removedAny {
		next.defaultEpoch = cur.defaultEpoch
	}
	return update{rules: next}, &ApplyResult{Epoch: index, Rules: next.rulesProto(), DefaultEpoch: next.defaultEpoch}
}

// applyPin pins an entity. The same region as its current pin changes
// nothing; otherwise the pin's epoch is the entry's index.
func applyPin(t *table, c *meridianv1.PinCommand, index uint64) (update, *ApplyResult) {
	cur, members := t.view()
	if err := ValidatePin(c.GetEntity(), c.GetRegion(), members.known); err != nil {
		return rejected(err)
	}
	if region, epoch, ok := t.pin(c.GetEntity()); ok && region == c.GetRegion() {
		return update{}, &ApplyResult{Epoch: epoch, Existed: true, DefaultEpoch: cur.defaultEpoch}
	}
	pin := &meridianv1.PlacementPin{Entity: c.GetEntity(), Region: c.GetRegion(), Epoch: index}
	return update{pin: pin}, &ApplyResult{Epoch: index, DefaultEpoch: cur.defaultEpoch}
}

// applyUnpin removes an entity's pin. The entity falls back to a rule or the
// default, whose epoch may be below the pin's: that rule's (or the
// default's) epoch becomes the entry's index, its mapping unchanged and
// rules_index untouched, so the entity's epoch does not go back.
func applyUnpin(t *table, c *meridianv1.UnpinCommand, index uint64) (update, *ApplyResult) {
	cur, _ := t.view()
	if err := ValidateEntity(c.GetEntity()); err != nil {
		return rejected(err)
	}
	if _, _, ok := t.pin(c.GetEntity()); !ok {
		return update{}, &ApplyResult{DefaultEpoch: cur.defaultEpoch}
	}
	var next *ruleSet
	if i := cur.match(c.GetEntity()); i >= 0 {
		next = cur.withRuleEpoch(i, index)
	} else {
		next = cur.withDefault(cur.defaultRegion, index)
	}
	return update{rules: next, unpin: c.GetEntity()}, &ApplyResult{Epoch: index, Existed: true, DefaultEpoch: next.defaultEpoch}
}

// applyJoin upserts a member by id. The first member's region becomes the
// default region, at the entry's index.
func applyJoin(t *table, c *meridianv1.JoinCommand, index uint64) (update, *ApplyResult) {
	cur, members := t.view()
	m := c.GetMember()
	if err := ValidateMember(m); err != nil {
		return rejected(err)
	}
	if have, ok := members.byID[m.GetId()]; ok && proto.Equal(have, m) {
		return update{}, &ApplyResult{Epoch: cur.defaultEpoch, Existed: true, DefaultEpoch: cur.defaultEpoch}
	}
	m = proto.Clone(m).(*meridianv1.Member)
	u := update{members: members.with(m), member: m}
	if cur.defaultRegion == "" {
		u.rules = cur.withDefault(m.GetRegion(), index)
	}
	def := cur.defaultEpoch
	if u.rules != nil {
		def = u.rules.defaultEpoch
	}
	return u, &ApplyResult{Epoch: def, DefaultEpoch: def}
}
