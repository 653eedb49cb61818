package placement

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		kind keyKind
		id   string
	}{
		{"rules", keyRules, keyKindRules, ""},
		{"apply state", keyApplyState, keyKindApplyState, ""},
		{"restoring", keyRestoring, keyKindRestoring, ""},
		{"pin", pinKey("eu/acct/7"), keyKindPin, "eu/acct/7"},
		{"member", memberKey("eu/n1"), keyKindMember, "eu/n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, id, err := parseKey(tc.key)
			require.NoError(t, err)
			assert.Equal(t, tc.kind, kind)
			assert.Equal(t, tc.id, id)
		})
	}
	for _, bad := range []string{"", "p/", "n/", "x/1", "t/rule", "s/applyx"} {
		_, _, err := parseKey([]byte(bad))
		require.ErrorIs(t, err, ErrCorruptState, "%q", bad)
	}
}

// TestKeysOrder: a snapshot streams members then pins in key order, and the
// restore marker is outside every family Restore drops.
func TestKeysOrder(t *testing.T) {
	assert.Negative(t, bytes.Compare(memberKey("zzz"), pinKey("0")))
	for _, p := range dataPrefixes {
		assert.False(t, bytes.HasPrefix(keyRestoring, p), "%q", p)
	}
}

func FuzzParseKey(f *testing.F) {
	for _, k := range [][]byte{keyRules, keyApplyState, keyRestoring, pinKey("e"), memberKey("eu/n1"), leaseKey("eu"), keyTransition, []byte("q/")} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, name, err := parseKey(b)
		if err != nil {
			return
		}
		var again []byte
		switch kind {
		case keyKindPin:
			again = pinKey(name)
		case keyKindMember:
			again = memberKey(name)
		case keyKindLease:
			again = leaseKey(name)
		case keyKindTransition:
			again = keyTransition
		case keyKindRules:
			again = keyRules
		case keyKindApplyState:
			again = keyApplyState
		case keyKindRestoring:
			again = keyRestoring
		}
		require.Equal(t, b, again)
	})
}
