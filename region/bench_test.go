package region

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// BenchmarkApplyBatch64x1KiB: one Raft entry holding 64 single-event appends
// of 1 KiB each, on 64 streams (the batcher's typical full batch).
func BenchmarkApplyBatch64x1KiB(b *testing.B) {
	f := newTestFSM(b)
	d := newFSMDriver(b, f)
	data := make([]byte, 1024)
	n := 0
	b.ReportAllocs()
	b.SetBytes(64 * 1024)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l := d.entry64(&n, data)
		b.StartTimer()
		res := f.Apply(l).(*BatchResult)
		if res.Ops[63].Err != nil {
			b.Fatal(res.Ops[63].Err)
		}
	}
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkApplySustained applies entries of 64 single-event 1 KiB
// appends (JSON-like, compressible data) long enough for Badger to flush
// memtables, once per table compression (ADR 0008), and reports the
// process's CPU per append: apply, Badger's flushes and the runtime's page
// faults, which a short run that never fills a 64 MiB memtable leaves out.
// Use at least -benchtime 2000x (128,000 appends, about three flushes).
func BenchmarkApplySustained(b *testing.B) {
	data := []byte(strings.Repeat(`{"sku":"A-1001","qty":1,"note":"compressible"}`, 23)[:1024])
	for _, c := range Compressions {
		b.Run("compression="+string(c), func(b *testing.B) {
			f := openCompressedFSM(b, b.TempDir(), c)
			defer func() { _ = f.Close() }()
			d := newFSMDriver(b, f)
			n := 0
			entries := make([]*raft.Log, b.N)
			for i := range entries {
				entries[i] = d.entry64(&n, data)
			}
			cpu0 := processCPU(b)
			b.ResetTimer()
			for _, l := range entries {
				if res := f.Apply(l).(*BatchResult); res.Ops[63].Err != nil {
					b.Fatal(res.Ops[63].Err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N*64), "cpu-us/append")
			b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// entry64 is the next entry of 64 single-event appends of data on streams
// bench-0 to bench-63; *n counts the event ids used so far.
func (d *fsmDriver) entry64(n *int, data []byte) *raft.Log {
	ops := make([]*meridianv1.AppendOp, 64)
	for j := range ops {
		*n++
		ops[j] = &meridianv1.AppendOp{Entity: fmt.Sprintf("bench-%d", j),
			Events: []*meridianv1.ProposedEvent{{Id: eid(*n), Type: "Bench", Data: data}}}
	}
	d.wall++
	return d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: d.wall}, Ops: ops})
}

// BenchmarkReadStreamLast10: the last 10 events of a 1000-event stream of
// 1 KiB events (a local read's state-machine part).
func BenchmarkReadStreamLast10(b *testing.B) {
	f := newTestFSM(b)
	d := newFSMDriver(b, f)
	data := make([]byte, 1024)
	for k := 0; k < 10; k++ {
		o := &meridianv1.AppendOp{Entity: "stream"}
		for j := 0; j < 100; j++ {
			o.Events = append(o.Events, &meridianv1.ProposedEvent{Id: eid(k*100 + j + 1), Type: "Bench", Data: data})
		}
		d.mustAppend(o)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs, head, err := f.ReadStream("stream", 0, 10, true)
		if err != nil || len(evs) != 10 || head != 1000 {
			b.Fatal(err, len(evs), head)
		}
	}
}
