package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/meridiandb/meridian/internal/h2c"
)

// Limits of the retry policy, so that a misconfigured client cannot retry forever.
const (
	// retryAttemptsMax bounds RetryPolicy.MaxAttempts.
	retryAttemptsMax = 100
	// retryElapsedMax bounds RetryPolicy.MaxElapsed.
	retryElapsedMax = 10 * time.Minute
)

// RetryPolicy bounds how a call is retried on a retryable error.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, the first included; 1 disables
	// retries. Default 8: enough to ride out a Raft election (1-3 s) with backoff.
	MaxAttempts int
	// MaxElapsed bounds the time spent retrying, the first attempt included.
	// Default 15 s: longer than an election on a loaded machine, short enough
	// that a caller hears about a region that is down.
	MaxElapsed time.Duration
	// InitialBackoff is the first wait between attempts (then x1.5, jittered
	// by +-50%). Default 50 ms: a follower forwarding to a new leader is ready
	// within a heartbeat or two.
	InitialBackoff time.Duration
	// MaxBackoff caps one wait. Default 2 s.
	MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt; 0 means only the call's context
	// bounds it. Default 10 s: a node stuck behind a partition is left for the
	// next endpoint. An attempt that times out is treated as outcome unknown
	// and retried with the same event ids.
	AttemptTimeout time.Duration
}

// DefaultRetryPolicy returns the policy described on RetryPolicy's fields.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:    8,
		MaxElapsed:     15 * time.Second,
		InitialBackoff: 50 * time.Millisecond,
		MaxBackoff:     2 * time.Second,
		AttemptTimeout: 10 * time.Second,
	}
}

// Validate reports the first field outside its allowed range.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 1 || p.MaxAttempts > retryAttemptsMax:
		return fmt.Errorf("%w: RetryPolicy.MaxAttempts %d outside [1, %d]", ErrInvalidOption, p.MaxAttempts, retryAttemptsMax)
	case p.MaxElapsed <= 0 || p.MaxElapsed > retryElapsedMax:
		return fmt.Errorf("%w: RetryPolicy.MaxElapsed %s outside (0, %s]", ErrInvalidOption, p.MaxElapsed, retryElapsedMax)
	case p.InitialBackoff <= 0 || p.InitialBackoff > p.MaxBackoff:
		return fmt.Errorf("%w: RetryPolicy.InitialBackoff %s outside (0, MaxBackoff=%s]", ErrInvalidOption, p.InitialBackoff, p.MaxBackoff)
	case p.AttemptTimeout < 0:
		return fmt.Errorf("%w: RetryPolicy.AttemptTimeout %s must be >= 0", ErrInvalidOption, p.AttemptTimeout)
	}
	return nil
}

// config is what the Options set.
type config struct {
	httpClient   connect.HTTPClient
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	tls          *tls.Config
	bearer       string
	grpc         bool
	sessionToken string
	retry        RetryPolicy
	logger       *slog.Logger
	connectOpts  []connect.ClientOption
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient replaces the default HTTP client (HTTP/1.1 for unary calls,
// h2c for streams; then WithDialer has no effect).
func WithHTTPClient(c connect.HTTPClient) Option { return func(cfg *config) { cfg.httpClient = c } }

// WithDialer routes every connection through dial, for example a test
// network that injects latency or partitions.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(cfg *config) { cfg.dial = dial }
}

// WithTLS sets how https:// endpoints are verified (RootCAs: the
// deployment's CA bundle; Certificates: a client certificate, if the
// deployment asks for one) and makes host:port endpoints, given or
// discovered, https://. Without it, https:// endpoints are verified against
// the system's roots.
func WithTLS(c *tls.Config) Option { return func(cfg *config) { cfg.tls = c } }

// WithBearerToken sends token (from 'meridian token new') with every call,
// as "Authorization: Bearer <token>", for deployments that require tokens.
// Use it with TLS: the token is a secret.
func WithBearerToken(token string) Option { return func(cfg *config) { cfg.bearer = token } }

// bearerInterceptor adds the Authorization header to every call.
type bearerInterceptor struct{ header string }

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", b.header)
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", b.header)
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// WithGRPC speaks the gRPC protocol instead of Connect.
func WithGRPC() Option { return func(cfg *config) { cfg.grpc = true } }

// WithSessionToken starts the session from a token saved earlier (text form).
func WithSessionToken(token string) Option { return func(cfg *config) { cfg.sessionToken = token } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option { return func(cfg *config) { cfg.retry = p } }

// WithLogger sets the logger (retries are logged at Debug). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(cfg *config) { cfg.logger = l } }

// WithConnectOptions adds raw Connect client options (interceptors, compression).
func WithConnectOptions(opts ...connect.ClientOption) Option {
	return func(cfg *config) { cfg.connectOpts = append(cfg.connectOpts, opts...) }
}

// newHTTPClient returns the HTTP client a Client uses by default: Connect
// unary calls over HTTP/1.1 keep-alive connections and streams (Subscribe,
// gRPC) over HTTP/2 with prior knowledge (h2c), the protocols Meridian nodes
// serve. Unary calls take HTTP/1.1 because Go serves them with fewer
// goroutine hand-offs (internal/h2c explains and measures it).
func newHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConfig *tls.Config) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return h2c.NewClient(func(ctx context.Context, addr string) (net.Conn, error) {
		return dial(ctx, "tcp", addr)
	}, h2c.Options{UnaryOverHTTP1: true, TLS: tlsConfig})
}
