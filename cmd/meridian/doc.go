// Command meridian is Meridian's single binary: a node (`meridian server`),
// a local development region (`meridian dev`) and the client commands
// (`append`, `read`, `tail`, `status`).
//
// What it guarantees:
//
//   - `meridian dev` starts a 3-node region in one process on 127.0.0.1,
//     prints every endpoint, stops cleanly on SIGINT (exit 0, ports freed,
//     temporary data removed), and the walk-through of README.md works
//     against it: TestBinaryDevWalkthrough builds the real binary and runs
//     append, read, tail and status against `dev`, then `dev --smoke`.
//   - `meridian server` takes every setting from flags or MERIDIAN_*
//     variables and stops cleanly on SIGTERM (TestBinaryServerSingleNode,
//     TestServerConfigErrors).
//   - Client commands print people-readable lines by default and one
//     protojson object per line with --json; errors print the Connect code
//     and message and exit 1, command-line mistakes exit 2
//     (TestCLIAppendReadStatus, TestCLIErrors, TestCLIUnreachableEndpointHint).
//   - `tail` ends with exit 0 on Ctrl-C (TestCLITailStopsCleanlyOnCancel).
//
// What it does not do: TLS, configuration files, or more than one region in
// `dev` (the replication work extends it).
package main
