package auth

import (
	"strings"
	"testing"
)

// FuzzParseTokens: a token file never panics the parser, and every token
// it accepts has a name within bounds, a known role and no empty prefix.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("ci write sha256:" + strings.Repeat("ab", 32) + " eu/,us/\n# c\n\nops admin sha256:" + strings.Repeat("01", 32) + "\n"))
	f.Add([]byte("x read sha256:zz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := parseTokens(b)
		if err != nil {
			return
		}
		for _, tok := range set.byHash {
			if tok.Name == "" || len(tok.Name) > nameBytesMax || roleNames[tok.Role] == "" {
				t.Fatalf("accepted a bad token %+v", tok)
			}
			for _, p := range tok.Prefixes {
				if p == "" {
					t.Fatalf("accepted an empty prefix in %+v", tok)
				}
			}
		}
	})
}

// FuzzBearer: any Authorization header parses without panicking, and an
// accepted secret is never empty or padded.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer mrd_x", "bearer  y ", "Basic z", "Bearer", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		secret, ok := bearer(h)
		if ok && (secret == "" || secret != strings.TrimSpace(secret)) {
			t.Fatalf("%q gave secret %q", h, secret)
		}
	})
}
