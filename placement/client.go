package placement

import (
	"context"
	"net/http"
	"time"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/h2c"
)

// Limits of calls to other members.
const (
	// peerIdleConnsMax bounds idle HTTP/2 connections kept per member.
	peerIdleConnsMax = 2
	// peerPingInterval and peerPingTimeout detect a black-holed connection.
	peerPingInterval = 2 * time.Second
	peerPingTimeout  = 2 * time.Second
	// forwardedHeader marks a change forwarded to the leader by a member; a
	// forwarded change is served by its receiver or fails, never forwarded
	// again.
	forwardedHeader = "Meridian-Placement-Forwarded-By"
)

// peerClients holds Connect clients of other members' Placement APIs, all
// dialing through the member's Network (h2c).
type peerClients struct {
	timeout    time.Duration
	httpClient *http.Client
	stubs      *h2c.Stubs[meridianv1connect.PlacementClient]
}

func newPeerClients(network Network, timeout time.Duration) *peerClients {
	httpClient := h2c.NewClient(network.Dial, h2c.Options{IdleConnsPerHost: peerIdleConnsMax, PingInterval: peerPingInterval, PingTimeout: peerPingTimeout})
	return &peerClients{timeout: timeout, httpClient: httpClient, stubs: h2c.NewStubs(func(url string) meridianv1connect.PlacementClient {
		return meridianv1connect.NewPlacementClient(httpClient, url)
	})}
}

func (p *peerClients) client(addr string) meridianv1connect.PlacementClient { return p.stubs.For(addr) }

func (p *peerClients) close() { p.httpClient.CloseIdleConnections() }

func (p *peerClients) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, p.timeout)
}

func (p *peerClients) join(ctx context.Context, addr string, m *meridianv1.Member) (*meridianv1.JoinResponse, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	resp, err := p.client(addr).Join(ctx, connect.NewRequest(&meridianv1.JoinRequest{Member: m}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func (p *peerClients) stats(ctx context.Context, addr string) (*meridianv1.MemberStatsResponse, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	resp, err := p.client(addr).MemberStats(ctx, connect.NewRequest(&meridianv1.MemberStatsRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// forward sends a change to the leader's API, marked forwarded.
func forward[Req, Resp any](ctx context.Context, p *peerClients, from string, call func(meridianv1connect.PlacementClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error), addr string, req *Req) (*Resp, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	r := connect.NewRequest(req)
	r.Header().Set(forwardedHeader, from)
	resp, err := call(p.client(addr), ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}
