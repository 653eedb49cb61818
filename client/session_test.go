package client

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/causal"
)

func TestMergeTokens(t *testing.T) {
	tok := func(v causal.Vector) string { return causal.FormatToken(v) }
	tests := []struct {
		name              string
		current, incoming string
		want              causal.Vector
	}{
		{name: "empty session", current: "", incoming: tok(causal.Vector{"eu": 3}), want: causal.Vector{"eu": 3}},
		{name: "empty response", current: tok(causal.Vector{"eu": 3}), incoming: "", want: causal.Vector{"eu": 3}},
		{name: "newer wins", current: tok(causal.Vector{"eu": 3}), incoming: tok(causal.Vector{"eu": 5}), want: causal.Vector{"eu": 5}},
		{name: "older does not regress", current: tok(causal.Vector{"eu": 5}), incoming: tok(causal.Vector{"eu": 3}), want: causal.Vector{"eu": 5}},
		{name: "union of regions", current: tok(causal.Vector{"eu": 5}), incoming: tok(causal.Vector{"us": 2}), want: causal.Vector{"eu": 5, "us": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := causal.ParseToken(mergeTokens(tt.current, tt.incoming))
			require.NoError(t, err)
			assert.True(t, got.Equal(tt.want), "got %v want %v", got, tt.want)
		})
	}
	assert.Equal(t, "opaque-2", mergeTokens(tok(causal.Vector{"eu": 1}), "opaque-2"), "unparseable token taken as is")
}
