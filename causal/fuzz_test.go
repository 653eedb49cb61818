package causal

import (
	"bytes"
	"testing"
)

// FuzzUnmarshalVector: no input panics; whatever decodes re-encodes to the
// same bytes (the decoder accepts only the canonical form) within the limits.
func FuzzUnmarshalVector(f *testing.F) {
	for _, v := range []Vector{{}, {"eu": 1}, {"eu-west-1": 300, "us-east-1": 1 << 40, "ap": 7}} {
		b, err := v.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x80, 0x00})
	f.Add([]byte{2, 2, 'u', 's', 1, 2, 'e', 'u', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := UnmarshalVector(b)
		if err != nil {
			if v != nil {
				t.Fatalf("error %v with non-nil vector", err)
			}
			return
		}
		if len(v) > regionsMax {
			t.Fatalf("%d regions decoded", len(v))
		}
		out, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded vector %v does not encode: %v", v, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("not canonical: in %x, re-encoded %x", b, out)
		}
	})
}

// FuzzParseToken: no input panics; whatever parses formats back to a token
// that parses to the same vector; the text bound holds.
func FuzzParseToken(f *testing.F) {
	f.Add("")
	f.Add(FormatToken(Vector{"eu": 1}))
	f.Add(FormatToken(Vector{"eu": 1, "us": 2, "ap": 3, "sa": 4, "af": 5}))
	f.Add("AQA")
	f.Add("AQA=")
	f.Add("!!!")
	f.Add("Ag")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseToken(s)
		if err != nil {
			if v != nil {
				t.Fatalf("error %v with non-nil vector", err)
			}
			return
		}
		if len(s) > tokenTextBytesMax {
			t.Fatalf("accepted %d characters", len(s))
		}
		again, err := ParseToken(FormatToken(v))
		if err != nil || !again.Equal(v) {
			t.Fatalf("round trip of %v: %v, %v", v, again, err)
		}
	})
}

// FuzzUnmarshalToken is FuzzParseToken for the binary form.
func FuzzUnmarshalToken(f *testing.F) {
	b, _ := MarshalToken(Vector{"eu": 1, "us": 2})
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := UnmarshalToken(b)
		if err != nil {
			return
		}
		out, err := MarshalToken(v)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := UnmarshalToken(out); err != nil || !again.Equal(v) {
			t.Fatalf("round trip of %v: %v, %v", v, again, err)
		}
	})
}
