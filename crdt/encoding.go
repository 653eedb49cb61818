package crdt

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/meridiandb/meridian/causal"
)

// Named limits of the op encoding, checked by the encoder and the decoder.
const (
	// opVersion is the only op format version this code writes and reads.
	opVersion = 1
	// opKeyBytesMax bounds a set element or map key (bytes).
	opKeyBytesMax = 4096
	// opValueBytesMax bounds a register or map value (bytes); events carry
	// their own, smaller limit, this is only the decoder's guard.
	opValueBytesMax = 1 << 20
	// opContextBytesMax bounds the encoded causal context (bytes); a vector
	// encoding is far below it.
	opContextBytesMax = 8192
	// regionBytesMax bounds a dot's region name (bytes); causal enforces
	// the same limit on vectors.
	regionBytesMax = 64
)

// OpKind says which CRDT operation an Op holds.
type OpKind uint8

// The op kinds. The numbers are part of the encoding: never reuse one.
const (
	KindCounterAdd    OpKind = 1 // CounterOp
	KindSetAdd        OpKind = 2 // SetOp, Remove false
	KindSetRemove     OpKind = 3 // SetOp, Remove true
	KindRegisterWrite OpKind = 4 // RegisterOp
	KindMapPut        OpKind = 5 // MapOp, Delete false
	KindMapDelete     OpKind = 6 // MapOp, Delete true
)

