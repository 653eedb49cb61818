// The race detector's checkptr instrumentation aborts inside
// github.com/boltdb/bolt (raft-boltdb's store, used by every real node):
// "converted pointer straddles multiple allocations". Under -race the
// redirect and retry logic is covered against fakes (redirect_test.go).

//go:build !race

package client

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/tests/multiregion"
)

var threeRegions = []string{"us-east", "eu-west", "ap-south"}

// startRegions starts three regions of one real node each, waits until the
// placement group has one voter per region and every node knows every
// region, and sets meridian dev's example rules.
func startRegions(t *testing.T) (*multiregion.Cluster, *meridianv1.SetRulesResponse) {
	t.Helper()
	cl, err := multiregion.Start(multiregion.Config{
		Regions: threeRegions, NodesPerRegion: 1, Dir: t.TempDir(), Seed: 1,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	ctx := testCtx(t)
	for _, h := range cl.Hosts() {
		c := newTestClient(t, []string{cl.APIAddr(h)})
		require.Eventually(t, func() bool {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			regs, err := c.ListRegions(actx)
			if err != nil || len(regs.GetRegions()) != len(threeRegions) {
				return false
			}
			for _, r := range regs.GetRegions() {
				if len(r.GetVoters()) != 1 {
					return false
				}
			}
			return true
		}, 60*time.Second, 50*time.Millisecond, "placement group incomplete on %s", h)
	}
	c := newTestClient(t, []string{cl.APIAddr(cl.Hosts()[1])})
	set, err := c.SetRules(ctx, []*meridianv1.PlacementRule{
		{Prefix: "us/", HomeRegion: "us-east"},
		{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east"}},
		{Prefix: "ap/", HomeRegion: "ap-south"},
	}, "us-east", 0)
	require.NoError(t, err)
	waitApplied(t, cl, set.GetIndex())
	return cl, set
}

// waitApplied waits until every node's placement copy has applied idx.
func waitApplied(t *testing.T, cl *multiregion.Cluster, idx uint64) {
	t.Helper()
	for _, h := range cl.Hosts() {
		c := newTestClient(t, []string{cl.APIAddr(h)})
		require.Eventually(t, func() bool {
			p, err := c.GetPlacement(testCtx(t), "x")
			return err == nil && p.GetTable().GetIndex() >= idx
		}, 10*time.Second, 10*time.Millisecond, "index %d not applied on %s", idx, h)
	}
}

// peers records the server address of every unary call and its code.
type peers struct {
	mu    sync.Mutex
	calls []string // "addr code"
}

func (p *peers) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			res, err := next(ctx, req)
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			p.mu.Lock()
			p.calls = append(p.calls, req.Peer().Addr+" "+code)
			p.mu.Unlock()
			return res, err
		}
	}
}

func (p *peers) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.calls
	p.calls = nil
	return out
}

