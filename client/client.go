package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// endpointsMax bounds the endpoints one Client holds.
const endpointsMax = 64

// Client is a Meridian API client. It is safe for concurrent use.
type Client struct {
	// ownSet holds the endpoints the client was given, and the ones
	// DiscoverEndpoints added; redirects add others (homes).
	ownSet atomic.Pointer[endpointSet]
	// given are the endpoints New was given, normalized.
	given     []string
	session   session
	retry     RetryPolicy
	logger    *slog.Logger
	closeIdle func()
	// dial builds the stubs of one endpoint (normalized base URL).
	dial func(base string) *endpoint
	// scheme ("http" or "https") completes host:port endpoints, given,
	// discovered or redirected to.
	scheme string
	// homes caches the stubs of endpoints learnt from redirects.
	homes endpointCache
}

// endpoint is one node's API: its base URL and the stubs of its services.
type endpoint struct {
	base      string
	store     meridianv1connect.EventStoreClient
	placement meridianv1connect.PlacementClient
	members   meridianv1connect.MembershipClient
	groups    meridianv1connect.ConsumerGroupsClient
}

// endpointSet is an ordered list of endpoints and the one tried first.
type endpointSet struct {
	eps     []*endpoint
	current atomic.Uint64 // index of the endpoint tried first
}

// pick returns the endpoint to try and the index it was picked at.
func (s *endpointSet) pick() (*endpoint, uint64) {
	idx := s.current.Load()
	return s.eps[idx%uint64(len(s.eps))], idx
}

// advance moves on from the endpoint picked at idx, unless a concurrent
// call already did.
func (s *endpointSet) advance(idx uint64) { s.current.CompareAndSwap(idx, idx+1) }

// New returns a client for the given endpoints ("http://host:port",
// "https://host:port" or "host:port", which is https:// with WithTLS or
// when the first endpoint is https://, else http://). Calls go to the first endpoint until it fails with a
// retryable error, then move on to the next.
func New(endpoints []string, opts ...Option) (*Client, error) {
	cfg := config{retry: DefaultRetryPolicy()}
	for _, o := range opts {
		o(&cfg)
	}
	if len(endpoints) == 0 {
		return nil, ErrNoEndpoints
	}
	if len(endpoints) > endpointsMax {
		return nil, fmt.Errorf("%w: %d endpoints, at most %d", ErrInvalidOption, len(endpoints), endpointsMax)
	}
	if err := cfg.retry.Validate(); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		retry:  cfg.retry,
		logger: cfg.logger.With("component", "client"),
	}
	c.session.token = cfg.sessionToken
	httpClient := cfg.httpClient
	if httpClient == nil {
		hc := newHTTPClient(cfg.dial, cfg.tls)
		httpClient = hc
		c.closeIdle = hc.CloseIdleConnections
	}
	connectOpts := append([]connect.ClientOption(nil), cfg.connectOpts...)
	if cfg.bearer != "" {
		connectOpts = append(connectOpts, connect.WithInterceptors(bearerInterceptor{header: "Bearer " + cfg.bearer}))
	}
	if cfg.grpc {
		connectOpts = append(connectOpts, connect.WithGRPC())
	}
	c.dial = func(base string) *endpoint {
		return &endpoint{
			base:      base,
			store:     meridianv1connect.NewEventStoreClient(httpClient, base, connectOpts...),
			placement: meridianv1connect.NewPlacementClient(httpClient, base, connectOpts...),
			members:   meridianv1connect.NewMembershipClient(httpClient, base, connectOpts...),
			groups:    meridianv1connect.NewConsumerGroupsClient(httpClient, base, connectOpts...),
		}
	}
	c.scheme = "http"
	if cfg.tls != nil || strings.HasPrefix(strings.TrimSpace(endpoints[0]), "https://") {
		c.scheme = "https"
	}
	set := &endpointSet{}
	for _, e := range endpoints {
		base, err := c.normalizeEndpoint(e)
		if err != nil {
			return nil, err
		}
		c.given = append(c.given, base)
		set.eps = append(set.eps, c.dial(base))
	}
	c.ownSet.Store(set)
	return c, nil
}

