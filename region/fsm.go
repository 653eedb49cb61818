package region

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/fsutil"
	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/meridiandb/meridian/internal/signal"
	"google.golang.org/protobuf/proto"
)

// StoreConfig configures the region state machine.
type StoreConfig struct {
	// Dir holds the state machine's Badger directories and its CURRENT file.
	Dir string
	// Region is this region's name: the origin of the dots apply assigns.
	// Every replica of the group must use the same name.
	Region string
	// IdempotencyWindow is how long an event id stays an idempotency key when
	// the batch does not stamp its own window (AppendBatch.idempotency_window_seconds).
	// Default 24h: longer than any sane client retry loop. Replicas must agree,
	// so leaders should stamp it into every batch.
	IdempotencyWindow time.Duration
	// Compression of the Badger tables written from now on ("" means
	// none). Replicas need not agree: it changes bytes on disk, not state.
	Compression Compression
	// Logger receives the state machine's and Badger's logs. Default slog.Default().
	Logger *slog.Logger
	// Knobs are testing hooks; nil in production.
	Knobs *TestingKnobs
}

// TestingKnobs are hooks for tests of the state machine; nil in production.
type TestingKnobs struct {
	// AfterSnapshotSync runs in Snapshot right after Badger's Sync succeeded.
	AfterSnapshotSync func()
	// AfterPartialCommit runs in Apply after an entry too large for one
	// Badger transaction committed a part of itself (crash point).
	AfterPartialCommit func(index uint64)
}

// DefaultIdempotencyWindow is StoreConfig.IdempotencyWindow's default.
const DefaultIdempotencyWindow = 24 * time.Hour

// DefaultStoreConfig returns a config with defaults; Dir and Region must still be set.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{IdempotencyWindow: DefaultIdempotencyWindow}
}

// Validate checks the config.
func (c StoreConfig) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: StoreConfig.Dir must be set", ErrInvalidConfig)
	}
	if err := validateRegionName("region", c.Region); err != nil {
		return fmt.Errorf("%w: StoreConfig.Region: %v", ErrInvalidConfig, err)
	}
	if c.IdempotencyWindow < time.Second || c.IdempotencyWindow > idempotencyWindowMax {
		return fmt.Errorf("%w: StoreConfig.IdempotencyWindow must be 1s to %v, got %v", ErrInvalidConfig, idempotencyWindowMax, c.IdempotencyWindow)
	}
	if _, err := c.Compression.badger(); err != nil {
		return fmt.Errorf("StoreConfig.Compression: %w", err)
	}
	return nil
}

// Badger sizing. SyncWrites is off: the Raft log is the durability point
// (doc.go, "Durability").
const (
	// badgerMemTableBytes also sets Badger's transaction limit (15% of it):
	// 64 MiB gives about 9.6 MiB and 104,857 writes per transaction.
	badgerMemTableBytes = 64 << 20
	// badgerBlockCacheBytes: reads of recent events hit the memtables; the
	// block cache serves older ones. Small, since several nodes share a host in tests.
	badgerBlockCacheBytes = 32 << 20
	// badgerValueLogFileBytes: smaller than Badger's 1 GiB default so that
	// tests and small nodes do not map huge files.
	badgerValueLogFileBytes = 64 << 20
	// badgerNumMemtables bounds memory held by memtables waiting to flush.
	badgerNumMemtables = 3
	// badgerNumCompactors: Badger's minimum useful count.
	badgerNumCompactors = 2
	// restoreLoadPendingMax is Badger Load's bound on in-flight write batches.
	restoreLoadPendingMax = 16
	// currentFile names the Badger directory in use.
	currentFile = "CURRENT"
	// dbDirPrefix prefixes every Badger directory: badger-000001, ...
	dbDirPrefix = "badger-"
)

// FSM is the region state machine: a raft.FSM over Badger. Apply, Snapshot
// and Restore are called by Raft from one goroutine; reads are safe from any
// goroutine, including while Restore swaps the database.
type FSM struct {
	cfg    StoreConfig
	logger *slog.Logger
	ap     applier

	mu     sync.RWMutex // guards h, closed and state
	h      *dbHandle
	closed bool
	state  *meridianv1.ApplyState // immutable once published; replaced on apply

	applied atomic.Uint64 // state.AppliedIndex, for lock-free reads

	changed signal.Signal // notified after every apply, Restore and Close

	regions atomic.Pointer[func() []string] // SetRegions
}

// dbHandle is one open Badger directory. Readers hold refs while they use it;
// Restore and Close wait for the refs before closing it.
//
// Badger runs in managed mode: the apply goroutine, the only writer,
// commits each transaction at the next version, and a read opens at the
// newest committed version. In Badger's own mode a new read transaction
// waits until every commit in progress is written (its watermark), which
// under a steady write load put milliseconds into the tail of every read
// (docs/PERFORMANCE.md, issue 14). The handle tracks the versions open
// readers use, so compaction keeps what they can see (SetDiscardTs).
type dbHandle struct {
	db   *badger.DB
	dir  string
	seq  int
	refs sync.WaitGroup

	mu        sync.Mutex
	committed uint64         // the newest committed version
	readers   map[uint64]int // versions open read transactions use, and how many
	discardTs uint64         // the last SetDiscardTs
}

