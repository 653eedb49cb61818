package causal

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Named limits of the vector encoding. Decoders reject anything beyond them,
// so a hostile input cannot make us allocate more than a few kilobytes.
const (
	// regionsMax is the most regions a vector may name (count).
	regionsMax = 64
	// regionNameBytesMax is the longest region name (bytes).
	regionNameBytesMax = 64
	// vectorBytesMax is the largest possible vector encoding (bytes): a
	// one-byte count (regionsMax < 128), then per region a one-byte length
	// (regionNameBytesMax < 128), the name and a sequence of up to 10 bytes.
	vectorBytesMax = 1 + regionsMax*(1+regionNameBytesMax+binary.MaxVarintLen64)
)

// ValidateRegion reports whether name can appear in a vector: non-empty, at
// most regionNameBytesMax bytes, valid UTF-8. Errors wrap ErrInvalidRegion.
func ValidateRegion(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidRegion)
	case len(name) > regionNameBytesMax:
		return fmt.Errorf("%w: %d bytes, max %d", ErrInvalidRegion, len(name), regionNameBytesMax)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidRegion)
	}
	return nil
}

// Ordering is the result of comparing two vectors.
type Ordering int

// The four possible relations between two vectors.
const (
	Equal      Ordering = iota // same entries
	Before                     // v happened before o: v <= o pointwise, v != o
	After                      // v happened after o
	Concurrent                 // neither covers the other
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// Vector maps a region to the highest contiguous origin sequence seen from
// it. A missing region and a zero entry mean the same thing. The nil Vector
// is the empty vector for every read-only method.
type Vector map[string]uint64

// Clone returns an independent copy (never nil).
func (v Vector) Clone() Vector {
	c := make(Vector, len(v))
	for r, s := range v {
		if s != 0 {
			c[r] = s
		}
	}
	return c
}

// Get returns the entry for region (0 if absent).
func (v Vector) Get(region string) uint64 { return v[region] }

// Merge returns a new vector holding the pointwise maximum of v and o: their
// least upper bound. Neither input is modified.
func (v Vector) Merge(o Vector) Vector {
	m := v.Clone()
	m.MergeFrom(o)
	return m
}

// MergeFrom raises v's entries to o's where o is higher, in place. v must be
// non-nil unless o is empty.
func (v Vector) MergeFrom(o Vector) {
	for r, s := range o {
		if s > v[r] {
			v[r] = s
		}
	}
}

// Covers reports whether v >= o pointwise: everything o has seen, v has seen.
func (v Vector) Covers(o Vector) bool {
	for r, s := range o {
		if s > v[r] {
			return false
		}
	}
	return true
}

// Compare returns how v relates to o in the happened-before partial order.
func (v Vector) Compare(o Vector) Ordering {
	vCovers, oCovers := v.Covers(o), o.Covers(v)
	switch {
	case vCovers && oCovers:
		return Equal
	case oCovers:
		return Before
	case vCovers:
		return After
	}
	return Concurrent
}

// Equal reports whether v and o have the same non-zero entries.
func (v Vector) Equal(o Vector) bool { return v.Covers(o) && o.Covers(v) }

// Increment adds one to region's entry, in place, and returns the dot of the
// new event. v must be non-nil.
func (v Vector) Increment(region string) Dot {
	v[region]++
	return Dot{Region: region, Seq: v[region]}
}

// Regions returns the regions with a non-zero entry, sorted.
func (v Vector) Regions() []string {
	rs := make([]string, 0, len(v))
	for r, s := range v {
		if s != 0 {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	return rs
}

// String formats v deterministically, "{eu:3 us:7}".
func (v Vector) String() string {
	b := []byte{'{'}
	for i, r := range v.Regions() {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, r...)
		b = append(b, ':')
		b = strconv.AppendUint(b, v[r], 10)
	}
	return string(append(b, '}'))
}

// MarshalBinary encodes v deterministically: a uvarint count, then for each
// region in ascending byte order a uvarint name length, the name, and a
// uvarint sequence. Zero entries are omitted, so equal vectors encode to
// equal bytes. It fails (ErrInvalidVector) if v has more than regionsMax
// non-zero entries or an invalid region name.
func (v Vector) MarshalBinary() ([]byte, error) {
	return v.AppendBinary(make([]byte, 0, v.encodedSizeHint()))
}

// encodedSizeHint guesses the encoded size without iterating v: region
// names are typically around a dozen bytes and sequences a few bytes.
func (v Vector) encodedSizeHint() int { return 1 + 20*len(v) }

// AppendBinary appends the MarshalBinary encoding of v to b.
func (v Vector) AppendBinary(b []byte) ([]byte, error) {
	type entry struct {
		region string
		seq    uint64
	}
	var small [8]entry
	es := small[:0]
	for r, s := range v {
		if s != 0 {
			es = append(es, entry{r, s})
		}
	}
	if len(es) > regionsMax {
		return nil, fmt.Errorf("%w: %d regions, max %d", ErrInvalidVector, len(es), regionsMax)
	}
	// Insertion sort: vectors have a handful of entries.
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].region < es[j-1].region; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		if err := ValidateRegion(e.region); err != nil {
			return nil, fmt.Errorf("%w: region %q: %w", ErrInvalidVector, e.region, err)
		}
		b = append(b, byte(len(e.region))) // < 128: a one-byte uvarint
		b = append(b, e.region...)
		b = binary.AppendUvarint(b, e.seq)
	}
	return b, nil
}