// normalizeEndpoint turns "host:port" into "<c.scheme>://host:port" and
// rejects anything that is not a plain http or https URL.
func (c *Client) normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if !strings.Contains(e, "://") {
		e = c.scheme + "://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidEndpoint, e, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%w: %q: want http://host:port or https://host:port", ErrInvalidEndpoint, e)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// own returns the client's own endpoints.
func (c *Client) own() *endpointSet { return c.ownSet.Load() }

// Endpoints returns the normalized endpoints, in order.
func (c *Client) Endpoints() []string {
	eps := c.own().eps
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.base
	}
	return out
}

// SessionToken returns the session token covering everything this client has
// written or read so far. Save it to continue the session in another client.
func (c *Client) SessionToken() string { return c.session.get() }

// Close releases idle connections. The Client must not be used afterwards.
func (c *Client) Close() error {
	if c.closeIdle != nil {
		c.closeIdle()
	}
	return nil
}

// retryable reports whether an error may go away on another attempt or
// another node. Unavailable includes the server's "outcome unknown": the
// write may have committed, and retrying with the same event ids is safe.
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeResourceExhausted:
		return true
	case connect.CodeDeadlineExceeded, connect.CodeCanceled:
		// An attempt's own timeout, which the server sees through the
		// propagated deadline and may answer first as Canceled, or a node
		// shutting down. Callers check their own context before retrying.
		return true
	}
	return false
}

// call runs op against the current endpoint of set, retrying retryable
// errors on the next endpoint with backoff, within the retry policy's bounds.
func call[T any](ctx context.Context, c *Client, set *endpointSet, method string, op func(ctx context.Context, ep *endpoint) (T, error)) (T, error) {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     c.retry.InitialBackoff,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         c.retry.MaxBackoff,
	}
	attempt := 0
	// The error of the last attempt that ended while ctx was alive, kept for
	// when ctx ends first: an attempt cut short by ctx only repeats ctx.Err().
	var lastErr error
	// unknown: some attempt may have taken effect (IsOutcomeUnknown).
	unknown := false
	res, err := backoff.Retry(ctx, func() (T, error) {
		attempt++
		ep, idx := set.pick()
		actx, cancel := ctx, context.CancelFunc(func() {})
		if c.retry.AttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, c.retry.AttemptTimeout)
		}
		res, err := op(actx, ep)
		if ctx.Err() == nil {
			lastErr = err
		}
		if err != nil && attemptOutcomeUnknown(err) {
			unknown = true
		}
		// The attempt's own deadline may surface as any code (the server
		// sees the propagated deadline and may answer Canceled first): it is
		// outcome unknown, so retry whatever the code says.
		attemptExpired := actx.Err() != nil
		cancel()
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil || !(retryable(err) || attemptExpired) {
			return res, backoff.Permanent(err)
		}
		// Move on to the next endpoint, unless a concurrent call already did.
		set.advance(idx)
		c.logger.Debug("retrying", "method", method, "attempt", attempt,
			"endpoint", ep.base, "code", connect.CodeOf(err).String(), "err", err)
		return res, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(c.retry.MaxAttempts)),
		backoff.WithMaxElapsedTime(c.retry.MaxElapsed),
	)
	// When the caller's context ends between attempts or cuts one short,
	// backoff returns only the context's error or the cut attempt's; keep
	// what the last complete attempt said (a refused
	// connection, outcome unknown, ...) so callers can still act on it.
	if err != nil && lastErr != nil && ctx.Err() != nil && !errors.Is(err, lastErr) {
		err = fmt.Errorf("%w; last attempt: %w", ctx.Err(), lastErr)
	}
	if err != nil {
		err = &callError{err: err, unknown: unknown}
	}
	return res, err
}

