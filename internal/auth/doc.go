// Package auth decides who may call what on a node's API.
//
// A caller is either a node of the deployment, known by its TLS
// certificate (internal/nodetls), or a holder of a bearer token from the
// node's token file. Each token has a role, read < write < admin, and may be
// limited to entity prefixes. Every procedure of the API has exactly one
// rule (rules.go): open, read, write, admin, or nodes only. Nodes may call
// anything; tokens never reach the node-only procedures (Raft-adjacent
// placement calls, replication pulls), whatever their role.
//
// Authenticate is HTTP middleware (it needs the TLS state, which Connect
// interceptors do not see) that puts the caller in the request's context;
// the Interceptor decides, with the request message at hand for prefix
// limits, and answers Unauthenticated (no or unknown token) or
// PermissionDenied (naming what was missing, never what exists).
//
// The token file holds hashes, not tokens:
//
//	# name     role   hash                      prefixes (optional)
//	ci-bot     write  sha256:5e884898da28...    eu/orders/,us/orders/
//	ops        admin  sha256:a665a45920422...
//
// 'meridian token new' prints a new token and its line.
package auth
