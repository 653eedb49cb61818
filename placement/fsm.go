package placement

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/meridiandb/meridian/internal/signal"
	"google.golang.org/protobuf/proto"
)

// StoreConfig configures the placement state machine.
type StoreConfig struct {
	// Dir holds the state machine's Badger database. Required.
	Dir string
	// Logger receives the state machine's and Badger's logs. Default slog.Default().
	Logger *slog.Logger
	// Knobs are testing hooks; nil in production.
	Knobs *TestingKnobs
}

// TestingKnobs are hooks for tests of the state machine; nil in production.
type TestingKnobs struct {
	// AfterRestoreDrop runs in Restore after the s/restoring marker is
	// durable and the old keys are dropped, before the new ones are written
	// (crash point). A non-nil error aborts Restore there, as a crash would.
	AfterRestoreDrop func() error
}

// DefaultStoreConfig returns a config with defaults; Dir must still be set.
func DefaultStoreConfig() StoreConfig { return StoreConfig{} }

// Validate checks the config.
func (c StoreConfig) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: StoreConfig.Dir must be set", ErrInvalidConfig)
	}
	return nil
}

// Badger sizing. Placement writes are rare and small, and up to nine
// members share one test process, so every buffer is small. SyncWrites is
// on: an applied entry is durable before Apply returns, so Badger never
// falls behind what it reported applied (compare region, which relies on
// Raft's log instead).
const (
	// badgerMemTableBytes: also sets Badger's transaction bound (15% of it,
	// about 1.2 MiB); values of at least badgerValueThresholdBytes go to
	// the value log and count only a pointer, so a 10,000-rule t/rules
	// record still fits one transaction.
	badgerMemTableBytes = 8 << 20
	// badgerNumMemtables bounds memtables waiting to flush (count).
	badgerNumMemtables = 2
	// badgerValueThresholdBytes: values this large or larger live in the
	// value log. Below the transaction bound, as Badger requires.
	badgerValueThresholdBytes = 1 << 20
	// badgerBlockCacheBytes: the table is read from Badger only at open
	// and for snapshots; lookups never touch Badger.
	badgerBlockCacheBytes = 4 << 20
	// badgerIndexCacheBytes bounds the table-index cache (0 would keep
	// every index in memory).
	badgerIndexCacheBytes = 4 << 20
	// badgerValueLogFileBytes: larger than the largest t/rules record
	// (10,000 rules of at most about 1.4 KiB each).
	badgerValueLogFileBytes = 64 << 20
	// badgerNumCompactors: Badger's minimum useful count.
	badgerNumCompactors = 2
)

// FSM is the placement state machine: a raft.FSM over Badger holding the
// whole table in memory. Apply, Snapshot and Restore are called by Raft from
// one goroutine; every read method is safe from any goroutine, concurrently
// with them, and reads only memory.
type FSM struct {
	cfg    StoreConfig
	logger *slog.Logger
	db     *badger.DB
	table  table

	// mu serialises Close with Apply, Snapshot and Restore (read-locked by
	// them, write-locked by Close) and guards closed.
	mu     sync.RWMutex
	closed bool
	// snaps counts snapshots not yet released; Close waits for them.
	snaps sync.WaitGroup

	// restoring is set while the s/restoring marker is in Badger: Badger
	// holds a partial state and Apply must not build on it.
	restoring atomic.Bool
	applied   atomic.Uint64 // state.AppliedIndex, for lock-free reads
	state     *meridianv1.PlacementApplyState

	changed signal.Signal // notified after every apply, Restore and Close

	// outcomes remembers how recent transitions ended, for the leader's
	// handlers that wait for the change they staged (transition.go).
	outcomes outcomeRing
	// leaseSeen is when this member applied each region's last renewal
	// (lease.go): memory only, on the monotonic clock.
	leaseSeen leaseClock
}

var (
	_ raft.FSM  = (*FSM)(nil)
	_ io.Closer = (*FSM)(nil)
)

