package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"google.golang.org/protobuf/proto"
)

// Proposal states: a proposal is taken into a batch (dispatched) or given
// up by its caller (abandoned) exactly once, decided by compare-and-swap.
const (
	proposalQueued int32 = iota
	proposalDispatched
	proposalAbandoned
)

// proposal is one append waiting for group commit.
type proposal struct {
	op    *meridianv1.AppendOp
	size  int
	state atomic.Int32
	done  chan proposalResult // buffered 1: the batcher never blocks on it
}

type proposalResult struct {
	resp *meridianv1.AppendResponse
	err  error
}

// batcher is the leader's group commit: concurrent appends are collected into
// one AppendBatch per Raft entry. The pipeline is bounded at both ends: at
// most QueueOpsMax proposals wait (more are refused with ErrOverloaded) and
// at most InflightBatchesMax batches are in Raft at once; while they are, new
// proposals accumulate into the next, bigger batch. On a follower the Raft
// Apply fails with ErrNotLeader before anything is enqueued.
type batcher struct {
	raft              *raft.Raft
	hlc               *causal.HLC
	logger            *slog.Logger
	opsMax, bytesMax  int
	enqueueTimeout    time.Duration
	idempotencyWindow time.Duration

	queue chan *proposal
	slots chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
	// carry is a proposal drained from the queue that did not fit the last
	// batch; only the run goroutine touches it.
	carry *proposal

	// batches and ops count proposed entries and appends (tests, metrics).
	batches, ops atomic.Uint64
}

func newBatcher(cfg Config, r *raft.Raft, hlc *causal.HLC, logger *slog.Logger) *batcher {
	b := &batcher{
		raft: r, hlc: hlc, logger: logger,
		opsMax: cfg.BatchOpsMax, bytesMax: cfg.BatchBytesMax,
		enqueueTimeout:    cfg.ApplyEnqueueTimeout,
		idempotencyWindow: cfg.IdempotencyWindow,
		queue:             make(chan *proposal, cfg.QueueOpsMax),
		slots:             make(chan struct{}, cfg.InflightBatchesMax),
		stop:              make(chan struct{}),
	}
	b.wg.Add(1)
	go b.run()
	return b
}

// submit proposes op (already validated) and waits for its result. Errors:
// ErrOverloaded (queue full, not proposed), ErrNotLeader (provably not
// proposed), ErrOutcomeUnknown (proposed; may or may not commit), the
// context's error when ctx ended before the op was proposed, or the state
// machine's per-op error (version conflict, idempotency conflict, ...).
func (b *batcher) submit(ctx context.Context, op *meridianv1.AppendOp) (*meridianv1.AppendResponse, error) {
	p := &proposal{op: op, size: proto.Size(op), done: make(chan proposalResult, 1)}
	if p.size > b.bytesMax {
		return nil, &InvalidArgumentError{Field: "events", Reason: fmt.Sprintf("append must encode to at most %d bytes, got %d", b.bytesMax, p.size)}
	}
	select {
	case <-b.stop:
		return nil, ErrNodeClosed
	default:
	}
	select {
	case b.queue <- p:
	default:
		return nil, fmt.Errorf("%w: %d appends already queued", ErrOverloaded, cap(b.queue))
	}
	select {
	case r := <-p.done:
		return r.resp, r.err
	case <-ctx.Done():
		if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// close stops the batcher; queued proposals fail with ErrNotLeader (never
// proposed), proposals in Raft get their outcome from Raft's shutdown.
func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
}

func (b *batcher) run() {
	defer b.wg.Done()
	defer b.failQueued()
	for {
		// Take an in-flight slot first: while none is free, proposals pile
		// up in the queue and the next batch grows.
		select {
		case b.slots <- struct{}{}:
		case <-b.stop:
			return
		}
		batch := b.collect()
		if batch == nil {
			return
		}
		b.propose(batch)
	}
}

// collect blocks for the first proposal, then drains what is queued up to
// the batch bounds. It returns nil when the batcher stops.
func (b *batcher) collect() []*proposal {
	var batch []*proposal
	bytes := 0
	take := func(p *proposal) bool {
		if len(batch) > 0 && (len(batch) >= b.opsMax || bytes+p.size > b.bytesMax) {
			b.carry = p
			return false
		}
		if p.state.CompareAndSwap(proposalQueued, proposalDispatched) {
			batch = append(batch, p)
			bytes += p.size
		}
		return true
	}
	for len(batch) == 0 {
		if p := b.carry; p != nil {
			b.carry = nil
			take(p)
			continue
		}
		select {
		case p := <-b.queue:
			take(p)
		case <-b.stop:
			return nil
		}
	}
	for b.carry == nil {
		select {
		case p := <-b.queue:
			if !take(p) {
				return batch
			}
		default:
			return batch
		}
	}
	return batch
}

func (b *batcher) propose(batch []*proposal) {
	events := 0
	cmd := &meridianv1.AppendBatch{
		Ops:                      make([]*meridianv1.AppendOp, len(batch)),
		IdempotencyWindowSeconds: uint64(b.idempotencyWindow / time.Second),
	}
	for i, p := range batch {
		cmd.Ops[i] = p.op
		events += len(p.op.Events)
	}
	ts := b.hlc.Now()
	// Event i of the batch gets ts + i logical ticks at apply: reserve them
	// so the next batch's stamp is above every event of this one.
	_, _ = b.hlc.Update(causal.Timestamp{WallNanos: ts.WallNanos, Logical: ts.Logical + uint32(events)})
	cmd.Hlc = &meridianv1.Hlc{WallNanos: ts.WallNanos, Logical: ts.Logical}
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, cmd)
	if err != nil {
		<-b.slots
		b.respondAll(batch, proposalResult{err: fmt.Errorf("region: encode batch: %w", err)})
		return
	}
	f := b.raft.Apply(data, b.enqueueTimeout)
	watchShutdown(f, b.stop)
	b.batches.Add(1)
	b.ops.Add(uint64(len(batch)))
	b.wg.Add(1)
	go b.await(f, batch)
}

