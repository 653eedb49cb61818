package faultnet

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a proxy goroutine behind:
// every connection's goroutines end when it is closed or reset, and
// Net.Close resets them all.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
