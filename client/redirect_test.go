package client

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// redirectingStore answers every Append and Subscribe with a HomeRedirect to
// the endpoints in to (set after start), as a node outside the home would.
type redirectingStore struct {
	meridianv1connect.UnimplementedEventStoreHandler
	mu       sync.Mutex
	to       []string
	appends  []*meridianv1.AppendRequest
	subCalls atomic.Int32
}

func (r *redirectingStore) redirect(entity string) error {
	r.mu.Lock()
	to := r.to
	r.mu.Unlock()
	ce := connect.NewError(connect.CodeFailedPrecondition, errors.New("region: not the entity's home region"))
	d, err := connect.NewErrorDetail(&meridianv1.HomeRedirect{Entity: entity, HomeRegion: "eu-west", Epoch: 7, Endpoints: to})
	if err != nil {
		return err
	}
	ce.AddDetail(d)
	return ce
}

func (r *redirectingStore) Append(_ context.Context, req *connect.Request[meridianv1.AppendRequest]) (*connect.Response[meridianv1.AppendResponse], error) {
	r.mu.Lock()
	r.appends = append(r.appends, req.Msg)
	r.mu.Unlock()
	return nil, r.redirect(req.Msg.GetEntity())
}

func (r *redirectingStore) Subscribe(_ context.Context, req *connect.Request[meridianv1.SubscribeRequest], _ *connect.ServerStream[meridianv1.SubscribeResponse]) error {
	r.subCalls.Add(1)
	return r.redirect(req.Msg.GetEntity())
}

func (r *redirectingStore) setTo(to ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.to = to
}

func (r *redirectingStore) appendCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.appends)
}

// hostPort strips the scheme: HomeRedirect endpoints are host:port.
func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

func TestHomeRedirectOf(t *testing.T) {
	withDetail := (&redirectingStore{to: []string{"127.0.0.1:1"}}).redirect("eu/x")
	tests := []struct {
		name   string
		err    error
		wantOK bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"connect error without detail", connect.NewError(connect.CodeFailedPrecondition, errors.New("wrong expected version")), false},
		{"redirect", withDetail, true},
		{"wrapped redirect", errors.Join(errors.New("append"), withDetail), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr, ok := HomeRedirectOf(tt.err)
			assert.Equal(t, tt.wantOK, ok)
			if ok {
				assert.Equal(t, "eu-west", hr.GetHomeRegion())
				assert.Equal(t, uint64(7), hr.GetEpoch())
				assert.Equal(t, []string{"127.0.0.1:1"}, hr.GetEndpoints())
			}
		})
	}
}

func TestDirectAppendFollowsRedirect(t *testing.T) {
	tests := []struct {
		name string
		// loop makes the redirect point back at the redirecting node.
		loop   bool
		direct bool
		// wantRedirector is how many appends the redirecting node gets.
		wantRedirector int
		wantHome       int
		wantCode       connect.Code
	}{
		{name: "direct goes to the home with the same ids", direct: true, wantRedirector: 1, wantHome: 1},
		{name: "without Direct the redirect error is returned", direct: false, wantRedirector: 1, wantHome: 0, wantCode: connect.CodeFailedPrecondition},
		{name: "a redirect loop ends after redirectsMax", loop: true, direct: true, wantRedirector: 1 + redirectsMax, wantCode: connect.CodeFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := newFakeStore()
			homeURL := startFake(t, home)
			r := &redirectingStore{}
			rURL := startFake(t, r)
			if tt.loop {
				r.setTo(hostPort(rURL))
			} else {
				r.setTo(hostPort(homeURL))
			}
			c := newTestClient(t, []string{rURL}, WithRetryPolicy(fastRetry(3)))
			events := []*meridianv1.ProposedEvent{{Type: "Placed"}}
			var opts []AppendOption
			if tt.direct {
				opts = append(opts, Direct())
			}
			resp, err := c.Append(testCtx(t), "eu/order-1", events, opts...)
			assert.Equal(t, tt.wantRedirector, r.appendCount())
			home.mu.Lock()
			homeAppends := append([]*meridianv1.AppendRequest(nil), home.appends...)
			home.mu.Unlock()
			require.Len(t, homeAppends, tt.wantHome)
			if tt.wantCode != 0 {
				require.Error(t, err)
				assert.Equal(t, tt.wantCode, connect.CodeOf(err))
				_, ok := HomeRedirectOf(err)
				assert.True(t, ok, "the last redirect is returned: %v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, uint64(1), resp.GetLastVersion())
			assert.Equal(t, meridianv1.Routing_ROUTING_REDIRECT, homeAppends[0].GetRouting())
			assert.Equal(t, events[0].GetId(), homeAppends[0].GetEvents()[0].GetId(), "the home gets the same event id")
			r.mu.Lock()
			defer r.mu.Unlock()
			assert.Equal(t, events[0].GetId(), r.appends[0].GetEvents()[0].GetId())
		})
	}
}

func TestSubscribeFollowsRedirect(t *testing.T) {
	home := newFakeStore()
	homeURL := startFake(t, home)
	r := &redirectingStore{}
	r.setTo(hostPort(homeURL))
	rURL := startFake(t, r)
	c := newTestClient(t, []string{rURL}, WithRetryPolicy(fastRetry(3)))
	ctx := testCtx(t)
	// Write through a client of the home itself.
	hc := newTestClient(t, []string{homeURL})
	for range 3 {
		_, err := hc.Append(ctx, "eu/order-1", []*meridianv1.ProposedEvent{{Type: "E"}})
		require.NoError(t, err)
	}
	var versions []uint64
	for msg, err := range c.Subscribe(ctx, Subscription{Entity: "eu/order-1"}) {
		require.NoError(t, err)
		if e := msg.GetEvent(); e != nil {
			versions = append(versions, e.GetVersion())
		}
		if msg.GetCheckpoint().GetCaughtUp() {
			break
		}
	}
	assert.Equal(t, []uint64{1, 2, 3}, versions)
	assert.Equal(t, int32(1), r.subCalls.Load(), "one redirect, then the home")
}

func TestSubscribeRedirectLoopIsYielded(t *testing.T) {
	r := &redirectingStore{}
	rURL := startFake(t, r)
	r.setTo(hostPort(rURL))
	c := newTestClient(t, []string{rURL}, WithRetryPolicy(fastRetry(3)))
	var got error
	for _, err := range c.Subscribe(testCtx(t), Subscription{Entity: "eu/order-1"}) {
		got = err
	}
	assert.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(got))
	_, ok := HomeRedirectOf(got)
	assert.True(t, ok)
	assert.Equal(t, int32(1+redirectsMax), r.subCalls.Load())
}
