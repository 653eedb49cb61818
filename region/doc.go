// Package region is one region of Meridian: a Raft group (hashicorp/raft)
// whose state machine stores per-entity event streams in Badger v4.
//
// This comment covers the state machine (FSM: keys.go, command.go, fsm.go,
// apply.go, snapshot.go, read.go, validate.go). The Raft node side (node.go,
// raft.go, batcher.go, service.go, ...) documents itself in DESIGN.md.
//
// # Guarantees of the state machine
//
// Each names the test that checks it.
//
//   - Apply is deterministic: it reads no clock, no randomness, no network and
//     no configuration replicas may disagree on. Event i of a batch is stamped
//     with the batch's leader HLC advanced by i logical ticks, and never at or
//     below the last applied HLC, so HLCs increase strictly along the apply
//     log even across leaders with skewed clocks
//     (TestApplyHLCMonotonicAcrossBatches, TestApplyBatchOpsSucceedOrFailAlone).
//     Two state machines fed the same entries answer alike, also when one is
//     closed, reopened and fed already-applied entries again at random
//     points (TestApplyMatchesModel, TestSnapshotRestoreIntoAnotherFSM).
//   - Every op's outcome (appended, duplicate, version conflict, idempotency
//     conflict, invalid) and the resulting streams match an in-memory model
//     of these rules on a random log (TestApplyMatchesModel; the seed is
//     logged and MERIDIAN_SEED replays it).
//   - Expected-version checks: unset/any, no_stream, stream_exists and exact n,
//     against the head at apply time; a conflict is a *VersionConflictError
//     carrying the current version (TestApplyExpectedVersion).
//   - An append's events commit atomically at consecutive versions, with
//     consecutive origin dots (region, seq) and apply-log positions, or not at
//     all (TestApplyAtomicMultiEventAppend).
//   - Each op of a batch succeeds or fails alone; a failed op writes nothing;
//     later ops see earlier ops' writes (TestApplyBatchOpsSucceedOrFailAlone).
//   - Idempotency by event id within the window: the same ids with the same
//     content (entity, type, data, metadata, content type) return the original
//     result with Duplicate set and write nothing, whatever the expected
//     version; other content, another entity, a subset, superset or reordering
//     of an earlier append's ids is ErrIdempotencyConflict; duplicate ids in
//     one append are InvalidArgument (TestApplyIdempotency,
//     TestApplyIdempotencyWithinOneBatch,
//     TestApplyIdempotencyMetadataOrderIrrelevant, TestValidateAppend). The
//     window is judged by HLC and may be stamped by the leader
//     (TestApplyIdempotencyWindowStampedByBatch).
//   - Malformed or oversized input is rejected with an *InvalidArgumentError
//     naming the field and the allowed range, at the edge (ValidateAppend with
//     Limits) and again in apply with the constant HardLimits
//     (TestValidateAppend, TestApplyRejectsMalformedAndOversized).
//   - The entries Raft commits together apply in one Badger transaction
//     holding their data and the ApplyState (applied index and term, applied
//     vector, last position, last HLC), with the same outcome as one at a
//     time (TestApplyBatchMatchesOneByOne). Entries too large for one
//     transaction commit in several; a partial commit records only the
//     entries before the one being written as applied, and a crash in
//     between ends, after replay, in the same state as an uninterrupted
//     apply (TestApplyBatchCrashBetweenPartialCommits,
//     TestApplyLargeEntrySplitsTransactions,
//     TestApplyCrashBetweenPartialCommits). The largest append HardLimits
//     allow fits one transaction (TestApplyLargestAppendFitsOneTransaction),
//     so ErrEntryTooLarge cannot happen for a valid append.
//   - Entries at or below the stored applied index are skipped, including
//     after a reopen (hashicorp/raft re-applies the log after the last
//     snapshot on start) (TestApplySkipsAppliedEntriesAfterReopen). Non-command
//     entries only advance the index (TestApplyNonCommandEntriesAdvanceIndex).
//   - A committed entry that cannot be decoded, has an unknown envelope
//     version or type, or cannot be written makes Apply panic rather than let
//     replicas diverge; the entry is not recorded as applied
//     (TestApplyPanicsOnUndecodableEntry).
//   - Snapshot calls Badger's Sync before returning, so that Raft compacts its
//     log only once Badger covers it (TestSnapshotSyncsBeforeReturning), then
//     streams Badger at a pinned read timestamp: later applies are not in it
//     (TestSnapshotIsAtItsReadTimestamp).
//   - Restore loads into a new Badger directory, checks the loaded ApplyState
//     against the snapshot header, makes it durable, points CURRENT at it and
//     swaps it in; readers see the old or the new state, never a mix or an
//     error (TestRestoreWhileReading); a bad snapshot leaves the state and the
//     directory untouched (TestRestoreRejectsCorruptSnapshotAndKeepsState);
//     leftovers of a crashed restore are removed at open
//     (TestOpenRemovesStaleRestoreDirs).
//   - Close and reopen keep events, heads, the apply log, idempotency records
//     and ApplyState; reads after Close return ErrStoreClosed
//     (TestCloseReopenKeepsEverything).
//   - Merged (active-active) streams: regions that applied the same events
//     read the same stream, in crdt.Order, whatever the delivery order,
//     duplicates or clock skew; a version read as stable never changes
//     (TestMergedStreamsConvergeInEveryDeliveryOrder,
//     TestMergedEventsAreStableOnceEveryRegionStampedPastThem); expected
//     versions other than "any" are InvalidArgument
//     (TestMergedAppendRefusesExpectedVersionsButAny); a stream keeps its
//     single-home prefix and windows agree with the whole
//     (TestMergedStreamKeepsItsSingleHomePrefix); retries are idempotent
//     (TestMergedAppendRetryIsIdempotent). ADR 0005.
//   - Fenced homes: after a PlacementFence, apply refuses (writing nothing)
//     every append routed by a placement copy below the floor, a retry
//     included, and every append under an older epoch than the stream's
//     last event; a freeze records the region's own origin sequence
//     (TestApplyFenceRefusesAppendsRoutedBelowTheFloor,
//     TestApplyRefusesAnEpochOlderThanTheStream).
//   - Forks a failover makes resolve alike in every arrival order: at a
//     version two eras claim, the later era (epoch, then origin) wins; the
//     earlier era's events leave the stream as superseded, stay readable in
//     their origin log, and are queued for recovery; the applied vector
//     still takes every dot once. A recovered re-append is marked and clears
//     the queue everywhere (TestApplyReplicateResolvesAFailoverForkAlikeInEveryOrder,
//     TestRecoveredAppendMarksTheEventAndClearsItsMarker). An origin fence
//     holds a lost region's log back until the cut
//     (TestApplyOriginFenceHoldsALostRegionsLogBack). Once a failover is
//     over, the lost origin's tail (beyond the cut, an epoch before the
//     failover, an entity it moved) is superseded on arrival, so no region
//     orders on top of it (TestALostHomesTailIsSupersededOnArrival,
//     TestChainedFailoversAgreeInEveryRegion).
//   - Every read is one consistent Badger snapshot: ReadStream's events and
//     head agree (TestReadStream, TestReadStreamClampsCount); ReadLog walks
//     the apply log in position order (TestReadLog). Changed is closed after
//     every apply, restore and close (TestChangedSignalsEveryApply).
//   - Key, envelope and snapshot-header decoders reject what they did not
//     encode (FuzzParseKey, FuzzDecodeRef, FuzzDecodeCommand,
//     FuzzSnapshotHeader); keys sort numerically and one stream's key prefix
//     never covers another's (TestKeysOrder).
//   - Events shipped from other regions (COMMAND_TYPE_REPLICATE_BATCH) are
//     applied exactly once, in their origin's order, at the version and dot
//     their home gave them, with this region's positions; an origin stops at
//     its first event that is not next, does not continue its stream here,
//     or whose deps the applied vector does not cover
//     (TestApplyReplicateExactlyOnceInOrigin, TestApplyReplicateWaitsForDeps,
//     TestApplyReplicateRefusesAnEventThatDoesNotContinueItsStream). A local
//     append depends on its writer's token and on the entity's previous
//     event, and is refused (ErrDepsNotApplied) while the applied vector
//     does not cover its token, so the applied vector stays causally closed
//     (TestApplyAppendWaitsForItsTokenAndDependsOnThePreviousEvent). A
//     replicated event is an idempotency record here too
//     (TestApplyReplicatedEventIsAnIdempotencyRecordHere).
//
// # Durability
//
// Badger runs with SyncWrites off: the Raft log is the durability point.
// After a crash Badger may hold less than it applied; Raft re-applies
// everything after its last snapshot, and apply skips what Badger kept.
// That is enough only if Badger covers every entry Raft has compacted away,
// which is why Snapshot syncs Badger before it returns (Raft compacts only
// after the snapshot is persisted).
//
// # What it does not guarantee
//
//   - Badger's Sync fsyncs the active memtable's WAL and the value log, not
//     memtables that were rotated but not yet flushed to level 0. A power loss
//     in that window can leave Badger below the last snapshot's index. Raft's
//     default restore-on-start (the snapshot itself is fsynced) repairs it;
//     a node that sets NoSnapshotRestoreOnStart must call
//     FSM.RestoreIfBehind(snapshotStore) before raft.NewRaft
//     (TestRestoreIfBehind). The power cut itself is not tested.
//   - Idempotency records are judged by HLC in apply, but Badger drops them
//     by the reading replica's wall clock, twice the window after their HLC
//     (idempotencyGraceFactor). An entry applied more than that long after it
//     was proposed (a replica replaying a days-old log) may treat a retry as
//     new while others saw a duplicate. Not tested.
//   - When the leader does not stamp AppendBatch.idempotency_window_seconds,
//     replicas must be configured with the same StoreConfig.IdempotencyWindow.
//   - Reads are local: they are as fresh as this replica's applied index.
//     Linearizable (STRONG) reads are the Raft node's job.
//   - Changed is a wake-up, not a queue: several applies may close one channel.
//   - Restore needs room for two copies of the state while it runs.
package region
