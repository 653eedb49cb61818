// Package chaos runs the real meridian binary as separate processes, one
// network namespace per node, and injects faults that only an operating
// system can: SIGKILL, SIGSTOP/SIGCONT, restarts from disk, and packet-level
// partitions with iptables (full and one-way).
//
// Topology: a hub namespace holds a bridge; every node namespace has a veth
// pair whose other end is attached to the bridge. Nodes get addresses in
// Subnet, a range that exists only inside these namespaces: the root
// namespace gets no interface on it, and the test process reaches the nodes by
// dialling from inside the hub namespace (setns on a locked OS thread). A
// mistake in the set-up therefore yields "network unreachable", never a packet
// to some other host.
//
// The suite needs root, iproute2 and iptables; `make chaos` runs it with the
// build tag chaos, and .ci/run installs the packages. Without root or the
// tools it fails and says what is missing, it never skips. Namespaces,
// iptables rules (which live in the namespaces) and processes are removed at
// the end of every run, also when a test fails, and the test checks that
// nothing was left behind.
package chaos