// callError is what call returns on failure: the error as it was, and
// whether any attempt may have taken effect, which the last error alone
// cannot say (an attempt that timed out, then one refused by a node that is
// not the leader).
type callError struct {
	err     error
	unknown bool
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// errorKindHeader names the kind of a server's error (region/service.go).
const errorKindHeader = "Meridian-Error"

// notAppliedKinds are the server's error kinds for a write that was refused
// before it was proposed to Raft, so it provably took no effect (region:
// ErrNotLeader, ErrMoving, ErrLeaseExpired, ErrStalePlacement,
// ErrDepsNotApplied, ErrNoPlacement, ErrRoutingLoop, ErrOverloaded). Keep
// in step with region/service.go.
var notAppliedKinds = map[string]bool{
	"not-leader": true, "moving": true, "lease-expired": true, "stale-placement": true,
	"deps-not-applied": true, "no-placement": true, "routing-loop": true, "overloaded": true,
}

// attemptOutcomeUnknown reports whether one attempt's error leaves open
// whether it took effect.
func attemptOutcomeUnknown(err error) bool {
	var ce *connect.Error
	if errors.As(err, &ce) && notAppliedKinds[ce.Meta().Get(errorKindHeader)] {
		return false
	}
	// A connection that was never made carried no request.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled, connect.CodeUnknown:
		return true
	}
	return false
}

// AppendOption configures one Append.
type AppendOption func(*meridianv1.AppendRequest)

// ExpectAny accepts the append whatever the stream's head (the default).
func ExpectAny() AppendOption {
	return func(r *meridianv1.AppendRequest) {
		r.Expected = &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_Any_{Any: &meridianv1.ExpectedVersion_Any{}}}
	}
}

// ExpectNoStream accepts the append only if the stream has no events.
func ExpectNoStream() AppendOption {
	return func(r *meridianv1.AppendRequest) {
		r.Expected = &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_NoStream_{NoStream: &meridianv1.ExpectedVersion_NoStream{}}}
	}
}

// ExpectStreamExists accepts the append only if the stream has at least one event.
func ExpectStreamExists() AppendOption {
	return func(r *meridianv1.AppendRequest) {
		r.Expected = &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_StreamExists_{StreamExists: &meridianv1.ExpectedVersion_StreamExists{}}}
	}
}

// ExpectVersion accepts the append only if the stream's head version is v.
func ExpectVersion(v uint64) AppendOption {
	return func(r *meridianv1.AppendRequest) {
		r.Expected = &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_Exact{Exact: v}}
	}
}

// Direct asks the node that receives the append not to forward it to the
// entity's home region but to answer with a HomeRedirect; the client then
// sends the same append (the same event ids, so it is safe) straight to the
// home's endpoints. It saves the hop between regions when the entity is
// written often from far away. Redirects are followed at most redirectsMax
// times per Append (placement moving while the append travels); each leg
// has the whole retry policy.
func Direct() AppendOption {
	return func(r *meridianv1.AppendRequest) { r.Routing = meridianv1.Routing_ROUTING_REDIRECT }
}

// WithDurability sets when the append is acknowledged (default: region).
func WithDurability(d meridianv1.Durability, minRegions uint32) AppendOption {
	return func(r *meridianv1.AppendRequest) { r.Durability = d; r.MinRegions = minRegions }
}

