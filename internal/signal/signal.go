// Package signal is a broadcast wake-up: waiters take the current channel,
// and Notify closes it (waking all of them) and puts a fresh one in its
// place. It carries no value and queues nothing: a waiter reads the state
// it cares about after taking the channel, so a change between the two is
// not missed. The region and placement state machines announce applies
// with it, and the region member its leader changes.
package signal

import "sync"

// Signal is a broadcast wake-up; the zero value is ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns the channel the next Notify closes.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every waiter on the channels C returned so far.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}
