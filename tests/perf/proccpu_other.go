//go:build !linux

package perf

import (
	"errors"
	"time"
)

func procCPU(int) (time.Duration, error) {
	return 0, errors.New("per-process CPU time is read from /proc: Linux only")
}
