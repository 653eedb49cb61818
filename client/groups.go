package client

import (
	"context"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Consumer groups live in one region: the calls go to the client's
// endpoints (give them all of one region's nodes) with the same failover
// and retries as the other calls. A write retried after an unknown outcome
// may find its own first attempt: CreateGroup then fails with
// AlreadyExists, CommitCheckpoint with Aborted (the revision moved); read
// the group to see where it stands.

// CreateGroup creates a consumer group of the contacted region.
func (c *Client) CreateGroup(ctx context.Context, req *meridianv1.CreateGroupRequest) (*meridianv1.ConsumerGroup, error) {
	resp, err := unaryCall(ctx, c, "create-group", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.CreateGroupResponse], error) {
		return ep.groups.CreateGroup(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return nil, err
	}
	return resp.GetGroup(), nil
}

// GetGroup returns a group as the answering node has applied it.
func (c *Client) GetGroup(ctx context.Context, name string) (*meridianv1.GetGroupResponse, error) {
	return unaryCall(ctx, c, "get-group", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.GetGroupResponse], error) {
		return ep.groups.GetGroup(ctx, connect.NewRequest(&meridianv1.GetGroupRequest{Name: name}))
	})
}

// ListGroups returns the groups of the answering node's region, by name.
func (c *Client) ListGroups(ctx context.Context) (*meridianv1.ListGroupsResponse, error) {
	return unaryCall(ctx, c, "list-groups", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.ListGroupsResponse], error) {
		return ep.groups.ListGroups(ctx, connect.NewRequest(&meridianv1.ListGroupsRequest{}))
	})
}

// DeleteGroup deletes a group.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	_, err := unaryCall(ctx, c, "delete-group", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.DeleteGroupResponse], error) {
		return ep.groups.DeleteGroup(ctx, connect.NewRequest(&meridianv1.DeleteGroupRequest{Name: name}))
	})
	return err
}

// CommitCheckpoint moves a group's checkpoint forward if the group is
// still at expectedRevision; Aborted when it is not.
func (c *Client) CommitCheckpoint(ctx context.Context, name string, expectedRevision uint64, checkpoint map[string]uint64) (*meridianv1.ConsumerGroup, error) {
	req := &meridianv1.CommitCheckpointRequest{Name: name, ExpectedRevision: expectedRevision, Checkpoint: checkpoint}
	resp, err := unaryCall(ctx, c, "commit-checkpoint", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.CommitCheckpointResponse], error) {
		return ep.groups.CommitCheckpoint(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return nil, err
	}
	return resp.GetGroup(), nil
}

// Fetch leases up to maxCount of the group's events to consumer, waiting
// up to wait for one (see meridianv1.FetchRequest).
func (c *Client) Fetch(ctx context.Context, name, consumer string, maxCount uint32, wait time.Duration) (*meridianv1.FetchResponse, error) {
	req := &meridianv1.FetchRequest{Name: name, Consumer: consumer, MaxCount: maxCount, WaitMs: uint32(wait.Milliseconds())}
	return unaryCall(ctx, c, "fetch", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.FetchResponse], error) {
		return ep.groups.Fetch(ctx, connect.NewRequest(req))
	})
}

// Ack records events as handled by the group (by their Event.origin).
// Retried after an unknown outcome, an ack counts as duplicate, never twice.
func (c *Client) Ack(ctx context.Context, name, consumer string, dots []*meridianv1.Dot) (*meridianv1.AckResponse, error) {
	req := &meridianv1.AckRequest{Name: name, Consumer: consumer, Dots: dots}
	return unaryCall(ctx, c, "ack", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.AckResponse], error) {
		return ep.groups.Ack(ctx, connect.NewRequest(req))
	})
}

// Nack gives leased events back: delivered again, or parked (park, or
// after the group's max_deliveries) with reason.
func (c *Client) Nack(ctx context.Context, name, consumer string, dots []*meridianv1.Dot, park bool, reason string) (*meridianv1.NackResponse, error) {
	req := &meridianv1.NackRequest{Name: name, Consumer: consumer, Dots: dots, Park: park, Reason: reason}
	return unaryCall(ctx, c, "nack", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.NackResponse], error) {
		return ep.groups.Nack(ctx, connect.NewRequest(req))
	})
}

// ListParked returns a page of the group's parked events after the dot
// after (nil: from the first).
func (c *Client) ListParked(ctx context.Context, name string, after *meridianv1.Dot, maxCount uint32) (*meridianv1.ListParkedResponse, error) {
	req := &meridianv1.ListParkedRequest{Name: name, After: after, MaxCount: maxCount}
	return unaryCall(ctx, c, "list-parked", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.ListParkedResponse], error) {
		return ep.groups.ListParked(ctx, connect.NewRequest(req))
	})
}

