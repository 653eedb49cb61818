// Package client is the Go SDK for Meridian's EventStore and Placement APIs.
//
// A Client talks Connect (or gRPC, with WithGRPC) without TLS to one or
// more nodes (of one region or several) and keeps a session token. Connect
// unary calls travel over HTTP/1.1 keep-alive connections and streams
// (Subscribe) and gRPC over HTTP/2 with prior knowledge (h2c): Go serves a
// unary call over HTTP/1.1 with fewer goroutine hand-offs (ADR 0003).
//
// What it guarantees:
//
//   - Every Append carries event ids: ids the caller left empty are filled with
//     fresh UUIDv7s before the first attempt, so every retry of that Append
//     sends the same ids and the server's idempotency window turns a retry of
//     a write that did commit into the original result (TestAppendRetriesWithSameIDs).
//   - Append, Read and Status retry on connect.CodeUnavailable (which includes
//     the server's "outcome unknown"), CodeResourceExhausted, and
//     CodeDeadlineExceeded or CodeCanceled while the caller's context is alive
//     (an attempt timeout, a node stopping), with exponential
//     backoff and jitter, bounded by RetryPolicy.MaxAttempts and MaxElapsed,
//     moving to the next endpoint after each failure (TestFailoverToNextEndpoint,
//     TestRetryIsBounded). An attempt that hangs past RetryPolicy.AttemptTimeout
//     counts as outcome unknown and is retried on the next endpoint with the
//     same ids (TestAttemptTimeoutMovesToNextEndpoint). Other codes are
//     returned at once (TestNoRetryOnFailedPrecondition).
//   - IsOutcomeUnknown(err) is true when some attempt may have taken effect:
//     it answered outcome unknown, timed out or lost its connection. When
//     every attempt failed to connect or was refused before Raft (no node or
//     leader reachable, the home
//     region cut off, a move in progress, a stale placement copy, overload),
//     the Append provably wrote nothing and it is false
//     (TestRefusedBeforeRaftIsNotOutcomeUnknown,
//     TestUnreachableNodesAreNotOutcomeUnknown,
//     TestOutcomeUnknownSurvivesLaterRefusals). When the caller's deadline
//     ends the retries, the error still names the last complete attempt's
//     error (TestDeadlineDuringRetriesKeepsLastError,
//     TestDeadlineDuringAttemptKeepsLastError).
//   - The session token sent with every request covers every response the
//     client has seen: tokens from responses are merged (TestSessionTokenTracking).
//   - Subscribe resumes after an Unavailable error from the next position not
//     yet delivered, so no event is delivered twice or skipped by a reconnect
//     (TestSubscribeResumes).
//   - Subscribe to an entity homed in another region follows the node's
//     HomeRedirect to the home's endpoints (TestSubscribeFollowsRedirect,
//     TestAgainstThreeRegions); an Append with Direct() asks for a redirect
//     instead of forwarding and sends the same request, with the same event
//     ids, to the home (TestDirectAppendFollowsRedirect). Both follow at
//     most redirectsMax (3) redirects in a row, then return the last one
//     (TestSubscribeRedirectLoopIsYielded). HomeRedirectOf reads the detail.
//   - The Placement calls (GetPlacement, ListRules, SetRules, Pin, Unpin,
//     ListRegions) use the same endpoints, failover and retry policy; Pin
//     and unconditional SetRules are no-ops when repeated, so retrying them
//     after an unknown outcome is safe (TestAgainstThreeRegions).
//
// What it does not guarantee:
//
//   - An Append that fails after all its retries may or may not have been
//     applied: the error is then the last one seen (often Unavailable, "outcome
//     unknown"). Retrying it later with the same event ids is safe within the
//     server's idempotency window; after the window it may append twice.
//   - A Client does not discover nodes: it uses the endpoints it was given,
//     and those a redirect names for the one call that follows it.
//   - A SetRules with an expectedIndex that is retried after its first
//     attempt committed fails with FailedPrecondition (the index moved).
package client
