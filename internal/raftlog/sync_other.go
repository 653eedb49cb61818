//go:build !linux && !darwin

package raftlog

import (
	"errors"
	"os"
)

// syncData makes f's written bytes durable with the platform's fsync.
func syncData(f *os.File) error { return f.Sync() }

// allocate is not offered here: the segment grows with each write.
func allocate(*os.File, int64, int64) error { return errors.ErrUnsupported }
