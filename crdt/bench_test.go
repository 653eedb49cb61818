package crdt

import (
	"strconv"
	"testing"

	"github.com/meridiandb/meridian/causal"
)

// Benchmarks for the hot paths. Figures and the command that produced them
// are in docs/PERFORMANCE.md.

var benchRegions = []string{"af-south-1", "ap-south-1", "eu-west-1", "sa-east-1", "us-east-1"}

// BenchmarkORSetApply applies add and remove ops from 5 regions to a set of
// about 1,000 elements; each op carries a 5-region context.
func BenchmarkORSetApply(b *testing.B) {
	const n = 1 << 14
	ops := make([]SetOp[string], n)
	seq := make([]uint64, len(benchRegions))
	ctx := causal.Vector{}
	for i := range ops {
		r := i % len(benchRegions)
		seq[r]++
		m := Meta{Dot: causal.Dot{Region: benchRegions[r], Seq: seq[r]}, HLC: causal.Timestamp{WallNanos: int64(i)}}
		ops[i] = SetOp[string]{Meta: m, Context: ctx.Clone(), Elem: strconv.Itoa(i % 1000), Remove: i%4 == 3}
		ctx.AddDot(m.Dot)
	}
	s := NewORSet[string]()
	b.ReportAllocs()
	i := 0
	cpu := startCPU()
	for b.Loop() {
		if i == n {
			b.StopTimer()
			s, i = NewORSet[string](), 0
			b.StartTimer()
		}
		s.Apply(ops[i])
		i++
	}
	cpu.report(b)
}

func BenchmarkLWWRegisterApply(b *testing.B) {
	r := NewLWWRegister[int]()
	ctx := causal.Vector{}
	b.ReportAllocs()
	var seq uint64
	cpu := startCPU()
	for b.Loop() {
		seq++
		op := RegisterOp[int]{Meta: Meta{Dot: causal.Dot{Region: "eu-west-1", Seq: seq}}, Context: ctx, Value: int(seq)}
		r.Apply(op)
		ctx["eu-west-1"] = seq
	}
	cpu.report(b)
}

func BenchmarkOpMarshal(b *testing.B) {
	op := sampleOps()["map put"]
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := op.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func BenchmarkOpUnmarshal(b *testing.B) {
	buf, err := sampleOps()["map put"].MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := UnmarshalOp(buf); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkOrder1000 orders 1,000 events from 5 regions, each depending on
// the latest event of the previous region.
func BenchmarkOrder1000(b *testing.B) {
	evs := make([]Event[int], 1000)
	seq := make([]uint64, len(benchRegions))
	for i := range evs {
		r := i % len(benchRegions)
		seq[r]++
		p := (r + len(benchRegions) - 1) % len(benchRegions)
		evs[i] = Event[int]{
			Dot:  causal.Dot{Region: benchRegions[r], Seq: seq[r]},
			Deps: causal.Vector{benchRegions[p]: seq[p]},
			HLC:  causal.Timestamp{WallNanos: int64(i * 7 % 1000)},
		}
	}
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := Order(evs); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
