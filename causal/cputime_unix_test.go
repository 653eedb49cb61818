//go:build unix

package causal

import (
	"syscall"
	"testing"
	"time"
)

// cpuTimer measures the process's CPU time (user + system) across a
// benchmark loop. On a machine shared with other work, wall-clock ns/op
// includes time spent waiting for a core; cpu-ns/op does not.
type cpuTimer struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{start: processCPU()} }

// report adds a cpu-ns/op metric; call it right after the b.Loop loop.
func (c cpuTimer) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}
