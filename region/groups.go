package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/causal"
)

// Consumer groups (issue 17): a group is a name, a filter over the region
// log and a vector checkpoint, stored under g/<name> through the region's
// Raft group (COMMAND_TYPE_GROUP). Consumers read with ReadLog after the
// checkpoint and commit the vector they reached, compare-and-set on the
// group's revision.

// GroupNameBytesMax bounds a consumer group's name.
const GroupNameBytesMax = 128

// Consumer group errors.
var (
	// ErrGroupNotFound: no group of that name in this region.
	ErrGroupNotFound = errors.New("region: consumer group not found")
	// ErrGroupExists: a create named a group that exists.
	ErrGroupExists = errors.New("region: consumer group exists")
	// ErrGroupConflict: a commit's expected revision is not the group's,
	// or its checkpoint does not cover the group's.
	ErrGroupConflict = errors.New("region: consumer group changed since it was read")
)

// groupKey is g/<name>.
func groupKey(name string) []byte { return []byte(prefixGroup + name) }

// ValidateGroupName checks a consumer group name: 1 to GroupNameBytesMax
// bytes of [A-Za-z0-9._:-].
func ValidateGroupName(name string) error {
	if name == "" || len(name) > GroupNameBytesMax {
		return invalidf("name", "must be 1 to %d bytes, got %d", GroupNameBytesMax, len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !entityByte(c) || c == '/' {
			return invalidf("name", "%q: byte %d (%q) is outside [A-Za-z0-9._:-]", name, i, c)
		}
	}
	return nil
}

// validateGroupCommand checks what a command carries; apply runs it with
// the hard limits (constants), so every replica decides alike.
func validateGroupCommand(c *meridianv1.GroupCommand, limits Limits) error {
	switch op := c.GetOp().(type) {
	case *meridianv1.GroupCommand_Create:
		if err := ValidateGroupName(op.Create.GetName()); err != nil {
			return err
		}
		if _, err := CompileFilter(op.Create.GetFilter(), limits); err != nil {
			return err
		}
		if err := validateVector("start", op.Create.GetCheckpoint()); err != nil {
			return err
		}
		if err := validateGroupSettings(op.Create.GetSettings()); err != nil {
			return err
		}
		if err := validateDots("acked", op.Create.GetAcked(), GroupAckedMax); err != nil {
			return err
		}
	case *meridianv1.GroupCommand_Ack:
		return validateGroupAck(op.Ack)
	case *meridianv1.GroupCommand_Delete:
		return ValidateGroupName(op.Delete)
	case *meridianv1.GroupCommand_Commit:
		if err := ValidateGroupName(op.Commit.GetName()); err != nil {
			return err
		}
		if err := validateVector("checkpoint", op.Commit.GetCheckpoint()); err != nil {
			return err
		}
	default:
		return &InvalidArgumentError{Field: "op", Reason: "must be create, delete, commit or ack"}
	}
	return nil
}

// GroupResult is what Apply returns for a COMMAND_TYPE_GROUP entry: the
// group after the command (nil after a delete), or why it was refused;
// for an ack, what it counted.
type GroupResult struct {
	Group *meridianv1.ConsumerGroup
	Ack   AckCounts
	Err   error
}

func (a applier) applyGroup(w *txnWriter, st *meridianv1.ApplyState, c *meridianv1.GroupCommand) *GroupResult {
	if c.GetOp() == nil {
		// Leaders validate the operation before proposing it, so only a
		// newer node proposes one this build does not know: stop, as for
		// an unknown command type, rather than skip it (the group would
		// differ between replicas).
		panic(fmt.Errorf("%w: a GroupCommand whose operation this build does not know: upgrade this node", ErrUnknownCommand))
	}
	if err := validateGroupCommand(c, HardLimits()); err != nil {
		return &GroupResult{Err: err}
	}
	read := func(name string) (*meridianv1.ConsumerGroup, error) {
		g := &meridianv1.ConsumerGroup{}
		ok, err := readProto(w.txn, groupKey(name), g)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrGroupNotFound, name)
		}
		return g, nil
	}
	var g *meridianv1.ConsumerGroup
	var deletes [][]byte
	switch op := c.GetOp().(type) {
	case *meridianv1.GroupCommand_Create:
		if _, err := read(op.Create.GetName()); err == nil {
			return &GroupResult{Err: fmt.Errorf("%w: %q", ErrGroupExists, op.Create.GetName())}
		} else if !errors.Is(err, ErrGroupNotFound) {
			return &GroupResult{Err: err}
		}
		g = proto.CloneOf(op.Create)
		g.Revision, g.CreatedUnixNanos, g.UpdatedUnixNanos = 1, c.GetUnixNanos(), c.GetUnixNanos()
		g.Acked = pruneAcked(g.GetAcked(), g.GetCheckpoint())
	case *meridianv1.GroupCommand_Delete:
		if _, err := read(op.Delete); err != nil {
			return &GroupResult{Err: err}
		}
		parked, err := parkedKeys(w.txn, op.Delete)
		if err != nil {
			return &GroupResult{Err: err}
		}
		deletes = append(parked, groupKey(op.Delete))
	case *meridianv1.GroupCommand_Ack:
		cur, err := read(op.Ack.GetName())
		if err != nil {
			return &GroupResult{Err: err}
		}
		return a.applyGroupAck(w, st, c, cur, op.Ack)
	case *meridianv1.GroupCommand_Commit:
		cur, err := read(op.Commit.GetName())
		if err != nil {
			return &GroupResult{Err: err}
		}
		if op.Commit.GetExpectedRevision() != cur.GetRevision() {
			return &GroupResult{Err: fmt.Errorf("%w: group %q is at revision %d, the commit expected %d; read the group again",
				ErrGroupConflict, cur.GetName(), cur.GetRevision(), op.Commit.GetExpectedRevision())}
		}
		if next := causal.Vector(op.Commit.GetCheckpoint()); !next.Covers(cur.GetCheckpoint()) {
			return &GroupResult{Err: fmt.Errorf("%w: group %q: checkpoint %v does not cover the group's %v (checkpoints only move forward)",
				ErrGroupConflict, cur.GetName(), next, causal.Vector(cur.GetCheckpoint()))}
		}
		g = cur
		g.Checkpoint = causal.Vector(op.Commit.GetCheckpoint()).Clone()
		g.Acked = pruneAcked(g.GetAcked(), g.GetCheckpoint())
		g.Revision++
		g.Generation++
		g.UpdatedUnixNanos = c.GetUnixNanos()
	}
	var writes []kv
	if g != nil {
		writes = []kv{{key: groupKey(g.GetName()), value: mustMarshal(g)}}
	}
	if err := w.stage(st, writes, deletes); err != nil {
		return &GroupResult{Err: err}
	}
	return &GroupResult{Group: g}
}

