package client

import (
	"context"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// The Placement calls use the same endpoints, failover and retry policy as
// the EventStore calls. A node that runs without a placement group (a
// single-region deployment) answers them with Unimplemented.

// GetPlacement returns entity's home region, mode and epoch as the
// answering node's copy of the placement table says, with how current that
// copy is (TableInfo). Retried on Unavailable.
func (c *Client) GetPlacement(ctx context.Context, entity string) (*meridianv1.GetPlacementResponse, error) {
	req := &meridianv1.GetPlacementRequest{Entity: entity}
	return unaryCall(ctx, c, "get-placement", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.GetPlacementResponse], error) {
		return ep.placement.GetPlacement(ctx, connect.NewRequest(req))
	})
}

// ListRules returns the prefix rules in match order, the default region,
// the pin count and rules_index (the value for SetRules' expectedIndex).
// Retried on Unavailable.
func (c *Client) ListRules(ctx context.Context) (*meridianv1.ListRulesResponse, error) {
	return unaryCall(ctx, c, "list-rules", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.ListRulesResponse], error) {
		return ep.placement.ListRules(ctx, connect.NewRequest(&meridianv1.ListRulesRequest{}))
	})
}

// SetRules replaces the rules and the default region atomically. With
// expectedIndex 0 it is unconditional; otherwise it applies only if the
// table's last rule change is at expectedIndex (ListRules' rules_index),
// and fails with FailedPrecondition when it is not.
//
// It is retried on Unavailable, including the server's "outcome unknown":
// setting the same rules again is a no-op on the server, so an
// unconditional retry is safe. A conditional one is not idempotent: once
// the first attempt committed, the rules index has moved, and the retry
// fails with FailedPrecondition although the change is in. After such an
// error, ListRules tells whether the rules are already the wanted ones.
func (c *Client) SetRules(ctx context.Context, rules []*meridianv1.PlacementRule, defaultRegion string, expectedIndex uint64) (*meridianv1.SetRulesResponse, error) {
	req := &meridianv1.SetRulesRequest{Rules: rules, DefaultRegion: defaultRegion, ExpectedIndex: expectedIndex}
	return unaryCall(ctx, c, "set-rules", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.SetRulesResponse], error) {
		return ep.placement.SetRules(ctx, connect.NewRequest(req))
	})
}

// Pin makes region the home of entity, whatever the rules say. Retried on
// Unavailable: pinning to the region it is already pinned to is a no-op on
// the server (the epoch stays), so a retry after an unknown outcome is safe.
func (c *Client) Pin(ctx context.Context, entity, region string) (*meridianv1.PinResponse, error) {
	req := &meridianv1.PinRequest{Entity: entity, Region: region}
	return unaryCall(ctx, c, "pin", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.PinResponse], error) {
		return ep.placement.Pin(ctx, connect.NewRequest(req))
	})
}

// Unpin removes entity's pin, so that the rules decide its home again.
// Retried on Unavailable: a retry of an Unpin that committed finds no pin
// and answers existed=false, changing nothing.
func (c *Client) Unpin(ctx context.Context, entity string) (*meridianv1.UnpinResponse, error) {
	req := &meridianv1.UnpinRequest{Entity: entity}
	return unaryCall(ctx, c, "unpin", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.UnpinResponse], error) {
		return ep.placement.Unpin(ctx, connect.NewRequest(req))
	})
}

// MoveEntity moves entity's home to region (the result is a pin): the old
// home freezes, the new home drains what the old home ordered, then the
// home flips with a new epoch. It returns once the new home takes writes;
// writes to the entity wait meanwhile. Retried on Unavailable: moving an
// entity to the region that already homes it changes nothing.
func (c *Client) MoveEntity(ctx context.Context, entity, region string) (*meridianv1.MoveResponse, error) {
	req := &meridianv1.MoveRequest{Target: &meridianv1.MoveRequest_Entity{Entity: entity}, Region: region}
	return unaryCall(ctx, c, "move", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.MoveResponse], error) {
		return ep.placement.Move(ctx, connect.NewRequest(req))
	})
}

// MovePrefix moves every entity of the rule with exactly prefix to region,
// as MoveEntity does for one entity (region leaves the rule's failover
// list). Retried on Unavailable.
func (c *Client) MovePrefix(ctx context.Context, prefix, region string) (*meridianv1.MoveResponse, error) {
	req := &meridianv1.MoveRequest{Target: &meridianv1.MoveRequest_Prefix{Prefix: prefix}, Region: region}
	return unaryCall(ctx, c, "move", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.MoveResponse], error) {
		return ep.placement.Move(ctx, connect.NewRequest(req))
	})
}

// ListRegions returns every region that joined the placement group, with
// its endpoints, voters and whether the answering node reaches it.
// Retried on Unavailable.
func (c *Client) ListRegions(ctx context.Context) (*meridianv1.ListRegionsResponse, error) {
	return unaryCall(ctx, c, "list-regions", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.ListRegionsResponse], error) {
		return ep.placement.ListRegions(ctx, connect.NewRequest(&meridianv1.ListRegionsRequest{}))
	})
}

// unaryCall runs one unary call (Placement, Membership, ConsumerGroups)
// through call on the client's own endpoints and unwraps the response.
func unaryCall[T any](ctx context.Context, c *Client, method string, op func(ctx context.Context, ep *endpoint) (*connect.Response[T], error)) (*T, error) {
	return call(ctx, c, c.own(), method, func(ctx context.Context, ep *endpoint) (*T, error) {
		res, err := op(ctx, ep)
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
}
