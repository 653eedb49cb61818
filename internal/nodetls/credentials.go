package nodetls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridiandb/meridian/internal/filewatch"
)

// Files names a node's TLS material: a PEM certificate chain (leaf first),
// its PEM private key, and the PEM CA bundle that peers' certificates must
// chain to.
type Files struct {
	Cert, Key, CA string
}

// WatchInterval is how often Watch looks at the files: a rotated
// certificate is in use within about this long without a signal.
const WatchInterval = 5 * time.Second

// Credentials hold a node's current certificate and CA bundle; they are
// safe for concurrent use and swapped whole by Reload.
type Credentials struct {
	files  Files
	cur    atomic.Pointer[material]
	reload sync.Mutex // one Reload at a time
}

// material is one consistent load of the three files.
type material struct {
	cert  tls.Certificate
	self  Identity
	roots *x509.CertPool
	stamp string // the files' sizes and modification times, for Watch
}

// Load reads files and checks them: the key matches the certificate, the
// certificate chains to the CA bundle and names a node or client identity.
func Load(files Files) (*Credentials, error) {
	if files.Cert == "" || files.Key == "" || files.CA == "" {
		return nil, fmt.Errorf("%w: need a certificate, a key and a CA bundle (got cert %q, key %q, ca %q)", ErrCredentials, files.Cert, files.Key, files.CA)
	}
	c := &Credentials{files: files}
	m, err := load(files)
	if err != nil {
		return nil, err
	}
	c.cur.Store(m)
	return c, nil
}

// Identity returns the identity the current certificate names.
func (c *Credentials) Identity() Identity { return c.cur.Load().self }

// Files returns the paths the credentials are read from.
func (c *Credentials) Files() Files { return c.files }

// Leaf returns the current certificate.
func (c *Credentials) Leaf() *x509.Certificate { return c.cur.Load().cert.Leaf }

// Reload re-reads the files. On error the previous material stays in use.
// The new certificate must name the same deployment as the old one: a
// node does not change deployments by a file swap.
func (c *Credentials) Reload() error {
	c.reload.Lock()
	defer c.reload.Unlock()
	m, err := load(c.files)
	if err != nil {
		return err
	}
	if old := c.cur.Load(); m.self.Deployment != old.self.Deployment {
		return fmt.Errorf("%w: new certificate names deployment %q, the node runs in %q", ErrCredentials, m.self.Deployment, old.self.Deployment)
	}
	c.cur.Store(m)
	return nil
}

// Watch reloads the credentials whenever one of the files' size or
// modification time changes, every interval (<= 0: WatchInterval), until
// ctx ends. A failed reload is logged and retried at the next change.
func (c *Credentials) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = WatchInterval
	}
	filewatch.Poll(ctx, interval, []string{c.files.Cert, c.files.Key, c.files.CA},
		func() string { return c.cur.Load().stamp }, c.Reload,
		func(err error) {
			if err != nil {
				logger.Error("tls credentials changed on disk but did not load; keeping the old ones", "err", err)
				return
			}
			logger.Info("tls credentials reloaded", "not_after", c.Leaf().NotAfter.UTC().Format(time.RFC3339))
		})
}

func load(f Files) (*material, error) {
	s, err := filewatch.Stamp(f.Cert, f.Key, f.CA)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s with key %s: %v", ErrCredentials, f.Cert, f.Key, err)
	}
	roots, err := LoadPool(f.CA)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf
	if _, err := verify(cert.Certificate, roots); err != nil {
		return nil, fmt.Errorf("%w: certificate %s does not verify against CA bundle %s: %v", ErrCredentials, f.Cert, f.CA, err)
	}
	self, err := CertIdentity(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s: %v", ErrCredentials, f.Cert, err)
	}
	return &material{cert: cert, self: self, roots: roots, stamp: s}, nil
}

// LoadPool reads a PEM CA bundle (nodes' bundles, and clients' --tls-ca).
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA bundle: %v", ErrCredentials, err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: CA bundle %s: %v", ErrCredentials, path, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: CA bundle %s holds no PEM certificate", ErrCredentials, path)
	}
	return pool, nil
}

// verify checks a DER chain (leaf first) against roots, for any key usage
// (the same certificate serves and dials).
func verify(chain [][]byte, roots *x509.CertPool) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrPeer)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrPeer, i, err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPeer, err)
	}
	return certs[0], nil
}

// verifyNode checks that a peer's chain verifies against the current CA
// bundle and names a node of this deployment.
func (c *Credentials) verifyNode(chain [][]byte) error {
	m := c.cur.Load()
	leaf, err := verify(chain, m.roots)
	if err != nil {
		return err
	}
	id, err := CertIdentity(leaf)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeer, err)
	}
	if !id.IsNode() || id.Deployment != m.self.Deployment {
		return fmt.Errorf("%w: certificate names %s, not a node of deployment %q", ErrPeer, id, m.self.Deployment)
	}
	return nil
}

// PeerNode returns the node identity the peer of a connection accepted by
// this package's listeners presented, or false: no certificate, or not a
// node of this deployment. Servers that accept client certificates
// optionally (the API) use it, per request, to tell node-to-node calls
// from callers. The handshake already verified the chain against the CA
// bundle (ServerConfig), so only the name is read here: no chain is
// verified again on every request.
func (c *Credentials) PeerNode(cs *tls.ConnectionState) (Identity, bool) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return Identity{}, false
	}
	id, err := CertIdentity(cs.PeerCertificates[0])
	if err != nil || !id.IsNode() || id.Deployment != c.cur.Load().self.Deployment {
		return Identity{}, false
	}
	return id, true
}

// handshakeTimeout bounds a TLS handshake, so that a peer that connects and
// says nothing holds no goroutine for long.
const handshakeTimeout = 10 * time.Second

// Peer is who a server requires on the other end.
type Peer int

const (
	// PeerNode: a node of this deployment, by certificate (Raft ports).
	PeerNode Peer = iota
	// PeerAny: anyone; a certificate, if presented, must verify against the
	// CA bundle (the API port, which clients and nodes share).
	PeerAny
)

// ServerConfig returns the configuration of a listener that requires peer
// (nextProtos: its ALPN protocols, in preference order).
func (c *Credentials) ServerConfig(peer Peer, nextProtos []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert := c.cur.Load().cert
			return &cert, nil
		},
	}
	switch peer {
	case PeerNode:
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error { return c.verifyNode(raw) }
	case PeerAny:
		cfg.ClientAuth = tls.RequestClientCert
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, err := verify(raw, c.cur.Load().roots)
			return err
		}
	}
	return cfg
}

// ClientConfig returns the configuration a node dials another node with:
// its own certificate, the peer verified by CA bundle and node identity
// (not by host name, see the package doc), ALPN offering nextProtos.
func (c *Credentials) ClientConfig(nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		// The standard host-name check is replaced by verifyNode below.
		InsecureSkipVerify: true, //nolint:gosec // VerifyPeerCertificate verifies chain and identity
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return c.verifyNode(raw)
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert := c.cur.Load().cert
			return &cert, nil
		},
	}
}
