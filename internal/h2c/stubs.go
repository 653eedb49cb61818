package h2c

import "sync"

// Stubs caches one Connect client (stub) per peer address, so that calls to
// one peer share its HTTP/2 connections. Safe for concurrent use.
type Stubs[T any] struct {
	newStub func(baseURL string) T
	mu      sync.Mutex
	stubs   map[string]T
}

// NewStubs returns a cache whose stubs newStub makes from a base URL
// ("http://" + host:port).
func NewStubs[T any](newStub func(baseURL string) T) *Stubs[T] {
	return &Stubs[T]{newStub: newStub, stubs: map[string]T{}}
}

// For returns the stub of the peer at addr (host:port), making it once.
func (s *Stubs[T]) For(addr string) T {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.stubs[addr]
	if !ok {
		c = s.newStub("http://" + addr)
		s.stubs[addr] = c
	}
	return c
}
