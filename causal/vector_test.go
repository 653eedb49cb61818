package causal

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVectorCompare(t *testing.T) {
	cases := []struct {
		name string
		a, b Vector
		want Ordering
	}{
		{"both empty", nil, Vector{}, Equal},
		{"zero entry is absent", Vector{"eu": 0}, nil, Equal},
		{"equal", Vector{"eu": 1, "us": 2}, Vector{"us": 2, "eu": 1}, Equal},
		{"before", Vector{"eu": 1}, Vector{"eu": 1, "us": 2}, Before},
		{"after", Vector{"eu": 3, "us": 2}, Vector{"eu": 1, "us": 2}, After},
		{"concurrent", Vector{"eu": 3}, Vector{"us": 2}, Concurrent},
		{"concurrent crossing", Vector{"eu": 3, "us": 1}, Vector{"eu": 1, "us": 3}, Concurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.a.Compare(tc.b))
			inverse := map[Ordering]Ordering{Equal: Equal, Before: After, After: Before, Concurrent: Concurrent}
			assert.Equal(t, inverse[tc.want], tc.b.Compare(tc.a))
			assert.Equal(t, tc.want == Equal, tc.a.Equal(tc.b))
		})
	}
	assert.Equal(t, "concurrent", Concurrent.String())
}

func TestVectorMergeCoversIncrement(t *testing.T) {
	a := Vector{"eu": 3, "us": 1}
	b := Vector{"us": 4, "ap": 2}
	m := a.Merge(b)
	require.Equal(t, Vector{"eu": 3, "us": 4, "ap": 2}, m)
	require.Equal(t, Vector{"eu": 3, "us": 1}, a, "Merge does not modify its receiver")
	require.True(t, m.Covers(a))
	require.True(t, m.Covers(b))
	require.False(t, a.Covers(b))
	require.True(t, a.Covers(nil))
	require.True(t, Vector(nil).Covers(Vector{"x": 0}))

	d := m.Increment("eu")
	require.Equal(t, Dot{"eu", 4}, d)
	require.Equal(t, uint64(4), m.Get("eu"))
	d = m.Increment("sa")
	require.Equal(t, Dot{"sa", 1}, d)

	c := m.Clone()
	c["eu"] = 100
	require.Equal(t, uint64(4), m["eu"], "Clone is independent")
	require.Equal(t, []string{"ap", "eu", "sa", "us"}, m.Regions())
	require.Equal(t, "{ap:2 eu:4 sa:1 us:4}", m.String())
}

func TestVectorBinaryRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		v    Vector
		want []byte
	}{
		{"empty", Vector{}, []byte{0}},
		{"zero entries omitted", Vector{"eu": 0}, []byte{0}},
		{"one", Vector{"eu": 3}, []byte{1, 2, 'e', 'u', 3}},
		{"sorted", Vector{"us": 300, "eu": 1}, []byte{2, 2, 'e', 'u', 1, 2, 'u', 's', 0xac, 0x02}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.v.MarshalBinary()
			require.NoError(t, err)
			require.Equal(t, tc.want, b)
			got, err := UnmarshalVector(b)
			require.NoError(t, err)
			require.True(t, got.Equal(tc.v))
		})
	}
}

func TestVectorMarshalRejectsOverLimits(t *testing.T) {
	many := Vector{}
	for i := range regionsMax + 1 {
		many[strings.Repeat("r", 1+i%8)+string(rune('a'+i%26))+string(rune('a'+i/26))] = 1
	}
	_, err := many.MarshalBinary()
	require.ErrorIs(t, err, ErrInvalidVector)
	require.Contains(t, err.Error(), "max 64")

	_, err = Vector{strings.Repeat("x", regionNameBytesMax+1): 1}.MarshalBinary()
	require.ErrorIs(t, err, ErrInvalidVector)
	require.ErrorIs(t, err, ErrInvalidRegion)

	_, err = Vector{"": 1}.MarshalBinary()
	require.ErrorIs(t, err, ErrInvalidRegion)
}

