// Package perf holds Meridian's end-to-end benchmarks and the baselines they
// are judged against, measured side by side in one `go test -bench` run:
//
//   - the physical floor: a 4 KiB write + fdatasync on the data disk, and a
//     TCP round trip on loopback;
//   - the library ceiling: bare hashicorp/raft with a no-op state machine, on
//     the same log store (raft-boltdb) and transport (TCP), three processes,
//     plus raft-wal as a second baseline (ADR 0001);
//   - the region: three `meridian server` processes on loopback, appends and
//     reads over the Connect API.
//
// Every multi-process benchmark runs real processes: the benchmark binary
// re-executes itself (see TestMain) for the bare-raft followers, and builds
// and starts the real meridian binary for the region. Children read their
// standard input and exit when it closes, so a killed benchmark leaves no
// process behind.
//
// Figures and commands are in docs/PERFORMANCE.md. Run with
//
//	make bench-e2e
//
// These are benchmarks, not tests: the default `go test` run executes only
// the smoke tests in this package, which check that the harness works.
package perf
