package node

import "errors"

// ErrInvalidConfig is returned by Config.Validate and Start for a field outside
// its allowed range; the wrapping error names the field.
var ErrInvalidConfig = errors.New("node: invalid config")

// ErrClosed is returned by Close when the node was already closed.
var ErrClosed = errors.New("node: closed")
