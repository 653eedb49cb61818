package nodetls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/internal/network"
)

const validity = time.Hour

func node(deployment, region, id string) Identity {
	return Identity{Deployment: deployment, Region: region, Node: id}
}

// issue writes a certificate for id signed by ca into dir and loads it;
// the CA bundle is ca's certificate unless bundle is given.
func issue(t *testing.T, ca *CA, dir string, id Identity, bundle ...*CA) *Credentials {
	t.Helper()
	is, err := ca.Issue(id, []string{"127.0.0.1", "localhost"}, validity)
	require.NoError(t, err)
	f, err := is.Write(dir, "node")
	require.NoError(t, err)
	if len(bundle) == 0 {
		bundle = []*CA{ca}
	}
	var pemb []byte
	for _, b := range bundle {
		pemb = append(pemb, b.CertPEM...)
	}
	require.NoError(t, os.WriteFile(f.CA, pemb, 0o644))
	c, err := Load(f)
	require.NoError(t, err)
	return c
}

func newCA(t *testing.T, deployment string) *CA {
	t.Helper()
	ca, err := NewCA(deployment, validity)
	require.NoError(t, err)
	return ca
}

// echoServer accepts on ln and echoes one line per connection.
func echoServer(t *testing.T, ln net.Listener) {
	t.Helper()
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

func roundTrip(conn net.Conn) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping, anyone there?")); err != nil {
		return err
	}
	buf := make([]byte, len("ping, anyone there?"))
	_, err := io.ReadFull(conn, buf)
	return err
}

func TestIdentityURI(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   Identity
		uri  string
	}{
		{"node", node("prod", "eu-west", "n1"), "spiffe://prod/region/eu-west/node/n1"},
		{"client", Identity{Deployment: "prod", Client: "ci-bot"}, "spiffe://prod/client/ci-bot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.uri, tc.id.String())
			got, err := ParseIdentity(tc.id.URI())
			require.NoError(t, err)
			require.Equal(t, tc.id, got)
		})
	}
	for _, bad := range []string{"https://prod/region/a/node/b", "spiffe://prod/region/a", "spiffe://prod/region/a/node/b/c", "spiffe:///region/a/node/b", "spiffe://prod/region/a b/node/n1"} {
		t.Run("refuses "+bad, func(t *testing.T) {
			u, err := parseURL(bad)
			if err == nil {
				_, err = ParseIdentity(u)
			}
			require.Error(t, err)
		})
	}
}

// TestNodePortRefusesStrangers: a Raft port (PeerNode) talks only to a
// node of its own deployment whose certificate its CA bundle verifies.
func TestNodePortRefusesStrangers(t *testing.T) {
	ca := newCA(t, "prod")
	server := issue(t, ca, t.TempDir(), node("prod", "a", "n1"))
	ln, err := server.Network(network.TCP).Listen("127.0.0.1:0")
	require.NoError(t, err)
	echoServer(t, ln)
	addr := ln.Addr().String()
	ctx := context.Background()

	t.Run("a node of the deployment", func(t *testing.T) {
		peer := issue(t, ca, t.TempDir(), node("prod", "b", "n2"))
		conn, err := peer.Network(network.TCP).Dial(ctx, addr)
		require.NoError(t, err)
		require.NoError(t, roundTrip(conn))
	})
	refused := map[string]func() (net.Conn, error){
		"plaintext": func() (net.Conn, error) { return net.Dial("tcp", addr) },
		"another CA": func() (net.Conn, error) {
			other := newCA(t, "prod")
			return issue(t, other, t.TempDir(), node("prod", "b", "n2"), other, ca).Network(network.TCP).Dial(ctx, addr)
		},
		"another deployment, same CA": func() (net.Conn, error) {
			return issue(t, ca, t.TempDir(), node("staging", "b", "n2")).Network(network.TCP).Dial(ctx, addr)
		},
		"a client certificate": func() (net.Conn, error) {
			return issue(t, ca, t.TempDir(), Identity{Deployment: "prod", Client: "ops"}).Network(network.TCP).Dial(ctx, addr)
		},
		"no certificate": func() (net.Conn, error) {
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			return tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		},
	}
	for name, dial := range refused {
		t.Run("refuses "+name, func(t *testing.T) {
			conn, err := dial()
			if err == nil {
				err = roundTrip(conn)
			}
			require.Error(t, err, "the node port answered")
		})
	}
}

