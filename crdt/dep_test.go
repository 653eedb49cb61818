package crdt

import (
	"testing"

	"github.com/meridiandb/meridian/internal/depcheck"
)

// TestNoImports keeps crdt pure: its non-test code imports only the standard
// library and causal, the package below it.
func TestNoImports(t *testing.T) {
	depcheck.Only(t, "github.com/meridiandb/meridian/crdt", "github.com/meridiandb/meridian/causal")
}
