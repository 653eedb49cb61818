package client

import (
	"sync"

	"github.com/meridiandb/meridian/causal"
)

// session holds the client's session token: the newest token covering every
// response the client has seen.
type session struct {
	mu    sync.Mutex
	token string
}

// get returns the current token (text form).
func (s *session) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// observe merges a token from a response into the session.
func (s *session) observe(token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = mergeTokens(s.token, token)
}

// mergeTokens merges two session tokens: the result covers both, so a
// response that overtook a newer one never moves the session backwards. A
// token the client cannot parse (a newer server's format) is taken as is:
// the server that issued it covers the request's token.
func mergeTokens(current, incoming string) string {
	if incoming == "" {
		return current
	}
	merged, err := causal.MergeTokens(current, incoming)
	if err != nil {
		return incoming
	}
	return merged
}
