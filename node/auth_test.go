package node

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/internal/nodetls"
)

// TestTokensOnADeployment runs two regions with TLS and one token file:
// each role is allowed what it should be and refused the rest, a token
// limited to eu/ reaches only eu/ entities (appends, reads, subscriptions,
// state reads), nodes still forward and replicate by certificate, health
// stays open, and a line removed from the file revokes its token.
func TestTokensOnADeployment(t *testing.T) {
	ca := newTestCA(t, "prod")
	secrets := map[string]string{}
	var lines []string
	for _, tk := range []auth.Token{
		{Name: "reader", Role: auth.RoleRead},
		{Name: "eu-writer", Role: auth.RoleWrite, Prefixes: []string{"eu/"}},
		{Name: "admin", Role: auth.RoleAdmin},
	} {
		s, err := auth.NewSecret()
		require.NoError(t, err)
		secrets[tk.Name] = s
		lines = append(lines, auth.Line(tk, s))
	}
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokenFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	tokens, err := auth.LoadTokens(tokenFile)
	require.NoError(t, err)

	start := func(regionName string, join []string) *Node {
		cfg := Config{
			Region: regionName, NodeID: "n1", Bootstrap: true, Join: join,
			PlacementRaftAddr: "127.0.0.1:0", PlacementBootstrap: len(join) == 0,
			TLS:    ca.credentials(t, nodetls.Identity{Deployment: "prod", Region: regionName, Node: "n1"}),
			Tokens: tokens,
		}
		return startGossipNode(t, cfg)
	}
	a := start("a", nil)
	require.Eventually(t, a.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	b := start("b", []string{a.Addr()})
	require.Eventually(t, func() bool { return len(b.Placement().FSM().Regions()) == 2 }, 30*time.Second, 50*time.Millisecond,
		"region b never joined: node-to-node calls must pass by certificate")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	noRetry := client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 1, MaxElapsed: 10 * time.Second, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, AttemptTimeout: 10 * time.Second})
	as := func(name string, nd *Node) *client.Client {
		opts := []client.Option{client.WithTLS(ca.clientTLS()), noRetry}
		if name != "" {
			s, ok := secrets[name]
			if !ok {
				s = "mrd_not-a-token"
			}
			opts = append(opts, client.WithBearerToken(s))
		}
		c, err := client.New([]string{nd.URL()}, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	event := []*meridianv1.ProposedEvent{{Type: "Created"}}
	code := func(err error) connect.Code { return connect.CodeOf(err) }

	// Every entity homes in a (the first region): b's appends are
	// forwarded, by b's certificate, and a's events replicate back.
	writer := as("eu-writer", b)
	_, err = writer.Append(ctx, "eu/1", event)
	require.NoError(t, err)
	_, err = writer.Append(ctx, "us/1", event)
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	assert.ErrorContains(t, err, `token "eu-writer" is limited to entities under eu/; "us/1" is outside them`)
	_, err = writer.Read(ctx, "us/1")
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	_, err = writer.ReadState(ctx, "us/1")
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	rr, err := as("eu-writer", b).Read(ctx, "eu/1", client.WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG))
	require.NoError(t, err)
	assert.Len(t, rr.GetEvents(), 1)

	subscribe := func(c *client.Client, sub client.Subscription) error {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		for msg, err := range c.Subscribe(sctx, sub) {
			if err != nil {
				return err
			}
			if msg.GetEvent() != nil {
				return nil
			}
		}
		return sctx.Err()
	}
	require.NoError(t, subscribe(as("eu-writer", a), client.Subscription{Entity: "eu/1"}))
	err = subscribe(as("eu-writer", a), client.Subscription{Entity: "us/1"})
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	err = subscribe(as("eu-writer", a), client.Subscription{All: true})
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	require.NoError(t, subscribe(as("reader", a), client.Subscription{All: true}))

	// Roles.
	reader := as("reader", a)
	_, err = reader.Read(ctx, "eu/1")
	require.NoError(t, err)
	_, err = reader.Status(ctx)
	require.NoError(t, err)
	_, err = reader.Append(ctx, "eu/2", event)
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	assert.ErrorContains(t, err, `token "reader" has role read; /meridian.v1.EventStore/Append needs write`)
	rules := []*meridianv1.PlacementRule{{Prefix: "eu/", HomeRegion: "b"}}
	_, err = as("eu-writer", a).SetRules(ctx, rules, "a", 0)
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)
	_, err = as("admin", a).SetRules(ctx, rules, "a", 0)
	require.NoError(t, err)

	// No token, an unknown token: Unauthenticated, without a hint.
	_, err = as("", a).Read(ctx, "eu/1")
	assert.Equal(t, connect.CodeUnauthenticated, code(err), "%v", err)
	_, err = as("stranger", a).Read(ctx, "eu/1")
	assert.Equal(t, connect.CodeUnauthenticated, code(err), "%v", err)
	assert.NotContains(t, err.Error(), "reader")

	// A token never reaches the node-only procedures, even admin's.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.clientTLS(), ForceAttemptHTTP2: true}}
	adminHTTP := &http.Client{Transport: auth.BearerTransport{Secret: secrets["admin"], Next: hc.Transport}}
	pull := meridianv1connect.NewReplicationClient(adminHTTP, a.URL())
	stream, err := pull.Pull(ctx, connect.NewRequest(&meridianv1.PullRequest{}))
	if err == nil {
		stream.Receive()
		err = stream.Err()
		_ = stream.Close()
	}
	assert.Equal(t, connect.CodePermissionDenied, code(err), "%v", err)

	// Health needs nothing.
	resp, err := hc.Post(a.URL()+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "SERVING")

	// Revocation: the reader's line goes; after a reload its token is unknown.
	require.NoError(t, os.WriteFile(tokenFile, []byte(lines[1]+"\n"+lines[2]+"\n"), 0o600))
	require.NoError(t, tokens.Reload())
	_, err = as("reader", a).Read(ctx, "eu/1")
	assert.Equal(t, connect.CodeUnauthenticated, code(err), "%v", err)
}
