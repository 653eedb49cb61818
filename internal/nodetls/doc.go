// Package nodetls is how Meridian's nodes speak TLS: it loads a node's
// certificate, key and CA bundle from files and reloads them without
// dropping the node; it wraps a Network so that every Raft, forwarding,
// replication, placement and membership connection between nodes is mutual
// TLS; and it names nodes by a URI SAN, so that a node accepts only peers
// of its own deployment.
//
// # Identity
//
// A node's certificate carries the URI SAN
//
//	spiffe://<deployment>/region/<region>/node/<node>
//
// (the SPIFFE form: the trust domain is the deployment). Node to node, the
// peer's chain is verified against the CA bundle and its URI must name a
// node of the same deployment as the local certificate: a certificate that
// the same CA signed for another deployment is refused, and so is a client
// certificate. Host names and IP SANs are not checked between nodes (nodes
// dial advertised addresses that certificates need not list); clients
// (the SDK, the CLI, curl) verify a node's DNS or IP SAN the usual way, so
// a node's certificate should list the names clients use for it.
//
// # Reload
//
// Credentials.Reload re-reads the three files; Watch polls them and
// reloads on change. New handshakes use the new material at once;
// established connections keep theirs. A reload that fails (a half-written
// file, a key that does not match) keeps the previous material and reports
// the error.
//
// # CA
//
// NewCA and CA.Issue make the throwaway CA and certificates that
// `meridian dev`, `meridian tls` and the tests use.
package nodetls
