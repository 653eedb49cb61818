// Command meridian is Meridian's single binary: a node (`meridian server`),
// a local multi-region deployment (`meridian dev`) and the client commands
// (`append`, `read`, `tail`, `log`, `group create|list|info|delete`, `consume`, `status`, `placement get|rules|set-rules|pin|unpin`,
// `regions`, `bench`).
//
// What it guarantees:
//
//   - `meridian dev` starts 3 regions (one placement group, example rules set
//     and applied everywhere, every region pulling every other) in one
//     process on 127.0.0.1, prints every endpoint, stops cleanly on SIGINT
//     (exit 0, ports freed, temporary data removed), and the walk-through of
//     README.md works against it: TestBinaryDevWalkthrough builds the real
//     binary, writes in one region and reads it with the session token
//     through another, which serves it from its replica; runs placement
//     get/rules/pin, regions (applied vectors, replication lag), a
//     MULTI_REGION append, a refused rule change, tail, then `dev --smoke`,
//     with and without --wan-latency.
//   - `dev --wan-latency D` delays both directions of every connection a
//     node dials to another region's address by D, keeping byte order,
//     without delaying the writer, with bounded buffers; connections within
//     a region are not delayed (TestWAN*).
//   - `meridian server` takes every setting from flags or MERIDIAN_*
//     variables and stops cleanly on SIGTERM (TestBinaryServerSingleNode);
//     contradictory flags, placement ones included, are usage errors naming
//     them (TestServerConfigErrors).
//   - Client commands print people-readable lines by default and one
//     protojson object per line with --json; errors print the Connect code
//     and message and exit 1, command-line mistakes exit 2
//     (TestCLIAppendReadStatus, TestCLIErrors, TestCLIUnreachableEndpointHint,
//     TestCLIPlacementCommands, TestCLISetRules, TestCLIPlacementOnSingleRegionNode).
//   - `regions` shows each region leader's applied vector and the contacted
//     region's replication per origin, asking the region leader when the
//     contacted node follows; a region that does not answer is shown as
//     unknown (TestCLIRegionsShowsReplication).
//   - `tail` ends with exit 0 on Ctrl-C (TestCLITailStopsCleanlyOnCancel).
//   - `bench` runs N client sessions, closed loop or at a fixed offered rate,
//     appends (and reads with --read-ratio), and reports throughput and
//     client-side latency percentiles; what it counts as appended is what
//     the store holds, give or take the appends the end of the run cut off
//     (TestBenchClosedLoopCountsWhatTheStoreReceived, and against a real
//     deployment in TestBinaryDevWalkthrough); bad flags are usage errors
//     naming the allowed range (TestBenchRejectsBadFlags); a run where
//     nothing succeeds fails (TestBenchFailsWhenNothingSucceeds).
//
// What it does not do: TLS, configuration files. The emulated WAN adds
// latency only: no loss, jitter or bandwidth limit.
package main
