// Package replication ships committed events between regions
// (ARCHITECTURE.md section 5): every region pulls, from any region it can
// reach, the parts of every other origin's log it is missing, and applies
// them through its own Raft group, exactly once and in causal order.
//
// Two halves, over the Connect service meridian.v1.Replication:
//
//   - Service (service.go) serves Pull on any node of a region, followers
//     too, from the node's copy of each origin's log (a LogSource).
//   - Shipper (shipper.go, puller.go, leader.go) runs on the region leader:
//     per other origin one puller streams that origin's log from a source
//     region and proposes causally ready batches through an Applier.
//
// The package imports neither region nor placement nor node; it declares
// the small interfaces it needs (LogSource, Applier, Leadership, Directory)
// and node/ wires them. The request path, state and failure handling are in
// DESIGN.md.
//
// # Guarantees
//
// Each names the test that checks it. Exactly-once and causal delivery are
// finally enforced by the region's apply rules (an event goes only when it
// is the next of its origin and the applied vector covers its deps); what
// this package guarantees is that it only proposes events those rules take,
// never skips one, and keeps going through faults.
//
//   - Every event of every origin reaches every region once, event for
//     event, through connection resets, lost dials, streams that end at
//     random, and sources that resend or overlap messages
//     (TestShipperExactlyOnceUnderReconnectsAndDuplicates; the closing
//     check of every shipper test compares each copy with the origin's log
//     and fails on a second apply of any event).
//   - The shipper never proposes an event out of its origin's order or
//     before its deps are applied: a fake region with region's apply rules
//     records every proposal it had to stop, and none is allowed
//     (TestShipperNeverProposesOutOfCausalOrder with deps crossing four
//     origins at random; TestNextBatchIsWhatApplyTakes: a batch is exactly
//     the longest prefix apply takes in full; TestNextBatch).
//   - An event whose deps include another origin's events waits until a
//     puller of that origin has applied them, then goes, without a
//     proposal apply would stop (TestShipperWaitsForDepsOfAnotherOrigin).
//   - A non-transitive partition is routed around: with A-B cut and both
//     reaching C, A's events reach B through C and B's reach A
//     (TestShipperRoutesAroundNonTransitivePartition).
//   - Memory is bounded: a puller holds at most PendingEventsMax events and
//     PendingBytesMax bytes (one message more only when it holds nothing),
//     and stops reading its stream while full, so a slow Raft group slows
//     the source through HTTP/2 flow control (TestShipperPendingStaysBounded
//     asserts the maximum observed). A Pull handler holds one page.
//   - Replication runs on the region leader only: a follower opens no stream
//     and proposes nothing; on losing leadership every stream ends; on
//     regaining it the pullers resume from the applied vector, the only
//     cursor, so nothing is pulled twice or skipped
//     (TestShipperFollowsLeadership). Regions that join the directory get a
//     puller as soon as the directory announces the change
//     (TestShipperPicksUpRegionsThatJoin), or at the next DirectoryRefresh
//     without it (TestShipperFindsJoinedRegionsByRefreshWithoutWakeUps). Close stops everything
//     and leaves no goroutine (TestShipperClosesWhileLeading; TestMain runs
//     goleak over the package).
//   - Lag reports per origin the applied entry, the highest entry a source
//     has offered, their difference, the age of the oldest event held and
//     not applied, and the source pulled from (TestShipperLag,
//     TestShipperWaitsForDepsOfAnotherOrigin). Its staleness adds the
//     source's own (origin_staleness on every Pull message, zero from the
//     origin), so a region pulling through another is never fresher than
//     that region; a source staler than StallTimeout sends the puller back
//     to the origin (TestShipperStalenessIncludesTheSourcesOwn,
//     TestServiceSendsOriginStaleness).
//   - Pull validates its request (InvalidArgument naming origin, from_seq or
//     requester_region; TestServiceValidatesPull,
//     TestValidatePullRejectsInvalidUTF8), caps max_events to PullEventsMax
//     (TestValidatePullCapsMaxEvents) and messages to MessageBytesMax
//     (TestServiceBoundsMessageBytes), serves what is stored then follows
//     live (TestServiceCatchUpThenLive), answers at once and sends
//     heartbeats carrying the applied vector while caught up
//     (TestServiceFirstMessageAndHeartbeatsCarryAppliedVector), and ends its
//     streams on Close (TestServiceCloseEndsStreams).
//
// # What it does not guarantee
//
//   - Causal order is only as good as the deps the origin recorded: events
//     are ordered by their deps, not by the origin's whole vector.
//   - No delivery deadline: an event whose deps are on an origin no
//     reachable region holds waits, holding its puller's pending list,
//     until one does. Lag shows it.
//   - Lag's age is measured against this node's clock and the origin's HLC
//     wall time, so it is off by the clock offset between them; it is zero
//     when nothing is held even if lag_events is not (between streams).
//   - Known only grows within a leadership term and starts from scratch in
//     the next; it is what sources said, not a bound on the origin's log.
//   - The puller prefers the origin and otherwise keeps the source that
//     serves it: after a partition heals it returns to the origin only once
//     its stream to the other source ends or stalls.
//   - A stream blocked sending to a slow client ends when the HTTP server
//     closes the connection, not at Service.Close.
package replication
