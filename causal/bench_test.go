package causal

import (
	"testing"
	"time"
)

// Benchmarks for the hot paths. Figures and the command that produced them
// are in docs/PERFORMANCE.md.

func fiveRegions() Vector {
	return Vector{"eu-west-1": 123456, "us-east-1": 98765, "ap-south-1": 4242, "sa-east-1": 77, "af-south-1": 1}
}

func BenchmarkVectorMerge5(b *testing.B) {
	v, o := fiveRegions(), fiveRegions()
	o["us-east-1"]++
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = v.Merge(o)
	}
	cpu.report(b)
}

func BenchmarkVectorMergeFrom5(b *testing.B) {
	v, o := fiveRegions(), fiveRegions()
	o["us-east-1"]++
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		v.MergeFrom(o)
	}
	cpu.report(b)
}

func BenchmarkVectorMarshal5(b *testing.B) {
	v := fiveRegions()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := v.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func BenchmarkVectorUnmarshal5(b *testing.B) {
	buf, err := fiveRegions().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := UnmarshalVector(buf); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkTokenRoundTrip5 is FormatToken then ParseToken for 5 regions
// (target: under 1 µs).
func BenchmarkTokenRoundTrip5(b *testing.B) {
	v := fiveRegions()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := ParseToken(FormatToken(v)); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func BenchmarkHLCNow(b *testing.B) {
	c := NewHLC(nil, time.Second)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		c.Now()
	}
	cpu.report(b)
}

// BenchmarkBufferInOrder5 feeds events from 5 regions, round robin, each
// depending on the previous event of the region before it, in an order in
// which every event is deliverable on arrival (target: over 1M events/s).
func BenchmarkBufferInOrder5(b *testing.B) {
	regions := []string{"af-south-1", "ap-south-1", "eu-west-1", "sa-east-1", "us-east-1"}
	const n = 1 << 16
	evs := make([]Event[int], n)
	seq := make([]uint64, len(regions))
	for i := range evs {
		r := i % len(regions)
		seq[r]++
		var deps Vector
		if p := (r + len(regions) - 1) % len(regions); seq[p] > 0 {
			deps = Vector{regions[p]: seq[p]}
		}
		evs[i] = Event[int]{Dot: Dot{Region: regions[r], Seq: seq[r]}, Deps: deps, Payload: i}
	}
	buf, err := NewBuffer[int](DefaultBufferConfig())
	if err != nil {
		b.Fatal(err)
	}
	out := make([]Event[int], 0, 16)
	b.ReportAllocs()
	i := 0
	cpu := startCPU()
	for b.Loop() {
		if i == n {
			b.StopTimer()
			buf, _ = NewBuffer[int](DefaultBufferConfig())
			i = 0
			b.StartTimer()
		}
		out, err = buf.Add(out[:0], evs[i])
		if err != nil || len(out) != 1 {
			b.Fatalf("event %d: %v, released %d", i, err, len(out))
		}
		i++
	}
	cpu.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBufferReverse5 is the worst arrival order: each batch of 64
// events per region arrives newest first, so all but one wait.
func BenchmarkBufferReverse5(b *testing.B) {
	regions := []string{"af-south-1", "ap-south-1", "eu-west-1", "sa-east-1", "us-east-1"}
	const batch = 64
	evs := make([]Event[int], 0, batch*len(regions))
	for _, r := range regions {
		for s := batch; s >= 1; s-- {
			evs = append(evs, Event[int]{Dot: Dot{Region: r, Seq: uint64(s)}})
		}
	}
	out := make([]Event[int], 0, batch)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		buf, _ := NewBuffer[int](DefaultBufferConfig())
		for _, e := range evs {
			var err error
			if out, err = buf.Add(out[:0], e); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkFormatToken5(b *testing.B) {
	v := fiveRegions()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		_ = FormatToken(v)
	}
	cpu.report(b)
}

func BenchmarkParseToken5(b *testing.B) {
	s := FormatToken(fiveRegions())
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := ParseToken(s); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
