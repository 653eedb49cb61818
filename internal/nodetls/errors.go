package nodetls

import "errors"

// Sentinel errors of the package.
var (
	// ErrCredentials: the certificate, key or CA files are missing, unreadable
	// or inconsistent (a key that does not match its certificate, a
	// certificate its own CA bundle does not verify).
	ErrCredentials = errors.New("nodetls: bad credentials")
	// ErrPeer: a peer's certificate does not verify against the CA bundle,
	// or does not name a node of this deployment.
	ErrPeer = errors.New("nodetls: peer refused")
	// ErrIdentity: a certificate without a well-formed Meridian node URI SAN.
	ErrIdentity = errors.New("nodetls: no node identity")
)
