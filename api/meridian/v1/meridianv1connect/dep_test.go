package meridianv1connect

import (
	"testing"

	"github.com/meridiandb/meridian/internal/depcheck"
)

// TestNoImports: the generated Connect code depends only on Connect,
// protobuf and the messages beside it.
func TestNoImports(t *testing.T) {
	depcheck.Only(t, "github.com/meridiandb/meridian/api/meridian/v1/...", "connectrpc.com/connect/...", "google.golang.org/protobuf/...")
}
