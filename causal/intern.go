package causal

import (
	"sync"
	"sync/atomic"
)

// internedRegionsMax bounds the region-name intern table (count). Real
// deployments have a handful of regions; the bound keeps hostile input from
// growing the table, after which names are simply allocated.
const internedRegionsMax = 256

// interned is a copy-on-write table of region names: lookups are lock-free,
// additions (rare: once per region name per process) copy it under mu.
var interned struct {
	names atomic.Pointer[map[string]string]
	mu    sync.Mutex
}

// internRegion returns name as a string, sharing one allocation per
// distinct region name, so that decoding a token or vector does not
// allocate a string per region.
func internRegion(name []byte) string {
	if m := interned.names.Load(); m != nil {
		if s, ok := (*m)[string(name)]; ok { // no allocation for the lookup
			return s
		}
	}
	s := string(name)
	interned.mu.Lock()
	defer interned.mu.Unlock()
	old := interned.names.Load()
	if old != nil && len(*old) >= internedRegionsMax {
		return s
	}
	m := make(map[string]string, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	if v, ok := m[s]; ok {
		return v
	}
	m[s] = s
	interned.names.Store(&m)
	return s
}

func lenOf(m *map[string]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
