//go:build !unix

package causal

import "testing"

type cpuTimer struct{}

func startCPU() cpuTimer             { return cpuTimer{} }
func (cpuTimer) report(b *testing.B) { b.Log("cpu-ns/op not measured on this platform") }
