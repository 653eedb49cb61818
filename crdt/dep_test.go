package crdt

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoImports keeps crdt pure: its non-test code may import only the
// standard library and causal, the package below it (go list -deps lists
// nothing else that is not standard).
func TestNoImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	allowed := map[string]bool{
		"github.com/meridiandb/meridian/crdt":   true,
		"github.com/meridiandb/meridian/causal": true,
	}
	for _, p := range strings.Fields(string(out)) {
		require.True(t, allowed[p], "crdt must import only the standard library and causal, but depends on %s", p)
	}
}
