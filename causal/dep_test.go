package causal

import (
	"testing"

	"github.com/meridiandb/meridian/internal/depcheck"
)

// TestNoImports keeps causal pure: its non-test code imports only the
// standard library.
func TestNoImports(t *testing.T) {
	depcheck.Only(t, "github.com/meridiandb/meridian/causal")
}
