package region

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/internal/signal"
	"github.com/meridiandb/meridian/tests/faultnet"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeOwnership is a hand-set placement table, for routing tests of the
// layer above placement.
type fakeOwnership struct {
	mu         sync.Mutex
	homes      map[string]Home // by entity prefix (first matching key wins; keys are disjoint in tests)
	endpoints  map[string][]string
	minEpochs  []uint64 // every non-zero minEpoch asked for
	index      uint64
	transition *Transition
	failovers  map[string][]*meridianv1.FailoverTail // by lost region
	acks       []TransitionAck
	leaseErr   error // RenewLease fails with it when set
	renewals   int
	required   uint64 // the grant's Required
	changed    signal.Signal
}

func newFakeOwnership() *fakeOwnership {
	return &fakeOwnership{homes: map[string]Home{}, endpoints: map[string][]string{}}
}

func (f *fakeOwnership) Index() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index
}

func (f *fakeOwnership) WaitIndex(ctx context.Context, idx uint64) bool {
	for {
		ch := f.changed.C()
		if f.Index() >= idx {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (f *fakeOwnership) Changed() <-chan struct{} { return f.changed.C() }

func (f *fakeOwnership) Transition() (Transition, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.transition == nil {
		return Transition{}, false
	}
	tr := *f.transition
	tr.Moves = append([]TransitionMove(nil), tr.Moves...)
	return tr, true
}

func (f *fakeOwnership) Failovers(region string) []*meridianv1.FailoverTail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failovers[region]
}

// completeFailover ends the transition in progress as a completed failover
// of lost described by ft.
func (f *fakeOwnership) completeFailover(lost string, ft *meridianv1.FailoverTail) {
	f.mu.Lock()
	f.transition = nil
	if f.failovers == nil {
		f.failovers = map[string][]*meridianv1.FailoverTail{}
	}
	f.failovers[lost] = append(f.failovers[lost], ft)
	f.mu.Unlock()
	f.changed.Notify()
}

func (f *fakeOwnership) AckTransition(_ context.Context, ack TransitionAck) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks = append(f.acks, ack)
	return nil
}

func (f *fakeOwnership) RenewLease(context.Context, LeaseRenewal) (LeaseGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaseErr != nil {
		return LeaseGrant{}, f.leaseErr
	}
	f.renewals++
	return LeaseGrant{Index: f.index, Required: f.required, LeaderTime: time.Now()}, nil
}

func (f *fakeOwnership) Applied() map[string]map[string]uint64 { return nil }

func (f *fakeOwnership) LeaseInfo(string) string { return "" }

// Regions are the regions of the homes set, and of the endpoints.
func (f *fakeOwnership) Regions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	set := map[string]bool{}
	for _, h := range f.homes {
		if h.Region != "" {
			set[h.Region] = true
		}
	}
	for r := range f.endpoints {
		set[r] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func (f *fakeOwnership) setRequired(idx uint64) {
	f.mu.Lock()
	f.required = idx
	f.mu.Unlock()
}

func (f *fakeOwnership) setLeaseErr(err error) {
	f.mu.Lock()
	f.leaseErr = err
	f.mu.Unlock()
}

func (f *fakeOwnership) setTransition(tr *Transition) {
	f.mu.Lock()
	f.transition = tr
	f.mu.Unlock()
	f.changed.Notify()
}

func (f *fakeOwnership) setIndex(idx uint64) {
	f.mu.Lock()
	f.index = idx
	f.mu.Unlock()
	f.changed.Notify()
}

func (f *fakeOwnership) reported() []TransitionAck {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TransitionAck(nil), f.acks...)
}

func (f *fakeOwnership) Home(_ context.Context, entity string, minEpoch uint64) (Home, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if minEpoch != 0 {
		f.minEpochs = append(f.minEpochs, minEpoch)
	}
	for p, h := range f.homes {
		if strings.HasPrefix(entity, p) {
			h.Index = f.index
			return h, nil
		}
	}
	return Home{Index: f.index}, nil
}

func (f *fakeOwnership) Endpoints(region string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.endpoints[region]...)
}

