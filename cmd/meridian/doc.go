// Command meridian is Meridian's single binary: a node (`meridian server`),
// a local multi-region deployment (`meridian dev`) and the client commands
// (`append`, `read`, `tail`, `status`, `placement get|rules|set-rules|pin|unpin`,
// `regions`).
//
// What it guarantees:
//
//   - `meridian dev` starts 3 regions (one placement group, example rules set
//     and applied everywhere) in one process on 127.0.0.1, prints every
//     endpoint, stops cleanly on SIGINT (exit 0, ports freed, temporary data
//     removed), and the walk-through of README.md works against it:
//     TestBinaryDevWalkthrough builds the real binary, writes in one region
//     and reads through another, runs placement get/rules/pin, regions, a
//     refused rule change, tail, then `dev --smoke`.
//   - `meridian server` takes every setting from flags or MERIDIAN_*
//     variables and stops cleanly on SIGTERM (TestBinaryServerSingleNode);
//     contradictory flags, placement ones included, are usage errors naming
//     them (TestServerConfigErrors).
//   - Client commands print people-readable lines by default and one
//     protojson object per line with --json; errors print the Connect code
//     and message and exit 1, command-line mistakes exit 2
//     (TestCLIAppendReadStatus, TestCLIErrors, TestCLIUnreachableEndpointHint,
//     TestCLIPlacementCommands, TestCLISetRules, TestCLIPlacementOnSingleRegionNode).
//   - `tail` ends with exit 0 on Ctrl-C (TestCLITailStopsCleanlyOnCancel).
//
// What it does not do: TLS, configuration files, replication between
// regions or WAN latency in `dev` (issue 6).
package main
