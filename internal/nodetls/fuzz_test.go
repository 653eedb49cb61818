package nodetls

import (
	"net/url"
	"testing"
)

// FuzzParseIdentity: the URI SAN of a peer's certificate is read from the
// wire. Whatever it holds, ParseIdentity never panics, and what it accepts
// is valid and survives a round trip through its URI.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{
		"spiffe://prod/region/eu-west/node/n1", "spiffe://prod/client/ops", "spiffe://prod/region//node/n1",
		"spiffe://a/region/b/node/c/d", "https://prod/region/a/node/b", "spiffe://prod/region/a%2Fb/node/n1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		id, err := ParseIdentity(u)
		if err != nil {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("accepted %q as %+v, which is invalid: %v", s, id, err)
		}
		back, err := ParseIdentity(id.URI())
		if err != nil || back != id {
			t.Fatalf("%q: %+v does not round-trip (%+v, %v)", s, id, back, err)
		}
	})
}
