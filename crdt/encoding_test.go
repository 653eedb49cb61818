package crdt

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meridiandb/meridian/causal"
	"github.com/stretchr/testify/require"
)

func sampleOps() map[string]Op {
	m := Meta{Dot: causal.Dot{Region: "eu-west-1", Seq: 42}, HLC: causal.Timestamp{WallNanos: 1_700_000_000_000_000_000, Logical: 3}}
	ctx := causal.Vector{"eu-west-1": 41, "us-east-1": 7}
	return map[string]Op{
		"counter":        FromCounterOp(CounterOp{Meta: m, Delta: -5}),
		"set add":        FromSetOp(SetOp[string]{Meta: m, Context: ctx, Elem: "x"}),
		"set remove":     FromSetOp(SetOp[string]{Meta: m, Context: ctx, Elem: "x", Remove: true}),
		"register":       FromRegisterOp(RegisterOp[[]byte]{Meta: m, Context: ctx, Value: []byte("hello")}),
		"map put":        FromMapOp(MapOp[string, []byte]{Meta: m, Context: ctx, Key: "k", Value: []byte{0, 1}}),
		"map delete":     FromMapOp(MapOp[string, []byte]{Meta: m, Context: causal.Vector{}, Key: "k", Delete: true}),
		"negative wall":  {Kind: KindCounterAdd, Meta: Meta{Dot: causal.Dot{Region: "a", Seq: 1}, HLC: causal.Timestamp{WallNanos: -1}}, Delta: 1},
		"empty register": {Kind: KindRegisterWrite, Meta: m, Context: causal.Vector{}, Value: []byte{}},
	}
}

func TestOpRoundTrip(t *testing.T) {
	for name, op := range sampleOps() {
		t.Run(name, func(t *testing.T) {
			b, err := op.MarshalBinary()
			require.NoError(t, err)
			got, err := UnmarshalOp(b)
			require.NoError(t, err)
			require.Equal(t, op.Kind, got.Kind)
			require.Equal(t, op.Meta, got.Meta)
			require.True(t, got.Context.Equal(op.Context))
			require.Equal(t, op.Key, got.Key)
			require.True(t, bytes.Equal(op.Value, got.Value))
			require.Equal(t, op.Delta, got.Delta)
			b2, err := got.MarshalBinary()
			require.NoError(t, err)
			require.Equal(t, b, b2)
		})
	}
	ops := sampleOps()
	require.Equal(t, "x", ops["set remove"].SetOp().Elem)
	require.True(t, ops["set remove"].SetOp().Remove)
	require.True(t, ops["map delete"].MapOp().Delete)
	require.Equal(t, []byte("hello"), ops["register"].RegisterOp().Value)
	require.Equal(t, int64(-5), ops["counter"].CounterOp().Delta)
	require.Equal(t, "map-put", KindMapPut.String())
}

func TestOpMarshalErrors(t *testing.T) {
	m := Meta{Dot: causal.Dot{Region: "eu", Seq: 1}}
	cases := []struct {
		name string
		op   Op
		want string
	}{
		{"unknown kind", Op{Kind: 9, Meta: m}, "unknown kind 9"},
		{"zero dot", Op{Kind: KindCounterAdd}, "dot"},
		{"key too long", Op{Kind: KindSetAdd, Meta: m, Key: strings.Repeat("k", opKeyBytesMax+1)}, "key is 4097 bytes"},
		{"value too long", Op{Kind: KindRegisterWrite, Meta: m, Value: make([]byte, opValueBytesMax+1)}, "value is"},
		{"bad context", Op{Kind: KindSetAdd, Meta: m, Context: causal.Vector{"": 1}}, "context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.op.MarshalBinary()
			require.ErrorIs(t, err, ErrInvalidOp)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestUnmarshalOpErrors(t *testing.T) {
	good, err := sampleOps()["map put"].MarshalBinary()
	require.NoError(t, err)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "version: truncated"},
		{"version", []byte{2, 1}, "unknown version 2"},
		{"kind", []byte{1, 0}, "unknown kind 0"},
		{"truncated", good[:len(good)-1], "value truncated"},
		{"trailing", append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"empty region", []byte{1, 1, 0, 1, 0, 0, 0}, "dot"},
		{"seq zero", []byte{1, 1, 1, 'a', 0, 0, 0, 0}, "sequence 0"},
		{"long region", []byte{1, 1, 65}, "dot region is 65 bytes, max 64"},
		{"logical overflow", []byte{1, 1, 1, 'a', 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0}, "exceeds 32 bits"},
		{"non-minimal", []byte{1, 1, 1, 'a', 0x81, 0x00}, "non-minimal"},
		{"bad context", []byte{1, 2, 1, 'a', 1, 0, 0, 1, 7}, "context"},
		{"huge value length", []byte{1, 4, 1, 'a', 1, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0x7f}, "value is"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalOp(tc.in)
			require.ErrorIs(t, err, ErrInvalidOp)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzUnmarshalOp: no input panics; whatever decodes re-encodes to the
// same bytes.
func FuzzUnmarshalOp(f *testing.F) {
	for _, op := range sampleOps() {
		b, err := op.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := UnmarshalOp(b)
		if err != nil {
			return
		}
		out, err := op.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded op %+v does not encode: %v", op, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("not canonical: in %x, re-encoded %x", b, out)
		}
	})
}