// OpenFSM opens (or creates) the state machine in cfg.Dir and loads the
// whole table into memory. When a crashed Restore left its marker, the
// table opens empty and RestoreIfNeeded must run before raft.NewRaft.
func OpenFSM(cfg StoreConfig) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "placement-fsm")
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("placement: create state dir: %w", err)
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(true).
		WithLogger(logadapt.Badger(logger.With("component", "badger"))).
		WithMemTableSize(badgerMemTableBytes).
		WithNumMemtables(badgerNumMemtables).
		WithValueThreshold(badgerValueThresholdBytes).
		WithBlockCacheSize(badgerBlockCacheBytes).
		WithIndexCacheSize(badgerIndexCacheBytes).
		WithValueLogFileSize(badgerValueLogFileBytes).
		WithNumVersionsToKeep(1).
		WithNumCompactors(badgerNumCompactors).
		WithDetectConflicts(false). // one writer: the apply goroutine
		WithMetricsEnabled(false)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("placement: open badger %s: %w", cfg.Dir, err)
	}
	f := &FSM{cfg: cfg, logger: logger, db: db}
	st, s, restoring, err := loadState(db)
	switch {
	case err != nil && restoring:
		logger.Warn("a restore did not finish: the stored state is partial; restore the newest snapshot before starting raft", "err", err)
		st, s = &meridianv1.PlacementApplyState{}, newTableState()
	case err != nil:
		_ = db.Close()
		return nil, err
	case restoring:
		logger.Warn("a restore did not finish: the stored state is partial; restore the newest snapshot before starting raft")
	}
	f.restoring.Store(restoring)
	f.leaseSeen.reset()
	f.state = st
	f.applied.Store(st.GetAppliedIndex())
	f.table.s = s
	logger.Debug("state machine opened", "dir", cfg.Dir, "applied_index", st.GetAppliedIndex(),
		"rules", len(s.rules.rules), "pins", len(s.pins), "members", len(s.members.sorted))
	return f, nil
}

// loadState reads the whole of Badger: the apply state, the table, and
// whether the s/restoring marker is present.
func loadState(db *badger.DB) (*meridianv1.PlacementApplyState, tableState, bool, error) {
	st := &meridianv1.PlacementApplyState{}
	var restoring bool
	b := newTableBuilder(0)
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			kind, name, err := parseKey(item.Key())
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				switch kind {
				case keyKindApplyState:
					return unmarshalRecord("s/apply", v, st)
				case keyKindRestoring:
					restoring = true
					return nil
				case keyKindRules:
					rs := &meridianv1.PlacementRuleSet{}
					if err := unmarshalRecord("t/rules", v, rs); err != nil {
						return err
					}
					return b.setRules(rs)
				case keyKindLease:
					l := &meridianv1.RegionLease{}
					if err := unmarshalRecord("l/"+name, v, l); err != nil {
						return err
					}
					if l.GetRegion() != name {
						return fmt.Errorf("%w: lease of %q stored at key l/%s", ErrCorruptState, l.GetRegion(), name)
					}
					return b.addLease(l)
				case keyKindTransition:
					b.transition = &meridianv1.PlacementTransition{}
					return unmarshalRecord("t/transition", v, b.transition)
				case keyKindMember:
					m := &meridianv1.Member{}
					if err := unmarshalRecord("n/"+name, v, m); err != nil {
						return err
					}
					if m.GetId() != name {
						return fmt.Errorf("%w: member %q stored at key n/%s", ErrCorruptState, m.GetId(), name)
					}
					return b.addMember(m)
				case keyKindPin:
					p := &meridianv1.PlacementPin{}
					if err := unmarshalRecord("p/"+name, v, p); err != nil {
						return err
					}
					if p.GetEntity() != name {
						return fmt.Errorf("%w: pin of %q stored at key p/%s", ErrCorruptState, p.GetEntity(), name)
					}
					return b.addPin(p)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, tableState{}, restoring, fmt.Errorf("placement: load state: %w", err)
	}
	s, err := b.finish(st.GetAppliedIndex())
	if err != nil {
		return nil, tableState{}, restoring, fmt.Errorf("placement: load state: %w", err)
	}
	return st, s, restoring, nil
}

func unmarshalRecord(what string, v []byte, m proto.Message) error {
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorruptState, what, err)
	}
	return nil
}

// tableBuilder assembles a tableState from stored or streamed records and
// checks it: what Badger holds at open and what a snapshot carries are held
// to the same invariants apply keeps.
type tableBuilder struct {
	rules      *meridianv1.PlacementRuleSet
	transition *meridianv1.PlacementTransition
	members    []*meridianv1.Member
	s          tableState
}

