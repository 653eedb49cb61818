package client

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// ListMembers returns the deployment's nodes as the answering node's gossip
// pool sees them (every region), with each region's health. Nodes started
// without a gossip address answer Unimplemented.
func (c *Client) ListMembers(ctx context.Context) (*meridianv1.ListMembersResponse, error) {
	return call(ctx, c, c.own(), "list-members", func(ctx context.Context, ep *endpoint) (*meridianv1.ListMembersResponse, error) {
		res, err := ep.members.ListMembers(ctx, connect.NewRequest(&meridianv1.ListMembersRequest{}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
}

// ErrLeaveNeedsOneEndpoint: Leave acts on the node it is sent to, so the
// client must name exactly one.
var ErrLeaveNeedsOneEndpoint = errors.New("client: Leave takes a node out of the deployment: create the client with exactly that node's endpoint")

// Leave takes the client's only endpoint out of the deployment gracefully
// (Membership.Leave) and reports whether its region's group no longer
// lists it. It is never retried on another node.
func (c *Client) Leave(ctx context.Context) (bool, error) {
	eps := c.own().eps
	if len(eps) != 1 {
		return false, ErrLeaveNeedsOneEndpoint
	}
	res, err := eps[0].members.Leave(ctx, connect.NewRequest(&meridianv1.LeaveRequest{}))
	if err != nil {
		return false, err
	}
	return res.Msg.GetRemoved(), nil
}

// DiscoverEndpoints asks the deployment's gossip pool (ListMembers, through
// the client's endpoints) for the alive nodes of the region of the node that
// answers, and makes them the client's endpoints after the ones it was
// given (at most 64 in all), so that calls fail over to nodes it was not
// told about. Call it again to refresh: nodes no longer alive are dropped,
// the endpoints given to New are always kept. It returns the endpoints in
// use. Nodes without gossip answer Unimplemented and nothing changes.
func (c *Client) DiscoverEndpoints(ctx context.Context) ([]string, error) {
	resp, err := c.ListMembers(ctx)
	if err != nil {
		return c.Endpoints(), err
	}
	region, _, _ := strings.Cut(resp.GetAnsweredBy(), "/")
	bases := append([]string(nil), c.given...)
	seen := map[string]bool{}
	for _, b := range bases {
		seen[b] = true
	}
	for _, m := range resp.GetMembers() {
		if m.GetRegion() != region || m.GetStatus() != meridianv1.MemberStatus_MEMBER_STATUS_ALIVE || m.GetApiAddress() == "" {
			continue
		}
		base, err := c.normalizeEndpoint(m.GetApiAddress())
		if err != nil || seen[base] || len(bases) >= endpointsMax {
			continue
		}
		seen[base] = true
		bases = append(bases, base)
	}
	old := map[string]*endpoint{}
	for _, ep := range c.own().eps {
		old[ep.base] = ep
	}
	set := &endpointSet{}
	for _, b := range bases {
		ep, ok := old[b]
		if !ok {
			ep = c.dial(b)
		}
		set.eps = append(set.eps, ep)
	}
	c.ownSet.Store(set)
	c.logger.Debug("endpoints discovered", "region", region, "endpoints", bases)
	return c.Endpoints(), nil
}