// Group returns the consumer group name as this replica has applied it.
func (f *FSM) Group(name string) (*meridianv1.ConsumerGroup, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	g := &meridianv1.ConsumerGroup{}
	ok, err := readProto(txn, groupKey(name), g)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q in region %s", ErrGroupNotFound, name, f.cfg.Region)
	}
	return g, nil
}

// Groups returns every consumer group of this replica, by name.
func (f *FSM) Groups() ([]*meridianv1.ConsumerGroup, error) {
	h, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte(prefixGroup)})
	defer it.Close()
	var out []*meridianv1.ConsumerGroup
	for it.Rewind(); it.Valid(); it.Next() {
		g := &meridianv1.ConsumerGroup{}
		if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, g) }); err != nil {
			return nil, fmt.Errorf("%w: group %q: %v", ErrCorruptState, it.Item().Key(), err)
		}
		out = append(out, g)
	}
	return out, nil
}

// groupsMethod is a ConsumerGroups client method, as a method expression
// (meridianv1connect.ConsumerGroupsClient.GetGroup).
type groupsMethod[Req, Resp any] func(meridianv1connect.ConsumerGroupsClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)

// atLeader answers req on the region leader: local when this node leads,
// else method on the leader with the request marked forwarded (served
// there or refused, never forwarded on). mutating says whether a broken
// hop leaves the outcome unknown.
func atLeader[Req, Resp any](ctx context.Context, n *Node, mutating bool, req *Req, method groupsMethod[Req, Resp], local func() (*Resp, error)) (*Resp, error) {
	var out *Resp
	err := n.routeToLeader(ctx, mutating,
		func() error {
			v, err := local()
			out = v
			return err
		},
		func(addr string) error {
			fctx, cancel := n.fwd.bound(ctx)
			defer cancel()
			r := connect.NewRequest(req)
			r.Header().Set(forwardedHeader, n.fwd.self)
			resp, err := method(n.fwd.groupsClient(addr), fctx, r)
			if err != nil {
				return fromConnectError(fctx, err, mutating)
			}
			out = resp.Msg
			return nil
		})
	return out, err
}

