package region

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/h2c"
)

// Headers of forwarded requests and of errors, so that a forwarded error
// keeps its meaning across the hop.
const (
	// forwardedHeader marks a request forwarded by a follower; its value is
	// the forwarding node's id. A forwarded request is never forwarded again.
	forwardedHeader = "Meridian-Forwarded-By"
	// errorKindHeader names the region error behind a Connect error.
	errorKindHeader = "Meridian-Error"
	// currentVersionHeader carries VersionConflictError.Current.
	currentVersionHeader = "Meridian-Current-Version"
)

// Error kinds carried in errorKindHeader.
const (
	kindNotLeader           = "not-leader"
	kindOutcomeUnknown      = "outcome-unknown"
	kindOverloaded          = "overloaded"
	kindTimeout             = "timeout"
	kindTooStale            = "too-stale"
	kindNotActiveActive     = "not-active-active"
	kindInvalidArgument     = "invalid-argument"
	kindVersionConflict     = "version-conflict"
	kindIdempotencyConflict = "idempotency-conflict"
	kindClosed              = "closed"
	kindDeadline            = "deadline"
	kindCanceled            = "canceled"
	kindInternal            = "internal"
	kindDepsNotApplied      = "deps-not-applied"
	kindNotReplicated       = "not-replicated"
	kindGroupNotFound       = "group-not-found"
	kindGroupExists         = "group-exists"
	kindGroupConflict       = "group-conflict"
	kindGroupParkedFull     = "group-parked-full"
	kindStreamDeleted       = "stream-deleted"
)

type forwardedKey struct{}

// WithForwarded marks ctx as serving a request forwarded by node from: the
// node serves it itself or fails with ErrNotLeader, never forwards it again.
func WithForwarded(ctx context.Context, from string) context.Context {
	return context.WithValue(ctx, forwardedKey{}, from)
}

func isForwarded(ctx context.Context) bool {
	v, _ := ctx.Value(forwardedKey{}).(string)
	return v != ""
}

// forwarder holds the Connect clients to other nodes' APIs, all dialing
// through the node's Network.
type forwarder struct {
	self       string
	timeout    time.Duration
	httpClient *http.Client
	stubs      *h2c.Stubs[meridianv1connect.EventStoreClient]
	groups     *h2c.Stubs[meridianv1connect.ConsumerGroupsClient]
}

func newForwarder(self string, network Network, dialTimeout, timeout time.Duration, opts []connect.ClientOption) *forwarder {
	httpClient := newHTTPClient(network, dialTimeout)
	return &forwarder{
		self:       self,
		timeout:    timeout,
		httpClient: httpClient,
		stubs: h2c.NewStubs(func(url string) meridianv1connect.EventStoreClient {
			return meridianv1connect.NewEventStoreClient(httpClient, url, opts...)
		}),
		groups: h2c.NewStubs(func(url string) meridianv1connect.ConsumerGroupsClient {
			return meridianv1connect.NewConsumerGroupsClient(httpClient, url, opts...)
		}),
	}
}

func (f *forwarder) client(addr string) meridianv1connect.EventStoreClient { return f.stubs.For(addr) }

func (f *forwarder) groupsClient(addr string) meridianv1connect.ConsumerGroupsClient {
	return f.groups.For(addr)
}

func (f *forwarder) close() {
	f.httpClient.CloseIdleConnections()
}

// bound gives a forwarded request the forwarder's timeout when the caller
// set no deadline, so a request never waits forever on a silent leader.
func (f *forwarder) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, f.timeout)
}

// append sends req to the node at addr: the region's leader (inRegion:
// marked forwarded, so it is served there or fails) or a node of the home
// region (a fresh request there, routed by rt).
func (f *forwarder) append(ctx context.Context, addr string, req *meridianv1.AppendRequest, rt route, inRegion bool) (*meridianv1.AppendResponse, error) {
	ctx, cancel := f.bound(ctx)
	defer cancel()
	r := connect.NewRequest(req)
	f.setHeaders(r.Header(), rt, inRegion)
	resp, err := f.client(addr).Append(ctx, r)
	if err != nil {
		return nil, fromConnectError(ctx, err, true)
	}
	return resp.Msg, nil
}

// read sends req to the node at addr, as append does.
func (f *forwarder) read(ctx context.Context, addr string, req *meridianv1.ReadRequest, rt route, inRegion bool) (*meridianv1.ReadResponse, error) {
	ctx, cancel := f.bound(ctx)
	defer cancel()
	r := connect.NewRequest(req)
	f.setHeaders(r.Header(), rt, inRegion)
	resp, err := f.client(addr).Read(ctx, r)
	if err != nil {
		return nil, fromConnectError(ctx, err, false)
	}
	return resp.Msg, nil
}

