// Package causal holds the pure building blocks of Meridian's multi-region
// correctness: hybrid logical clocks, version vectors, dots, session tokens
// and the causal delivery buffer. It imports only the standard library
// (TestNoImports), does no I/O, and is deterministic except for HLC's wall
// clock, which is injectable.
//
// # Guarantees, each with the test that checks it
//
// Timestamp is totally ordered by wall nanoseconds, then logical counter;
// Compare is antisymmetric and IsZero is true only for the zero value
// (TestTimestampCompare).
//
// HLC: every reading from Now or Update is strictly greater than every
// earlier reading and than every remote timestamp accepted by Update, even
// when the wall clock jumps backwards (TestHLCBackwardWallJump,
// TestHLCUpdate, TestHLCLogicalOverflowCarriesIntoWall, and
// TestPropHLCMonotonic over random jumps and updates); the wall part never
// lags the wall clock (TestHLCNowFollowsWallClock); a remote timestamp more
// than the maximum offset ahead of the local wall clock is rejected with
// ErrClockOffset and leaves the clock untouched (TestHLCUpdateRejectsFarFuture);
// it is safe and still strictly monotonic per goroutine, with no two readings
// equal, under concurrent use (TestHLCConcurrentMonotonic, run with -race by
// make test-race). It does not guarantee that HLC time stays close to real
// time when maxOffset is 0 (disabled): then one bad remote clock can drag it
// forward.
//
// Vector: Compare is a partial order (reflexive, antisymmetric, transitive)
// reporting Equal, Before, After or Concurrent, and treats a zero entry as
// absent; Merge is the least upper bound (commutative, associative,
// idempotent) and does not modify its inputs (TestVectorCompare,
// TestVectorMergeCoversIncrement, TestPropVectorPartialOrder,
// TestPropVectorMergeIsLeastUpperBound). MarshalBinary is deterministic and
// canonical (regions sorted, minimal varints, zero entries omitted);
// UnmarshalVector accepts exactly the canonical encodings within regionsMax
// regions of at most regionNameBytesMax bytes, rejecting everything else
// with an error wrapping ErrInvalidVector that names the field
// (TestVectorBinaryRoundTrip, TestUnmarshalVectorRejectsMalformed,
// TestPropVectorBinaryRoundTrip, FuzzUnmarshalVector). A Vector is a plain
// map: it is not safe for concurrent mutation.
//
// Dot and the deps helpers: Deps merges a writer's session vector with the
// dots an event must follow; Deliverable is the exactly-once and causal
// delivery test (next sequence of its origin, deps covered); ValidateDeps
// rejects events that depend on themselves (TestDotHelpers).
//
// Token: the text form is unpadded URL-safe base64 of a version byte and a
// vector encoding; "" is the empty vector; ParseToken(FormatToken(v)) equals
// v; tokens are at most tokenTextBytesMax characters; Merge is the vector
// merge; every parse error wraps ErrInvalidToken and says what is wrong
// (length, base64, version, or the vector fault, which also wraps
// ErrInvalidVector) (TestTokenRoundTrip, TestTokenMerge,
// TestParseTokenErrors, TestTokenSizeBound, FuzzParseToken,
// FuzzUnmarshalToken). FormatToken panics on a vector that cannot be
// encoded; NewToken returns the error instead.
//
// Buffer: whatever the arrival order and however many duplicates, each
// event is released exactly once, only after its origin's previous event
// and everything its deps cover, with a deterministic order among events
// released together (TestBufferScenarios,
// TestPropBufferReleasesCausalOrderExactlyOnce); it never holds more than
// EventsMax waiting events and refuses more with ErrBufferFull, yet always
// accepts a deliverable event, so backpressure cannot deadlock
// (TestBufferFullIsBackpressure); it rejects undeliverable events with
// ErrInvalidEvent (TestBufferInvalidEvents) and starts from an applied
// vector (TestBufferStartsFromApplied). It does not persist anything, does
// not bound payload bytes (only the count), and is not safe for concurrent
// use: the replication receiver owns one.
//
// Benchmarks (bench_test.go) and their figures are in docs/PERFORMANCE.md.
package causal
