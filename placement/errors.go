package placement

import (
	"errors"
	"fmt"
)

// Errors of the placement state machine (placement-fsm). Each is a sentinel
// tested with errors.Is; the typed errors below wrap one of them. Connect
// codes are assigned only at the edge, in service.go.
var (
	// ErrInvalidArgument: a command or request is malformed or over a limit.
	// Returned wrapped in an *InvalidArgumentError naming the field. In
	// apply it is a deterministic rejection: the entry writes nothing but
	// its applied index.
	ErrInvalidArgument = errors.New("placement: invalid argument")
	// ErrConflict: a SetRules carried an expected_index that is neither 0
	// nor the table's current rules_index. Returned wrapped in a
	// *ConflictError naming both indexes.
	ErrConflict = errors.New("placement: conflict")
	// ErrUnknownCommand: a command envelope has an unknown version or type.
	// Apply panics on it: a replica that cannot read a committed entry must
	// stop rather than diverge.
	ErrUnknownCommand = errors.New("placement: unknown command")
	// ErrCorruptState: stored or streamed bytes (Badger records, a command
	// envelope, a snapshot) could not be decoded or break an invariant.
	// Apply panics on it; Restore returns it and keeps the current state.
	ErrCorruptState = errors.New("placement: corrupt state")
	// ErrStoreClosed: the state machine was closed.
	ErrStoreClosed = errors.New("placement: store closed")
	// ErrInvalidConfig: a StoreConfig field is missing or out of range.
	ErrInvalidConfig = errors.New("placement: invalid config")
)

// InvalidArgumentError names the offending field and the allowed form or range.
type InvalidArgumentError struct {
	// Field is the request path, for example "rules[3].prefix".
	Field string
	// Reason says what is wrong and what is allowed, for example
	// `unknown region "xx"; known regions: eu, us`.
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("placement: invalid argument: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidArgument) true.
func (e *InvalidArgumentError) Unwrap() error { return ErrInvalidArgument }

func invalidf(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ConflictError reports a failed SetRules expected_index check.
type ConflictError struct {
	// Expected is the SetRules command's expected_index.
	Expected uint64
	// Current is the table's rules_index when the command applied.
	Current uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("placement: conflict: expected_index %d, but the rules were last set at index %d (rules_index)",
		e.Expected, e.Current)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// ErrBusy: a change was refused because another change that moves homes is
// in progress (at most one at a time). The leader waits for it and tries
// again; a caller sees it only when its deadline ends first. Returned
// wrapped in a *BusyError.
var ErrBusy = errors.New("placement: another placement change is in progress")

// BusyError names the change in progress.
type BusyError struct {
	// Transition is the index at which the change in progress was staged.
	Transition uint64
	// Reason describes it.
	Reason string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v (%s, staged at index %d); retry once it completes", ErrBusy, e.Reason, e.Transition)
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }

// ErrAborted: a change that moves homes was staged but dropped before it
// took effect (an old or new home did not report in time, or the change
// could not be applied); the table is as it was. Retrying is safe.
var ErrAborted = errors.New("placement: placement change aborted")

// Errors of the placement group (Raft member, forwarding, service).
var (
	// ErrNotLeader: no placement leader could serve the change (none known,
	// unreachable, or a forwarded change reached a follower). The change
	// was provably not proposed: retrying is safe.
	ErrNotLeader = errors.New("placement: no reachable leader")
	// ErrOutcomeUnknown: the change was proposed but the member could not
	// learn whether it committed (leadership lost, shutdown). Read the
	// table to find out; retrying a SetRules or Pin is safe (same result).
	ErrOutcomeUnknown = errors.New("placement: outcome unknown")
)
