package replication

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func BenchmarkNextBatch(b *testing.B) {
	events := evs("a", 1, 256)
	for i := range events {
		events[i].Deps = map[string]uint64{"a": uint64(i), "b": 3, "c": 7}
	}
	sizes := sizesOf(events)
	applied := map[string]uint64{"b": 10, "c": 10}
	b.ReportAllocs()
	for b.Loop() {
		if n, _ := nextBatch("a", events, sizes, applied, 256, 4<<20); n != 256 {
			b.Fatal(n)
		}
	}
}

// BenchmarkShipperCatchUp measures how fast a region catches up on another
// origin's log over real Connect on loopback (fake Raft: apply is a map
// append), in events per second of 200-byte events.
func BenchmarkShipperCatchUp(b *testing.B) {
	const events = 20000
	w := newWorld(b, []string{"a", "b"}, worldOptions{noShipper: true})
	for range events {
		w.rs["a"].fake.Append(nil, 200)
	}
	var elapsed time.Duration
	rounds := 0
	for b.Loop() {
		// Each round catches up from nothing: a fresh receiving region.
		b.StopTimer()
		fresh := newFakeRegion("b")
		r := w.rs["b"]
		s, err := NewShipper(r.cfg, Deps{Log: fresh, Applier: fresh, Leadership: r.lead, Directory: w.dir})
		require.NoError(b, err)
		b.StartTimer()
		start := time.Now()
		for {
			changed := fresh.Changed()
			if fresh.Applied()["a"] == events {
				break
			}
			<-changed
		}
		elapsed += time.Since(start)
		rounds++
		b.StopTimer()
		require.NoError(b, s.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(events*rounds)/elapsed.Seconds(), "events/s")
}
