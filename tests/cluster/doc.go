// Package cluster runs an in-process Meridian region for system tests: real
// region.Nodes (Raft over raftlog, Badger, the Connect API over h2c), each
// with its own data directory, every connection (Raft, forwarding, clients)
// through a faultnet host per node, every node on its own injectable clock.
// It implements nemesis.Cluster, and Workload drives recorded client traffic
// (appends with unique event ids, expected versions and same-id retries,
// STRONG and SESSION reads, session tokens) through it.
//
// TestNemesis is the single-region nemesis run: 3 nodes under seeded
// schedules, then heal, a final write, convergence, and every checker of
// package check over the history. The default run takes three schedules of
// 8 s (rotating through every kind by seed); MERIDIAN_NEMESIS_LONG=1 runs
// issue 4's acceptance run (leader-kill, partition-leader, one-way, pause,
// combined; 20 s and at least 2,000 operations each). A failure prints the
// seed, the schedule and the replay command, and dumps the history and any
// porcupine visualisation under $TMPDIR/meridian-nemesis-<kind>-<seed>/.
//
// Limits of an in-process cluster: Kill closes the node (Raft shut down,
// Badger closed and flushed) after resetting its connections, which is
// harsher on the network than on the disk: unlike SIGKILL it loses no
// unsynced Badger writes (the chaos suite covers that). Pause stalls the
// node's links but its timers keep running, so a paused leader steps down
// instead of waking up believing it still leads.
package cluster
