// Package check holds Meridian's history checkers. Each is a pure function
// over a recorded history (package history) and, where needed, the final
// streams of every node or region (Replicas), returning a Report that names
// the entity, replica and op ids of every violation. (Linearizability also
// writes porcupine's HTML visualisation of a failing entity to a file.)
//
// Checkers and the tests that feed them bad and good histories:
//   - Linearizability: per entity, appends and STRONG reads against a stream
//     model with expected versions and idempotent retries (porcupine v1.3.1,
//     nondeterministic for unknown outcomes, which return at the end of the
//     history). A porcupine Unknown (timeout) is a violation, never a pass.
//     TestLinearizabilityAcceptsGoodHistories,
//     TestLinearizabilityCatchesBadHistories, TestLinearizabilityTimeoutIsFailure.
//   - NoLostWrites: every acknowledged append present on every replica,
//     once, at its versions. TestNoLostWrites, TestAllCatchesLostWrite.
//   - Convergence: gap-free streams, identical on every replica.
//     TestConvergence.
//   - Idempotency: retries with the same event ids take effect once.
//     TestIdempotency.
//   - Sessions: read-your-writes, monotonic reads, monotonic writes,
//     writes-follow-reads, causal order (through dots and deps, ready for
//     several regions) and token monotonicity. TestSessionsAcceptGoodHistories,
//     TestSessionsCatchBadHistories.
//   - Subscriptions: deliveries in order, without gaps or duplicates, equal
//     to the final stream. TestSubscriptions.
//   - ResolveUnknown: decides unknown appends from what persisted, by event
//     id, and flags non-atomic ones. TestResolveUnknown.
//   - All runs ResolveUnknown then every checker; TestSimulatedRuns runs them
//     over concurrent histories of an in-memory correct store (must pass) and
//     of deliberately broken ones (must fail).
//
// What the checkers cannot see: anything not recorded. Resolution assumes the
// run ended with a successful write after heal (so nothing in flight can
// still commit); convergence is judged on the snapshot the caller took after
// its stated convergence bound.
package check