func newTableBuilder(pinsHint int) *tableBuilder {
	s := newTableState()
	s.pins = make(map[string]pinEntry, pinsHint)
	return &tableBuilder{s: s}
}

func (b *tableBuilder) setRules(rs *meridianv1.PlacementRuleSet) error {
	if b.rules != nil {
		return fmt.Errorf("%w: two rule sets", ErrCorruptState)
	}
	b.rules = rs
	return nil
}

func (b *tableBuilder) addMember(m *meridianv1.Member) error {
	if err := ValidateMember(m); err != nil {
		return fmt.Errorf("%w: member %q: %v", ErrCorruptState, truncate(m.GetId(), errorTextBytesMax), err)
	}
	b.members = append(b.members, m)
	return nil
}

func (b *tableBuilder) addLease(l *meridianv1.RegionLease) error {
	if err := causal.ValidateRegion(l.GetRegion()); err != nil {
		return fmt.Errorf("%w: lease: %v", ErrCorruptState, err)
	}
	if _, dup := b.s.leases[l.GetRegion()]; dup {
		return fmt.Errorf("%w: two leases of %q", ErrCorruptState, l.GetRegion())
	}
	b.s.leases[l.GetRegion()] = l
	return nil
}

func (b *tableBuilder) addPin(p *meridianv1.PlacementPin) error {
	if err := ValidateEntity(p.GetEntity()); err != nil {
		return fmt.Errorf("%w: pin: %v", ErrCorruptState, err)
	}
	if p.GetEpoch() == 0 {
		return fmt.Errorf("%w: pin of %q has epoch 0", ErrCorruptState, p.GetEntity())
	}
	if _, dup := b.s.pins[p.GetEntity()]; dup {
		return fmt.Errorf("%w: two pins of %q", ErrCorruptState, p.GetEntity())
	}
	b.s.putPin(p.GetEntity(), p.GetRegion(), p.GetEpoch())
	return nil
}

// finish checks the assembled table against applied (the apply state's
// index: no epoch may exceed it) and returns it.
func (b *tableBuilder) finish(applied uint64) (tableState, error) {
	b.s.members = newMemberDir(b.members)
	if len(b.s.members.sorted) != len(b.members) {
		return tableState{}, fmt.Errorf("%w: a member id appears twice", ErrCorruptState)
	}
	known := b.s.members.known
	for _, r := range b.s.names.list {
		if !known[r] {
			return tableState{}, fmt.Errorf("%w: a pin names region %q, which no member joined from", ErrCorruptState, r)
		}
	}
	for r, l := range b.s.leases {
		if l.GetRenewedIndex() == 0 || l.GetRenewedIndex() > applied {
			return tableState{}, fmt.Errorf("%w: lease of %q renewed at %d, 0 or above the applied index %d", ErrCorruptState, r, l.GetRenewedIndex(), applied)
		}
	}
	for e, pe := range b.s.pins {
		if pe.epoch > applied {
			return tableState{}, fmt.Errorf("%w: pin of %q has epoch %d, above the applied index %d", ErrCorruptState, e, pe.epoch, applied)
		}
	}
	rs := b.rules
	if rs == nil {
		rs = &meridianv1.PlacementRuleSet{}
	}
	if rs.GetDefaultRegion() == "" {
		// Nobody has joined yet: the first Join sets the default, so an
		// empty default with anything else stored is not a state apply makes.
		if len(rs.GetRules()) != 0 || len(b.s.pins) != 0 || len(b.members) != 0 ||
			rs.GetDefaultEpoch() != 0 || rs.GetRulesIndex() != 0 {
			return tableState{}, fmt.Errorf("%w: no default region, but %d rules, %d pins and %d members are stored",
				ErrCorruptState, len(rs.GetRules()), len(b.s.pins), len(b.members))
		}
		return b.s, nil
	}
	if err := ValidateRules(rs.GetRules(), rs.GetDefaultRegion(), known); err != nil {
		return tableState{}, fmt.Errorf("%w: stored rules: %v", ErrCorruptState, err)
	}
	if rs.GetDefaultEpoch() == 0 || rs.GetDefaultEpoch() > applied || rs.GetRulesIndex() > applied {
		return tableState{}, fmt.Errorf("%w: default epoch %d or rules index %d is 0 or above the applied index %d",
			ErrCorruptState, rs.GetDefaultEpoch(), rs.GetRulesIndex(), applied)
	}
	rules := make([]rule, len(rs.GetRules()))
	for i, r := range rs.GetRules() {
		if r.GetEpoch() == 0 || r.GetEpoch() > applied {
			return tableState{}, fmt.Errorf("%w: rules[%d] has epoch %d, 0 or above the applied index %d", ErrCorruptState, i, r.GetEpoch(), applied)
		}
		rules[i] = ruleOf(r, r.GetEpoch())
	}
	b.s.rules = newRuleSet(rules, rs.GetDefaultRegion(), rs.GetDefaultEpoch(), rs.GetRulesIndex())
	if tr := b.transition; tr != nil {
		if tr.GetIndex() == 0 || tr.GetIndex() > applied || tr.GetCompletedIndex() > applied {
			return tableState{}, fmt.Errorf("%w: transition staged at %d (completed at %d), above the applied index %d",
				ErrCorruptState, tr.GetIndex(), tr.GetCompletedIndex(), applied)
		}
		view, err := rebuildTransition(b.s, tr)
		if err != nil {
			return tableState{}, err
		}
		b.s.transition = view
	}
	return b.s, nil
}

