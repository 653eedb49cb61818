package client

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: a
// subscription that stopped must not keep its stream or timers alive.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
