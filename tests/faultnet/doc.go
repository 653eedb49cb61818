// Package faultnet is an in-process fault network for Meridian's tests.
//
// A *Net hands out per-host views (net.Host("us-1")) that implement the
// region.Network method set (Listen, Dial). Every real socket is on
// 127.0.0.1; Listen records which host owns the address. Connections dialled
// through a Host are proxied in user space by the dialling side, which sees
// both directions of the stream, so every fault can be set per DIRECTED link
// (from host, to host):
//
//   - latency with jitter (SetLatency, or a named Profile such as "wan3"
//     grouping hosts into regions by name prefix), applied per write chunk,
//     never reordering bytes (TestLatencyPerDirectedLink, TestJitterKeepsOrder,
//     TestProfileWAN3); a dial costs one round trip;
//   - connection loss: new dials fail with a probability, and a connection
//     carrying a chunk is reset with a probability (TestDialLossIsSeeded,
//     TestChunkResetAndResetHost);
//   - one-way partition Block(a, b): dials a->b fail, bytes a->b are dropped
//     on every connection between a and b (whichever side dialled), b->a
//     still flows and b can still dial a; connections that dropped bytes are
//     reset on heal (TestOneWayPartition);
//   - full partition, group partitions, isolation; they black-hole existing
//     connections too, so a Raft peer really stops hearing the other side
//     (TestPartitionBreaksExistingConnections, TestPartitionGroupsAndIsolate);
//   - stall / pause: bytes are held and delivered in order after Resume, the
//     connection survives (TestStallDeliversAfterHeal);
//   - ResetConns / ResetHost: RST every connection, as a crashed process's
//     kernel would (TestChunkResetAndResetHost).
//
// Proxied connections satisfy x/net's net.Conn conformance suite, deadlines
// included (TestConnConformance).
//
// Randomness (jitter, loss) comes from one generator per directed link seeded
// from New's seed, so a link's sequence of draws is reproducible; which
// goroutine takes which draw still depends on scheduling.
//
// What it does not do: packet-level effects (reordering, duplication,
// partial loss inside a TCP stream: TCP hides them); faults on connections
// that were not dialled through a Host (plain net.Dial to a faultnet listener
// is not proxied); a host's connections to itself never cross a link. A
// one-way partition is a message-level model: in real TCP, a->b loss also
// prevents b's handshakes with a; here b can still connect (see Block).
package faultnet
