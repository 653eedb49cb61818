package h2c

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStubsMakesOneStubPerAddress(t *testing.T) {
	made := map[string]int{}
	var mu sync.Mutex
	s := NewStubs(func(url string) *string {
		mu.Lock()
		made[url]++
		mu.Unlock()
		return &url
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); s.For("127.0.0.1:1"); s.For("127.0.0.1:2") }()
	}
	wg.Wait()
	assert.Equal(t, map[string]int{"http://127.0.0.1:1": 1, "http://127.0.0.1:2": 1}, made)
	assert.Same(t, s.For("127.0.0.1:1"), s.For("127.0.0.1:1"))
	assert.Equal(t, "http://127.0.0.1:2", *s.For("127.0.0.1:2"))
}
