// Package node is Meridian's composition root: it wires one process from a
// region member (region.Node) and the API server.
//
// What it guarantees:
//
//   - One HTTP server per node serves, over HTTP/1.1 and h2c (HTTP/2 without
//     TLS), the meridian.v1.EventStore service in the Connect, gRPC and
//     gRPC-Web protocols, the gRPC health service (SERVING while the region
//     knows a leader) and gRPC server reflection (v1 and v1alpha), so grpcurl
//     and buf curl work without .proto files (TestStartThreeNodeRegion).
//   - Every listener and connection goes through Config.Network, so tests can
//     inject latency and partitions; production uses region.TCP.
//   - Close is graceful and idempotent: subscriptions are ended first (their
//     clients resume elsewhere), in-flight calls get Config.ShutdownTimeout,
//     then the region member closes (TestStartThreeNodeRegion, subtest "close
//     ends subscriptions and the client resumes elsewhere").
//   - With the client package, a write sent to a leader that is cut off from
//     its peers ends up applied exactly once, through the new leader
//     (TestClientFailsOverWhenLeaderIsolated, over tests/faultnet).
//
// What it does not do: read flags, environment or files (cmd/meridian does),
// terminate TLS, or discover peers beyond Config.Peers.
package node