// watchShutdown makes f.Error() return raft.ErrRaftShutdown once stop is
// closed. hashicorp/raft v1.8.0 gives Apply, Barrier and VerifyLeader futures
// no shutdown channel, so a future still in Raft's queues when Raft shuts down is never answered
// and its waiter would block forever (seen as a hung Close). The future's
// exported ShutdownCh field (promoted from raft's deferError) is set through
// reflection before anyone waits on it; if raft changes shape, nothing is set.
func watchShutdown(f raft.Future, stop chan struct{}) bool {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return false
	}
	fv := v.Elem().FieldByName("ShutdownCh")
	if !fv.IsValid() || !fv.CanSet() || fv.Type() != reflect.TypeOf(stop) {
		return false
	}
	fv.Set(reflect.ValueOf(stop))
	return true
}

// await waits for one batch's Raft outcome and fans it out per op.
func (b *batcher) await(f raft.ApplyFuture, batch []*proposal) {
	defer b.wg.Done()
	defer func() { <-b.slots }()
	if err := f.Error(); err != nil {
		b.respondAll(batch, proposalResult{err: applyError(err)})
		return
	}
	switch r := f.Response().(type) {
	case *BatchResult:
		if len(r.Ops) != len(batch) {
			panic(fmt.Sprintf("region: state machine returned %d results for a batch of %d ops", len(r.Ops), len(batch)))
		}
		for i, p := range batch {
			p.done <- proposalResult{resp: r.Ops[i].Resp, err: r.Ops[i].Err}
		}
	case error:
		// The entry is committed (the future succeeded), so it will be applied
		// here after a restart and on every other replica: whatever stopped
		// this state machine (ErrStoreClosed at shutdown), the client must
		// not read it as "not applied".
		b.respondAll(batch, proposalResult{err: fmt.Errorf("%w: committed at index %d but not applied by this node: %v", ErrOutcomeUnknown, f.Index(), r)})
	default:
		// The entry was skipped as already applied, which cannot happen to a
		// fresh entry on its leader; do not claim anything.
		b.logger.Error("unexpected apply response", "type", fmt.Sprintf("%T", r), "index", f.Index())
		b.respondAll(batch, proposalResult{err: fmt.Errorf("%w: unexpected apply response %T", ErrOutcomeUnknown, r)})
	}
}

func (b *batcher) respondAll(batch []*proposal, r proposalResult) {
	for _, p := range batch {
		p.done <- r
	}
}

// failQueued answers every proposal still queued: none was proposed.
func (b *batcher) failQueued() {
	fail := func(p *proposal) {
		if p.state.CompareAndSwap(proposalQueued, proposalDispatched) {
			p.done <- proposalResult{err: fmt.Errorf("%w: node closing", ErrNotLeader)}
		}
	}
	if b.carry != nil {
		fail(b.carry)
		b.carry = nil
	}
	for {
		select {
		case p := <-b.queue:
			fail(p)
		default:
			return
		}
	}
}

// applyError classifies a failed Raft Apply. Only errors raised before the
// entry entered the leader's log are "not proposed": raft.ErrNotLeader (the
// node was a follower or stepping down when the Raft loop took the entry)
// and raft.ErrEnqueueTimeout (the entry never reached the Raft loop).
// Everything else, raft.ErrLeadershipLost and raft.ErrRaftShutdown above
// all, may have been appended and may still commit under a new leader.
func applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrOverloaded, err)
	default:
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
}