// UnmarshalVector decodes the MarshalBinary encoding. It accepts only the
// canonical form (minimal varints, names strictly ascending, no zero
// entries, no trailing bytes) within the named limits, so that decoding then
// encoding returns the input. Errors wrap ErrInvalidVector and say what is
// wrong and where.
func UnmarshalVector(b []byte) (Vector, error) {
	v, rest, err := decodeVector(b)
	if err != nil {
		return nil, err
	}
	if rest != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidVector, rest)
	}
	return v, nil
}

// decodeVector returns the vector and the number of bytes left over. It
// does not return the rest itself so that b does not escape.
func decodeVector(b []byte) (Vector, int, error) {
	if len(b) > vectorBytesMax {
		return nil, 0, fmt.Errorf("%w: %d bytes, max %d", ErrInvalidVector, len(b), vectorBytesMax)
	}
	count, b, bad := readUvarint(b)
	if bad != "" {
		return nil, 0, fmt.Errorf("%w: region count: %s", ErrInvalidVector, bad)
	}
	if count > regionsMax {
		return nil, 0, fmt.Errorf("%w: region count %d, max %d", ErrInvalidVector, count, regionsMax)
	}
	v := make(Vector, count)
	var prev []byte
	for i := range int(count) {
		var n uint64
		n, b, bad = readUvarint(b)
		if bad != "" {
			return nil, 0, fmt.Errorf("%w: region %d name length: %s", ErrInvalidVector, i, bad)
		}
		if n == 0 || n > regionNameBytesMax {
			return nil, 0, fmt.Errorf("%w: region %d name length %d, want 1..%d", ErrInvalidVector, i, n, regionNameBytesMax)
		}
		if uint64(len(b)) < n {
			return nil, 0, fmt.Errorf("%w: region %d name truncated: want %d bytes, have %d", ErrInvalidVector, i, n, len(b))
		}
		name := b[:n]
		b = b[n:]
		if !utf8.Valid(name) {
			return nil, 0, fmt.Errorf("%w: region %d name is not valid UTF-8", ErrInvalidVector, i)
		}
		if i > 0 && string(name) <= string(prev) {
			return nil, 0, fmt.Errorf("%w: region %d name %q not after %q (names must be sorted and unique)", ErrInvalidVector, i, string(name), string(prev))
		}
		var seq uint64
		seq, b, bad = readUvarint(b)
		if bad != "" {
			return nil, 0, fmt.Errorf("%w: region %q sequence: %s", ErrInvalidVector, string(name), bad)
		}
		if seq == 0 {
			return nil, 0, fmt.Errorf("%w: region %q has sequence 0 (zero entries are omitted)", ErrInvalidVector, string(name))
		}
		v[internRegion(name)] = seq
		prev = name
	}
	return v, len(b), nil
}

// readUvarint reads one minimal uvarint, or says what is wrong with it.
func readUvarint(b []byte) (uint64, []byte, string) {
	x, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, nil, "truncated"
	case n < 0:
		return 0, nil, "varint overflows 64 bits"
	case n > 1 && b[n-1] == 0:
		return 0, nil, "non-minimal varint"
	}
	return x, b[n:], ""
}
