package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/internal/signal"
)

// Read and subscribe limits.
const (
	// appliedPollInterval is how often a wait on the applied index rechecks
	// Raft's applied index, which changes without notification.
	appliedPollInterval = 2 * time.Millisecond
	// checkpointIntervalMin and checkpointIntervalMax bound a subscriber's
	// requested checkpoint interval.
	checkpointIntervalMin = 10 * time.Millisecond
	checkpointIntervalMax = time.Hour
	// subscribeScanPages: a filtered region-log subscription scans at most
	// this many pages' worth of log entries between two messages (4,096
	// at the default page): a sparse filter sends a checkpoint past what
	// it skipped instead of scanning on silently.
	subscribeScanPages = 16
)

// Node is one member of a region's Raft group: it accepts appends on any
// node (followers forward them to the leader), serves reads at the requested
// consistency and streams subscriptions. It is safe for concurrent use.
type Node struct {
	cfg     Config
	logger  *slog.Logger
	fsm     *FSM
	parts   *raftParts
	raft    *raft.Raft
	hlc     *causal.HLC
	batcher *batcher
	fwd     *forwarder

	// readFloor is the last log index at open: this node may have
	// acknowledged anything up to it, so local reads wait until the state
	// machine covers it (bounded, then forward to the leader).
	readFloor uint64

	// recoverCursor is where the homes loop's next look at recovery
	// markers starts (recoverSuperseded; owned by the homes loop).
	recoverCursor *meridianv1.Dot

	leaderCh signal.Signal // notified on every leader change
	// established is the term whose leadership this node established
	// (its barrier applied every earlier entry).
	established atomic.Uint64
	// dispatch holds the consumer group dispatchers of this leader
	// (dispatch.go).
	dispatch struct {
		sync.Mutex
		m map[string]*dispatcher
	}

	// lag reports replication lag per origin for Status (replication.go).
	lag lagReporter
	// lease is the leader's hold on the region's home lease (lease.go).
	lease leaseState
	// stalls are replication stops that break an invariant (replication.go).
	stalls stalls

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Open starts a node: the state machine in DataDir/state, Raft (its log in
// DataDir/raftlog, or DataDir/raft.db if the directory predates it;
// snapshots in DataDir/snapshots) and the batcher. With
// cfg.Bootstrap and no Raft state it bootstraps the group with cfg.Peers.
// A nil Network, Clock or Logger means TCP, the system clock, discard.
func Open(cfg Config) (*Node, error) {
	if cfg.Network == nil {
		cfg.Network = TCP
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("component", "region", "region", cfg.Region, "node", cfg.NodeID)
	cfg.Logger = logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("region: create data dir: %w", err)
	}
	fsm, err := OpenFSM(StoreConfig{
		Dir:               filepath.Join(cfg.DataDir, "state"),
		Region:            cfg.Region,
		IdempotencyWindow: cfg.IdempotencyWindow,
		Compression:       cfg.StateCompression,
		Logger:            logger.With("component", "fsm"),
	})
	if err != nil {
		return nil, err
	}
	parts, err := openRaft(cfg, fsm)
	if err != nil {
		_ = fsm.Close()
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		logger:    logger,
		fsm:       fsm,
		parts:     parts,
		raft:      parts.raft,
		hlc:       causal.NewHLC(cfg.Clock, cfg.ClockOffsetMax),
		readFloor: parts.lastIndexAtStart,
		closing:   make(chan struct{}),
	}
	if last := fsm.ApplyState().GetLastHlc(); last != nil {
		_, _ = n.hlc.Update(causal.Timestamp{WallNanos: last.GetWallNanos(), Logical: last.GetLogical()})
	}
	n.batcher = newBatcher(cfg, n.raft, n.hlc, logger.With("component", "batcher"))
	n.fwd = newForwarder(cfg.NodeID, cfg.Network, cfg.ForwardDialTimeout, cfg.ForwardTimeout, cfg.ClientOptions)
	n.wg.Add(2)
	go n.runLeadership()
	go n.runReclaim()
	if cfg.Ownership != nil {
		// Active-active events are stable once every region of the
		// deployment has stamped past them.
		fsm.SetRegions(cfg.Ownership.Regions)
		n.wg.Add(3)
		go n.runHomes()
		go n.runLease()
		go n.runClockTick()
	}
	logger.Info("node open", "raft_addr", parts.transport.LocalAddr(), "applied", fsm.AppliedIndex(), "last_log_index", n.readFloor,
		"state_compression", cfg.StateCompression)
	return n, nil
}

// Close shuts Raft down, fails what is queued, and closes the stores.
// Appends in Raft at that moment get ErrOutcomeUnknown.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.closing)
		n.parts.stopDialing()
		errs := []error{n.raft.Shutdown().Error()}
		n.batcher.close()
		n.wg.Wait()
		n.fwd.close()
		errs = append(errs, n.parts.close(), n.fsm.Close())
		n.closeErr = errors.Join(errs...)
		n.logger.Info("node closed")
	})
	return n.closeErr
}