func (f *forwarder) setHeaders(h http.Header, rt route, inRegion bool) {
	if inRegion {
		h.Set(forwardedHeader, f.self)
	}
	setRoute(h, rt)
}

// remoteError is an error answered by another node (or by the hop to it).
// It keeps the remote code and message, so the service can answer the
// client exactly as the leader did, and unwraps to the region sentinel.
type remoteError struct {
	code     connect.Code
	msg      string
	kind     string
	current  uint64 // kindVersionConflict: the current version
	sentinel error
	cause    error // the transport error, if any
	// details are the remote error's details (a StreamHead, a HomeRedirect),
	// passed on to the client unchanged.
	details []*connect.ErrorDetail
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() []error {
	var errs []error
	if e.sentinel != nil {
		errs = append(errs, e.sentinel)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

var kindSentinels = map[string]error{
	kindNotLeader:           ErrNotLeader,
	kindOutcomeUnknown:      ErrOutcomeUnknown,
	kindOverloaded:          ErrOverloaded,
	kindTimeout:             ErrTimeout,
	kindInvalidArgument:     ErrInvalidArgument,
	kindVersionConflict:     ErrWrongExpectedVersion,
	kindIdempotencyConflict: ErrIdempotencyConflict,
	kindClosed:              ErrNotLeader, // the remote node is shutting down: not served
	kindDeadline:            context.DeadlineExceeded,
	kindCanceled:            context.Canceled,
	kindNotHome:             ErrNotHome,
	kindRoutingLoop:         ErrRoutingLoop,
	kindNoPlacement:         ErrNoPlacement,
	kindActiveActive:        ErrActiveActive,
	kindMoving:              ErrMoving,
	kindLeaseExpired:        ErrLeaseExpired,
	kindStale:               ErrStalePlacement,
	kindDepsNotApplied:      ErrDepsNotApplied,
	kindNotReplicated:       ErrNotReplicated,
	kindTooStale:            ErrTooStale,
	kindNotActiveActive:     ErrNotActiveActive,
	kindGroupNotFound:       ErrGroupNotFound,
	kindGroupExists:         ErrGroupExists,
	kindGroupConflict:       ErrGroupConflict,
	kindGroupParkedFull:     ErrGroupParkedFull,
	kindStreamDeleted:       ErrStreamDeleted,
}

// fromConnectError turns a forwarding failure into a region error. A failure
// to connect means nothing was sent (ErrNotLeader: retry elsewhere). Any
// other failure without a region error kind is a broken hop: for a write
// (mutating) the request may have reached the leader, so ErrOutcomeUnknown.
func fromConnectError(ctx context.Context, err error, mutating bool) error {
	if isDialError(err) {
		return fmt.Errorf("%w: leader unreachable: %w", ErrNotLeader, err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		if mutating && ctx.Err() != nil {
			return fmt.Errorf("%w: forwarding failed: %w", ErrOutcomeUnknown, ctx.Err())
		}
		if mutating {
			return fmt.Errorf("%w: forwarding failed: %w", ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("%w: forwarding failed: %w", ErrNotLeader, err)
	}
	kind := ce.Meta().Get(errorKindHeader)
	re := &remoteError{code: ce.Code(), msg: ce.Message(), kind: kind, sentinel: kindSentinels[kind], cause: ce, details: ce.Details()}
	if kind == kindVersionConflict {
		re.current, _ = strconv.ParseUint(ce.Meta().Get(currentVersionHeader), 10, 64)
	}
	if kind == "" {
		// The hop broke (a reset, the peer's server closing) or the peer is
		// not a Meridian node. A write may have reached the leader.
		switch {
		case !mutating:
			re.sentinel, re.kind = ErrNotLeader, kindNotLeader
		case ctx.Err() != nil:
			re.sentinel, re.kind = ErrOutcomeUnknown, kindOutcomeUnknown
			re.code = connect.CodeDeadlineExceeded
			re.msg = ErrOutcomeUnknown.Error() + ": " + re.msg
		default:
			re.sentinel, re.kind = ErrOutcomeUnknown, kindOutcomeUnknown
			re.code = connect.CodeUnavailable
			re.msg = ErrOutcomeUnknown.Error() + ": forwarding to the leader failed: " + re.msg
		}
	}
	return re
}