func (f *fakeOwnership) set(prefix string, h Home) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.homes[prefix] = h
}

func (f *fakeOwnership) setEndpoints(region string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endpoints[region] = addrs
}

func (f *fakeOwnership) askedMinEpochs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.minEpochs...)
}

// twoRegions starts regions r1 and r2 of one node each, each with its own
// fake placement table, both knowing both regions' endpoints.
func twoRegions(t *testing.T) (r1, r2 *raftRegion, o1, o2 *fakeOwnership) {
	o1, o2 = newFakeOwnership(), newFakeOwnership()
	fn := faultnet.New(1)
	t.Cleanup(func() { _ = fn.Close() })
	r1 = newTestRegionOn(t, fn, "r1-", 1, func(c *Config) { c.Region = "r1"; c.Ownership = o1 })
	r2 = newTestRegionOn(t, fn, "r2-", 1, func(c *Config) { c.Region = "r2"; c.Ownership = o2 })
	for _, o := range []*fakeOwnership{o1, o2} {
		o.setEndpoints("r1", r1.peers[0].APIAddr)
		o.setEndpoints("r2", r2.peers[0].APIAddr)
	}
	r1.waitLeader()
	r2.waitLeader()
	return r1, r2, o1, o2
}

func TestAppendAndReadRouteToHomeRegion(t *testing.T) {
	r1, r2, o1, o2 := twoRegions(t)
	o1.set("b/", Home{Region: "r2", Epoch: 7})
	o2.set("b/", Home{Region: "r2", Epoch: 7})
	o1.set("a/", Home{Region: "r1", Epoch: 3})
	o2.set("a/", Home{Region: "r1", Epoch: 3})
	ctx := testContext(t, 20*time.Second)

	resp, err := r1.client(0).Append(ctx, connect.NewRequest(appendRequest("b/1", newTestEvent())))
	require.NoError(t, err)
	assert.Equal(t, "r2", resp.Msg.GetRegion(), "the home region orders the write")
	assert.Equal(t, uint64(7), resp.Msg.GetEpoch(), "stamped with the home's epoch")
	assert.Equal(t, "r2", resp.Msg.GetOrigin().GetRegion())

	// A second write through the home itself continues the stream.
	resp, err = r2.client(0).Append(ctx, connect.NewRequest(appendRequest("b/1", newTestEvent())))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), resp.Msg.GetLastVersion())

	assert.Len(t, readStreamAll(t, r2.node(0), "b/1"), 2, "stored at the home")
	assert.Empty(t, readStreamAll(t, r1.node(0), "b/1"), "not stored where it was sent")
	assert.Contains(t, o2.askedMinEpochs(), uint64(7), "the hop carries the epoch it was routed by")

	// Nothing replicates between these two regions, so r1 never covers the
	// writer's token: a SESSION read with it falls back to the home; a
	// STRONG read always goes there; an EVENTUAL read is served by r1 as it
	// is (empty).
	for _, c := range []struct {
		name  string
		level meridianv1.Consistency
		token string
	}{
		{"session with the writer's token", meridianv1.Consistency_CONSISTENCY_SESSION, resp.Msg.GetSessionToken()},
		{"strong", meridianv1.Consistency_CONSISTENCY_STRONG, ""},
	} {
		read, err := r1.client(0).Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "b/1", Consistency: c.level, SessionToken: c.token}))
		require.NoError(t, err, c.name)
		assert.Len(t, read.Msg.GetEvents(), 2, c.name)
		assert.Equal(t, "r2", read.Msg.GetRegion(), c.name)
		for _, e := range read.Msg.GetEvents() {
			assert.Equal(t, uint64(7), e.GetEpoch())
		}
	}
	read, err := r1.client(0).Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "b/1", Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL}))
	require.NoError(t, err)
	assert.Empty(t, read.Msg.GetEvents())
	assert.Equal(t, "r1", read.Msg.GetRegion())

	// An entity homed in r1 stays in r1.
	resp, err = r1.client(0).Append(ctx, connect.NewRequest(appendRequest("a/1", newTestEvent())))
	require.NoError(t, err)
	assert.Equal(t, "r1", resp.Msg.GetRegion())
	assert.Empty(t, readStreamAll(t, r2.node(0), "a/1"))
}

