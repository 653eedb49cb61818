// Package crdt holds Meridian's merge types for active-active entities and
// the deterministic order of concurrent events. It imports only the
// standard library and causal, the package below it (TestNoImports); it
// does no I/O and is deterministic.
//
// All types are operation-based: each op is an event and carries its Meta
// (dot and HLC) and, when it replaces or removes something, the causal
// context its author had applied to the object when preparing it. The
// origin prepares an op from its own state (Add, Remove, Write, Put,
// Delete), then every replica, the origin included, applies it. Apply
// requires ops in a causal order, which causal.Buffer provides; within
// that, any order and any number of duplicates give the same state. Each
// type also has a state Merge, for replicas that exchange state.
//
// # Guarantees, each with the test that checks it
//
// For every type (PNCounter, ORSet, MVRegister, LWWRegister, ORMap) in a
// simulation of three replicas with random ops, random causal delivery
// orders, duplicates, gaps in origin sequences and wall clocks jumping both
// ways: concurrent ops commute, a duplicate changes nothing and Apply
// reports it, and all replicas converge to the state of applying all ops in
// generation order (TestPropXConverges, X the type); Merge is commutative,
// associative and idempotent and equals applying the union of both
// replicas' ops (TestPropXMergeLaws). Each property runs 10,000 cases in a
// plain go test.
//
// PNCounter: Value is the sum of all applied deltas, wrapping on overflow
// without losing MinInt64 (TestPNCounter).
//
// ORSet is add-wins: a remove takes away only the adds its author had
// applied, so an add concurrent with a remove survives; a remove that saw
// every add empties the element everywhere (TestORSetAddWins).
//
// MVRegister keeps every write that no later write has seen, ordered
// deterministically by HLC then region id (TestMVRegisterKeepsConcurrentValues).
//
// LWWRegister reads the greatest concurrent write by causal order, then HLC,
// then region id, and exposes the others as Losers for the conflict feed: a
// write leaves the register only when a write that saw it replaces it (not
// a conflict), never silently (TestLWWRegisterExposesLosers). With
// causally consistent HLCs (every region updates its HLC with each event it
// applies) the winner is the last write in Order, so replaying the stream in
// Order agrees with it (TestPropLWWWinnerIsLastInOrder). It does not emit
// losers as events: the caller reads Losers after Apply.
//
// ORMap is an observed-remove map of multi-value registers: put wins over a
// concurrent delete, concurrent puts are all kept, Get reads them
// last-writer-wins (TestORMapOfRegisters).
//
// Order returns a total order of a set of events that extends causal order
// (origin FIFO and deps), breaks ties by HLC, then region id, then sequence,
// and depends only on the set, not on the input order or duplicates, even
// when HLCs disagree with causality (TestOrder,
// TestPropOrderIsDeterministicLinearExtension); contradictory deps give
// ErrCausalCycle (TestOrderRejectsCycles).
//
// Op is the byte-oriented envelope of every op (string keys, byte values)
// for event data: MarshalBinary is canonical and bounded by opKeyBytesMax,
// opValueBytesMax and opContextBytesMax; UnmarshalOp accepts exactly the
// canonical encodings and names the faulty field in errors wrapping
// ErrInvalidOp (TestOpRoundTrip, TestOpMarshalErrors, TestUnmarshalOpErrors,
// FuzzUnmarshalOp).
//
// Not guaranteed: types are not safe for concurrent use; applying ops out of
// causal order can diverge (that is causal.Buffer's job); memory is bounded
// by the live state plus, per register or key, at most one entry per
// concurrent writer, but ORMap and ORSet do not bound their number of keys.
//
// Benchmarks (bench_test.go) and their figures are in docs/PERFORMANCE.md.
package crdt
