package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridiandb/meridian/internal/filewatch"
)

// Role is what a token may do; each role includes the ones below it.
type Role int

// Roles, weakest first.
const (
	RoleRead Role = iota + 1
	RoleWrite
	RoleAdmin
)

var roleNames = map[Role]string{RoleRead: "read", RoleWrite: "write", RoleAdmin: "admin"}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole reads "read", "write" or "admin".
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: want read, write or admin", s)
}

// Token is one line of the token file.
type Token struct {
	// Name identifies the token in logs and errors (never the secret).
	Name string
	Role Role
	// Prefixes limit the entities the token reaches; empty: all.
	Prefixes []string
}

// Allows reports whether the token reaches entity.
func (t *Token) Allows(entity string) bool {
	if len(t.Prefixes) == 0 {
		return true
	}
	for _, p := range t.Prefixes {
		if strings.HasPrefix(entity, p) {
			return true
		}
	}
	return false
}

// Limits of the token file.
const (
	// tokensMax bounds the tokens in one file.
	tokensMax = 10000
	// prefixesMax bounds the prefixes of one token.
	prefixesMax = 64
	// nameBytesMax bounds a token's name.
	nameBytesMax = 64
	// secretBytes is the entropy of a new token.
	secretBytes = 32
	// secretPrefix marks Meridian tokens, so that scanners for leaked
	// secrets can recognise them.
	secretPrefix = "mrd_"
	// hashPrefix introduces a token's hash in the file.
	hashPrefix = "sha256:"
)

// WatchInterval is how often Watch looks at the token file.
const WatchInterval = 5 * time.Second

// Tokens is a node's token file, loaded; safe for concurrent use.
type Tokens struct {
	path   string
	cur    atomic.Pointer[tokenSet]
	reload sync.Mutex
}

type tokenSet struct {
	byHash map[[sha256.Size]byte]*Token
	stamp  string
}

// LoadTokens reads a token file.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Path returns the file the tokens are read from.
func (t *Tokens) Path() string { return t.path }

// Len returns how many tokens are loaded.
func (t *Tokens) Len() int { return len(t.cur.Load().byHash) }

// Reload re-reads the file; on error the loaded tokens stay.
func (t *Tokens) Reload() error {
	t.reload.Lock()
	defer t.reload.Unlock()
	stamp, err := filewatch.Stamp(t.path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	set, err := parseTokens(b)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrTokenFile, t.path, err)
	}
	set.stamp = stamp
	t.cur.Store(set)
	return nil
}

// Watch reloads the file when its size or modification time changes,
// every interval (<= 0: WatchInterval), until ctx ends.
func (t *Tokens) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = WatchInterval
	}
	filewatch.Poll(ctx, interval, []string{t.path}, func() string { return t.cur.Load().stamp }, t.Reload,
		func(err error) {
			if err != nil {
				logger.Error("token file changed on disk but did not load; keeping the old tokens", "err", err)
				return
			}
			logger.Info("token file reloaded", "tokens", t.Len())
		})
}

// Lookup returns the token whose secret is secret.
func (t *Tokens) Lookup(secret string) (*Token, bool) {
	tok, ok := t.cur.Load().byHash[sha256.Sum256([]byte(secret))]
	return tok, ok
}

func parseTokens(b []byte) (*tokenSet, error) {
	set := &tokenSet{byHash: map[[sha256.Size]byte]*Token{}}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("line %d: want NAME ROLE sha256:HEX [PREFIX,...], got %d fields", n, len(f))
		}
		tok := &Token{Name: f[0]}
		if len(tok.Name) > nameBytesMax {
			return nil, fmt.Errorf("line %d: name longer than %d bytes", n, nameBytesMax)
		}
		if names[tok.Name] {
			return nil, fmt.Errorf("line %d: name %q appears twice", n, tok.Name)
		}
		names[tok.Name] = true
		role, err := ParseRole(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		tok.Role = role
		h, ok := strings.CutPrefix(f[2], hashPrefix)
		raw, err := hex.DecodeString(h)
		if !ok || err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("line %d: hash: want sha256: and 64 hex digits ('meridian token new' prints the line)", n)
		}
		if len(f) == 4 {
			for _, p := range strings.Split(f[3], ",") {
				if p == "" {
					return nil, fmt.Errorf("line %d: an empty prefix", n)
				}
				tok.Prefixes = append(tok.Prefixes, p)
			}
			if len(tok.Prefixes) > prefixesMax {
				return nil, fmt.Errorf("line %d: %d prefixes, at most %d", n, len(tok.Prefixes), prefixesMax)
			}
		}
		key := [sha256.Size]byte(raw)
		if _, dup := set.byHash[key]; dup {
			return nil, fmt.Errorf("line %d: the same token hash appears twice", n)
		}
		set.byHash[key] = tok
		if len(set.byHash) > tokensMax {
			return nil, fmt.Errorf("more than %d tokens", tokensMax)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// NewSecret returns a new random token.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// WriteTokenFile writes path (mode 0600) holding one new token of the
// given name, role and prefixes, and returns the token's secret: a
// deployment's first token (meridian dev, tests).
func WriteTokenFile(path string, tok Token) (string, error) {
	secret, err := NewSecret()
	if err != nil {
		return "", err
	}
	return secret, os.WriteFile(path, []byte(Line(tok, secret)+"\n"), 0o600)
}

// Line returns the token file line of a token with this secret.
func Line(tok Token, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	line := fmt.Sprintf("%s %s %s%s", tok.Name, tok.Role, hashPrefix, hex.EncodeToString(sum[:]))
	if len(tok.Prefixes) > 0 {
		line += " " + strings.Join(tok.Prefixes, ",")
	}
	return line
}
