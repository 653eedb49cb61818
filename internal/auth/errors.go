package auth

import "errors"

// Sentinel errors of the package.
var (
	// ErrTokenFile: the token file is unreadable or a line does not parse.
	ErrTokenFile = errors.New("auth: bad token file")
	// ErrUnauthenticated: no token, or one the node does not know.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrPermissionDenied: the caller is known but may not make this call.
	ErrPermissionDenied = errors.New("auth: permission denied")
)
