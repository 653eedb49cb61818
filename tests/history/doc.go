// Package history records what clients did to a Meridian cluster under test:
// every operation's invocation and completion time (nanoseconds since the
// run started, monotonic clock), client and session, kind (append, read,
// subscribe-delivery), entity, inputs (event ids, expected version,
// consistency, session token) and outcome (ok, failed, unknown) with results
// (versions, events read, head, session token, region and node that
// served).
//
// Guarantees:
//   - a Recorder is safe for concurrent use and numbers operations densely in
//     invocation order (TestRecorderConcurrent);
//   - an operation completes at most once, and never before its invocation
//     (TestRecorderPanicsOnDoubleCompletion, TestPendingAndPrecedes);
//   - a History dumps to JSON and loads back unchanged, so a failing run can
//     be re-checked offline (TestDumpLoadRoundTrip).
//
// It does not decide anything: outcomes are what the client saw. Unknown
// outcomes are resolved from what persisted by check.ResolveUnknown, and all
// judgement lives in package check. Vectors are plain maps so that this
// package imports nothing of Meridian (callers decode session tokens with
// causal.ParseToken and store both forms).
package history
