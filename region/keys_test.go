package region

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeysRoundTrip(t *testing.T) {
	u := uuid.MustParse(eid(7))
	for _, tc := range []struct {
		name string
		key  Key
		want []byte
	}{
		{"event", Key{Kind: KeyEvent, Name: "order/1", N: 258}, append([]byte("e/order/1\x00"), 0, 0, 0, 0, 0, 0, 1, 2)},
		{"head", Key{Kind: KeyHead, Name: "a:b"}, []byte("m/a:b")},
		{"origin", Key{Kind: KeyOrigin, Name: "eu-west", N: 1}, append([]byte("o/eu-west\x00"), 0, 0, 0, 0, 0, 0, 0, 1)},
		{"idempotency", Key{Kind: KeyIdempotency, ID: u}, append([]byte("i/"), u[:]...)},
		{"log", Key{Kind: KeyLog, N: 1 << 40}, []byte{'x', '/', 0, 0, 1, 0, 0, 0, 0, 0}},
		{"apply state", Key{Kind: KeyApplyState}, []byte("s/apply")},
		{"superseded", Key{Kind: KeySuperseded, Name: "eu-west", N: 2}, append([]byte("u/eu-west\x00"), 0, 0, 0, 0, 0, 0, 0, 2)},
		{"recovery", Key{Kind: KeyRecovery, Name: "eu-west", N: 3}, append([]byte("q/eu-west\x00"), 0, 0, 0, 0, 0, 0, 0, 3)},
		{"recovered", Key{Kind: KeyRecovered, Name: "eu-west", N: 4}, append([]byte("r/eu-west\x00"), 0, 0, 0, 0, 0, 0, 0, 4)},
		{"group", Key{Kind: KeyGroup, Name: "billing"}, []byte("g/billing")},
		{"lifecycle", Key{Kind: KeyLifecycle, Name: "order/1", N: 6}, append([]byte("l/order/1\x00"), 0, 0, 0, 0, 0, 0, 0, 6)},
		{"parked", Key{Kind: KeyParked, Name: "billing", Origin: "eu-west", N: 5}, append([]byte("p/billing\x00eu-west\x00"), 0, 0, 0, 0, 0, 0, 0, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.key.Encode()
			assert.Equal(t, tc.want, b)
			got, err := ParseKey(b)
			require.NoError(t, err)
			assert.Equal(t, tc.key, got)
		})
	}
}

// TestKeysOrder: versions and positions sort numerically, and one stream's
// prefix never covers another stream (entity "a" vs "a/b", "a.b").
func TestKeysOrder(t *testing.T) {
	assert.Negative(t, bytes.Compare(eventKey("a", 255), eventKey("a", 256)))
	assert.Negative(t, bytes.Compare(logKey(9), logKey(10)))
	for _, other := range []string{"a/b", "a.b", "ab", "a0"} {
		assert.False(t, bytes.HasPrefix(eventKey(other, 1), eventPrefix("a")), other)
	}
	assert.True(t, bytes.HasPrefix(eventKey("a", 1), eventPrefix("a")))
}

func TestParseKeyRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown family", []byte("z/abc")},
		{"event without separator", []byte("e/abc")},
		{"event empty entity", append([]byte("e/\x00"), 0, 0, 0, 0, 0, 0, 0, 1)},
		{"event short number", []byte("e/a\x00\x01")},
		{"head empty", []byte("m/")},
		{"head with nul", []byte("m/a\x00b")},
		{"idempotency short", []byte("i/abc")},
		{"log long", []byte("x/123456789")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKey(tc.b)
			require.ErrorIs(t, err, ErrCorruptState)
		})
	}
}

func TestRefRoundTrip(t *testing.T) {
	r := ref{Entity: "order/1", Version: 42}
	got, err := decodeRef(encodeRef(r))
	require.NoError(t, err)
	assert.Equal(t, r, got)
	sup, err := decodeRef(encodeRef(ref{Entity: "order/1"}))
	require.NoError(t, err)
	assert.Equal(t, ref{Entity: "order/1"}, sup, "version 0: a superseded event's o/ ref")
	for _, bad := range [][]byte{nil, {0, 0, 0, 0, 0, 0, 0, 1}, append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, 'a', 0)} {
		_, err := decodeRef(bad)
		require.ErrorIs(t, err, ErrCorruptState, "%q", bad)
	}
}

func FuzzParseKey(f *testing.F) {
	for _, k := range []Key{
		{Kind: KeyEvent, Name: "order/1", N: 3}, {Kind: KeyHead, Name: "x"}, {Kind: KeyOrigin, Name: "r", N: 9},
		{Kind: KeyIdempotency, ID: uuid.MustParse(eid(1))}, {Kind: KeyLog, N: 5}, {Kind: KeyApplyState},
		{Kind: KeySuperseded, Name: "r", N: 1}, {Kind: KeyRecovery, Name: "r", N: 2}, {Kind: KeyRecovered, Name: "r", N: 3},
		{Kind: KeyMerged, Name: "cart/1", Wall: 1e18, Logical: 2, Origin: "eu", N: 4},
		{Kind: KeyGroup, Name: "g"}, {Kind: KeyParked, Name: "g", Origin: "eu", N: 7}, {Kind: KeyLifecycle, Name: "o/1", N: 2},
	} {
		f.Add(k.Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(k.Encode(), b) {
			t.Fatalf("ParseKey(%q) = %+v, which encodes to %q", b, k, k.Encode())
		}
	})
}

func FuzzDecodeRef(f *testing.F) {
	f.Add(encodeRef(ref{Entity: "a", Version: 1}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRef(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeRef(r), b) {
			t.Fatalf("decodeRef(%q) = %+v, which encodes differently", b, r)
		}
	})
}