func TestUnmarshalVectorRejectsMalformed(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty input", nil, "region count: truncated"},
		{"count overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "overflows"},
		{"non-minimal count", []byte{0x80, 0x00}, "non-minimal"},
		{"too many regions", []byte{65}, "region count 65, max 64"},
		{"name length zero", []byte{1, 0}, "name length 0"},
		{"name too long", []byte{1, 65}, "name length 65"},
		{"name truncated", []byte{1, 5, 'e', 'u'}, "name truncated"},
		{"bad utf8", []byte{1, 1, 0xff, 1}, "UTF-8"},
		{"seq missing", []byte{1, 2, 'e', 'u'}, `"eu" sequence: truncated`},
		{"seq zero", []byte{1, 2, 'e', 'u', 0}, "sequence 0"},
		{"unsorted", []byte{2, 2, 'u', 's', 1, 2, 'e', 'u', 1}, "sorted"},
		{"duplicate", []byte{2, 2, 'e', 'u', 1, 2, 'e', 'u', 2}, "sorted and unique"},
		{"trailing", []byte{0, 7}, "1 trailing bytes"},
		{"count larger than body", []byte{3, 2, 'e', 'u', 1}, "region 1 name length: truncated"},
		{"oversized", make([]byte, vectorBytesMax+1), "max"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := UnmarshalVector(tc.in)
			require.Error(t, err)
			require.Nil(t, v)
			require.True(t, errors.Is(err, ErrInvalidVector))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidateRegion(t *testing.T) {
	require.NoError(t, ValidateRegion("eu-west-1"))
	require.ErrorIs(t, ValidateRegion(""), ErrInvalidRegion)
	require.ErrorIs(t, ValidateRegion(strings.Repeat("a", 65)), ErrInvalidRegion)
	require.ErrorIs(t, ValidateRegion("\xff"), ErrInvalidRegion)
}

func TestDotHelpers(t *testing.T) {
	d := Dot{"eu", 3}
	require.Equal(t, "eu:3", d.String())
	require.Equal(t, Dot{"eu", 2}, d.Prev())
	require.Equal(t, Dot{"eu", 4}, d.Next())
	require.Equal(t, Dot{"eu", 0}, Dot{"eu", 0}.Prev())
	require.True(t, Dot{}.IsZero())
	require.NoError(t, d.Valid())
	require.ErrorIs(t, Dot{"eu", 0}.Valid(), ErrInvalidEvent)
	require.ErrorIs(t, Dot{"", 1}.Valid(), ErrInvalidRegion)
	require.Equal(t, -1, Dot{"eu", 9}.Compare(Dot{"us", 1}))
	require.Equal(t, 1, Dot{"eu", 9}.Compare(Dot{"eu", 1}))
	require.Equal(t, 0, d.Compare(d))

	v := Vector{"eu": 3}
	require.True(t, v.CoversDot(d))
	require.False(t, v.CoversDot(d.Next()))
	v.AddDot(Dot{"us", 2})
	v.AddDot(Dot{"eu", 1})
	require.Equal(t, Vector{"eu": 3, "us": 2}, v)

	session := Vector{"eu": 1}
	deps := Deps(session, Dot{"us", 5}, Dot{})
	require.Equal(t, Vector{"eu": 1, "us": 5}, deps)
	require.Equal(t, Vector{"eu": 1}, session)

	applied := Vector{"eu": 2, "us": 5}
	require.True(t, Deliverable(applied, Dot{"eu", 3}, Vector{"us": 5}))
	require.False(t, Deliverable(applied, Dot{"eu", 4}, nil), "gap")
	require.False(t, Deliverable(applied, Dot{"eu", 2}, nil), "duplicate")
	require.False(t, Deliverable(applied, Dot{"eu", 3}, Vector{"us": 6}), "missing dep")

	require.NoError(t, ValidateDeps(Dot{"eu", 3}, Vector{"eu": 2}))
	require.ErrorIs(t, ValidateDeps(Dot{"eu", 3}, Vector{"eu": 3}), ErrInvalidEvent)
}
