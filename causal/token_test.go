package causal

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		v    Vector
	}{
		{"empty", Vector{}},
		{"nil", nil},
		{"one", Vector{"eu-west-1": 42}},
		{"five", Vector{"eu": 1, "us": 1 << 40, "ap": 7, "sa": 300, "af": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := FormatToken(tc.v)
			require.NotContains(t, s, "=")
			require.NotContains(t, s, "+")
			require.NotContains(t, s, "/")
			got, err := ParseToken(s)
			require.NoError(t, err)
			require.NotNil(t, got)
			require.True(t, got.Equal(tc.v), "got %v want %v", got, tc.v)

			tok, err := NewToken(tc.v)
			require.NoError(t, err)
			require.Equal(t, s, string(tok))
			got, err = tok.Vector()
			require.NoError(t, err)
			require.True(t, got.Equal(tc.v))
		})
	}
	require.Equal(t, "", FormatToken(Vector{}))
}

func TestTokenMerge(t *testing.T) {
	a := FormatToken(Vector{"eu": 3, "us": 1})
	b := FormatToken(Vector{"us": 4, "ap": 2})
	m, err := MergeTokens(a, b)
	require.NoError(t, err)
	v, err := ParseToken(m)
	require.NoError(t, err)
	require.Equal(t, Vector{"eu": 3, "us": 4, "ap": 2}, v)

	m2, err := MergeTokens("", a)
	require.NoError(t, err)
	require.Equal(t, a, m2)

	_, err = MergeTokens(a, "!!")
	require.ErrorIs(t, err, ErrInvalidToken)
}

func TestParseTokenErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
		vec  bool // also wraps ErrInvalidVector
	}{
		{"not base64", "a!b", []string{"base64"}, false},
		{"padded", "AQA=", []string{"base64"}, false},
		{"std alphabet", "+/+/", []string{"base64"}, false},
		{"too long", strings.Repeat("A", tokenTextBytesMax+1), []string{"characters, max"}, false},
		{"unknown version", tokenEncoding.EncodeToString([]byte{2, 0}), []string{"unknown version 2"}, false},
		{"bad vector", tokenEncoding.EncodeToString([]byte{1, 1, 2, 'e', 'u', 0}), []string{"sequence 0"}, true},
		{"trailing", tokenEncoding.EncodeToString([]byte{1, 0, 0}), []string{"trailing"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseToken(tc.in)
			require.Error(t, err)
			require.Nil(t, v)
			require.ErrorIs(t, err, ErrInvalidToken)
			if tc.vec {
				require.ErrorIs(t, err, ErrInvalidVector)
			}
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestTokenSizeBound(t *testing.T) {
	// The largest legal vector fits the bound, in binary and in text.
	v := Vector{}
	for i := range regionsMax {
		name := []byte(strings.Repeat("z", regionNameBytesMax))
		name[0], name[1] = byte('a'+i/26), byte('a'+i%26)
		v[string(name)] = ^uint64(0)
	}
	b, err := MarshalToken(v)
	require.NoError(t, err)
	require.Equal(t, tokenBytesMax, len(b), "the bound is tight")
	s := FormatToken(v)
	require.LessOrEqual(t, len(s), tokenTextBytesMax)
	got, err := ParseToken(s)
	require.NoError(t, err)
	require.True(t, got.Equal(v))

	v["one-too-many"] = 1
	_, err = NewToken(v)
	require.ErrorIs(t, err, ErrInvalidVector)
	require.Panics(t, func() { FormatToken(v) })
}