// writeGroup orders cmd through the region's Raft group on its leader and
// wraps the group the command leaves (nil after a delete) as the answer.
func writeGroup[Req, Resp any](ctx context.Context, n *Node, req *Req, method groupsMethod[Req, Resp], cmd *meridianv1.GroupCommand, wrap func(*meridianv1.ConsumerGroup) *Resp) (*Resp, error) {
	if err := validateGroupCommand(cmd, n.cfg.Limits); err != nil {
		return nil, err
	}
	return atLeader(ctx, n, true, req, method, func() (*Resp, error) {
		cmd := proto.CloneOf(cmd)
		cmd.UnixNanos = n.hlc.Now().WallNanos
		r, err := applyOnLeader[*GroupResult](ctx, n, meridianv1.CommandType_COMMAND_TYPE_GROUP, cmd)
		if err != nil {
			return nil, err
		}
		if r.Err != nil {
			return nil, r.Err
		}
		if cmd.GetCommit() != nil || cmd.GetDelete() != "" {
			// Repositioned or deleted: its dispatcher's leases and
			// lookahead are of the old group.
			n.dropDispatcher(groupName(cmd))
		}
		return wrap(r.Group), nil
	})
}

// groupName is the group a command changes.
func groupName(c *meridianv1.GroupCommand) string {
	switch op := c.GetOp().(type) {
	case *meridianv1.GroupCommand_Create:
		return op.Create.GetName()
	case *meridianv1.GroupCommand_Delete:
		return op.Delete
	case *meridianv1.GroupCommand_Commit:
		return op.Commit.GetName()
	case *meridianv1.GroupCommand_Ack:
		return op.Ack.GetName()
	}
	return ""
}

// CreateGroup creates a consumer group in this region.
func (n *Node) CreateGroup(ctx context.Context, req *meridianv1.CreateGroupRequest) (*meridianv1.CreateGroupResponse, error) {
	cmd := &meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Create{Create: &meridianv1.ConsumerGroup{
		Name: req.GetName(), Filter: req.GetFilter(), Checkpoint: causal.Vector(req.GetStart()).Clone(),
		Settings: req.GetSettings(), Acked: req.GetAcked(),
	}}}
	return writeGroup(ctx, n, req, meridianv1connect.ConsumerGroupsClient.CreateGroup, cmd,
		func(g *meridianv1.ConsumerGroup) *meridianv1.CreateGroupResponse {
			return &meridianv1.CreateGroupResponse{Group: g}
		})
}

// DeleteGroup deletes a consumer group of this region.
func (n *Node) DeleteGroup(ctx context.Context, req *meridianv1.DeleteGroupRequest) (*meridianv1.DeleteGroupResponse, error) {
	cmd := &meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Delete{Delete: req.GetName()}}
	return writeGroup(ctx, n, req, meridianv1connect.ConsumerGroupsClient.DeleteGroup, cmd,
		func(*meridianv1.ConsumerGroup) *meridianv1.DeleteGroupResponse {
			return &meridianv1.DeleteGroupResponse{}
		})
}

