package signal

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestNotifyWakesEveryWaiterOnceAndArmsAFreshChannel(t *testing.T) {
	var s Signal
	a, b := s.C(), s.C()
	assert.False(t, closed(a))
	s.Notify()
	assert.True(t, closed(a))
	assert.True(t, closed(b))
	c := s.C()
	assert.False(t, closed(c), "a channel taken after Notify waits for the next one")
	s.Notify()
	assert.True(t, closed(c))
}

func TestNotifyBeforeAnyWaiterIsHarmless(t *testing.T) {
	var s Signal
	s.Notify()
	assert.False(t, closed(s.C()))
}

func TestConcurrentWaitersAndNotifiers(t *testing.T) {
	var s Signal
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 100 {
				s.Notify()
			}
		}()
		go func() {
			defer wg.Done()
			for range 100 {
				ch := s.C()
				s.Notify()
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
					t.Error("a Notify after C did not close its channel")
					return
				}
			}
		}()
	}
	wg.Wait()
}
