package check

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/history"
)

const (
	ok      = history.OK
	failed  = history.Failed
	unknown = history.Unknown
	strong  = history.Strong
)

func TestLinearizabilityAcceptsGoodHistories(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *hb)
	}{
		{"sequential appends and read", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.app(1, "e", 3, 4, ok, 2, "b", "c")
			b.read(2, "e", strong, 5, 6, "a", "b", "c")
		}},
		{"concurrent appends ordered either way", func(b *hb) {
			b.app(0, "e", 1, 10, ok, 2, "a")
			b.app(1, "e", 2, 9, ok, 1, "b")
			b.read(2, "e", strong, 3, 4, "b") // between the two
			b.read(2, "e", strong, 11, 12, "b", "a")
		}},
		{"unknown append that took effect", func(b *hb) {
			b.app(0, "e", 1, 2, unknown, 0, "a")
			b.read(1, "e", strong, 5, 6, "a")
		}},
		{"unknown append that did not take effect", func(b *hb) {
			b.app(0, "e", 1, 2, unknown, 0, "a")
			b.read(1, "e", strong, 5, 6)
			b.app(1, "e", 7, 8, ok, 1, "b")
		}},
		{"unknown append taking effect late", func(b *hb) {
			b.app(0, "e", 1, 2, unknown, 0, "a")
			b.read(1, "e", strong, 5, 6)
			b.read(1, "e", strong, 7, 8, "a")
		}},
		{"expected version conflict", func(b *hb) {
			b.appExp(0, "e", 1, 2, ok, history.Expected{Kind: history.ExpectNoStream}, 1, "a")
			b.appExp(1, "e", 3, 4, failed, exact(0), 0, "b")
			b.appExp(1, "e", 5, 6, ok, exact(1), 2, "c")
		}},
		{"retry returns original versions", func(b *hb) {
			b.app(0, "e", 1, 2, unknown, 0, "a")
			b.app(1, "e", 3, 4, ok, 1, "b")
			b.app(0, "e", 5, 6, ok, 2, "a") // the retry reports where a landed
			b.read(2, "e", strong, 7, 8, "b", "a")
		}},
		{"session and eventual reads are not checked here", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(1, "e", history.Eventual, 3, 4)
		}},
		{"non-conflict failures are ignored", func(b *hb) {
			b.app(0, "e", 1, 2, failed, 0, "a")
			b.read(1, "e", strong, 3, 4)
		}},
		{"entities are independent", func(b *hb) {
			b.app(0, "x", 1, 2, ok, 1, "a")
			b.app(1, "y", 1, 2, ok, 1, "b")
			b.read(2, "x", strong, 3, 4, "a")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			rep := Linearizability(b.h, LinOptions{VisualizationDir: t.TempDir()})
			require.True(t, rep.OK(), rep.String())
			assert.Positive(t, rep.Checked)
		})
	}
}

func TestLinearizabilityCatchesBadHistories(t *testing.T) {
	for _, tc := range []struct {
		name    string
		build   func(b *hb)
		culprit int // an op id that must be named
	}{
		{"stale strong read", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(1, "e", strong, 3, 4) // misses a
		}, 1},
		{"two appends at version 1", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.app(1, "e", 3, 4, ok, 1, "b")
		}, 1},
		{"expected version ignored", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.appExp(1, "e", 3, 4, ok, exact(0), 1, "b")
		}, 1},
		{"conflict although expected matched", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.appExp(1, "e", 3, 4, failed, exact(1), 0, "b")
		}, 1},
		{"read of an event never appended", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.read(1, "e", strong, 3, 4, "zzz")
		}, 1},
		{"read goes back in time", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.app(0, "e", 3, 4, ok, 2, "b")
			b.read(1, "e", strong, 5, 6, "a", "b")
			b.read(1, "e", strong, 7, 8, "a")
		}, 3},
		{"retry applied twice", func(b *hb) {
			b.app(0, "e", 1, 2, ok, 1, "a")
			b.app(0, "e", 3, 4, ok, 2, "a")
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b hb
			tc.build(&b)
			dir := t.TempDir()
			rep := Linearizability(b.h, LinOptions{VisualizationDir: dir})
			require.False(t, rep.OK(), "bad history accepted")
			require.Len(t, rep.Violations, 1)
			v := rep.Violations[0]
			assert.Equal(t, "not-linearizable", v.Kind)
			assert.Equal(t, "e", v.Entity)
			assert.Contains(t, v.Ops, tc.culprit)
			require.Len(t, rep.Files, 1, "visualisation written")
			st, err := os.Stat(rep.Files[0])
			require.NoError(t, err)
			assert.Positive(t, st.Size())
			require.ErrorIs(t, rep.Err(), ErrViolation)
			t.Log(rep.String())
		})
	}
}

// TestLinearizabilityTimeoutIsFailure: porcupine's Unknown (search timed
// out) must never pass.
func TestLinearizabilityTimeoutIsFailure(t *testing.T) {
	var b hb
	const n = 24
	for i := range n {
		b.app(i, "e", 1, 2, unknown, 0, fmt.Sprintf("x%d", i))
	}
	// An impossible read at the end forces an exhaustive search.
	read := b.read(n, "e", strong, 3, 4)
	b.h.Ops[read].Head = n + 1
	rep := Linearizability(b.h, LinOptions{Timeout: 50 * time.Millisecond, VisualizationDir: t.TempDir()})
	require.False(t, rep.OK())
	assert.Equal(t, "unverified", rep.Violations[0].Kind, rep.String())
}