// CommitCheckpoint moves a group's checkpoint forward (compare-and-set on
// its revision).
func (n *Node) CommitCheckpoint(ctx context.Context, req *meridianv1.CommitCheckpointRequest) (*meridianv1.CommitCheckpointResponse, error) {
	cmd := &meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Commit{Commit: req}}
	return writeGroup(ctx, n, req, meridianv1connect.ConsumerGroupsClient.CommitCheckpoint, cmd,
		func(g *meridianv1.ConsumerGroup) *meridianv1.CommitCheckpointResponse {
			return &meridianv1.CommitCheckpointResponse{Group: g}
		})
}

// GetGroup returns a group as the region leader has applied it: the leader
// applies a group write before answering it, so a read after a write sees
// it, through any node (a follower forwards).
func (n *Node) GetGroup(ctx context.Context, req *meridianv1.GetGroupRequest) (*meridianv1.GetGroupResponse, error) {
	if err := ValidateGroupName(req.GetName()); err != nil {
		return nil, err
	}
	return atLeader(ctx, n, false, req, meridianv1connect.ConsumerGroupsClient.GetGroup, func() (*meridianv1.GetGroupResponse, error) {
		g, err := n.fsm.Group(req.GetName())
		if err != nil {
			return nil, err
		}
		return &meridianv1.GetGroupResponse{Group: g, Region: n.cfg.Region, Node: n.cfg.NodeID}, nil
	})
}

// ListGroups returns the region's groups by name, from the leader as
// GetGroup does.
func (n *Node) ListGroups(ctx context.Context, req *meridianv1.ListGroupsRequest) (*meridianv1.ListGroupsResponse, error) {
	return atLeader(ctx, n, false, req, meridianv1connect.ConsumerGroupsClient.ListGroups, func() (*meridianv1.ListGroupsResponse, error) {
		gs, err := n.fsm.Groups()
		if err != nil {
			return nil, err
		}
		slices.SortFunc(gs, func(a, b *meridianv1.ConsumerGroup) int { return strings.Compare(a.GetName(), b.GetName()) })
		return &meridianv1.ListGroupsResponse{Groups: gs, Region: n.cfg.Region, Node: n.cfg.NodeID}, nil
	})
}

// GroupsService is the Connect handler of a node's consumer groups.
type GroupsService struct {
	node *Node
}

var _ meridianv1connect.ConsumerGroupsHandler = (*GroupsService)(nil)

// NewGroupsService returns the consumer groups handler for n.
func NewGroupsService(n *Node) *GroupsService { return &GroupsService{node: n} }

// CreateGroup implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) CreateGroup(ctx context.Context, req *connect.Request[meridianv1.CreateGroupRequest]) (*connect.Response[meridianv1.CreateGroupResponse], error) {
	return serveUnary(ctx, req, s.node.CreateGroup)
}

// GetGroup implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) GetGroup(ctx context.Context, req *connect.Request[meridianv1.GetGroupRequest]) (*connect.Response[meridianv1.GetGroupResponse], error) {
	return serveUnary(ctx, req, s.node.GetGroup)
}

// ListGroups implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) ListGroups(ctx context.Context, req *connect.Request[meridianv1.ListGroupsRequest]) (*connect.Response[meridianv1.ListGroupsResponse], error) {
	return serveUnary(ctx, req, s.node.ListGroups)
}

// DeleteGroup implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) DeleteGroup(ctx context.Context, req *connect.Request[meridianv1.DeleteGroupRequest]) (*connect.Response[meridianv1.DeleteGroupResponse], error) {
	return serveUnary(ctx, req, s.node.DeleteGroup)
}

// CommitCheckpoint implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) CommitCheckpoint(ctx context.Context, req *connect.Request[meridianv1.CommitCheckpointRequest]) (*connect.Response[meridianv1.CommitCheckpointResponse], error) {
	return serveUnary(ctx, req, s.node.CommitCheckpoint)
}

