// Package depcheck enforces the import graph of ARCHITECTURE.md section 2 in
// tests: a package's non-test code may depend only on the standard library
// and on an allowed list of packages (CockroachDB's VerifyNoImports).
//
// It is imported only from _test.go files, so it never appears in the
// dependency graph it checks.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// Only fails t unless every non-standard package that the package in the
// current directory depends on (itself included) is matched by allowed: an
// entry ending in "/..." matches that path and everything below it, any other
// entry matches exactly.
func Only(t testing.TB, allowed ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("depcheck: go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if !matches(p, allowed) {
			t.Errorf("depends on %s; allowed beyond the standard library: %s", p, strings.Join(allowed, ", "))
		}
	}
}

func matches(path string, allowed []string) bool {
	for _, a := range allowed {
		if prefix, ok := strings.CutSuffix(a, "/..."); ok {
			if path == prefix || strings.HasPrefix(path, prefix+"/") {
				return true
			}
		} else if path == a {
			return true
		}
	}
	return false
}
