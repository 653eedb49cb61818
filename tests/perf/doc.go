// Package perf holds Meridian's end-to-end benchmarks and the baselines they
// are judged against, measured side by side in one `go test -bench` run:
//
//   - the physical floor: a 4 KiB write + fdatasync on the data disk, and a
//     TCP round trip on loopback;
//   - the library ceiling: bare hashicorp/raft with a no-op state machine, on
//     the same log store (raftlog) and transport (TCP), three processes,
//     plus raft-wal as a second baseline (ADR 0001);
//   - the same bare raft behind the region's API hop (BenchmarkBareRaftAPI):
//     the leader in its own process answering Connect appends, loaded like
//     the region, so that the hop and what the region does behind it can be
//     told apart;
//   - the region: three `meridian server` processes on loopback, appends and
//     reads over the Connect API.
//
// Every multi-process benchmark runs real processes: the benchmark binary
// re-executes itself (see TestMain) for the bare-raft followers, and builds
// and starts the real meridian binary for the region. Children read their
// standard input and exit when it closes, so a killed benchmark leaves no
// process behind.
//
// To profile the servers under load, build the binary with the pprof hook
// and point the benchmark at it:
//
//	go build -tags meridian_pprof -o /tmp/meridian ./cmd/meridian
//	MERIDIAN_BIN=/tmp/meridian MERIDIAN_PPROF_DIR=/tmp/pprof go test -run '^$' -bench 'RegionAppend/clients=64' -benchtime 60000x ./tests/perf/
//
// and fetch http://<address in /tmp/pprof/<pid>.addr>/debug/pprof/profile
// while it runs (cmd/meridian/pprof.go).
//
// Three scripts here measure what a benchmark cannot from inside one
// process: sustained.sh (server CPU and page faults per append over a run
// long enough for Badger to flush), peercpu.sh (CPU per write of NATS
// JetStream, etcd and a Meridian region, servers and client, one after the
// other) and profilecat.py (CPU per operation by library, from the
// servers' CPU profiles).
//
// Figures and commands are in docs/PERFORMANCE.md. Run with
//
//	make bench-e2e
//
// These are benchmarks, not tests: the default `go test` run executes only
// the smoke tests in this package, which check that the harness works.
package perf
