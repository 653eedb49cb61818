package client

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// ListMembers returns the deployment's nodes as the answering node's gossip
// pool sees them (every region), with each region's health. Nodes started
// without a gossip address answer Unimplemented.
func (c *Client) ListMembers(ctx context.Context) (*meridianv1.ListMembersResponse, error) {
	return call(ctx, c, c.own, "list-members", func(ctx context.Context, ep *endpoint) (*meridianv1.ListMembersResponse, error) {
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
	if len(c.own.eps) != 1 {
		return false, ErrLeaveNeedsOneEndpoint
	}
	res, err := c.own.eps[0].members.Leave(ctx, connect.NewRequest(&meridianv1.LeaveRequest{}))
	if err != nil {
		return false, err
	}
	return res.Msg.GetRemoved(), nil
}
