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

// applied asks one node of region for its applied entry of origin.
func (r *replicas) applied(ctx context.Context, regionName, origin string) (uint64, error) {
	var errs []error
	for _, addr := range r.p.Endpoints(regionName) {
		cctx, cancel := context.WithTimeout(ctx, replicasCallTimeout)
		resp, err := r.stubs.For(addr).Status(cctx, connect.NewRequest(&meridianv1.StatusRequest{}))
		cancel()
		if err == nil {
			return resp.Msg.GetApplied()[origin], nil
		}
		errs = append(errs, err)
	}
	return 0, errors.Join(errs...)
}

// WaitApplied polls every other region until k of them have applied
// origin up to seq.
func (r *replicas) WaitApplied(ctx context.Context, origin string, seq uint64, k int) error {
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
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a, err := r.applied(ctx, name, origin); err == nil && a >= seq {
					mu.Lock()
					done[name] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(done) >= k {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d regions applied %s:%d: %w", len(done), k, origin, seq, ctx.Err())
		case <-t.C:
		}
	}
}