// Append appends events atomically to entity's stream. Events without an id
// get a fresh UUIDv7, written into the given events so the caller can see it;
// every retry sends the same ids. The session token is attached and updated.
func (c *Client) Append(ctx context.Context, entity string, events []*meridianv1.ProposedEvent, opts ...AppendOption) (*meridianv1.AppendResponse, error) {
	for i, ev := range events {
		if ev == nil {
			return nil, fmt.Errorf("%w: events[%d] is nil", ErrInvalidOption, i)
		}
		if ev.Id == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("client: generate event id: %w", err)
			}
			ev.Id = id.String()
		} else if _, err := uuid.Parse(ev.Id); err != nil {
			return nil, fmt.Errorf("%w: events[%d].id %q: %v", ErrInvalidEventID, i, ev.Id, err)
		}
	}
	req := &meridianv1.AppendRequest{Entity: entity, Events: events}
	for _, o := range opts {
		o(req)
	}
	set := c.own()
	var resp *meridianv1.AppendResponse
	var err error
	for redirects := 0; ; redirects++ {
		resp, err = call(ctx, c, set, "append", func(ctx context.Context, ep *endpoint) (*meridianv1.AppendResponse, error) {
			// The token may have moved on since the previous attempt; the ids have not.
			req.SessionToken = c.session.get()
			res, err := ep.store.Append(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return res.Msg, nil
		})
		// Only a Direct append is answered with a redirect; it goes to the
		// home with the same request (same event ids), so that a first
		// attempt that did commit somewhere is answered as a duplicate.
		hr, ok := HomeRedirectOf(err)
		if !ok || req.GetRouting() != meridianv1.Routing_ROUTING_REDIRECT || redirects >= redirectsMax {
			break
		}
		next, rerr := c.homeSet(hr)
		if rerr != nil {
			break
		}
		c.logger.Debug("following redirect", "method", "append", "entity", entity, "home", hr.GetHomeRegion(), "epoch", hr.GetEpoch())
		set = next
	}
	if err != nil {
		return nil, err
	}
	c.session.observe(resp.GetSessionToken())
	return resp, nil
}

// ReadOption configures one Read.
type ReadOption func(*meridianv1.ReadRequest)

// FromVersion starts a forward read at v, or a backward read at v (0: the head).
func FromVersion(v uint64) ReadOption { return func(r *meridianv1.ReadRequest) { r.FromVersion = v } }

// Limit bounds the events returned (0: the server's default).
func Limit(n uint32) ReadOption { return func(r *meridianv1.ReadRequest) { r.MaxCount = n } }

// Backward reads from the head towards version 1.
func Backward() ReadOption {
	return func(r *meridianv1.ReadRequest) { r.Direction = meridianv1.Direction_DIRECTION_BACKWARD }
}

// WithConsistency sets the read's consistency level (default: session).
func WithConsistency(level meridianv1.Consistency) ReadOption {
	return func(r *meridianv1.ReadRequest) { r.Consistency = level }
}

// MaxStaleness bounds a CONSISTENCY_BOUNDED read: the local region serves
// it only while its copy of the entity's home region is at most d old.
func MaxStaleness(d time.Duration) ReadOption {
	return func(r *meridianv1.ReadRequest) { r.MaxStaleness = durationpb.New(d) }
}

