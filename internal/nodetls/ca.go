package nodetls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that issues node and client certificates:
// the throwaway one of `meridian dev` and the tests, or an operator's from
// `meridian tls init-ca`.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// clockSkewMax backdates certificates, so that a peer whose clock is a
// little behind accepts them at once.
const clockSkewMax = 5 * time.Minute

// NewCA makes a self-signed ECDSA P-256 CA named after deployment, valid
// for validity.
func NewCA(deployment string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Meridian CA " + deployment, Organization: []string{"Meridian"}},
		NotBefore:             now.Add(-clockSkewMax),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA's certificate and key (PEM files, as WriteCA writes them).
func LoadCA(certFile, keyFile string) (*CA, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		return nil, fmt.Errorf("%w: %s or %s is not PEM", ErrCredentials, certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCredentials, certFile, err)
	}
	key, err := x509.ParseECPrivateKey(kblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (want an EC PRIVATE KEY)", ErrCredentials, keyFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrCredentials, certFile)
	}
	return &CA{Cert: cert, Key: key, CertPEM: cb}, nil
}

// WriteCA writes the CA's certificate and key (mode 0600) into dir as
// ca.pem and ca-key.pem.
func (ca *CA) WriteCA(dir string) error {
	kder, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ca-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// Issued is a certificate and its key, PEM-encoded.
type Issued struct {
	CertPEM, KeyPEM []byte
}

// Issue signs a certificate for id with a new ECDSA P-256 key, valid for
// validity, usable to serve and to dial; hosts (DNS names or IP addresses)
// become its DNS and IP SANs, for clients that verify the node by name.
func (ca *CA) Issue(id Identity, hosts []string, validity time.Duration) (Issued, error) {
	if err := id.Validate(); err != nil {
		return Issued{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	now := time.Now()
	cn := id.Client
	if id.IsNode() {
		cn = id.Region + "/" + id.Node
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Meridian " + id.Deployment}},
		NotBefore:    now.Add(-clockSkewMax),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Issued{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, nil
}

// Write writes the certificate and key into dir as <name>.pem and
// <name>-key.pem (the key 0600), each through a temporary file and a
// rename, so that a node watching them never reads half a file, and
// returns the Files a node loads (the CA bundle as dir/ca.pem).
func (is Issued) Write(dir, name string) (Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, err
	}
	f := Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	// The key first: a watcher that sees the new certificate finds its key.
	if err := writeAtomic(f.Key, is.KeyPEM, 0o600); err != nil {
		return Files{}, err
	}
	return f, writeAtomic(f.Cert, is.CertPEM, 0o644)
}

// IssueFiles issues a certificate for id (as Issue) and writes it, its
// key and the CA's certificate as the bundle into dir (as Write), ready for
// Load: what a node, or a test of one, needs from a CA in one step.
func (ca *CA) IssueFiles(id Identity, hosts []string, validity time.Duration, dir, name string) (Files, error) {
	is, err := ca.Issue(id, hosts, validity)
	if err != nil {
		return Files{}, err
	}
	f, err := is.Write(dir, name)
	if err != nil {
		return Files{}, err
	}
	return f, writeAtomic(f.CA, ca.CertPEM, 0o644)
}

// ClientConfig is the TLS configuration of a client that trusts this CA
// alone (the SDK's WithTLS, tests, dev's own clients).
func (ca *CA) ClientConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