// Raft returns the node's Raft instance, for node/ (metrics, leadership
// transfer) and tests. Do not Apply through it: use Append.
func (n *Node) Raft() *raft.Raft { return n.raft }

// RaftAddr returns the Raft transport's advertised address.
func (n *Node) RaftAddr() string { return string(n.parts.transport.LocalAddr()) }

// FSM returns the node's state machine (read-only use: replication reads
// its logs; tests compare stores).
func (n *Node) FSM() *FSM { return n.fsm }

// Append validates req and appends it through the leader's batcher; a
// follower forwards it to the leader. Errors wrap ErrInvalidArgument,
// ErrWrongExpectedVersion (*VersionConflictError), ErrIdempotencyConflict,
// ErrOverloaded, ErrNotLeader (not proposed, retry), ErrOutcomeUnknown
// (may have committed: retry with the same event ids), or ctx's error.
func (n *Node) Append(ctx context.Context, req *meridianv1.AppendRequest) (*meridianv1.AppendResponse, error) {
	token, err := causal.ParseToken(req.GetSessionToken())
	if err != nil {
		return nil, &InvalidArgumentError{Field: "session_token", Reason: err.Error()}
	}
	if err := n.validateDurability(req); err != nil {
		return nil, err
	}
	op := &meridianv1.AppendOp{Entity: req.GetEntity(), Expected: req.GetExpected(), Events: req.GetEvents(), Deps: token}
	if err := ValidateAppend(op, n.cfg.Limits); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		resp, err := n.appendRouted(ctx, req, op, token)
		if err == nil || !errors.Is(err, ErrStalePlacement) || n.cfg.Ownership == nil || attempt >= staleRetriesMax {
			return resp, err
		}
		// Apply refused it, writing nothing: this node's placement copy is
		// behind a change the region has fenced. Route it again once the
		// copy has caught up (the entity may be moving, or homed elsewhere).
		n.logger.Debug("append routed by a stale placement copy; routing again", "entity", op.GetEntity(), "err", err)
		n.cfg.Ownership.WaitIndex(ctx, n.fsm.ApplyState().GetPlacementFloor())
	}
}

// staleRetriesMax bounds how often one append is routed again after apply
// refused it for a stale placement copy (each time the copy catches up
// first, so more than one retry means changes keep arriving).
const staleRetriesMax = 4

