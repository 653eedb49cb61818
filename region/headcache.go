package region

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// headCacheEntriesMax bounds the stream heads kept; past it the cache is
// emptied and fills again with the streams in use.
const headCacheEntriesMax = 1 << 16

// headCache keeps the encoded stream heads (m/ keys) apply wrote or read,
// so that an append does not ask Badger for its stream's head: a Badger
// Get of a key written in an earlier transaction searches every memtable
// and the levels' bloom filters, about half of apply's CPU under 64
// writers (docs/PERFORMANCE.md, issue 14). Every write and delete of an m/
// key in apply goes through txnWriter, which keeps the cache equal to what
// the apply transaction would read; a restore empties it. It is only a
// cache: a process starts with it empty.
type headCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newHeadCache() *headCache { return &headCache{m: map[string][]byte{}} }

func (c *headCache) get(key []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[string(key)]
	return v, ok
}

func (c *headCache) put(key, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= headCacheEntriesMax {
		clear(c.m)
	}
	c.m[string(key)] = value
}

func (c *headCache) del(key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, string(key))
}

func (c *headCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

func isHeadKey(key []byte) bool { return bytes.HasPrefix(key, []byte(prefixHead)) }

// head returns entity's stream head as the apply transaction sees it: from
// the cache, else from Badger (and then cached).
func (w *txnWriter) head(entity string) *meridianv1.StreamHead {
	if w.heads == nil {
		return getHead(w.txn, entity)
	}
	key := headKey(entity)
	h := &meridianv1.StreamHead{}
	if v, ok := w.heads.get(key); ok {
		if err := proto.Unmarshal(v, h); err != nil {
			panic(fmt.Errorf("region: apply: %w: cached head %q: %v", ErrCorruptState, key, err))
		}
		return h
	}
	item, err := w.txn.Get(key)
	switch {
	case err == badger.ErrKeyNotFound:
		w.heads.put(key, nil)
		return h
	case err != nil:
		panic(fmt.Errorf("region: apply: read %q: %w", key, err))
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		panic(fmt.Errorf("region: apply: read %q: %w", key, err))
	}
	if err := proto.Unmarshal(v, h); err != nil {
		panic(fmt.Errorf("region: apply: %w: %q: %v", ErrCorruptState, key, err))
	}
	w.heads.put(key, v)
	return h
}
