// Package placement is Meridian's global placement table and the Raft group
// that replicates it to every node of every region: which region is each
// entity's home (ARCHITECTURE.md sections 4 and 7). Operators' view:
// docs/PLACEMENT.md; the group's design: DESIGN.md; decisions: ADR 0002.
//
// # Guarantees
//
// Each names the test that checks it.
//
//   - Lookup precedence is pin, then the first rule whose prefix matches, then
//     the default region (TestLookupPrecedence); the rule index answers first
//     match as longest match, which validation makes equal
//     (TestPrefixIndexIsFirstMatch, TestCheckShadowingMatchesDefinition).
//     Lookups are local, allocation-free, and concurrent with apply and
//     restore (TestLookupDoesNotAllocate, TestLookupsDuringApplyAndRestore);
//     p99 well under 5 us with 10,000 rules and 1,000,000 pins (BenchmarkLookup,
//     figures in docs/PERFORMANCE.md).
//   - An entity's epoch is the placement index at which its mapping last
//     changed; it never decreases and grows on every change of home or mode,
//     also when a pin or a more specific rule is removed (TestSetRulesEpochs,
//     TestPinEpochs, TestUnpinEpochs, and the property test
//     TestEpochsMonotonic over random command sequences with reopens).
//   - Bad input is InvalidArgument naming the rule or field and what is
//     allowed: shadowed or duplicate prefixes, malformed or empty prefixes,
//     unknown regions (listing the known ones), bad failover lists, too many
//     rules, a pin without entity (TestValidateRules, TestValidateRulesTooMany,
//     TestValidatePin, TestValidateMember). It is checked before proposing and
//     again in apply; a rejected command writes nothing but the applied index
//     (TestRejectedCommandsWriteNothing). A SetRules with a stale
//     expected_index is ErrConflict (TestSetRulesExpectedIndex).
//   - Apply is deterministic, durable before it returns (Badger SyncWrites),
//     skips entries at or below the stored applied index after a reopen, and
//     panics on an entry it cannot decode or write rather than diverge
//     (TestCloseReopenKeepsEverything, TestApplySkipsAppliedEntriesAfterReopen,
//     TestApplyPanicsOnUndecodableEntry).
//   - Snapshots are consistent (a pinned read transaction) and restore builds
//     the new table before touching the old one; a corrupt snapshot leaves the
//     state intact; a crash in the middle of a restore is repaired from the
//     snapshot at the next open (TestSnapshotRestoreIntoAnotherFSM,
//     TestSnapshotIsAtItsReadTimestamp,
//     TestRestoreRejectsCorruptSnapshotAndKeepsState, TestRestoreIfNeeded).
//   - Every decoder of stored or wire bytes rejects what it did not encode
//     without panicking (FuzzDecodeCommand, FuzzRestore, FuzzParseKey).
//   - The group keeps VotersPerRegion voters in every region: a region's
//     stable, healthy non-voter replaces a voter that is not healthy, surplus
//     voters are demoted, and a failed voter is removed only when its region
//     has enough healthy voters without it (TestRegionPromoter,
//     TestFilterFailedServerRemovals; end to end in tests/multiregion
//     TestPlacementVoterKilledIsReplacedByAnotherNodeOfItsRegion).
//   - Changes through any node commit once (forwarded to the leader at most
//     once) and reach every node's copy; the table survives a restart of every
//     node; a partitioned minority keeps answering lookups and reports how
//     stale its copy is (tests/multiregion TestPlacement*).
//   - A change that moves homes is staged: lookups report the moved
//     entities as moving until every old home froze and every new home
//     drained, and the entry that completes it applies the change at its own
//     index; one at a time; an aborted one changes nothing; it survives
//     restarts and snapshots (TestStagedPinTakesEffectOnlyOnceTheOldHomeFrozeAndTheNewHomeDrained,
//     TestAbortedTransitionLeavesTheTableAsItWas,
//     TestTransitionInProgressSurvivesRestartAndSnapshot). The moves listed
//     for a rule change are every pair of homes an entity can move between;
//     a switch between single-home and active-active lists the single home
//     with every other region (to active-active: the home freezes, the
//     others drain it; back: the others freeze, the home drains them)
//     (TestRuleMovesCoverEveryMovedEntity, a property test;
//     TestSwitchToActiveActiveIsAHandover). Merge rules are allowed on
//     active-active rules only, one per event type, one kind per target
//     (TestValidateRules).
//   - A lease renewal is stored with its index; a member counts it expired
//     duration + MaxClockOffset after it applied it (TestLeaseRenewalsAndTheirExpiry).
//     A failover stages only with the lost region's current renewal, moves
//     only SAFE rules to a region of their list, and completes once every
//     survivor fenced the lost log and the new home holds the cut
//     (TestFailoverFencesTheLostLogAndFlipsOnceTheNewHomeHoldsTheCut).
//
// # What it does not guarantee
//
//   - Leases assume clocks whose rates differ by less than MaxClockOffset
//     over one lease duration; offsets between wall clocks do not matter to
//     them (regions fence themselves beyond ClockOffsetMax anyway).
//   - Liveness comes from the leader's stats fetches, not from gossip: a
//     member the leader cannot reach counts as failed even if others reach it.
package placement