// appendRouted routes one attempt of an append: to the entity's home
// region, or through this region's leader when the home is here.
func (n *Node) appendRouted(ctx context.Context, req *meridianv1.AppendRequest, op *meridianv1.AppendOp, token causal.Vector) (*meridianv1.AppendResponse, error) {
	h, local, err := n.home(ctx, op.GetEntity())
	if err != nil {
		return nil, err
	}
	if h.ActiveActive {
		// Every region orders the entity's appends itself; a global
		// compare-and-set does not exist in this mode.
		op.ActiveActive = true
		if err := checkMergedExpected(op); err != nil {
			return nil, err
		}
		// Each event's merge rule, by type, checked against its data here
		// (apply checks again).
		op.Merge = nil
		for i, e := range op.GetEvents() {
			r := MergeRuleFor(h.Merge, e.GetType())
			if r == nil {
				continue
			}
			if _, err := parseMerge(fmt.Sprintf("events[%d]", i), r, e.GetData()); err != nil {
				return nil, err
			}
			if op.Merge == nil {
				op.Merge = make([]*meridianv1.MergeRule, len(op.GetEvents()))
				for j := range op.Merge {
					op.Merge[j] = &meridianv1.MergeRule{}
				}
			}
			op.Merge[i] = r
		}
	} else {
		op.ActiveActive, op.Merge = false, nil
	}
	var resp *meridianv1.AppendResponse
	if !local {
		if req.GetRouting() == meridianv1.Routing_ROUTING_REDIRECT {
			return nil, n.notHome(op.GetEntity(), h)
		}
		err := n.toHome(ctx, op.GetEntity(), h, func(ctx context.Context, addr string, rt route) error {
			sctx, end := n.span(ctx, "region.forward_to_home")
			r, err := n.fwd.append(sctx, addr, req, rt, false)
			end(err)
			resp = r
			return err
		})
		return resp, err
	}
	// The write is ordered here under the epoch this region's copy of the
	// placement table gives; the events carry it, and apply checks the
	// copy's index against the region's placement floor.
	op.Epoch, op.PlacementIndex = h.Epoch, h.Index
	err = n.routeToLeader(ctx, true,
		func() error {
			// Apply refuses an append whose token this region does not
			// cover (ErrDepsNotApplied): wait for replication first.
			if err := n.waitCovers(ctx, token); err != nil {
				return err
			}
			// A home lease bounds single-home writers; an active-active
			// entity has none, and takes writes through partitions.
			if !op.GetActiveActive() {
				if err := n.waitLease(ctx); err != nil {
					return err
				}
			}
			sctx, end := n.span(ctx, "region.raft_commit")
			r, err := n.batcher.submit(sctx, op)
			end(err)
			if err == nil {
				r.SessionToken = appendToken(token, r)
			}
			resp = r
			// A retry (duplicate) waits too: the first attempt may have
			// failed that very wait.
			if err == nil && req.GetDurability() == meridianv1.Durability_DURABILITY_MULTI_REGION {
				sctx, end := n.span(ctx, "region.multi_region_wait")
				err = n.awaitReplicated(sctx, req.GetEntity(), op.GetActiveActive(), r, int(req.GetMinRegions()))
				end(err)
			}
			return err
		},
		func(addr string) error {
			sctx, end := n.span(ctx, "region.forward_to_leader")
			r, err := n.fwd.append(sctx, addr, req, routeOf(ctx), true)
			end(err)
			resp = r
			return err
		})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// BatchStats returns how many Raft entries this node's group commit has
// proposed while leading, and how many appends they carried.
func (n *Node) BatchStats() (entries, appends uint64) {
	return n.batcher.batches.Load(), n.batcher.ops.Load()
}

// span starts a span named name under ctx's, if the node traces; end
// records err and ends it. Without Config.Tracer it costs a nil check.
func (n *Node) span(ctx context.Context, name string) (context.Context, func(error)) {
	if n.cfg.Tracer == nil {
		return ctx, endNothing
	}
	ctx, sp := n.cfg.Tracer.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			sp.RecordError(err)
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}
}

func endNothing(error) {}

// appendToken is the request's token merged with the dots of the appended
// events (origin.seq up to origin.seq + n - 1).
func appendToken(token causal.Vector, r *meridianv1.AppendResponse) string {
	v := token.Clone()
	if o := r.GetOrigin(); o != nil && r.GetLastVersion() >= r.GetFirstVersion() {
		v.AddDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq() + r.GetLastVersion() - r.GetFirstVersion()})
	}
	return causal.FormatToken(v)
}

// routeToLeader runs local while this node leads, and remote(leader API
// address) otherwise, retrying while the error proves the request was not
// served (ErrNotLeader: no leader, a stale leader, an unreachable one)
// until LeaderWaitTimeout. A forwarded request is served here or fails.
func (n *Node) routeToLeader(ctx context.Context, mutating bool, local func() error, remote func(addr string) error) error {
	deadline := time.Now().Add(n.cfg.LeaderWaitTimeout)
	var last error
	for {
		select {
		case <-n.closing:
			return ErrNodeClosed
		default:
		}
		changed := n.leaderChangedCh()
		var err error
		switch id, addr, ok := n.leader(); {
		case n.isLeader():
			err = local()
		case isForwarded(ctx):
			return fmt.Errorf("%w: forwarded request reached follower %s", ErrNotLeader, n.cfg.NodeID)
		case ok && id != n.cfg.NodeID:
			err = remote(addr)
		default:
			err = fmt.Errorf("%w: no leader known", ErrNotLeader)
		}
		if err == nil || !errors.Is(err, ErrNotLeader) {
			return err
		}
		last = err
		if isForwarded(ctx) {
			return err
		}
		if werr := n.waitLeaderChange(ctx, changed, deadline); werr != nil {
			if errors.Is(werr, errLeaderWait) {
				return fmt.Errorf("%w: no reachable leader within %s: %w", ErrNotLeader, n.cfg.LeaderWaitTimeout, last)
			}
			return werr
		}
	}
}

