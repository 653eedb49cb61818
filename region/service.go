package region

import (
	"context"
	"errors"
	"strconv"

	"connectrpc.com/connect"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// Service is the Connect handler of meridian.v1.EventStore over a Node. It
// is the only place where region errors become Connect codes:
//
//	ErrInvalidArgument, ErrEntryTooLarge  InvalidArgument (message names the field and range)
//	ErrWrongExpectedVersion               FailedPrecondition; message ends "current version N";
//	                                      header Meridian-Current-Version: N; detail meridian.v1.StreamHead{version: N}
//	ErrIdempotencyConflict                AlreadyExists (the id exists with other content; distinct
//	                                      from version conflicts so clients can tell them apart)
//	ErrOverloaded                         ResourceExhausted
//	ErrNotLeader, ErrTimeout, closed      Unavailable (not served: plain retry)
//	ErrOutcomeUnknown                     Unavailable, or DeadlineExceeded when the client's
//	                                      deadline ended it; message says retrying with the same
//	                                      event ids is safe; header Meridian-Error: outcome-unknown
//	ErrNotHome (ROUTING_REDIRECT)         FailedPrecondition; detail meridian.v1.HomeRedirect
//	                                      {home_region, epoch, endpoints}
//	ErrRoutingLoop, ErrNoPlacement        Unavailable (placement copies disagree / no table yet)
//	ErrActiveActive                       FailedPrecondition (a STRONG read of an active-active entity)
//	ErrGroupNotFound, ErrGroupExists      NotFound, AlreadyExists (consumer groups)
//	ErrGroupConflict                      Aborted (a commit at a stale revision or moving backwards)
//	ErrGroupParkedFull                    FailedPrecondition (a group's parked list is full)
//	ErrStreamDeleted                      FailedPrecondition (an append to a stream with a $tombstone)
//	context deadline / cancel             DeadlineExceeded / Canceled
//
// Every error carries the header Meridian-Error naming its kind, which a
// forwarding node uses to rebuild the region error, and the SDK reads to
// tell a write refused before Raft from one whose outcome is unknown
// (client.notAppliedKinds: keep the two in step).
type Service struct {
	node *Node
}

var _ meridianv1connect.EventStoreHandler = (*Service)(nil)

// NewService returns the Connect handler for n.
func NewService(n *Node) *Service { return &Service{node: n} }

func forwardedContext(ctx context.Context, h interface{ Get(string) string }) context.Context {
	ctx = withRoute(ctx, h)
	if from := h.Get(forwardedHeader); from != "" {
		return WithForwarded(ctx, from)
	}
	return ctx
}

// serveUnary answers a unary call with fn, given the request's forwarding
// mark and route (forwardedContext), its error mapped by ConnectError.
func serveUnary[Req, Resp any](ctx context.Context, req *connect.Request[Req], fn func(context.Context, *Req) (*Resp, error)) (*connect.Response[Resp], error) {
	resp, err := fn(forwardedContext(ctx, req.Header()), req.Msg)
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(resp), nil
}

// Append implements meridianv1connect.EventStoreHandler.
func (s *Service) Append(ctx context.Context, req *connect.Request[meridianv1.AppendRequest]) (*connect.Response[meridianv1.AppendResponse], error) {
	return serveUnary(ctx, req, s.node.Append)
}

// Read implements meridianv1connect.EventStoreHandler.
func (s *Service) Read(ctx context.Context, req *connect.Request[meridianv1.ReadRequest]) (*connect.Response[meridianv1.ReadResponse], error) {
	return serveUnary(ctx, req, s.node.Read)
}

// ReadState implements meridianv1connect.EventStoreHandler: a read with
// ReadExtra.state, routed like any read at its consistency level.
func (s *Service) ReadState(ctx context.Context, req *connect.Request[meridianv1.ReadStateRequest]) (*connect.Response[meridianv1.ReadStateResponse], error) {
	m := req.Msg
	resp, err := s.node.Read(forwardedContext(ctx, req.Header()), &meridianv1.ReadRequest{
		Entity: m.GetEntity(), Consistency: m.GetConsistency(), MaxStaleness: m.GetMaxStaleness(),
		SessionToken: m.GetSessionToken(), Extra: &meridianv1.ReadExtra{State: true},
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&meridianv1.ReadStateResponse{
		State: resp.GetState(), Vector: resp.GetVector(), Events: resp.GetHeadVersion(),
		SessionToken: resp.GetSessionToken(), Region: resp.GetRegion(), Node: resp.GetNode(),
	}), nil
}

// ReadConflicts implements meridianv1connect.EventStoreHandler: a read
// with ReadExtra.conflicts.
func (s *Service) ReadConflicts(ctx context.Context, req *connect.Request[meridianv1.ReadConflictsRequest]) (*connect.Response[meridianv1.ReadConflictsResponse], error) {
	m := req.Msg
	resp, err := s.node.Read(forwardedContext(ctx, req.Header()), &meridianv1.ReadRequest{
		Entity: m.GetEntity(), Consistency: m.GetConsistency(), MaxStaleness: m.GetMaxStaleness(),
		SessionToken: m.GetSessionToken(),
		Extra:        &meridianv1.ReadExtra{Conflicts: true, ConflictsMax: m.GetMaxCount(), ConflictsAfter: m.GetAfter()},
	})
	if err != nil {
		return nil, ConnectError(err)
	}
	return connect.NewResponse(&meridianv1.ReadConflictsResponse{
		Conflicts: resp.GetConflicts(), NextPageToken: resp.GetConflictsNext(),
		SessionToken: resp.GetSessionToken(), Region: resp.GetRegion(), Node: resp.GetNode(),
	}), nil
}

// ReadLog implements meridianv1connect.EventStoreHandler.
func (s *Service) ReadLog(ctx context.Context, req *connect.Request[meridianv1.ReadLogRequest]) (*connect.Response[meridianv1.ReadLogResponse], error) {
	return serveUnary(ctx, req, s.node.ReadLog)
}

// Subscribe implements meridianv1connect.EventStoreHandler.
func (s *Service) Subscribe(ctx context.Context, req *connect.Request[meridianv1.SubscribeRequest], stream *connect.ServerStream[meridianv1.SubscribeResponse]) error {
	err := s.node.Subscribe(ctx, req.Msg, stream.Send)
	if err != nil {
		return ConnectError(err)
	}
	return nil
}

// Status implements meridianv1connect.EventStoreHandler.
func (s *Service) Status(context.Context, *connect.Request[meridianv1.StatusRequest]) (*connect.Response[meridianv1.StatusResponse], error) {
	return connect.NewResponse(s.node.Status()), nil
}

// ConnectError maps a region error to a Connect error (see Service). It is
// exported for node/ and other handlers that serve region errors.
func ConnectError(err error) *connect.Error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var re *remoteError
	if errors.As(err, &re) && re.kind != "" {
		// Answered by the leader: keep its code and message.
		ce = connect.NewError(re.code, errors.New(re.msg))
		ce.Meta().Set(errorKindHeader, re.kind)
		if re.kind == kindVersionConflict {
			ce.Meta().Set(currentVersionHeader, strconv.FormatUint(re.current, 10))
		}
		for _, d := range re.details {
			ce.AddDetail(d)
		}
		return ce
	}
	code, kind := classify(err)
	ce = connect.NewError(code, err)
	ce.Meta().Set(errorKindHeader, kind)
	var vc *VersionConflictError
	if errors.As(err, &vc) {
		ce = connect.NewError(code, errors.New(vc.Error()+"; current version "+strconv.FormatUint(vc.Current, 10)))
		ce.Meta().Set(errorKindHeader, kind)
		setCurrentVersion(ce, vc.Current)
	}
	var nh *NotHomeError
	if errors.As(err, &nh) {
		setNotHomeDetail(ce, nh)
	}
	return ce
}

func setCurrentVersion(ce *connect.Error, current uint64) {
	ce.Meta().Set(currentVersionHeader, strconv.FormatUint(current, 10))
	if d, err := connect.NewErrorDetail(&meridianv1.StreamHead{Version: current}); err == nil {
		ce.AddDetail(d)
	}
}

// classify picks the Connect code and error kind of a region error.
func classify(err error) (connect.Code, string) {
	switch {
	case errors.Is(err, ErrOutcomeUnknown):
		if errors.Is(err, context.DeadlineExceeded) {
			return connect.CodeDeadlineExceeded, kindOutcomeUnknown
		}
		return connect.CodeUnavailable, kindOutcomeUnknown
	case errors.Is(err, ErrInvalidArgument), errors.Is(err, ErrEntryTooLarge):
		return connect.CodeInvalidArgument, kindInvalidArgument
	case errors.Is(err, ErrWrongExpectedVersion):
		return connect.CodeFailedPrecondition, kindVersionConflict
	case errors.Is(err, ErrIdempotencyConflict):
		return connect.CodeAlreadyExists, kindIdempotencyConflict
	case errors.Is(err, ErrGroupNotFound):
		return connect.CodeNotFound, kindGroupNotFound
	case errors.Is(err, ErrGroupExists):
		return connect.CodeAlreadyExists, kindGroupExists
	case errors.Is(err, ErrGroupConflict):
		return connect.CodeAborted, kindGroupConflict
	case errors.Is(err, ErrGroupParkedFull):
		return connect.CodeFailedPrecondition, kindGroupParkedFull
	case errors.Is(err, ErrStreamDeleted):
		return connect.CodeFailedPrecondition, kindStreamDeleted
	case errors.Is(err, ErrOverloaded):
		return connect.CodeResourceExhausted, kindOverloaded
	case errors.Is(err, ErrNotHome):
		return connect.CodeFailedPrecondition, kindNotHome
	case errors.Is(err, ErrActiveActive):
		return connect.CodeFailedPrecondition, kindActiveActive
	case errors.Is(err, ErrNotActiveActive):
		return connect.CodeFailedPrecondition, kindNotActiveActive
	case errors.Is(err, ErrRoutingLoop):
		return connect.CodeUnavailable, kindRoutingLoop
	case errors.Is(err, ErrNoPlacement):
		return connect.CodeUnavailable, kindNoPlacement
	case errors.Is(err, ErrMoving):
		return connect.CodeUnavailable, kindMoving
	case errors.Is(err, ErrLeaseExpired):
		return connect.CodeUnavailable, kindLeaseExpired
	case errors.Is(err, ErrStalePlacement):
		return connect.CodeUnavailable, kindStale
	case errors.Is(err, ErrNotLeader):
		return connect.CodeUnavailable, kindNotLeader
	case errors.Is(err, ErrTimeout):
		return connect.CodeUnavailable, kindTimeout
	case errors.Is(err, ErrTooStale):
		return connect.CodeUnavailable, kindTooStale
	case errors.Is(err, ErrNotReplicated):
		if errors.Is(err, context.DeadlineExceeded) {
			return connect.CodeDeadlineExceeded, kindNotReplicated
		}
		return connect.CodeUnavailable, kindNotReplicated
	case errors.Is(err, ErrDepsNotApplied):
		return connect.CodeUnavailable, kindDepsNotApplied
	case errors.Is(err, ErrNodeClosed), errors.Is(err, ErrStoreClosed):
		return connect.CodeUnavailable, kindClosed
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded, kindDeadline
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled, kindCanceled
	default:
		return connect.CodeInternal, kindInternal
	}
}
