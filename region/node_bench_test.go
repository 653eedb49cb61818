package region

import (
	"context"
	"runtime"
	"testing"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Three nodes in one process on plain TCP (no fault proxy), 1 KiB events.
// In-process figures are about half of three processes' (ECOSYSTEM.md);
// tests/perf measures the region across processes.
func benchRegion(b *testing.B) (*raftRegion, int) {
	r := newTestRegion(b, 3, func(c *Config) { c.Network = TCP })
	return r, r.waitLeader()
}

func benchEvent() *meridianv1.ProposedEvent {
	e := newTestEvent()
	e.Data = make([]byte, 1024)
	return e
}

func BenchmarkNodeAppend1Client(b *testing.B) {
	r, leader := benchRegion(b)
	n := r.node(leader)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := n.Append(ctx, appendRequest(testEntity(i%64), benchEvent())); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNodeAppend64Clients(b *testing.B) {
	r, leader := benchRegion(b)
	n := r.node(leader)
	ctx := context.Background()
	b.SetParallelism(64 / max(1, testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := n.Append(ctx, appendRequest(testEntity(i%64), benchEvent())); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkNodeReadLast10(b *testing.B) {
	r, leader := benchRegion(b)
	n := r.node(leader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 100 {
		if _, err := n.Append(ctx, appendRequest("read-bench", benchEvent())); err != nil {
			b.Fatal(err)
		}
	}
	f := r.node(r.follower(leader))
	req := &meridianv1.ReadRequest{Entity: "read-bench", MaxCount: 10, Direction: meridianv1.Direction_DIRECTION_BACKWARD, Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL}
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Read(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