// Read serves req at its consistency level:
//   - STRONG: on the leader, linearizably (read index: note the last log
//     index, confirm leadership with a heartbeat round, wait until the state
//     machine has applied that index); followers forward to the leader.
//   - EVENTUAL: this node's state, once it covers what this node had in its
//     log at open (bounded wait, else forwarded to the leader).
//   - SESSION (default) and BOUNDED: as EVENTUAL, and once the applied vector
//     covers the session token's entry for this region (bounded wait, else
//     forwarded to the leader, which waits again and fails with ErrTimeout).
func (n *Node) Read(ctx context.Context, req *meridianv1.ReadRequest) (*meridianv1.ReadResponse, error) {
	if err := ValidateEntity(req.GetEntity(), n.cfg.Limits.EntityBytesMax); err != nil {
		return nil, err
	}
	if req.GetMaxCount() > ReadCountMax {
		return nil, &InvalidArgumentError{Field: "max_count", Reason: fmt.Sprintf("must be 0 (default %d) to %d, got %d", ReadCountDefault, ReadCountMax, req.GetMaxCount())}
	}
	token, err := causal.ParseToken(req.GetSessionToken())
	if err != nil {
		return nil, &InvalidArgumentError{Field: "session_token", Reason: err.Error()}
	}
	if x := req.GetExtra(); x != nil {
		if err := n.checkExtra(ctx, req.GetEntity(), x); err != nil {
			return nil, err
		}
	}
	// STRONG reads are linearizable per entity, so only the home region's
	// leader serves them; every other level is served here (the stream is
	// replicated to every region), a SESSION read once this region covers
	// the token (readLocalOrForward).
	if req.GetConsistency() == meridianv1.Consistency_CONSISTENCY_STRONG {
		h, local, err := n.home(ctx, req.GetEntity())
		if err != nil {
			return nil, err
		}
		if h.ActiveActive {
			return nil, fmt.Errorf("%w: entity %q: every region writes it, so no read is linearizable; use CONSISTENCY_SESSION, CONSISTENCY_BOUNDED or CONSISTENCY_EVENTUAL",
				ErrActiveActive, req.GetEntity())
		}
		if !local {
			return n.readAtHome(ctx, req, h)
		}
	}
	switch req.GetConsistency() {
	case meridianv1.Consistency_CONSISTENCY_STRONG:
		var resp *meridianv1.ReadResponse
		err := n.routeToLeader(ctx, false,
			func() error {
				r, err := n.readStrong(ctx, req, token)
				resp = r
				return err
			},
			func(addr string) error {
				r, err := n.fwd.read(ctx, addr, req, routeOf(ctx), true)
				resp = r
				return err
			})
		return resp, err
	case meridianv1.Consistency_CONSISTENCY_EVENTUAL:
		return n.readLocalOrForward(ctx, req, token, nil)
	case meridianv1.Consistency_CONSISTENCY_BOUNDED:
		return n.readBounded(ctx, req, token)
	default:
		return n.readLocalOrForward(ctx, req, token, token)
	}
}

// waitCovers waits, at most ReadWaitMax, until the applied vector covers
// token; ErrDepsNotApplied (with what is missing) when it does not.
func (n *Node) waitCovers(ctx context.Context, token causal.Vector) error {
	covered := func() bool { return n.fsm.Covers(token) }
	if covered() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.ReadWaitMax)
	defer cancel()
	if err := n.waitApplied(wctx, covered); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: region %s after %s: %s", ErrDepsNotApplied, n.cfg.Region, n.cfg.ReadWaitMax,
			behind(n.fsm.ApplyState().GetApplied(), token))
	}
	return nil
}

