package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/h2c"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/region"
)

// Limits of waiting for other regions (DURABILITY_MULTI_REGION).
const (
	// replicasPollInterval is how often a waiting append asks the other
	// regions how far they have applied.
	replicasPollInterval = 5 * time.Millisecond
	// replicasCallTimeout bounds one Status call to another region.
	replicasCallTimeout = 2 * time.Second
)

// replicas answers region's DURABILITY_MULTI_REGION questions by asking
// the other regions' nodes (EventStore.Status: their applied vector).
type replicas struct {
	self  string
	p     *placement.Node
	stubs *h2c.Stubs[meridianv1connect.EventStoreClient]
}

var _ region.Replicas = (*replicas)(nil)

func newReplicas(self string, p *placement.Node, network region.Network, opts []connect.ClientOption) *replicas {
	httpClient := h2c.NewClient(network.Dial, h2c.Options{})
	return &replicas{self: self, p: p, stubs: h2c.NewStubs(func(url string) meridianv1connect.EventStoreClient {
		return meridianv1connect.NewEventStoreClient(httpClient, url, opts...)
	})}
}

func (r *replicas) Others() int {
	n := 0
	for _, name := range r.p.FSM().Regions() {
		if name != r.self {
			n++
		}
	}
	return n
}

// holds asks a node of regionName whether it holds w's events: whether it
// has applied their dots (EventStore.Status) and, unless the entity is
// active-active, keeps them at w's versions (an EVENTUAL read there). The
// applied vector alone is not enough: a region that learned of a failover
// of w's origin supersedes that origin's events beyond the failover's cut
// on arrival, and its applied vector advances past them all the same, while
// the new home appends them again at other versions (TestChaosPlacement
// caught such an acknowledgement). Both calls go to the same node.
func (r *replicas) holds(ctx context.Context, regionName string, w region.Written) (bool, error) {
	last := w.LastSeq()
	var errs []error
	for _, addr := range r.p.Endpoints(regionName) {
		stub := r.stubs.For(addr)
		cctx, cancel := context.WithTimeout(ctx, replicasCallTimeout)
		st, err := stub.Status(cctx, connect.NewRequest(&meridianv1.StatusRequest{}))
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Msg.GetApplied()[w.Origin] < last {
			return false, nil
		}
		if w.ActiveActive {
			return true, nil
		}
		cctx, cancel = context.WithTimeout(ctx, replicasCallTimeout)
		rd, err := stub.Read(cctx, connect.NewRequest(&meridianv1.ReadRequest{
			Entity: w.Entity, FromVersion: w.First, MaxCount: uint32(w.Len()),
			Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL,
		}))
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return w.Holds(rd.Msg.GetEvents()), nil
	}
	return false, errors.Join(errs...)
}

// WaitApplied polls every other region until k of them hold w's events.
func (r *replicas) WaitApplied(ctx context.Context, w region.Written, k int) error {
	done := map[string]bool{}
	t := time.NewTicker(replicasPollInterval)
	defer t.Stop()
	for {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, name := range r.p.FSM().Regions() {
			if name == r.self || done[name] {
				continue
			}
			wg.Go(func() {
				if ok, err := r.holds(ctx, name, w); err == nil && ok {
					mu.Lock()
					done[name] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(done) >= k {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d regions hold %s v%d-%d (%s:%d on): %w", len(done), k, w.Entity, w.First, w.Last, w.Origin, w.Seq, ctx.Err())
		case <-t.C:
		}
	}
}