// TestDialerRefusesStrangers: a node dialling a peer refuses a server that
// is not a node of its deployment, even one its CA signed.
func TestDialerRefusesStrangers(t *testing.T) {
	ca := newCA(t, "prod")
	dialer := issue(t, ca, t.TempDir(), node("prod", "a", "n1"))
	for name, server := range map[string]*Credentials{
		"another deployment": issue(t, ca, t.TempDir(), node("staging", "a", "n2")),
		"a client":           issue(t, ca, t.TempDir(), Identity{Deployment: "prod", Client: "x"}),
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := server.ListenAPI(network.TCP, "127.0.0.1:0")
			require.NoError(t, err)
			echoServer(t, ln)
			_, err = dialer.Network(network.TCP).Dial(context.Background(), ln.Addr().String())
			require.ErrorIs(t, err, ErrPeer)
		})
	}
}

// TestAPIPortServesClientsAndNodes: the API port takes a client without a
// certificate (verifying the node by IP SAN) and tells a node's calls
// apart by PeerNode.
func TestAPIPortServesClientsAndNodes(t *testing.T) {
	ca := newCA(t, "prod")
	server := issue(t, ca, t.TempDir(), node("prod", "a", "n1"))
	ln, err := server.ListenAPI(network.TCP, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	states := make(chan tls.ConnectionState, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			states <- c.(*tls.Conn).ConnectionState()
			_ = c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	_ = conn.Close()
	cs := <-states
	assert.Equal(t, "http/1.1", cs.NegotiatedProtocol)
	_, ok := server.PeerNode(&cs)
	assert.False(t, ok, "a client without a certificate is not a node")

	peer := issue(t, ca, t.TempDir(), node("prod", "b", "n2"))
	nc, err := peer.Network(network.TCP).Dial(context.Background(), ln.Addr().String())
	require.NoError(t, err)
	_ = nc.Close()
	cs = <-states
	assert.Equal(t, "h2", cs.NegotiatedProtocol)
	id, ok := server.PeerNode(&cs)
	require.True(t, ok)
	assert.Equal(t, node("prod", "b", "n2"), id)
}

// TestReloadRotatesWithoutRestart: new certificate files, then Reload,
// and the next handshake presents the new certificate; a broken file
// keeps the old material.
func TestReloadRotatesWithoutRestart(t *testing.T) {
	ca := newCA(t, "prod")
	dir := t.TempDir()
	server := issue(t, ca, dir, node("prod", "a", "n1"))
	ln, err := server.Network(network.TCP).Listen("127.0.0.1:0")
	require.NoError(t, err)
	echoServer(t, ln)
	ca2 := newCA(t, "prod")
	peer := issue(t, ca, t.TempDir(), node("prod", "b", "n2"), ca, ca2)
	served := func() *big.Int {
		conn, err := peer.Network(network.TCP).Dial(context.Background(), ln.Addr().String())
		require.NoError(t, err)
		defer conn.Close()
		return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
	}
	first := served()

	// A new certificate from a new CA, with both CAs in every bundle (the
	// first step of a CA rotation).
	is, err := ca2.Issue(node("prod", "a", "n1"), nil, validity)
	require.NoError(t, err)
	_, err = is.Write(dir, "node")
	require.NoError(t, err)
	bundle := append(append([]byte{}, ca.CertPEM...), ca2.CertPEM...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), bundle, 0o644))
	require.NoError(t, server.Reload())
	second := served()
	require.NotEqual(t, first.String(), second.String(), "the reloaded certificate is served")

	// A key that does not match: Reload fails, the second certificate stays.
	other, err := ca2.Issue(node("prod", "a", "n1"), nil, validity)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "node-key.pem"), other.KeyPEM, 0o600))
	require.ErrorIs(t, server.Reload(), ErrCredentials)
	require.Equal(t, second.String(), served().String())

	// Another deployment's certificate is refused by Reload.
	foreign, err := ca.Issue(node("staging", "a", "n1"), nil, validity)
	require.NoError(t, err)
	_, err = foreign.Write(dir, "node")
	require.NoError(t, err)
	require.ErrorIs(t, server.Reload(), ErrCredentials)
}