// readAtHome forwards a read to the entity's home region h.
func (n *Node) readAtHome(ctx context.Context, req *meridianv1.ReadRequest, h Home) (*meridianv1.ReadResponse, error) {
	var resp *meridianv1.ReadResponse
	err := n.toHome(ctx, req.GetEntity(), h, func(ctx context.Context, addr string, rt route) error {
		r, err := n.fwd.read(ctx, addr, req, rt, false)
		resp = r
		return err
	})
	return resp, err
}

// readStrong is the leader's linearizable read (read index).
func (n *Node) readStrong(ctx context.Context, req *meridianv1.ReadRequest, token causal.Vector) (*meridianv1.ReadResponse, error) {
	// Every entry committed before this read started is in the leader's log
	// at or below LastIndex (leader completeness), even before this leader
	// learnt the commit index of its predecessor.
	idx := n.raft.LastIndex()
	verify := n.raft.VerifyLeader()
	watchShutdown(verify, n.closing)
	if err := verify.Error(); err != nil {
		return nil, fmt.Errorf("%w: verify leader: %v", ErrNotLeader, err)
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.LeaderWaitTimeout)
	defer cancel()
	if err := n.waitApplied(wctx, func() bool { return n.fsmCovers(idx) }); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: leader did not apply its read index %d within %s", ErrNotLeader, idx, n.cfg.LeaderWaitTimeout)
	}
	if own := n.cfg.Ownership; own != nil {
		// Without the lease this region may have lost the entity to a
		// failover, whose new home may already have written it; a lease
		// held means the copy knows every change that moved homes away
		// from this region without its freeze.
		if err := n.waitLease(ctx); err != nil {
			return nil, err
		}
		// The state now covers every freeze committed before this read
		// began. A placement copy older than the region's floor may still
		// take this region for the home of an entity that moved away (and
		// has been written since): let it catch up, then ask again. An
		// entity still moving waits for the flip (home), since the new home
		// may take writes from the flip on.
		if floor := n.fsm.ApplyState().GetPlacementFloor(); own.Index() < floor {
			own.WaitIndex(ctx, floor)
		}
		h, local, err := n.home(ctx, req.GetEntity())
		if err != nil {
			return nil, err
		}
		if !local {
			return n.readAtHome(ctx, req, h)
		}
	}
	return n.readFSM(req, token)
}