func TestAgainstThreeRegions(t *testing.T) {
	cl, set := startRegions(t)
	us, eu, ap := cl.HostsOf("us-east")[0], cl.HostsOf("eu-west")[0], cl.HostsOf("ap-south")[0]
	ctx := testCtx(t)

	t.Run("placement calls", func(t *testing.T) {
		c := newTestClient(t, []string{cl.APIAddr(ap)})
		p, err := c.GetPlacement(ctx, "eu/order-1")
		require.NoError(t, err)
		assert.Equal(t, "eu-west", p.GetHomeRegion())
		assert.Equal(t, meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, p.GetSource())
		assert.Equal(t, "eu/", p.GetRulePrefix())
		assert.Equal(t, []string{"us-east"}, p.GetFailover())
		assert.Equal(t, []string{cl.APIAddr(eu)}, p.GetHomeEndpoints())
		assert.Equal(t, "ap-south/n1", p.GetTable().GetAnsweredBy())

		rules, err := c.ListRules(ctx)
		require.NoError(t, err)
		var prefixes []string
		for _, r := range rules.GetRules() {
			prefixes = append(prefixes, r.GetPrefix())
			assert.Equal(t, set.GetIndex(), r.GetEpoch())
		}
		assert.Equal(t, []string{"us/", "eu/", "ap/"}, prefixes, "match order")
		assert.Equal(t, "us-east", rules.GetDefaultRegion())
		assert.Equal(t, set.GetIndex(), rules.GetRulesIndex())

		regions, err := c.ListRegions(ctx)
		require.NoError(t, err)
		require.Len(t, regions.GetRegions(), 3)
		for _, r := range regions.GetRegions() {
			assert.Equal(t, []string{cl.APIAddr(cl.HostsOf(r.GetName())[0])}, r.GetEndpoints())
		}

		pin, err := c.Pin(ctx, "eu/vip-1", "ap-south")
		require.NoError(t, err)
		again, err := c.Pin(ctx, "eu/vip-1", "ap-south")
		require.NoError(t, err)
		assert.Equal(t, pin.GetEpoch(), again.GetEpoch(), "pinning again to the same region changes nothing (a retry is safe)")
		waitApplied(t, cl, pin.GetIndex())
		p, err = c.GetPlacement(ctx, "eu/vip-1")
		require.NoError(t, err)
		assert.Equal(t, "ap-south", p.GetHomeRegion())
		assert.Equal(t, meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN, p.GetSource())

		un, err := c.Unpin(ctx, "eu/vip-1")
		require.NoError(t, err)
		assert.True(t, un.GetExisted())
		un, err = c.Unpin(ctx, "eu/vip-1")
		require.NoError(t, err)
		assert.False(t, un.GetExisted(), "a retried Unpin changes nothing")

		for _, tc := range []struct {
			name     string
			rules    []*meridianv1.PlacementRule
			expected uint64
			code     connect.Code
			msg      string
		}{
			{"overlapping rule", []*meridianv1.PlacementRule{{Prefix: "eu/", HomeRegion: "eu-west"}, {Prefix: "eu/acct/", HomeRegion: "us-east"}}, 0, connect.CodeInvalidArgument, "rules[1]"},
			{"stale expected index", []*meridianv1.PlacementRule{{Prefix: "eu/", HomeRegion: "eu-west"}}, set.GetIndex() + 1000, connect.CodeFailedPrecondition, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.SetRules(ctx, tc.rules, "us-east", tc.expected)
				require.Error(t, err)
				assert.Equal(t, tc.code, connect.CodeOf(err), "%v", err)
				assert.Contains(t, err.Error(), tc.msg)
			})
		}
	})

	t.Run("direct append goes straight to the home", func(t *testing.T) {
		var rec peers
		c := newTestClient(t, []string{cl.APIAddr(us)}, WithConnectOptions(connect.WithInterceptors(rec.interceptor())))
		events := []*meridianv1.ProposedEvent{{Type: "OrderPlaced"}}
		resp, err := c.Append(ctx, "eu/order-1", events, Direct())
		require.NoError(t, err)
		assert.Equal(t, "eu-west", resp.GetRegion())
		assert.Equal(t, []string{cl.APIAddr(us) + " failed_precondition", cl.APIAddr(eu) + " ok"}, rec.take())

		// The same ids again: the home answers with the original result.
		dup, err := c.Append(ctx, "eu/order-1", events, Direct())
		require.NoError(t, err)
		assert.True(t, dup.GetDuplicate())
		assert.Equal(t, resp.GetLastVersion(), dup.GetLastVersion())
		rec.take()

		// Without Direct the node forwards: one call, answered by the home.
		fwd, err := c.Append(ctx, "eu/order-1", []*meridianv1.ProposedEvent{{Type: "OrderPaid"}})
		require.NoError(t, err)
		assert.Equal(t, "eu-west", fwd.GetRegion())
		assert.Equal(t, resp.GetLastVersion()+1, fwd.GetLastVersion())
		assert.Equal(t, []string{cl.APIAddr(us) + " ok"}, rec.take())

		// An entity homed where the client points: no redirect.
		local, err := c.Append(ctx, "us/order-1", []*meridianv1.ProposedEvent{{Type: "OrderPlaced"}}, Direct())
		require.NoError(t, err)
		assert.Equal(t, "us-east", local.GetRegion())
		assert.Equal(t, []string{cl.APIAddr(us) + " ok"}, rec.take())
	})

	t.Run("subscribe follows the redirect to the home", func(t *testing.T) {
		c := newTestClient(t, []string{cl.APIAddr(ap)})
		w := newTestClient(t, []string{cl.APIAddr(us)})
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var got []string
		for msg, err := range c.Subscribe(sctx, Subscription{Entity: "eu/order-1"}) {
			require.NoError(t, err)
			if e := msg.GetEvent(); e != nil {
				got = append(got, e.GetType())
				if e.GetType() == "OrderShipped" {
					break
				}
			}
			if msg.GetCheckpoint().GetCaughtUp() && !strings.Contains(strings.Join(got, ","), "Shipped") {
				// Live: a write through a third region arrives too.
				_, err := w.Append(ctx, "eu/order-1", []*meridianv1.ProposedEvent{{Type: "OrderShipped"}})
				require.NoError(t, err)
			}
		}
		assert.Equal(t, []string{"OrderPlaced", "OrderPaid", "OrderShipped"}, got)
	})

	t.Run("reads of an entity homed elsewhere are answered by the home", func(t *testing.T) {
		c := newTestClient(t, []string{cl.APIAddr(ap)})
		read, err := c.Read(ctx, "eu/order-1", WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG))
		require.NoError(t, err)
		assert.Equal(t, "eu-west", read.GetRegion())
		assert.Len(t, read.GetEvents(), 3)
	})
}