// Read returns a window of entity's stream.
func (c *Client) Read(ctx context.Context, entity string, opts ...ReadOption) (*meridianv1.ReadResponse, error) {
	req := &meridianv1.ReadRequest{Entity: entity}
	for _, o := range opts {
		o(req)
	}
	resp, err := call(ctx, c, c.own(), "read", func(ctx context.Context, ep *endpoint) (*meridianv1.ReadResponse, error) {
		req.SessionToken = c.session.get()
		res, err := ep.store.Read(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
	if err != nil {
		return nil, err
	}
	c.session.observe(resp.GetSessionToken())
	return resp, nil
}

// ReadState returns an active-active entity's merged state (JSON in
// ReadStateResponse.state), at the consistency the options give (SESSION
// by default, with the client's session; STRONG is refused by the server).
// An entity that is not active-active fails with FailedPrecondition.
func (c *Client) ReadState(ctx context.Context, entity string, opts ...ReadOption) (*meridianv1.ReadStateResponse, error) {
	base := &meridianv1.ReadRequest{Entity: entity}
	for _, o := range opts {
		o(base)
	}
	resp, err := call(ctx, c, c.own(), "read state", func(ctx context.Context, ep *endpoint) (*meridianv1.ReadStateResponse, error) {
		req := &meridianv1.ReadStateRequest{Entity: entity, Consistency: base.GetConsistency(), MaxStaleness: base.GetMaxStaleness(), SessionToken: c.session.get()}
		res, err := ep.store.ReadState(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
	if err != nil {
		return nil, err
	}
	c.session.observe(resp.GetSessionToken())
	return resp, nil
}

// ReadConflicts returns a page of an active-active entity's conflict feed
// after the page token after ("" for the first page); Limit bounds it.
func (c *Client) ReadConflicts(ctx context.Context, entity, after string, opts ...ReadOption) (*meridianv1.ReadConflictsResponse, error) {
	base := &meridianv1.ReadRequest{Entity: entity}
	for _, o := range opts {
		o(base)
	}
	resp, err := call(ctx, c, c.own(), "read conflicts", func(ctx context.Context, ep *endpoint) (*meridianv1.ReadConflictsResponse, error) {
		req := &meridianv1.ReadConflictsRequest{Entity: entity, Consistency: base.GetConsistency(), MaxStaleness: base.GetMaxStaleness(),
			SessionToken: c.session.get(), MaxCount: base.GetMaxCount(), After: after}
		res, err := ep.store.ReadConflicts(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
	if err != nil {
		return nil, err
	}
	c.session.observe(resp.GetSessionToken())
	return resp, nil
}

// ReadLog returns a page of the region log of the node that answers: from
// a position (forward or backward) or after a vector (forward; portable
// between regions: continue with the response's next_vector on any
// region's endpoints). The request's session token defaults to the
// client's, so the page holds the client's own writes.
func (c *Client) ReadLog(ctx context.Context, req *meridianv1.ReadLogRequest) (*meridianv1.ReadLogResponse, error) {
	req = proto.CloneOf(req)
	own := req.GetSessionToken() == ""
	resp, err := call(ctx, c, c.own(), "read log", func(ctx context.Context, ep *endpoint) (*meridianv1.ReadLogResponse, error) {
		if own {
			req.SessionToken = c.session.get()
		}
		res, err := ep.store.ReadLog(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
	if err != nil {
		return nil, err
	}
	c.session.observe(resp.GetSessionToken())
	return resp, nil
}

// Status describes the node behind the current endpoint (or the next one
// that answers).
func (c *Client) Status(ctx context.Context) (*meridianv1.StatusResponse, error) {
	return call(ctx, c, c.own(), "status", func(ctx context.Context, ep *endpoint) (*meridianv1.StatusResponse, error) {
		res, err := ep.store.Status(ctx, connect.NewRequest(&meridianv1.StatusRequest{}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
}

// StatusAll asks every endpoint for its status, without retries. The result
// has one entry per endpoint, in order; an endpoint that failed has a nil
// response and its error.
func (c *Client) StatusAll(ctx context.Context) ([]*meridianv1.StatusResponse, []error) {
	eps := c.own().eps
	out := make([]*meridianv1.StatusResponse, len(eps))
	errs := make([]error, len(eps))
	for i, ep := range eps {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if c.retry.AttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, c.retry.AttemptTimeout)
		}
		res, err := ep.store.Status(actx, connect.NewRequest(&meridianv1.StatusRequest{}))
		cancel()
		if err != nil {
			errs[i] = err
			continue
		}
		out[i] = res.Msg
	}
	return out, errs
}

// IsOutcomeUnknown reports whether err leaves it open whether a write was
// applied: some attempt's answer said so or was lost. An Append whose every
// attempt was refused before it reached Raft (no leader reachable, the home
// region cut off, a move in progress, ...) took no effect and is not
// unknown. Retrying the same Append (same event ids) is safe either way
// within the idempotency window.
func IsOutcomeUnknown(err error) bool {
	if err == nil {
		return false
	}
	var ce *callError
	if errors.As(err, &ce) {
		return ce.unknown
	}
	return attemptOutcomeUnknown(err)
}