// readLocalOrForward serves a read from this node once its state covers the
// read floor and the session token (need; nil for EVENTUAL).
func (n *Node) readLocalOrForward(ctx context.Context, req *meridianv1.ReadRequest, token, need causal.Vector) (*meridianv1.ReadResponse, error) {
	ready := func() bool {
		if !n.fsmCovers(n.readFloor) {
			return false
		}
		if need == nil {
			return true
		}
		return n.fsm.Covers(need)
	}
	// Usually the state is ready: read at once, without setting up a wait.
	if ready() {
		return n.readFSM(req, token)
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.ReadWaitMax)
	err := n.waitApplied(wctx, ready)
	cancel()
	if err == nil {
		return n.readFSM(req, token)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if isForwarded(ctx) || n.isLeader() {
		// The region's leader does not cover the token either: the entity's
		// home region may (it holds every write to the entity), unless this
		// request already crossed regions.
		notCovered := fmt.Errorf("%w: region %s (node %s) does not cover the session token within %s: %s",
			ErrTimeout, n.cfg.Region, n.cfg.NodeID, n.cfg.ReadWaitMax, behind(n.fsm.ApplyState().GetApplied(), need))
		if n.cfg.Ownership != nil && routeOf(ctx).hops == 0 {
			if h, local, err := n.home(ctx, req.GetEntity()); err == nil && !local {
				resp, err := n.readAtHome(ctx, req, h)
				if err != nil && errors.Is(err, ErrNotLeader) {
					// Not served there either (unreachable, no leader).
					return nil, fmt.Errorf("%w; the home region %s did not serve it either: %v", notCovered, h.Region, err)
				}
				return resp, err
			}
		}
		return nil, notCovered
	}
	var resp *meridianv1.ReadResponse
	err = n.routeToLeader(ctx, false,
		func() error {
			r, err := n.readLocalOrForward(WithForwarded(ctx, n.cfg.NodeID), req, token, need)
			resp = r
			return err
		},
		func(addr string) error {
			r, err := n.fwd.read(ctx, addr, req, routeOf(ctx), true)
			resp = r
			return err
		})
	return resp, err
}

// readFSM reads from the local state machine and builds the response.
func (n *Node) readFSM(req *meridianv1.ReadRequest, token causal.Vector) (*meridianv1.ReadResponse, error) {
	if req.GetExtra() != nil {
		return n.readExtra(req, token)
	}
	backward := req.GetDirection() == meridianv1.Direction_DIRECTION_BACKWARD
	events, head, err := n.fsm.ReadStreamWithHead(req.GetEntity(), req.GetFromVersion(), int(req.GetMaxCount()), backward)
	if err != nil {
		return nil, err
	}
	v := token.Clone()
	for _, e := range events {
		if o := e.GetOrigin(); o != nil {
			v.AddDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()})
		}
	}
	// The response also reports head_version, so the token must cover the
	// head event too: otherwise a later read of this session on a node that
	// is behind could report an older head (a monotonic-reads violation found
	// by tests/cluster TestNemesis, tests/README.md #2). Only the head's own
	// dot is added, not this node's whole vector, so the token stays precise;
	// it comes from the same snapshot as the events.
	if o := head.GetLastOrigin(); o != nil {
		v.AddDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()})
	}
	return &meridianv1.ReadResponse{
		Events:         events,
		HeadVersion:    head.GetVersion(),
		SessionToken:   causal.FormatToken(v),
		Region:         n.cfg.Region,
		Node:           n.cfg.NodeID,
		TruncateBefore: head.GetTruncateBefore(),
		Tombstone:      head.GetTombstone(),
		Metadata:       head.GetMetadata(),
	}, nil
}

// fsmCovers reports whether the state machine has applied every command
// entry up to idx. Raft hands only command entries to the FSM, so the FSM's
// applied index stops at the last command; the entries after it that are
// not commands (no-op, configuration, barrier) change no state. They are
// checked in the local log: usually none or one (a new leader's no-op or
// barrier).
func (n *Node) fsmCovers(idx uint64) bool {
	fa := n.fsm.AppliedIndex()
	if fa >= idx {
		return true
	}
	var l raft.Log
	for i := fa + 1; i <= idx; i++ {
		if err := n.parts.logCache.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// waitApplied waits until ready() or ctx ends, waking on every apply and
// polling for log changes that do not reach the FSM.
func (n *Node) waitApplied(ctx context.Context, ready func() bool) error {
	t := time.NewTicker(appliedPollInterval)
	defer t.Stop()
	for {
		ch := n.fsm.Changed()
		if ready() {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closing:
			return ErrNodeClosed
		}
	}
}

// Subscribe streams one entity (positions are versions) or the whole region
// apply log (positions are region positions) from req's position: catch-up
// in pages of SubscribePageMax, then live (woken by every apply), with a
// Checkpoint once caught up and every checkpoint interval. send blocks on a
// slow subscriber; at most one page is held meanwhile. It returns when ctx
// ends, send fails or the node closes.
func (n *Node) Subscribe(ctx context.Context, req *meridianv1.SubscribeRequest, send func(*meridianv1.SubscribeResponse) error) error {
	interval := n.cfg.CheckpointInterval
	if d := req.GetCheckpointInterval(); d != nil {
		interval = d.AsDuration()
		if interval < checkpointIntervalMin || interval > checkpointIntervalMax {
			return &InvalidArgumentError{Field: "checkpoint_interval", Reason: fmt.Sprintf("must be %s to %s, got %s", checkpointIntervalMin, checkpointIntervalMax, interval)}
		}
	}
	filter, err := CompileFilter(req.GetFilter(), n.cfg.Limits)
	if err != nil {
		return err
	}
	switch t := req.GetTarget().(type) {
	case *meridianv1.SubscribeRequest_Entity:
		entity := t.Entity
		if err := ValidateEntity(entity, n.cfg.Limits.EntityBytesMax); err != nil {
			return err
		}
		if len(filter.Prefixes()) > 0 {
			return &InvalidArgumentError{Field: "filter.entity_prefixes", Reason: "apply to all=true; an entity subscription names its stream"}
		}
		return n.subscribeEntity(ctx, entity, req, filter, interval, send)
	case *meridianv1.SubscribeRequest_All:
		if !t.All {
			return &InvalidArgumentError{Field: "target", Reason: "must be an entity or all=true"}
		}
	default:
		return &InvalidArgumentError{Field: "target", Reason: "must be an entity or all=true"}
	}
	pos := max(req.GetFromPosition(), 1)
	if req.GetFromEnd() {
		pos = n.fsm.ApplyState().GetLastPosition() + 1
	}
	seen := causal.Vector{}
	checkpoint := func(caughtUp bool) error {
		return send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Checkpoint{
			Checkpoint: &meridianv1.Checkpoint{NextPosition: pos, CaughtUp: caughtUp, SessionToken: causal.FormatToken(seen)},
		}})
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	caughtUp := false
	for {
		changed := n.fsm.Changed()
		page, err := n.fsm.ScanLog(LogScan{From: pos, Max: n.cfg.SubscribePageMax, ScanMax: subscribeScanPages * n.cfg.SubscribePageMax, Filter: filter})
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if err := send(&meridianv1.SubscribeResponse{Message: &meridianv1.SubscribeResponse_Event{Event: e}}); err != nil {
				return err
			}
			pos = e.GetPosition() + 1
			if o := e.GetOrigin(); o != nil {
				seen.AddDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()})
			}
		}
		skipped := page.Next > pos
		pos = max(pos, page.Next)
		if err := ctx.Err(); err != nil {
			return err
		}
		if !page.End {
			// Still catching up. A page the filter emptied still moves the
			// checkpoint, so a sparse filter resumes past what it skipped.
			if len(page.Events) == 0 && skipped {
				if err := checkpoint(false); err != nil {
					return err
				}
			}
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := checkpoint(true); err != nil {
				return err
			}
			ticker.Reset(interval)
		}
		select {
		case <-changed:
		case <-ticker.C:
			if err := checkpoint(true); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closing:
			return ErrNodeClosed
		}
	}
}

