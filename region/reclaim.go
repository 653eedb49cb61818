package region

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Space reclaim (issue 17). Each region reclaims its own copy: its leader
// proposes a Reclaim for a stream whose lifecycle hides versions not
// reclaimed yet, and apply turns those events into stubs (Event.reclaimed:
// data, metadata and content type dropped, every other field kept).
// A stub keeps the event's place in the region log and in the origin log
// that other regions pull from, so a region that had not pulled the
// event yet gets the stub, in order, and replication stays gap-free and
// exactly once. Reads of the stream never return stubs (they are hidden
// anyway); lifecycle events are never stubbed (a failover rollback folds
// them again). Badger frees the dropped bytes when it compacts.

// reclaimBatchMax bounds the events one Reclaim turns into stubs.
const reclaimBatchMax = 1000

// ReclaimResult is what Apply returns for a COMMAND_TYPE_RECLAIM entry.
type ReclaimResult struct {
	// Events turned into stubs and the bytes they dropped; Below is the
	// stream's reclaimed_below after the command.
	Events int
	Bytes  uint64
	Below  uint64
	Err    error
}

func eventPayloadBytes(ev *meridianv1.Event) uint64 {
	n := len(ev.GetData()) + len(ev.GetContentType())
	for k, v := range ev.GetMetadata() {
		n += len(k) + len(v)
	}
	return uint64(n)
}

func (a applier) applyReclaim(w *txnWriter, st *meridianv1.ApplyState, r *meridianv1.Reclaim) *ReclaimResult {
	entity := r.GetEntity()
	if err := ValidateEntity(entity, HardLimits().EntityBytesMax); err != nil {
		return &ReclaimResult{Err: err}
	}
	head := w.head(entity)
	if head.GetVersion() == 0 || head.GetMerged() {
		return &ReclaimResult{Below: head.GetReclaimedBelow()}
	}
	// Never beyond what the lifecycle hides at the command's time: the
	// command says when, so every replica decides alike.
	floor, err := firstVisible(w.txn, entity, head, time.Unix(0, r.GetUnixNanos()))
	if err != nil {
		return &ReclaimResult{Err: err}
	}
	from := max(head.GetReclaimedBelow(), 1)
	below := min(r.GetBelow(), floor, from+reclaimBatchMax, head.GetVersion()+1)
	if below <= from {
		return &ReclaimResult{Below: head.GetReclaimedBelow()}
	}
	res := &ReclaimResult{Below: below}
	var writes []kv
	for v := from; v < below; v++ {
		ev := &meridianv1.Event{}
		if !getProto(w.txn, eventKey(entity, v), ev) {
			panic(fmt.Errorf("region: apply: %w: stream %q: version %d below head %d is missing", ErrCorruptState, entity, v, head.GetVersion()))
		}
		if ev.GetReclaimed() || lifecycleType(ev.GetType()) {
			continue
		}
		res.Bytes += eventPayloadBytes(ev)
		res.Events++
		ev.Data, ev.Metadata, ev.ContentType, ev.Reclaimed = nil, nil, "", true
		writes = append(writes, kv{key: eventKey(entity, v), value: mustMarshal(ev)})
	}
	next := proto.CloneOf(head)
	next.ReclaimedBelow = below
	writes = append(writes, kv{key: headKey(entity), value: mustMarshal(next)})
	if err := w.stage(st, writes, nil); err != nil {
		return &ReclaimResult{Err: err}
	}
	st.ReclaimedEvents += uint64(res.Events)
	st.ReclaimedBytes += res.Bytes
	return res
}

// ReclaimCandidates lists, for up to limit streams with lifecycle events,
// a Reclaim up to what their lifecycle hides at now, when that is beyond
// what was reclaimed.
func (f *FSM) ReclaimCandidates(now time.Time, limit int) ([]*meridianv1.Reclaim, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLifecycle)})
	defer it.Close()
	var out []*meridianv1.Reclaim
	var last []byte
	for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
		k, err := ParseKey(it.Item().Key())
		if err != nil {
			return nil, err
		}
		if bytes.Equal(last, []byte(k.Name)) {
			continue
		}
		last = []byte(k.Name)
		head := &meridianv1.StreamHead{}
		if _, err := readProto(txn, headKey(k.Name), head); err != nil {
			return nil, err
		}
		if head.GetMerged() {
			continue
		}
		floor, err := firstVisible(txn, k.Name, head, now)
		if err != nil {
			return nil, err
		}
		if floor > max(head.GetReclaimedBelow(), 1) {
			out = append(out, &meridianv1.Reclaim{Entity: k.Name, Below: floor, UnixNanos: now.UnixNano()})
		}
	}
	return out, nil
}

// reclaimPerTickMax bounds the Reclaim commands one pass proposes.
const reclaimPerTickMax = 64

// runReclaim proposes, on the region leader every ReclaimInterval, the
// Reclaims of streams whose lifecycle hides more than they reclaimed.
func (n *Node) runReclaim() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		if !n.isLeader() {
			continue
		}
		if err := n.reclaimPass(); err != nil {
			n.logger.Debug("reclaim pass", "err", err)
		}
	}
}

// reclaimPass proposes one round of Reclaims.
func (n *Node) reclaimPass() error {
	cands, err := n.fsm.ReclaimCandidates(time.Unix(0, n.hlc.Now().WallNanos), reclaimPerTickMax)
	if err != nil {
		return err
	}
	for _, r := range cands {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyEnqueueTimeout)
		res, err := applyOnLeader[*ReclaimResult](ctx, n, meridianv1.CommandType_COMMAND_TYPE_RECLAIM, r)
		cancel()
		if err == nil {
			err = res.Err
		}
		if err != nil {
			if !n.isLeader() {
				return err
			}
			n.logger.Warn("reclaim failed; the next pass tries again", "entity", r.GetEntity(), "below", r.GetBelow(), "err", err)
			continue
		}
		if res.Events > 0 {
			n.logger.Debug("reclaimed", "entity", r.GetEntity(), "events", res.Events, "bytes", res.Bytes, "below", res.Below)
		}
	}
	return nil
}
