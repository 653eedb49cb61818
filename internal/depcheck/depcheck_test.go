package depcheck

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMatches(t *testing.T) {
	allowed := []string{"example.com/a", "example.com/tree/..."}
	cases := []struct {
		path string
		want bool
	}{
		{"example.com/a", true},
		{"example.com/a/b", false},
		{"example.com/ab", false},
		{"example.com/tree", true},
		{"example.com/tree/x/y", true},
		{"example.com/treehouse", false},
		{"example.com/other", false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, matches(tc.path, allowed), tc.path)
	}
}

// TestOnlyFailsOnAForbiddenImport runs Only on this package, which depends on
// nothing but itself beyond the standard library, with an allow-list that
// leaves itself out: the check must report it.
func TestOnlyFailsOnAForbiddenImport(t *testing.T) {
	rec := &recorder{TB: t}
	Only(rec, "example.com/unrelated")
	assert.True(t, rec.failed, "Only must fail when a dependency is not allowed")
	Only(t, "github.com/meridiandb/meridian/internal/depcheck")
}

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}
