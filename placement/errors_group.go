package placement

import "errors"

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
