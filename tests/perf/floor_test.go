package perf

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkFloorFsync measures one 4 KiB append + fdatasync in the benchmark's
// temporary directory: the least a durable commit can cost on this disk.
func BenchmarkFloorFsync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "fsync"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(b, err)
	defer f.Close()
	buf := make([]byte, 4096)
	var lat latencies
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		_, err := f.Write(buf)
		require.NoError(b, err)
		require.NoError(b, fdatasync(f))
		lat.add(time.Since(start))
	}
	b.ReportMetric(micros(lat.quantile(0.5)), "p50-us")
	b.ReportMetric(micros(lat.quantile(0.99)), "p99-us")
}

// BenchmarkFloorLoopbackRTT measures a 64-byte TCP round trip on 127.0.0.1.
func BenchmarkFloorLoopbackRTT(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(b, err)
	defer c.Close()
	msg := make([]byte, 64)
	var lat latencies
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		_, err := c.Write(msg)
		require.NoError(b, err)
		_, err = io.ReadFull(c, msg)
		require.NoError(b, err)
		lat.add(time.Since(start))
	}
	b.ReportMetric(micros(lat.quantile(0.5)), "p50-us")
	b.ReportMetric(micros(lat.quantile(0.99)), "p99-us")
}
