package replication

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: Close
// must stop every puller, proposal and stream reader.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
