package meridianv1

import (
	"testing"

	"github.com/meridiandb/meridian/internal/depcheck"
)

// TestNoImports keeps the wire contract at the bottom of the graph: the
// generated messages depend only on protobuf, never on Meridian's packages.
func TestNoImports(t *testing.T) {
	depcheck.Only(t, "github.com/meridiandb/meridian/api/meridian/v1", "google.golang.org/protobuf/...")
}