// beginRead opens a read-only transaction at the newest committed version;
// endRead must close it.
func (h *dbHandle) beginRead() *badger.Txn {
	h.mu.Lock()
	ts := h.committed
	h.readers[ts]++
	h.mu.Unlock()
	return h.db.NewTransactionAt(ts, false)
}

func (h *dbHandle) endRead(txn *badger.Txn) {
	txn.Discard()
	ts := txn.ReadTs()
	h.mu.Lock()
	if h.readers[ts]--; h.readers[ts] <= 0 {
		delete(h.readers, ts)
	}
	h.mu.Unlock()
}

// beginWrite opens the apply goroutine's read-write transaction; it sees
// everything committed (there is no other writer).
func (h *dbHandle) beginWrite() *badger.Txn {
	h.mu.Lock()
	ts := h.committed
	h.mu.Unlock()
	return h.db.NewTransactionAt(ts, true)
}

// commitWrite commits txn at the next version, publishes that version to
// new readers and lets compaction drop versions no open reader can see.
func (h *dbHandle) commitWrite(txn *badger.Txn) error {
	h.mu.Lock()
	ts := h.committed + 1
	h.mu.Unlock()
	if err := txn.CommitAt(ts, nil); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.committed = ts
	h.discardTs = ts
	for r := range h.readers {
		h.discardTs = min(h.discardTs, r)
	}
	h.db.SetDiscardTs(h.discardTs)
	return nil
}

var _ raft.FSM = (*FSM)(nil)

// OpenFSM opens (or creates) the state machine in cfg.Dir.
func OpenFSM(cfg StoreConfig) (*FSM, error) {
	if cfg.IdempotencyWindow == 0 {
		cfg.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "region-fsm", "region", cfg.Region)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("region: create state dir: %w", err)
	}
	seq, err := readCurrent(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if seq == 0 {
		seq = 1
		if err := writeCurrent(cfg.Dir, seq); err != nil {
			return nil, err
		}
	}
	if err := removeStaleDirs(cfg.Dir, seq); err != nil {
		return nil, err
	}
	h, err := openHandle(cfg, seq, logger)
	if err != nil {
		return nil, err
	}
	st, err := loadApplyState(h.db)
	if err != nil {
		_ = h.db.Close()
		return nil, err
	}
	f := &FSM{
		cfg:    cfg,
		logger: logger,
		ap:     applier{region: cfg.Region, window: cfg.IdempotencyWindow, limits: HardLimits(), knobs: cfg.Knobs, heads: newHeadCache()},
		h:      h,
		state:  st,
	}
	f.applied.Store(st.GetAppliedIndex())
	logger.Debug("state machine opened", "dir", h.dir, "applied_index", st.GetAppliedIndex())
	return f, nil
}

func dbDir(dir string, seq int) string {
	return filepath.Join(dir, fmt.Sprintf("%s%06d", dbDirPrefix, seq))
}

func openHandle(cfg StoreConfig, seq int, logger *slog.Logger) (*dbHandle, error) {
	path := dbDir(cfg.Dir, seq)
	compression, err := cfg.Compression.badger()
	if err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(path).
		WithSyncWrites(false).
		WithLogger(logadapt.Badger(logger.With("component", "badger"))).
		WithMemTableSize(badgerMemTableBytes).
		WithNumMemtables(badgerNumMemtables).
		WithBlockCacheSize(badgerBlockCacheBytes).
		WithValueLogFileSize(badgerValueLogFileBytes).
		WithNumCompactors(badgerNumCompactors).
		WithDetectConflicts(false). // one writer: the apply goroutine
		WithCompression(compression).
		WithMetricsEnabled(false)
	db, err := badger.OpenManaged(opts)
	if err != nil {
		return nil, fmt.Errorf("region: open badger %s: %w", path, err)
	}
	// A directory written before managed mode carries Badger's own
	// versions; new commits continue above the highest.
	committed := db.MaxVersion()
	db.SetDiscardTs(committed)
	return &dbHandle{db: db, dir: path, seq: seq, committed: committed, discardTs: committed, readers: map[uint64]int{}}, nil
}

// readCurrent returns the sequence number of the Badger directory in use, 0 if none.
func readCurrent(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("region: read %s: %w", currentFile, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: %s holds %q", ErrCorruptState, currentFile, b)
	}
	return n, nil
}

