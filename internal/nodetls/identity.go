package nodetls

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// uriScheme is the scheme of identity URIs (SPIFFE's).
const uriScheme = "spiffe"

// Identity names a node of a deployment; its URI form is the certificate's
// URI SAN: spiffe://<deployment>/region/<region>/node/<node>. A client
// identity (Region and Node empty) is spiffe://<deployment>/client/<name>.
type Identity struct {
	Deployment string
	Region     string
	Node       string
	// Client names a client certificate's holder; empty for nodes.
	Client string
}

// IsNode reports whether id names a node (rather than a client).
func (id Identity) IsNode() bool { return id.Region != "" && id.Node != "" }

// URI returns id's URI SAN.
func (id Identity) URI() *url.URL {
	if id.Client != "" {
		return &url.URL{Scheme: uriScheme, Host: id.Deployment, Path: "/client/" + id.Client}
	}
	return &url.URL{Scheme: uriScheme, Host: id.Deployment, Path: "/region/" + id.Region + "/node/" + id.Node}
}

// String returns the URI's text.
func (id Identity) String() string { return id.URI().String() }

// Validate reports a part that cannot appear in an identity URI.
func (id Identity) Validate() error {
	parts := []struct{ name, v string }{{"deployment", id.Deployment}}
	if id.Client != "" {
		parts = append(parts, struct{ name, v string }{"client", id.Client})
	} else {
		parts = append(parts, struct{ name, v string }{"region", id.Region}, struct{ name, v string }{"node", id.Node})
	}
	for _, p := range parts {
		if !validPart(p.v) {
			return fmt.Errorf("%w: %s %q: want 1-63 characters of letters, digits, '-', '_' and '.'", ErrIdentity, p.name, p.v)
		}
	}
	return nil
}

func validPart(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// ParseIdentity reads an identity URI.
func ParseIdentity(u *url.URL) (Identity, error) {
	if u == nil || u.Scheme != uriScheme || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Identity{}, fmt.Errorf("%w: %v is not %s://<deployment>/...", ErrIdentity, u, uriScheme)
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	var id Identity
	switch {
	case len(segs) == 4 && segs[0] == "region" && segs[2] == "node":
		id = Identity{Deployment: u.Host, Region: segs[1], Node: segs[3]}
	case len(segs) == 2 && segs[0] == "client":
		id = Identity{Deployment: u.Host, Client: segs[1]}
	default:
		return Identity{}, fmt.Errorf("%w: %v: want path /region/<region>/node/<node> or /client/<name>", ErrIdentity, u)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// CertIdentity returns the identity in cert's URI SANs: exactly one
// Meridian identity URI, or an error.
func CertIdentity(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		id, err := ParseIdentity(u)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q has no %s:// URI SAN", ErrIdentity, cert.Subject.CommonName, uriScheme)
	case 1:
		return found[0], nil
	default:
		return Identity{}, fmt.Errorf("%w: certificate %q has %d %s:// URI SANs, want one", ErrIdentity, cert.Subject.CommonName, len(found), uriScheme)
	}
}