func (k OpKind) String() string {
	switch k {
	case KindCounterAdd:
		return "counter-add"
	case KindSetAdd:
		return "set-add"
	case KindSetRemove:
		return "set-remove"
	case KindRegisterWrite:
		return "register-write"
	case KindMapPut:
		return "map-put"
	case KindMapDelete:
		return "map-delete"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

func (k OpKind) hasContext() bool { return k != KindCounterAdd }
func (k OpKind) hasKey() bool {
	return k == KindSetAdd || k == KindSetRemove || k == KindMapPut || k == KindMapDelete
}
func (k OpKind) hasValue() bool { return k == KindRegisterWrite || k == KindMapPut }

// Op is the byte-oriented envelope of every CRDT operation, as stored in an
// event's data: string keys and elements, byte-slice values. Fields a kind
// does not use are zero.
type Op struct {
	Kind    OpKind
	Meta    Meta
	Context causal.Vector // all kinds but KindCounterAdd
	Key     string        // set element or map key
	Value   []byte        // register or map value
	Delta   int64         // KindCounterAdd
}

// FromCounterOp wraps a counter op.
func FromCounterOp(op CounterOp) Op { return Op{Kind: KindCounterAdd, Meta: op.Meta, Delta: op.Delta} }

// FromSetOp wraps a set op.
func FromSetOp(op SetOp[string]) Op {
	k := KindSetAdd
	if op.Remove {
		k = KindSetRemove
	}
	return Op{Kind: k, Meta: op.Meta, Context: op.Context, Key: op.Elem}
}

// FromRegisterOp wraps a register op.
func FromRegisterOp(op RegisterOp[[]byte]) Op {
	return Op{Kind: KindRegisterWrite, Meta: op.Meta, Context: op.Context, Value: op.Value}
}

// FromMapOp wraps a map op.
func FromMapOp(op MapOp[string, []byte]) Op {
	k := KindMapPut
	if op.Delete {
		k = KindMapDelete
	}
	return Op{Kind: k, Meta: op.Meta, Context: op.Context, Key: op.Key, Value: op.Value}
}

// CounterOp unwraps a KindCounterAdd op.
func (o Op) CounterOp() CounterOp { return CounterOp{Meta: o.Meta, Delta: o.Delta} }

// SetOp unwraps a KindSetAdd or KindSetRemove op.
func (o Op) SetOp() SetOp[string] {
	return SetOp[string]{Meta: o.Meta, Context: o.Context, Elem: o.Key, Remove: o.Kind == KindSetRemove}
}

// RegisterOp unwraps a KindRegisterWrite op.
func (o Op) RegisterOp() RegisterOp[[]byte] {
	return RegisterOp[[]byte]{Meta: o.Meta, Context: o.Context, Value: o.Value}
}

// MapOp unwraps a KindMapPut or KindMapDelete op.
func (o Op) MapOp() MapOp[string, []byte] {
	return MapOp[string, []byte]{Meta: o.Meta, Context: o.Context, Key: o.Key, Value: o.Value, Delete: o.Kind == KindMapDelete}
}

// MarshalBinary encodes o: version, kind, dot (region, seq), HLC (zigzag
// wall nanos, logical), then by kind the context (length-prefixed vector
// encoding), the key, the value (length-prefixed) or the zigzag delta. All
// integers are minimal varints. It fails (ErrInvalidOp) on an unknown kind,
// an invalid dot, or a field over its limit.
func (o Op) MarshalBinary() ([]byte, error) {
	if o.Kind < KindCounterAdd || o.Kind > KindMapDelete {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrInvalidOp, o.Kind)
	}
	if err := o.Meta.Dot.Valid(); err != nil {
		return nil, fmt.Errorf("%w: dot: %w", ErrInvalidOp, err)
	}
	b := make([]byte, 0, 32+len(o.Meta.Dot.Region)+len(o.Key)+len(o.Value)+8*len(o.Context))
	b = append(b, opVersion, byte(o.Kind))
	b = appendBytes(b, o.Meta.Dot.Region)
	b = binary.AppendUvarint(b, o.Meta.Dot.Seq)
	b = binary.AppendVarint(b, o.Meta.HLC.WallNanos)
	b = binary.AppendUvarint(b, uint64(o.Meta.HLC.Logical))
	if o.Kind.hasContext() {
		ctx, err := o.Context.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%w: context: %w", ErrInvalidOp, err)
		}
		b = appendBytes(b, string(ctx))
	}
	if o.Kind.hasKey() {
		if len(o.Key) > opKeyBytesMax {
			return nil, fmt.Errorf("%w: key is %d bytes, max %d", ErrInvalidOp, len(o.Key), opKeyBytesMax)
		}
		b = appendBytes(b, o.Key)
	}
	if o.Kind.hasValue() {
		if len(o.Value) > opValueBytesMax {
			return nil, fmt.Errorf("%w: value is %d bytes, max %d", ErrInvalidOp, len(o.Value), opValueBytesMax)
		}
		b = appendBytes(b, string(o.Value))
	}
	if o.Kind == KindCounterAdd {
		b = binary.AppendVarint(b, o.Delta)
	}
	return b, nil
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalOp decodes the MarshalBinary encoding. It accepts only canonical
// input within the named limits (so decode then encode returns the input);
// errors wrap ErrInvalidOp and name the field.
func UnmarshalOp(b []byte) (Op, error) {
	d := opDecoder{b: b}
	var o Op
	version := d.byte("version")
	if d.err == nil && version != opVersion {
		return Op{}, fmt.Errorf("%w: unknown version %d (this build reads version %d)", ErrInvalidOp, version, opVersion)
	}
	o.Kind = OpKind(d.byte("kind"))
	if d.err == nil && (o.Kind < KindCounterAdd || o.Kind > KindMapDelete) {
		return Op{}, fmt.Errorf("%w: unknown kind %d", ErrInvalidOp, o.Kind)
	}
	o.Meta.Dot.Region = d.bytes("dot region", regionBytesMax)
	o.Meta.Dot.Seq = d.uvarint("dot seq")
	o.Meta.HLC.WallNanos = d.varint("hlc wall")
	logical := d.uvarint("hlc logical")
	if d.err == nil && logical > math.MaxUint32 {
		d.fail("hlc logical %d exceeds 32 bits", logical)
	}
	o.Meta.HLC.Logical = uint32(logical)
	if d.err == nil {
		if err := o.Meta.Dot.Valid(); err != nil {
			d.fail("dot: %w", err)
		}
	}
	if o.Kind.hasContext() {
		ctx := d.bytes("context", opContextBytesMax)
		if d.err == nil {
			v, err := causal.UnmarshalVector([]byte(ctx))
			if err != nil {
				d.fail("context: %w", err)
			}
			o.Context = v
		}
	}
	if o.Kind.hasKey() {
		o.Key = d.bytes("key", opKeyBytesMax)
	}
	if o.Kind.hasValue() {
		o.Value = []byte(d.bytes("value", opValueBytesMax))
	}
	if o.Kind == KindCounterAdd {
		o.Delta = d.varint("delta")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Op{}, d.err
	}
	return o, nil
}

// opDecoder reads fields until the first error, which it keeps.
type opDecoder struct {
	b   []byte
	err error
}

func (d *opDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalidOp}, args...)...)
	}
}

func (d *opDecoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("%s: truncated", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *opDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("%s: truncated", what)
		return 0
	case n < 0:
		d.fail("%s: varint overflows 64 bits", what)
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.fail("%s: non-minimal varint", what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *opDecoder) varint(what string) int64 {
	u := d.uvarint(what)
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *opDecoder) bytes(what string, limit int) string {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) {
		d.fail("%s is %d bytes, max %d", what, n, limit)
		return ""
	}
	if uint64(len(d.b)) < n {
		d.fail("%s truncated: want %d bytes, have %d", what, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