// Fetch leases the group's next events to the consumer, on the region
// leader (a follower forwards, keeping the wait).
func (n *Node) Fetch(ctx context.Context, req *meridianv1.FetchRequest) (*meridianv1.FetchResponse, error) {
	if err := ValidateGroupName(req.GetName()); err != nil {
		return nil, err
	}
	if err := validateConsumer(req.GetConsumer()); err != nil {
		return nil, err
	}
	if c := req.GetMaxCount(); c > ReadCountMax {
		return nil, invalidf("max_count", "must be 1 to %d (0: %d), got %d", ReadCountMax, ReadCountDefault, c)
	}
	wait := time.Duration(req.GetWaitMs()) * time.Millisecond
	if wait > FetchWaitMax {
		return nil, invalidf("wait_ms", "must be 0 to %d, got %d", FetchWaitMax.Milliseconds(), req.GetWaitMs())
	}
	if _, ok := ctx.Deadline(); !ok {
		// A forwarded Fetch keeps its wait (the forwarder's own bound
		// applies only to calls without a deadline).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+n.cfg.ForwardTimeout)
		defer cancel()
	}
	deadline := time.Now().Add(wait)
	return atLeader(ctx, n, false, req, meridianv1connect.ConsumerGroupsClient.Fetch, func() (*meridianv1.FetchResponse, error) {
		for {
			d, err := n.dispatcher(req.GetName())
			if err != nil {
				return nil, err
			}
			out, err := d.fetch(ctx, req.GetConsumer(), clampCount(int(req.GetMaxCount())), max(time.Until(deadline), 0))
			if errors.Is(err, errDispatcherReplaced) {
				continue
			}
			if err != nil {
				return nil, err
			}
			return &meridianv1.FetchResponse{Deliveries: out, Region: n.cfg.Region, Node: n.cfg.NodeID}, nil
		}
	})
}

// Ack stores that the group handled the events, once each.
func (n *Node) Ack(ctx context.Context, req *meridianv1.AckRequest) (*meridianv1.AckResponse, error) {
	if err := validateSettle(req.GetName(), req.GetConsumer(), req.GetDots()); err != nil {
		return nil, err
	}
	return atLeader(ctx, n, true, req, meridianv1connect.ConsumerGroupsClient.Ack, func() (*meridianv1.AckResponse, error) {
		d, err := n.dispatcher(req.GetName())
		if err != nil {
			return nil, err
		}
		return d.ack(ctx, req.GetDots())
	})
}

// Nack gives leased events back to the group: delivered again, or parked.
func (n *Node) Nack(ctx context.Context, req *meridianv1.NackRequest) (*meridianv1.NackResponse, error) {
	if err := validateSettle(req.GetName(), req.GetConsumer(), req.GetDots()); err != nil {
		return nil, err
	}
	if len(req.GetReason()) > GroupReasonBytesMax {
		return nil, invalidf("reason", "at most %d bytes, got %d", GroupReasonBytesMax, len(req.GetReason()))
	}
	return atLeader(ctx, n, true, req, meridianv1connect.ConsumerGroupsClient.Nack, func() (*meridianv1.NackResponse, error) {
		d, err := n.dispatcher(req.GetName())
		if err != nil {
			return nil, err
		}
		return d.nack(ctx, req.GetConsumer(), req.GetDots(), req.GetPark(), req.GetReason())
	})
}