// writeCurrent atomically points CURRENT at badger-<seq>.
func writeCurrent(dir string, seq int) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, currentFile), []byte(strconv.Itoa(seq)+"\n"), 0o644); err != nil {
		return fmt.Errorf("region: %w", err)
	}
	return nil
}

// removeStaleDirs removes Badger directories other than the current one:
// leftovers of a Restore that crashed before or after its swap.
func removeStaleDirs(dir string, current int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("region: list state dir: %w", err)
	}
	keep := filepath.Base(dbDir(dir, current))
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), dbDirPrefix) && e.Name() != keep {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("region: remove stale %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func loadApplyState(db *badger.DB) (*meridianv1.ApplyState, error) {
	st := &meridianv1.ApplyState{}
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyApplyState)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if err := proto.Unmarshal(v, st); err != nil {
				return fmt.Errorf("%w: apply state: %v", ErrCorruptState, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("region: load apply state: %w", err)
	}
	if st.Applied == nil {
		st.Applied = map[string]uint64{}
	}
	return st, nil
}

// acquire returns the current database with a reference held; the caller
// must call h.refs.Done().
func (f *FSM) acquire() (*dbHandle, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrStoreClosed
	}
	f.h.refs.Add(1)
	return f.h, nil
}

// StoreSizes returns the sizes of Badger's LSM tree and value log in
// bytes, as Badger last computed them (it refreshes them every minute).
func (f *FSM) StoreSizes() (lsm, vlog int64, err error) {
	h, err := f.acquire()
	if err != nil {
		return 0, 0, err
	}
	defer h.refs.Done()
	lsm, vlog = h.db.Size()
	return lsm, vlog, nil
}

// Close waits for readers and snapshots in progress, then closes Badger.
// Close does not sync: the Raft log covers what Badger may lose.
func (f *FSM) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	h := f.h
	f.mu.Unlock()
	h.refs.Wait()
	f.notify()
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("region: close badger: %w", err)
	}
	return nil
}

// Changed returns a channel closed at the next apply (or Restore, or Close).
// Subscribers read, then wait on the channel they got before reading.
func (f *FSM) Changed() <-chan struct{} { return f.changed.C() }

func (f *FSM) notify() { f.changed.Notify() }

// AppliedIndex is the Raft index of the last entry Apply handled (or of the
// restored snapshot). hashicorp/raft hands only command entries to a
// raft.FSM: no-op, barrier and configuration entries never reach it, so
// Raft's own applied index may be higher.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// ApplyState returns a copy of the stored apply state.
func (f *FSM) ApplyState() *meridianv1.ApplyState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return proto.Clone(f.state).(*meridianv1.ApplyState)
}

// hasTail reports whether origin's failover staged at transition is
// recorded (ApplyState.origin_tails), without copying the apply state.
func (f *FSM) hasTail(origin string, transition uint64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, t := range f.state.GetOriginTails()[origin].GetTails() {
		if t.GetTransition() == transition {
			return true
		}
	}
	return false
}

// Covers reports whether the applied vector covers need, without copying
// the apply state (appends and SESSION reads ask on every request; apply
// replaces the state, never mutates it, so a read lock suffices).
func (f *FSM) Covers(need causal.Vector) bool {
	if len(need) == 0 {
		return true
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return causal.Vector(f.state.GetApplied()).Covers(need)
}

// BatchResult is what Apply returns for a COMMAND_TYPE_APPEND_BATCH entry:
// one result per op, in order.
type BatchResult struct {
	Ops []OpResult
}

// OpResult is one op's outcome: Resp (without session_token) or Err.
type OpResult struct {
	Resp *meridianv1.AppendResponse
	Err  error
}

// Apply applies one committed Raft entry. It returns *BatchResult for append
// batches, *ReplicateResult for replicated batches, nil for entries at or
// below the applied index and for non-command entries, and ErrStoreClosed
// after Close. It panics when the entry cannot be decoded or written:
// continuing would let replicas diverge.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: Raft hands over the entries it
// committed together, and they apply in one Badger transaction (one commit,
// one wake-up of the readers) instead of one each. Results are as Apply's,
// one per entry.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	h, err := f.acquire()
	if err != nil {
		for i := range out {
			out[i] = err
		}
		return out
	}
	defer h.refs.Done()
	f.mu.RLock()
	cur := f.state
	f.mu.RUnlock()
	skip := 0
	for skip < len(logs) && logs[skip].Index <= cur.GetAppliedIndex() {
		skip++ // replayed after a restart: already in Badger
	}
	if skip == len(logs) {
		return out
	}
	next, res := f.ap.applyLogs(h, cur, logs[skip:])
	f.mu.Lock()
	f.state = next
	f.mu.Unlock()
	f.applied.Store(next.GetAppliedIndex())
	f.notify()
	for i, r := range res {
		if r != nil {
			out[skip+i] = r
		}
	}
	return out
}

var _ raft.BatchingFSM = (*FSM)(nil)

var _ io.Closer = (*FSM)(nil)
