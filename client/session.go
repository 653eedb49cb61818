package client

import "sync"

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

// mergeTokens merges two session tokens. A response's token already covers the
// token its request carried, so the newer token wins; see the causal-aware
// version once causal.ParseToken is available.
func mergeTokens(current, incoming string) string {
	if incoming == "" {
		return current
	}
	return incoming
}