// Status describes this node: region, id, leader, applied state, Raft state.
func (n *Node) Status() *meridianv1.StatusResponse {
	st := n.fsm.ApplyState()
	leaderID, leaderAddr, _ := n.leader()
	resp := &meridianv1.StatusResponse{
		Region:            n.cfg.Region,
		Node:              n.cfg.NodeID,
		Leader:            leaderID,
		LeaderAddress:     leaderAddr,
		IsLeader:          n.isLeader(),
		AppliedIndex:      st.GetAppliedIndex(),
		Applied:           st.GetApplied(),
		LastPosition:      st.GetLastPosition(),
		RaftState:         n.raft.State().String(),
		Replication:       n.replicationLag(),
		Superseded:        st.GetSuperseded(),
		Version:           buildVersion(),
		ReclaimedEvents:   st.GetReclaimedEvents(),
		ReclaimedBytes:    st.GetReclaimedBytes(),
		ReplicationStalls: n.replicationStalls(),
	}
	resp.RaftLastIndex, resp.RaftTerm, resp.RaftLastContact = n.raftProgress()
	if n.cfg.Ownership != nil && n.isLeader() {
		remaining, why := n.leaseRemaining()
		if why != "" {
			resp.LeaseFenced = why
		} else {
			resp.LeaseRemaining = durationpb.New(remaining)
		}
	}
	return resp
}

// raftProgress returns the last index of the local Raft log, the current
// term and how long ago the node last heard from its leader (zero on the
// leader, nil if never). All three are atomic reads: Status is polled (by
// MULTI_REGION waits every few milliseconds, by health checks), and
// raft.Stats, which also has the last entry's term, goes through Raft's
// main loop for the configuration and formats a dozen strings.
func (n *Node) raftProgress() (index, term uint64, contact *durationpb.Duration) {
	index, term = n.raft.LastIndex(), n.raft.CurrentTerm()
	switch {
	case n.isLeader():
		contact = durationpb.New(0)
	case !n.raft.LastContact().IsZero():
		contact = durationpb.New(max(0, time.Since(n.raft.LastContact())))
	}
	return index, term, contact
}