// ListParked pages through a group's parked events, from the leader.
func (n *Node) ListParked(ctx context.Context, req *meridianv1.ListParkedRequest) (*meridianv1.ListParkedResponse, error) {
	if err := ValidateGroupName(req.GetName()); err != nil {
		return nil, err
	}
	if c := req.GetMaxCount(); c > ReadCountMax {
		return nil, invalidf("max_count", "must be 1 to %d (0: %d), got %d", ReadCountMax, ReadCountDefault, c)
	}
	var after *causal.Dot
	if a := req.GetAfter(); a != nil {
		if err := validateDots("after", []*meridianv1.Dot{a}, 1); err != nil {
			return nil, err
		}
		d := causalDot(a)
		after = &d
	}
	return atLeader(ctx, n, false, req, meridianv1connect.ConsumerGroupsClient.ListParked, func() (*meridianv1.ListParkedResponse, error) {
		if _, err := n.fsm.Group(req.GetName()); err != nil {
			return nil, err
		}
		parked, end, err := n.fsm.Parked(req.GetName(), after, clampCount(int(req.GetMaxCount())))
		if err != nil {
			return nil, err
		}
		return &meridianv1.ListParkedResponse{Parked: parked, End: end}, nil
	})
}

// DropParked removes parked events of a group.
func (n *Node) DropParked(ctx context.Context, req *meridianv1.DropParkedRequest) (*meridianv1.DropParkedResponse, error) {
	cmd := &meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Ack{Ack: &meridianv1.GroupAck{Name: req.GetName(), DropParked: req.GetDots()}}}
	if len(req.GetDots()) == 0 {
		return nil, invalidf("dots", "name 1 to %d parked events (their event.origin)", GroupDotsMax)
	}
	if err := validateGroupCommand(cmd, n.cfg.Limits); err != nil {
		return nil, err
	}
	return atLeader(ctx, n, true, req, meridianv1connect.ConsumerGroupsClient.DropParked, func() (*meridianv1.DropParkedResponse, error) {
		cmd := proto.CloneOf(cmd)
		cmd.UnixNanos = n.hlc.Now().WallNanos
		r, err := applyOnLeader[*GroupResult](ctx, n, meridianv1.CommandType_COMMAND_TYPE_GROUP, cmd)
		if err != nil {
			return nil, err
		}
		if r.Err != nil {
			return nil, r.Err
		}
		return &meridianv1.DropParkedResponse{Dropped: uint32(r.Ack.Dropped)}, nil
	})
}

// validateConsumer checks a consumer name (the form of a group name).
func validateConsumer(consumer string) error {
	if err := ValidateGroupName(consumer); err != nil {
		var ie *InvalidArgumentError
		if errors.As(err, &ie) {
			ie.Field = "consumer"
		}
		return err
	}
	return nil
}

func validateSettle(name, consumer string, dots []*meridianv1.Dot) error {
	if err := ValidateGroupName(name); err != nil {
		return err
	}
	if err := validateConsumer(consumer); err != nil {
		return err
	}
	if len(dots) == 0 {
		return invalidf("dots", "name 1 to %d delivered events (their event.origin)", GroupDotsMax)
	}
	return validateDots("dots", dots, GroupDotsMax)
}

// Fetch implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) Fetch(ctx context.Context, req *connect.Request[meridianv1.FetchRequest]) (*connect.Response[meridianv1.FetchResponse], error) {
	return serveUnary(ctx, req, s.node.Fetch)
}

// Ack implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) Ack(ctx context.Context, req *connect.Request[meridianv1.AckRequest]) (*connect.Response[meridianv1.AckResponse], error) {
	return serveUnary(ctx, req, s.node.Ack)
}

// Nack implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) Nack(ctx context.Context, req *connect.Request[meridianv1.NackRequest]) (*connect.Response[meridianv1.NackResponse], error) {
	return serveUnary(ctx, req, s.node.Nack)
}

// ListParked implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) ListParked(ctx context.Context, req *connect.Request[meridianv1.ListParkedRequest]) (*connect.Response[meridianv1.ListParkedResponse], error) {
	return serveUnary(ctx, req, s.node.ListParked)
}

// DropParked implements meridianv1connect.ConsumerGroupsHandler.
func (s *GroupsService) DropParked(ctx context.Context, req *connect.Request[meridianv1.DropParkedRequest]) (*connect.Response[meridianv1.DropParkedResponse], error) {
	return serveUnary(ctx, req, s.node.DropParked)
}