// DropParked removes parked events; it returns how many were parked.
func (c *Client) DropParked(ctx context.Context, name string, dots []*meridianv1.Dot) (uint32, error) {
	resp, err := unaryCall(ctx, c, "drop-parked", func(ctx context.Context, ep *endpoint) (*connect.Response[meridianv1.DropParkedResponse], error) {
		return ep.groups.DropParked(ctx, connect.NewRequest(&meridianv1.DropParkedRequest{Name: name, Dots: dots}))
	})
	if err != nil {
		return 0, err
	}
	return resp.GetDropped(), nil
}

// Consume options.
type Consume struct {
	// Consumer names this consumer in the group: unique per running
	// consumer, 1 to 128 bytes of [A-Za-z0-9._:-]; "" picks a random name.
	Consumer string
	// Batch bounds the events fetched at once (and acked together); 0
	// means 100. The group's max_in_flight bounds it too.
	Batch uint32
	// Follow keeps waiting for new events; without it ConsumeGroup
	// returns once a fetch finds nothing ready.
	Follow bool
	// Wait is how long one fetch waits for an event; 0 means 5 s with
	// Follow and 200 ms without.
	Wait time.Duration
	// Stats, when not nil, is updated as the consumer goes.
	Stats *ConsumeStats
}

// ConsumeStats counts what a consumer did.
type ConsumeStats struct {
	// Delivered: events handed to the handler (redeliveries included);
	// Acked: acks the group counted as first; Duplicate: acks of events
	// the group had already acked (handled twice: the unacked window);
	// Nacked, Parked: events given back, and those parked.
	Delivered, Acked, Duplicate, Nacked, Parked uint64
}

// ErrPark, wrapped in a handler's error, parks the event at once instead
// of having it delivered again.
var ErrPark = errors.New("park this event")

// ConsumeGroup consumes the group as one of its competing consumers: it
// fetches leased events and hands each to handle, in the order fetched
// (an entity's events arrive one at a time, in order). Events handle
// returns nil for are acked together once the batch is done; an error
// nacks the event (delivered again, to any consumer, until the group's
// max_deliveries, then parked with the error as reason; an error wrapping
// ErrPark parks it at once). An event is redelivered if the consumer
// stops holding it past the group's ack timeout. It returns nil when ctx
// ends or, without Follow, when nothing is ready.
func (c *Client) ConsumeGroup(ctx context.Context, name string, opts Consume, handle func(context.Context, *meridianv1.Delivery) error) error {
	consumer := opts.Consumer
	if consumer == "" {
		consumer = "c-" + uuid.NewString()[:8]
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = 200 * time.Millisecond
		if opts.Follow {
			wait = 5 * time.Second
		}
	}
	if t := c.retry.AttemptTimeout; t > 0 {
		wait = min(wait, t/2) // a waiting fetch must not look like a lost attempt
	}
	stats := opts.Stats
	if stats == nil {
		stats = &ConsumeStats{}
	}
	for {
		resp, err := c.Fetch(ctx, name, consumer, opts.Batch, wait)
		if err != nil {
			return ctxOr(ctx, err)
		}
		if len(resp.GetDeliveries()) == 0 {
			if !opts.Follow || ctx.Err() != nil {
				return nil
			}
			continue
		}
		var acks []*meridianv1.Dot
		for _, d := range resp.GetDeliveries() {
			if ctx.Err() != nil {
				break // stopping: the rest is delivered again after the ack timeout
			}
			stats.Delivered++
			herr := handle(ctx, d)
			if herr == nil {
				acks = append(acks, d.GetEvent().GetOrigin())
				continue
			}
			if ctx.Err() != nil {
				break // stopping: what is unacked is delivered again
			}
			reason := herr.Error()
			if len(reason) > 1024 {
				reason = strings.ToValidUTF8(reason[:1024], "") // not inside a character
			}
			n, err := c.Nack(ctx, name, consumer, []*meridianv1.Dot{d.GetEvent().GetOrigin()}, errors.Is(herr, ErrPark), reason)
			if err != nil {
				// What was handled is acked before giving up.
				if len(acks) > 0 {
					if a, aerr := c.Ack(context.WithoutCancel(ctx), name, consumer, acks); aerr == nil {
						stats.Acked += uint64(a.GetAcked())
						stats.Duplicate += uint64(a.GetDuplicate())
					}
				}
				return ctxOr(ctx, err)
			}
			stats.Nacked++
			stats.Parked += uint64(n.GetParked())
		}
		if len(acks) > 0 {
			a, err := c.Ack(context.WithoutCancel(ctx), name, consumer, acks)
			if connect.CodeOf(err) == connect.CodeAborted {
				// The group was repositioned or created again: these
				// events are delivered again as the new group says.
				continue
			}
			if err != nil {
				return ctxOr(ctx, err)
			}
			stats.Acked += uint64(a.GetAcked())
			stats.Duplicate += uint64(a.GetDuplicate())
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// ctxOr returns nil when ctx ended (the caller stopped the consumer), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) == connect.CodeCanceled) {
		return nil
	}
	return err
}
