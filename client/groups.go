package client

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
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

// Consume options.
type Consume struct {
	// PageMax bounds the events of one page (and so of one commit); 0
	// means the server's default (100).
	PageMax uint32
	// Follow keeps waiting for new events at the end of the log (polling
	// every PollInterval, default 500 ms) instead of returning.
	Follow       bool
	PollInterval time.Duration
}

// ConsumeGroup reads the group's events page by page (ReadLog after the
// group's checkpoint, through its filter), hands each non-empty page to
// handle, and commits the page's next vector once handle returns nil:
// at-least-once delivery, a page at a time. A handle error stops the
// consumer, with nothing committed for that page. If another consumer
// commits to the group in between (Aborted), the group is read again and
// consumption continues from its checkpoint. It returns nil at the end
// of the log (without Follow) or when ctx ends.
func (c *Client) ConsumeGroup(ctx context.Context, name string, opts Consume, handle func(*meridianv1.ReadLogResponse) error) error {
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	var group *meridianv1.ConsumerGroup
	for {
		if group == nil {
			resp, err := c.GetGroup(ctx, name)
			if err != nil {
				return ctxOr(ctx, err)
			}
			group = resp.GetGroup()
		}
		page, err := c.ReadLog(ctx, &meridianv1.ReadLogRequest{
			From:     &meridianv1.ReadLogRequest_AfterVector{AfterVector: &meridianv1.VectorStart{Vector: group.GetCheckpoint()}},
			MaxCount: opts.PageMax, Filter: group.GetFilter(),
		})
		if err != nil {
			return ctxOr(ctx, err)
		}
		if len(page.GetEvents()) > 0 {
			if err := handle(page); err != nil {
				return err
			}
		}
		if !causal.Vector(page.GetNextVector()).Equal(group.GetCheckpoint()) {
			g, err := c.CommitCheckpoint(ctx, name, group.GetRevision(), page.GetNextVector())
			switch {
			case connect.CodeOf(err) == connect.CodeAborted:
				group = nil // another consumer moved it: read it again
				continue
			case err != nil:
				return ctxOr(ctx, err)
			}
			group = g
		}
		if !page.GetEnd() {
			continue
		}
		if !opts.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
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