// ruleOf converts a validated rule, normalising its mode.
func ruleOf(r *meridianv1.PlacementRule, epoch uint64) rule {
	var fo []string
	if len(r.GetFailover()) > 0 {
		fo = append([]string(nil), r.GetFailover()...)
	}
	return rule{prefix: r.GetPrefix(), home: r.GetHomeRegion(), mode: normaliseMode(r.GetMode()), failover: fo,
		policy: normalisePolicy(r.GetFailoverPolicy()), epoch: epoch, merge: cloneMerge(r.GetMerge())}
}

func cloneMerge(ms []*meridianv1.MergeRule) []*meridianv1.MergeRule {
	if len(ms) == 0 {
		return nil
	}
	out := make([]*meridianv1.MergeRule, len(ms))
	for i, m := range ms {
		out[i] = proto.Clone(m).(*meridianv1.MergeRule)
	}
	return out
}

// Close waits for Apply, Restore and unreleased snapshots, then closes
// Badger. Reads keep answering from memory; Apply, Snapshot and Restore
// return ErrStoreClosed.
func (f *FSM) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	f.snaps.Wait()
	f.notify()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("placement: close badger: %w", err)
	}
	return nil
}

// Changed returns a channel closed at the next apply (or Restore, or
// Close): a wake-up, not a queue. Subscribers read, then wait on the channel
// they got before reading.
func (f *FSM) Changed() <-chan struct{} { return f.changed.C() }

func (f *FSM) notify() { f.changed.Notify() }

// AppliedIndex is the Raft index of the last entry Apply handled (or of the
// restored snapshot). hashicorp/raft hands only command entries to a
// raft.FSM, so Raft's own applied index may be higher.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Lookup returns entity's placement: its pin, else the first rule whose
// prefix is a prefix of entity, else the default region. It reads memory
// only, does not allocate, and is safe concurrently with Apply and Restore.
// Home is "" until a member has joined.
func (f *FSM) Lookup(entity string) Placement { return f.table.lookup(entity) }

// Rules returns the rules in match order (fresh messages the caller may
// keep), the default region, its epoch, and the index of the last SetRules.
func (f *FSM) Rules() (rules []*meridianv1.PlacementRule, defaultRegion string, defaultEpoch, rulesIndex uint64) {
	return f.table.rulesCopy()
}

// PinCount is the number of explicit pins.
func (f *FSM) PinCount() int { return f.table.pinCount() }

// Pin returns entity's explicit pin, if any: its region and epoch.
func (f *FSM) Pin(entity string) (region string, epoch uint64, ok bool) { return f.table.pin(entity) }

// Members returns the member directory sorted by id (fresh messages).
func (f *FSM) Members() []*meridianv1.Member { return f.table.membersCopy() }

// Regions returns the regions with at least one member, sorted.
func (f *FSM) Regions() []string {
	_, d := f.table.view()
	return append([]string(nil), d.regions...)
}

// KnownRegions returns the regions with at least one member as a set (a
// fresh map): the known regions ValidateRules and ValidatePin take.
func (f *FSM) KnownRegions() map[string]bool {
	_, d := f.table.view()
	out := make(map[string]bool, len(d.known))
	for r := range d.known {
		out[r] = true
	}
	return out
}