func TestAppendRedirectNamesTheHome(t *testing.T) {
	r1, r2, o1, _ := twoRegions(t)
	o1.set("b/", Home{Region: "r2", Epoch: 9})
	ctx := testContext(t, 20*time.Second)

	req := appendRequest("b/1", newTestEvent())
	req.Routing = meridianv1.Routing_ROUTING_REDIRECT
	_, err := r1.client(0).Append(ctx, connect.NewRequest(req))
	require.Error(t, err)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
	assert.Equal(t, connect.CodeFailedPrecondition, ce.Code())
	assert.Equal(t, kindNotHome, ce.Meta().Get(errorKindHeader))
	assert.Contains(t, ce.Message(), `homed in region "r2"`)
	var redirect *meridianv1.HomeRedirect
	for _, d := range ce.Details() {
		if m, err := d.Value(); err == nil {
			if r, ok := m.(*meridianv1.HomeRedirect); ok {
				redirect = r
			}
		}
	}
	require.NotNil(t, redirect, "the error carries a HomeRedirect detail")
	assert.Equal(t, "r2", redirect.GetHomeRegion())
	assert.Equal(t, uint64(9), redirect.GetEpoch())
	assert.Equal(t, []string{r2.peers[0].APIAddr}, redirect.GetEndpoints())
	assert.Empty(t, readStreamAll(t, r1.node(0), "b/1"))
	assert.Empty(t, readStreamAll(t, r2.node(0), "b/1"))
}

func TestSubscribeToEntityHomedElsewhereIsServedLocally(t *testing.T) {
	r1, _, o1, _ := twoRegions(t)
	o1.set("b/", Home{Region: "r2", Epoch: 2})
	ctx, cancel := context.WithCancel(testContext(t, 10*time.Second))
	defer cancel()
	var got []*meridianv1.SubscribeResponse
	err := r1.node(0).Subscribe(ctx,
		&meridianv1.SubscribeRequest{Target: &meridianv1.SubscribeRequest_Entity{Entity: "b/1"}},
		func(m *meridianv1.SubscribeResponse) error {
			got = append(got, m)
			cancel() // the first message is the caught-up checkpoint
			return nil
		})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, got, 1)
	assert.True(t, got[0].GetCheckpoint().GetCaughtUp(), "served from this region's replica, not redirected")
}

func TestRoutingBetweenDisagreeingRegionsIsBounded(t *testing.T) {
	r1, r2, o1, o2 := twoRegions(t)
	// Each region's copy says the other is the home: a request bounces.
	o1.set("b/", Home{Region: "r2", Epoch: 4})
	o2.set("b/", Home{Region: "r1", Epoch: 4})
	ctx := testContext(t, 20*time.Second)

	_, err := r1.client(0).Append(ctx, connect.NewRequest(appendRequest("b/1", newTestEvent())))
	require.Error(t, err)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
	assert.Equal(t, connect.CodeUnavailable, ce.Code())
	assert.Equal(t, kindRoutingLoop, ce.Meta().Get(errorKindHeader))
	assert.Contains(t, ce.Message(), "3 hops")
	assert.Empty(t, readStreamAll(t, r1.node(0), "b/1"))
	assert.Empty(t, readStreamAll(t, r2.node(0), "b/1"))
}

