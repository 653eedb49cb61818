package replication

import (
	"testing"

	"github.com/meridiandb/meridian/internal/depcheck"
)

// TestNoImports keeps replication below node/ and beside region/ and
// placement/ (ARCHITECTURE.md section 2): it reaches them only through the
// interfaces in local.go.
func TestNoImports(t *testing.T) {
	depcheck.Only(t,
		"github.com/meridiandb/meridian/replication",
		"github.com/meridiandb/meridian/causal",
		"github.com/meridiandb/meridian/internal/network",
		"github.com/meridiandb/meridian/internal/h2c",
		"github.com/meridiandb/meridian/api/meridian/v1/...",
		"connectrpc.com/connect/...",
		"google.golang.org/protobuf/...",
		"github.com/cenkalti/backoff/v5",
	)
}