// TestWatchReloadsOnChange: Watch notices new files without a signal.
func TestWatchReloadsOnChange(t *testing.T) {
	ca := newCA(t, "prod")
	dir := t.TempDir()
	c := issue(t, ca, dir, node("prod", "a", "n1"))
	first := c.Leaf().SerialNumber
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Watch(ctx, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	is, err := ca.Issue(node("prod", "a", "n1"), nil, validity)
	require.NoError(t, err)
	_, err = is.Write(dir, "node")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Leaf().SerialNumber.Cmp(first) != 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestLoadRefusesInconsistentFiles(t *testing.T) {
	ca := newCA(t, "prod")
	other := newCA(t, "prod")
	dir := t.TempDir()
	is, err := ca.Issue(node("prod", "a", "n1"), nil, validity)
	require.NoError(t, err)
	f, err := is.Write(dir, "node")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f.CA, other.CertPEM, 0o644))
	_, err = Load(f)
	require.ErrorIs(t, err, ErrCredentials, "a certificate its own bundle does not verify")
	_, err = Load(Files{Cert: f.Cert, Key: f.Key})
	require.ErrorIs(t, err, ErrCredentials, "no CA bundle")
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

// TestSilentPeerBlocksNobody: a peer that connects and says nothing holds
// up neither Accept nor other peers' handshakes, and Close ends its
// handshake at once instead of after the handshake timeout.
func TestSilentPeerBlocksNobody(t *testing.T) {
	ca := newCA(t, "prod")
	server := issue(t, ca, t.TempDir(), node("prod", "a", "n1"))
	ln, err := server.Network(network.TCP).Listen("127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan error, 4)
	go func() {
		for {
			c, err := ln.Accept()
			accepted <- err
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	silent, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer silent.Close()

	peer := issue(t, ca, t.TempDir(), node("prod", "b", "n2"))
	start := time.Now()
	conn, err := peer.Network(network.TCP).Dial(context.Background(), ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, roundTrip(conn))
	assert.Less(t, time.Since(start), handshakeTimeout/2, "the silent peer held up another peer's handshake")
	require.NoError(t, <-accepted)

	start = time.Now()
	require.NoError(t, ln.Close())
	require.ErrorIs(t, <-accepted, net.ErrClosed)
	_ = silent.SetReadDeadline(time.Now().Add(handshakeTimeout))
	_, err = silent.Read(make([]byte, 1))
	require.Error(t, err, "the silent connection is closed")
	assert.Less(t, time.Since(start), handshakeTimeout/2, "Close left the silent handshake running")
}

// TestAPIPortRefusesForeignClientCertificate: a client certificate is
// optional on the API port, but one that does not chain to the CA bundle
// ends the handshake.
func TestAPIPortRefusesForeignClientCertificate(t *testing.T) {
	ca := newCA(t, "prod")
	server := issue(t, ca, t.TempDir(), node("prod", "a", "n1"))
	ln, err := server.ListenAPI(network.TCP, "127.0.0.1:0")
	require.NoError(t, err)
	echoServer(t, ln)
	other := newCA(t, "prod")
	is, err := other.Issue(Identity{Deployment: "prod", Client: "mallory"}, nil, validity)
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}})
	if err == nil {
		err = roundTrip(conn)
	}
	require.Error(t, err)
}

// TestPeerNodeNamesOnlyNodesOfTheDeployment: on the API port, a client
// certificate and a node certificate of another deployment (both from the
// deployment's CA) are callers, not nodes.
func TestPeerNodeNamesOnlyNodesOfTheDeployment(t *testing.T) {
	ca := newCA(t, "prod")
	server := issue(t, ca, t.TempDir(), node("prod", "a", "n1"))
	ln, err := server.ListenAPI(network.TCP, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	states := make(chan tls.ConnectionState, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			states <- c.(*tls.Conn).ConnectionState()
			_ = c.Close()
		}
	}()
	for name, id := range map[string]Identity{
		"client":             {Deployment: "prod", Client: "ops"},
		"another deployment": node("staging", "a", "n2"),
	} {
		t.Run(name, func(t *testing.T) {
			is, err := ca.Issue(id, nil, validity)
			require.NoError(t, err)
			cert, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
			require.NoError(t, err)
			cfg := ca.ClientConfig()
			cfg.ServerName, cfg.Certificates = "127.0.0.1", []tls.Certificate{cert}
			conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			require.NoError(t, err)
			_ = conn.Close()
			cs := <-states
			require.NotEmpty(t, cs.PeerCertificates)
			_, ok := server.PeerNode(&cs)
			assert.False(t, ok)
		})
	}
}
