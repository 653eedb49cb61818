package region

import (
	"errors"
	"fmt"
)

// Errors of the region state machine (region-fsm). Each is a sentinel tested
// with errors.Is; the typed errors below wrap one of them. Connect codes are
// assigned only in service.go.
var (
	// ErrInvalidArgument: the request is malformed or over a limit. Returned
	// wrapped in an *InvalidArgumentError naming the field.
	ErrInvalidArgument = errors.New("region: invalid argument")
	// ErrWrongExpectedVersion: the stream's head did not match the append's
	// expected version. Returned wrapped in a *VersionConflictError.
	ErrWrongExpectedVersion = errors.New("region: wrong expected version")
	// ErrIdempotencyConflict: an event id was appended before with other
	// content, or an append reuses only some ids of an earlier append.
	ErrIdempotencyConflict = errors.New("region: idempotency conflict")
	// ErrStoreClosed: the state machine was closed.
	ErrStoreClosed = errors.New("region: store closed")
	// ErrCorruptState: stored bytes could not be decoded. Apply panics on it
	// (replicas would diverge); reads return it.
	ErrCorruptState = errors.New("region: corrupt state")
	// ErrUnknownCommand: a command envelope has an unknown version or type.
	ErrUnknownCommand = errors.New("region: unknown command")
	// ErrEntryTooLarge: one append's writes do not fit a Badger transaction.
	// HardLimits make this impossible for a valid append; it is kept as a
	// deterministic, loud failure should the limits and Badger's options drift.
	ErrEntryTooLarge = errors.New("region: append too large for one state machine transaction")
	// ErrInvalidConfig: a StoreConfig (or Config) field is out of range.
	ErrInvalidConfig = errors.New("region: invalid config")
	// ErrStalePlacement: apply refused an append because the node routed it
	// by a placement copy older than a change this region has fenced
	// (ApplyState.placement_floor), or under an older epoch than the
	// stream's last event. Nothing was written; the node routes it again
	// with a current copy (Unavailable if that does not settle in time).
	ErrStalePlacement = errors.New("region: routed by a stale placement copy")
)

// InvalidArgumentError names the offending field and the allowed form or range.
type InvalidArgumentError struct {
	// Field is the request path, for example "events[3].id".
	Field string
	// Reason says what is allowed, for example "must be 1 to 256 bytes, got 300".
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("region: invalid argument: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidArgument) true.
func (e *InvalidArgumentError) Unwrap() error { return ErrInvalidArgument }

func invalidf(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// VersionConflictError reports a failed expected-version check.
type VersionConflictError struct {
	Entity string
	// Expected is the expectation as text: "any", "no_stream", "stream_exists" or a number.
	Expected string
	// Current is the stream's head version (0: no stream).
	Current uint64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("region: wrong expected version: entity %q: expected %s, current version is %d",
		e.Entity, e.Expected, e.Current)
}

// Unwrap makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *VersionConflictError) Unwrap() error { return ErrWrongExpectedVersion }

// ---- region-raft helper: errors of the Raft node side below this line ----

// Errors of the region Raft node (network, batcher, forwarding, reads).
var (
	// ErrNotLeader: this node is not the leader and the request could not be
	// forwarded to one (no leader known within the wait bound, or a forwarded
	// request reached a node that is no longer leader). The request was
	// provably not proposed: retrying is safe and needs no event-id check.
	ErrNotLeader = errors.New("region: not leader")
	// ErrOutcomeUnknown: the append was proposed to Raft but the node could
	// not learn whether it committed (leadership lost, shutdown, deadline).
	// It may or may not be in the log; retrying with the same event ids is
	// safe (idempotency returns the original result if it committed).
	ErrOutcomeUnknown = errors.New("region: outcome unknown, retrying with the same event ids is safe")
	// ErrOverloaded: the leader's proposal queue is full; back off and retry.
	ErrOverloaded = errors.New("region: overloaded")
	// ErrTimeout: a bounded wait (leader election, applied index, session
	// token coverage) ran out before the request could be served.
	ErrTimeout = errors.New("region: timeout")
	// ErrDepsNotApplied: an append's session token covers events of other
	// regions (or of this one) that this region has not applied yet, so
	// writing it now would break causal order. Not written; retry once the
	// region has caught up (Unavailable).
	ErrDepsNotApplied = errors.New("region: causal dependencies not applied yet")
	// ErrNotReplicated: a DURABILITY_MULTI_REGION append committed in its
	// home region, but not enough other regions applied it within the wait.
	// Retrying with the same event ids is safe: it returns the original
	// result and waits again, or, when a failover superseded the events in
	// the meantime, the versions at which the new home appended them again.
	ErrNotReplicated = errors.New("region: not replicated to enough regions")
	// ErrNodeClosed: the node was closed.
	ErrNodeClosed = errors.New("region: node closed")
	// ErrTooStale: a BOUNDED read of an active-active entity found this
	// region further behind some other region's writes than max_staleness
	// allows (Unavailable: retry, here or in another region).
	ErrTooStale = errors.New("region: further behind than max_staleness")
)
