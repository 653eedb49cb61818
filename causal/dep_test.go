package causal

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoImports keeps causal pure: its non-test code may import only the
// standard library (go list -deps lists no non-standard package but itself).
func TestNoImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	allowed := map[string]bool{"github.com/meridiandb/meridian/causal": true}
	for _, p := range strings.Fields(string(out)) {
		require.True(t, allowed[p], "causal must import only the standard library, but depends on %s", p)
	}
}
