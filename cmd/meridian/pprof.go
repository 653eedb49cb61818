//go:build meridian_pprof

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// Profiling hook for performance work, compiled in only with
// `go build -tags meridian_pprof`. When MERIDIAN_PPROF_DIR is set, the
// process serves net/http/pprof on a free 127.0.0.1 port and writes that
// address to <dir>/<pid>.addr, so that a benchmark starting several servers
// can profile each. MERIDIAN_PPROF_BLOCK_RATE (ns) and
// MERIDIAN_PPROF_MUTEX_FRACTION turn on the block and mutex profiles.
func init() {
	dir := os.Getenv("MERIDIAN_PPROF_DIR")
	if dir == "" {
		return
	}
	if r, err := strconv.Atoi(os.Getenv("MERIDIAN_PPROF_BLOCK_RATE")); err == nil {
		runtime.SetBlockProfileRate(r)
	}
	if f, err := strconv.Atoi(os.Getenv("MERIDIAN_PPROF_MUTEX_FRACTION")); err == nil {
		runtime.SetMutexProfileFraction(f)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		return
	}
	addr := filepath.Join(dir, strconv.Itoa(os.Getpid())+".addr")
	if err := os.WriteFile(addr, []byte(ln.Addr().String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
	}
	go func() { _ = http.Serve(ln, nil) }()
}
