package auth

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Caller is who makes a request: a node (by certificate) or a token.
type Caller struct {
	// Node names the calling node ("region/node"); empty for tokens.
	Node string
	// Token is the bearer token's entry; nil for nodes and anonymous calls.
	Token *Token
	// presented: a bearer token was sent (known or not).
	presented bool
}

type callerKey struct{}

// CallerFrom returns the caller Authenticate stored in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Authorizer authenticates callers and enforces rules.
type Authorizer struct {
	tokens *Tokens
	// node names the peer of a TLS connection if it is a node of the
	// deployment.
	node func(*tls.ConnectionState) (string, bool)
}

// NewAuthorizer checks callers against tokens; node tells a node of the
// deployment from anyone else by its TLS connection state.
func NewAuthorizer(tokens *Tokens, node func(*tls.ConnectionState) (string, bool)) *Authorizer {
	return &Authorizer{tokens: tokens, node: node}
}

// Authenticate puts the request's caller in its context.
func (a *Authorizer) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c Caller
		if name, ok := a.node(r.TLS); ok {
			c.Node = name
		} else if secret, ok := bearer(r.Header.Get("Authorization")); ok {
			c.presented = true
			if tok, ok := a.tokens.Lookup(secret); ok {
				c.Token = tok
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

func bearer(h string) (string, bool) {
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

// entityRequest is a request that names an entity.
type entityRequest interface{ GetEntity() string }

// filterRequest is a read of the region log that may filter by entity
// prefix (Subscribe to all, ReadLog).
type filterRequest interface {
	GetFilter() *meridianv1.EventFilter
}

// filterWithin reports whether f admits only entities t reaches: it names
// prefixes, each under one of t's.
func filterWithin(t *Token, f *meridianv1.EventFilter) bool {
	if len(f.GetEntityPrefixes()) == 0 {
		return false
	}
	for _, p := range f.GetEntityPrefixes() {
		if !t.Allows(p) {
			return false
		}
	}
	return true
}

// Authorize decides whether the caller in ctx may call procedure with
// msg (nil when the message is not at hand yet: only the procedure is
// checked).
func (a *Authorizer) Authorize(ctx context.Context, procedure string, msg any) error {
	c, _ := CallerFrom(ctx)
	if c.Node != "" {
		return nil
	}
	ru, known := rules[procedure]
	if !known {
		ru = rule{need: needNode}
	}
	switch {
	case c.Token == nil && c.presented:
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: the bearer token is not valid on this node", ErrUnauthenticated))
	case c.Token == nil && ru.need == needNode:
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: %s is called only by nodes of the deployment, with their certificates", ErrPermissionDenied, procedure))
	case c.Token == nil:
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s needs a bearer token with role %s or above (header Authorization: Bearer <token>)", ErrUnauthenticated, procedure, ru.need))
	case ru.need == needNode:
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: %s is called only by nodes of the deployment, with their certificates, not with tokens", ErrPermissionDenied, procedure))
	case int(c.Token.Role) < int(ru.need):
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: token %q has role %s; %s needs %s", ErrPermissionDenied, c.Token.Name, c.Token.Role, procedure, ru.need))
	}
	if len(c.Token.Prefixes) == 0 || msg == nil {
		return nil
	}
	if !ru.entity {
		if ru.need > needRead {
			return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: token %q is limited to entities under %s; %s acts on the whole deployment", ErrPermissionDenied, c.Token.Name, strings.Join(c.Token.Prefixes, ", "), procedure))
		}
		return nil
	}
	entity := ""
	if er, ok := msg.(entityRequest); ok {
		entity = er.GetEntity()
	}
	if entity == "" {
		if fr, ok := msg.(filterRequest); ok && filterWithin(c.Token, fr.GetFilter()) {
			return nil
		}
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: token %q is limited to entities under %s; this call names no entity (the whole region log needs an unlimited token, or a filter whose entity_prefixes each lie under the token's)", ErrPermissionDenied, c.Token.Name, strings.Join(c.Token.Prefixes, ", ")))
	}
	if !c.Token.Allows(entity) {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: token %q is limited to entities under %s; %q is outside them", ErrPermissionDenied, c.Token.Name, strings.Join(c.Token.Prefixes, ", "), entity))
	}
	return nil
}

// Interceptor enforces Authorize on every call of the handlers it is
// given to: unary calls before the handler, streams on their first
// request message (and on the procedure alone before it).
func (a *Authorizer) Interceptor() connect.Interceptor { return interceptor{a} }

type interceptor struct{ a *Authorizer }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := i.a.Authorize(ctx, req.Spec().Procedure, req.Any()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := i.a.Authorize(ctx, conn.Spec().Procedure, nil); err != nil {
			return err
		}
		return next(ctx, &checkedConn{StreamingHandlerConn: conn, a: i.a, ctx: ctx})
	}
}

// checkedConn authorizes every request message of a stream.
type checkedConn struct {
	connect.StreamingHandlerConn
	a   *Authorizer
	ctx context.Context
}

func (c *checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	return c.a.Authorize(c.ctx, c.Spec().Procedure, msg)
}

// BearerTransport sends "Authorization: Bearer <Secret>" with every
// request through Next (nil: http.DefaultTransport): for callers that make
// raw Connect clients (tests, tools); the SDK has client.WithBearerToken.
type BearerTransport struct {
	Secret string
	Next   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (b BearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := b.Next
	if next == nil {
		next = http.DefaultTransport
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.Secret)
	return next.RoundTrip(r)
}
