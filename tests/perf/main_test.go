package perf

import (
	"context"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case roleRaftNode:
		os.Exit(runBareRaftChild())
	case roleRaftAPILeader:
		os.Exit(runBareRaftAPILeader())
	}
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

// TestBareRaftClusterSmoke proves the baseline harness works: three processes
// form a group and commit entries. The benchmarks rely on it.
func TestBareRaftClusterSmoke(t *testing.T) {
	c := sharedBareCluster(t, storeRaftLog)
	for range 10 {
		if err := c.apply(make([]byte, eventBytes)); err != nil {
			t.Fatalf("apply on the bare raft leader: %v", err)
		}
	}
	if got := c.leader.raft.Stats()["num_peers"]; got != "2" {
		t.Fatalf("bare raft leader sees %s peers, want 2", got)
	}
}

// TestBareRaftAPISmoke proves the bare-raft-behind-Connect baseline: its
// leader process answers appends.
func TestBareRaftAPISmoke(t *testing.T) {
	c := sharedBareAPICluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.clients[0].Append(ctx, connect.NewRequest(appendReq("smoke", 1)))
	if err != nil {
		t.Fatalf("append through the bare raft API leader: %v", err)
	}
}

// TestRegionClusterSmoke proves the region benchmark's harness: three real
// `meridian server` processes form a group, elect a leader and commit.
func TestRegionClusterSmoke(t *testing.T) {
	c := sharedRegion(t)
	if c.leader == "" || c.follow == nil {
		t.Fatalf("region cluster has no leader or follower: %+v", c)
	}
}

// TestSecureRegionClusterSmoke: the TLS-and-tokens region of
// BenchmarkRegionAppendTLS comes up and commits (waitLeader appends once).
func TestSecureRegionClusterSmoke(t *testing.T) {
	c := sharedSecureRegion(t)
	if c.leader == "" || c.follow == nil || c.scheme != "https" {
		t.Fatalf("secure region cluster has no leader or follower, or no TLS: %+v", c)
	}
}
