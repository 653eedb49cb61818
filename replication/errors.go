package replication

import (
	"errors"
	"fmt"
)

// Errors of the replication package. Each is a sentinel tested with
// errors.Is; InvalidArgumentError wraps ErrInvalidArgument. Connect codes are
// assigned only at the edge, in service.go.
var (
	// ErrInvalidArgument: a Pull request is malformed. Returned wrapped in an
	// *InvalidArgumentError naming the field; the Service answers it as
	// InvalidArgument.
	ErrInvalidArgument = errors.New("replication: invalid argument")
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("replication: invalid config")
	// ErrClosed: the Shipper or Service was closed.
	ErrClosed = errors.New("replication: closed")
	// ErrNoEndpoint: a source region has no endpoint in the Directory, or
	// none of them answered within CallTimeout. The puller tries the next
	// source.
	ErrNoEndpoint = errors.New("replication: no reachable endpoint")
	// ErrBadStream: a source sent events that are not the next of the
	// origin's log (wrong origin, a gap, a sequence going back) or a message
	// over the limits. The puller drops the stream and tries the next
	// source; what it already holds stays valid.
	ErrBadStream = errors.New("replication: bad stream")
	// ErrStreamIdle: a stream delivered nothing, not even a heartbeat, for
	// StreamIdleTimeout while the puller was reading it.
	ErrStreamIdle = errors.New("replication: stream idle")
	// ErrSourceBehind: the current source had nothing more to give for
	// StallTimeout while more of the origin's log is known to exist.
	ErrSourceBehind = errors.New("replication: source behind")
	// ErrRevisitOrigin ends a caught-up stream from a region other than the
	// origin after OriginRetryInterval, so that the puller tries the origin
	// again: after a partition heals, only the origin may hold its newest
	// events, and nobody else would offer them.
	ErrRevisitOrigin = errors.New("replication: revisit the origin")
	// ErrGap: this region's applied entry for the origin is below what the
	// puller holds, which only a regressed applied vector can cause. The
	// puller drops what it holds and pulls again from the applied vector.
	ErrGap = errors.New("replication: applied vector below pending events")
)

// InvalidArgumentError names the offending field and the allowed form or range.
type InvalidArgumentError struct {
	// Field is the request field, for example "from_seq".
	Field string
	// Reason says what is wrong and what is allowed.
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("replication: invalid argument: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidArgument) true.
func (e *InvalidArgumentError) Unwrap() error { return ErrInvalidArgument }

func invalidf(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func badStreamf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadStream, fmt.Sprintf(format, args...))
}
