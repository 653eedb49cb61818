package raftlog

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncData makes f's written bytes durable: fdatasync, which skips the
// metadata a read does not need (times), not the size.
func syncData(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// allocate reserves n bytes of f from off without writing them.
func allocate(f *os.File, off, n int64) error { return unix.Fallocate(int(f.Fd()), 0, off, n) }
