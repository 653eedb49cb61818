package causal

import (
	"encoding/base64"
	"fmt"
)

// Session token format. A token is the binary form of a vector behind a
// version byte, and its text form is unpadded URL-safe base64 of that.
const (
	// tokenVersion is the only binary format version this code writes and reads.
	tokenVersion = 1
	// tokenBytesMax bounds the binary form (bytes): the version byte plus the
	// largest vector encoding.
	tokenBytesMax = 1 + vectorBytesMax
	// tokenTextBytesMax bounds the text form (bytes), checked before decoding.
	tokenTextBytesMax = (tokenBytesMax*8 + 5) / 6
)

var tokenEncoding = base64.RawURLEncoding.Strict()

// Token is the text form of a session token: opaque to clients, safe in URLs,
// headers and shells. The empty Token is the empty vector.
type Token string

// NewToken returns the token for v, or an error wrapping ErrInvalidVector if
// v exceeds the limits (too many regions, bad region names).
func NewToken(v Vector) (Token, error) {
	// Encode into stack buffers so that the only allocation is the string.
	var raw [256]byte
	b := append(raw[:0], tokenVersion)
	b, err := v.AppendBinary(b)
	if err != nil {
		return "", err
	}
	if len(b) == 2 { // version + zero count: the empty vector
		return "", nil
	}
	var txt [344]byte // EncodedLen(256)
	dst := txt[:0]
	if n := tokenEncoding.EncodedLen(len(b)); n <= len(txt) {
		dst = txt[:n]
	} else {
		dst = make([]byte, n)
	}
	tokenEncoding.Encode(dst, b)
	return Token(dst), nil
}

// Vector decodes t (see ParseToken).
func (t Token) Vector() (Vector, error) { return ParseToken(string(t)) }

// Merge returns the token of the pointwise maximum of t's and u's vectors.
func (t Token) Merge(u Token) (Token, error) {
	a, err := t.Vector()
	if err != nil {
		return "", err
	}
	b, err := u.Vector()
	if err != nil {
		return "", err
	}
	a.MergeFrom(b)
	return NewToken(a)
}

// MergeTokens parses two text tokens and returns the text token of their merge.
func MergeTokens(a, b string) (string, error) {
	t, err := Token(a).Merge(Token(b))
	return string(t), err
}

// FormatToken returns the text token for v. The empty vector formats as "".
// It panics if v cannot be encoded (more than regionsMax regions or an
// invalid region name): vectors enter the system only through validated
// region names and decoders, so that is a programming error. Use NewToken to
// get an error instead.
func FormatToken(v Vector) string {
	t, err := NewToken(v)
	if err != nil {
		panic(fmt.Sprintf("causal: FormatToken: %v", err))
	}
	return string(t)
}

// ParseToken decodes a text token. "" is the empty vector. Errors wrap
// ErrInvalidToken and say what is wrong: length over the bound, bad base64,
// unknown version, or the vector fault (which also wraps ErrInvalidVector).
func ParseToken(s string) (Vector, error) {
	if s == "" {
		return Vector{}, nil
	}
	if len(s) > tokenTextBytesMax {
		return nil, fmt.Errorf("%w: %d characters, max %d", ErrInvalidToken, len(s), tokenTextBytesMax)
	}
	var buf [256]byte
	dst := buf[:]
	if n := tokenEncoding.DecodedLen(len(s)); n > len(dst) {
		dst = make([]byte, n)
	}
	n, err := tokenEncoding.Decode(dst, []byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: not URL-safe unpadded base64: %v", ErrInvalidToken, err)
	}
	return UnmarshalToken(dst[:n])
}

// MarshalToken returns the binary token for v: a version byte, then the
// vector encoding. The empty vector encodes as nil.
func MarshalToken(v Vector) ([]byte, error) {
	empty := true
	for _, s := range v {
		if s != 0 {
			empty = false
			break
		}
	}
	if empty {
		return nil, nil
	}
	b := make([]byte, 1, 1+v.encodedSizeHint())
	b[0] = tokenVersion
	return v.AppendBinary(b)
}

// UnmarshalToken decodes a binary token; empty input is the empty vector.
func UnmarshalToken(b []byte) (Vector, error) {
	if len(b) == 0 {
		return Vector{}, nil
	}
	if len(b) > tokenBytesMax {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrInvalidToken, len(b), tokenBytesMax)
	}
	if b[0] != tokenVersion {
		return nil, fmt.Errorf("%w: unknown version %d (this build reads version %d)", ErrInvalidToken, b[0], tokenVersion)
	}
	v, err := UnmarshalVector(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return v, nil
}