func TestRoutingTriesTheNextEndpointWhenOneIsDown(t *testing.T) {
	r1, r2, o1, o2 := twoRegions(t)
	o1.set("b/", Home{Region: "r2", Epoch: 5})
	o2.set("b/", Home{Region: "r2", Epoch: 5})
	o1.setEndpoints("r2", freeLoopbackAddr(t), r2.peers[0].APIAddr)
	resp, err := r1.client(0).Append(testContext(t, 20*time.Second), connect.NewRequest(appendRequest("b/1", newTestEvent())))
	require.NoError(t, err)
	assert.Equal(t, "r2", resp.Msg.GetRegion())
}

func TestNoPlacementIsAClearError(t *testing.T) {
	r1, _, _, _ := twoRegions(t)
	ctx := testContext(t, 20*time.Second)
	_, err := r1.client(0).Append(ctx, connect.NewRequest(appendRequest("none/1", newTestEvent())))
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeUnavailable, ce.Code(), ce.Message())
	assert.Equal(t, kindNoPlacement, ce.Meta().Get(errorKindHeader))
	assert.Contains(t, ce.Message(), "none/1")
	assert.Empty(t, readStreamAll(t, r1.node(0), "none/1"))
}

// TestActiveActiveEntityIsOrderedInEveryRegion: each region orders its own
// appends to an active-active entity (no forwarding, no redirect, no home
// lease), refuses expected versions other than "any" with
// InvalidArgument and STRONG reads with FailedPrecondition, and serves
// SESSION reads of what it holds.
func TestActiveActiveEntityIsOrderedInEveryRegion(t *testing.T) {
	r1, r2, o1, o2 := twoRegions(t)
	o1.set("aa/", Home{Region: "r1", Epoch: 2, ActiveActive: true})
	o2.set("aa/", Home{Region: "r1", Epoch: 2, ActiveActive: true})
	o2.setLeaseErr(errors.New("no placement majority"))
	ctx := testContext(t, 20*time.Second)
	for name, r := range map[string]*raftRegion{"r1": r1, "r2": r2} {
		req := appendRequest("aa/1", newTestEvent())
		req.Routing = meridianv1.Routing_ROUTING_REDIRECT
		resp, err := r.client(0).Append(ctx, connect.NewRequest(req))
		require.NoError(t, err)
		assert.Equal(t, name, resp.Msg.GetRegion(), "ordered where it was sent")
		assert.Equal(t, name, resp.Msg.GetOrigin().GetRegion())
		assert.Equal(t, uint64(2), resp.Msg.GetEpoch())
		evs := readStreamAll(t, r.node(0), "aa/1")
		require.Len(t, evs, 1, "stored where it was ordered")
		assert.True(t, evs[0].GetActiveActive())

		rd, err := r.client(0).Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "aa/1", SessionToken: resp.Msg.GetSessionToken()}))
		require.NoError(t, err)
		require.Len(t, rd.Msg.GetEvents(), 1)
		assert.Equal(t, uint64(1), rd.Msg.GetEvents()[0].GetVersion())
	}
	bad := appendRequest("aa/1", newTestEvent())
	bad.Expected = expExact(1)
	_, err := r1.client(0).Append(ctx, connect.NewRequest(bad))
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeInvalidArgument, ce.Code(), ce.Message())
	assert.Contains(t, ce.Message(), "active-active")
	assert.Contains(t, ce.Message(), "expected")

	_, err = r1.client(0).Read(ctx, connect.NewRequest(&meridianv1.ReadRequest{Entity: "aa/1", Consistency: meridianv1.Consistency_CONSISTENCY_STRONG}))
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, connect.CodeFailedPrecondition, ce.Code(), ce.Message())
	assert.Equal(t, kindActiveActive, ce.Meta().Get(errorKindHeader))
	assert.Contains(t, ce.Message(), "CONSISTENCY_SESSION")
	assert.Len(t, readStreamAll(t, r1.node(0), "aa/1"), 1, "the refused append wrote nothing")
}
