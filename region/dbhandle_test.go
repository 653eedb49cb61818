package region

import (
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func handleWrite(t *testing.T, h *dbHandle, key, val string) {
	t.Helper()
	txn := h.beginWrite()
	require.NoError(t, txn.Set([]byte(key), []byte(val)))
	require.NoError(t, h.commitWrite(txn))
}

// readNewest reads key in a read transaction of its own.
func readNewest(t *testing.T, h *dbHandle, key string) string {
	t.Helper()
	r := h.beginRead()
	defer h.endRead(r)
	return handleRead(t, r, key)
}

func handleRead(t *testing.T, txn *badger.Txn, key string) string {
	t.Helper()
	item, err := txn.Get([]byte(key))
	require.NoError(t, err)
	v, err := item.ValueCopy(nil)
	require.NoError(t, err)
	return string(v)
}

// TestHandleReadsAtCommittedVersions: reads open at the newest committed
// version without waiting for commits, keep seeing it while later commits
// land, and hold compaction's discard point at the oldest version in use.
func TestHandleReadsAtCommittedVersions(t *testing.T) {
	dir := t.TempDir()
	h, err := openHandle(StoreConfig{Dir: dir}, 1, fsmTestLogger())
	require.NoError(t, err)

	handleWrite(t, h, "k", "v1")
	r1 := h.beginRead()
	handleWrite(t, h, "k", "v2")
	r2 := h.beginRead()
	handleWrite(t, h, "k", "v3")

	assert.Equal(t, "v1", handleRead(t, r1, "k"))
	assert.Equal(t, "v2", handleRead(t, r2, "k"))
	r3 := h.beginRead()
	assert.Equal(t, "v3", handleRead(t, r3, "k"))
	h.endRead(r3)
	assert.Equal(t, r1.ReadTs(), h.discardTs, "the oldest open read holds the discard point")

	h.endRead(r1)
	handleWrite(t, h, "k", "v4")
	assert.Equal(t, r2.ReadTs(), h.discardTs)
	h.endRead(r2)
	handleWrite(t, h, "k", "v5")
	assert.Equal(t, h.committed, h.discardTs, "with no reader open nothing older is kept")
	assert.Empty(t, h.readers)

	// A reopened directory continues above the versions it holds.
	last := h.committed
	require.NoError(t, h.db.Close())
	h, err = openHandle(StoreConfig{Dir: dir}, 1, fsmTestLogger())
	require.NoError(t, err)
	defer h.db.Close()
	assert.Equal(t, last, h.committed)
	assert.Equal(t, "v5", readNewest(t, h, "k"))
	handleWrite(t, h, "k", "v6")
	assert.Equal(t, "v6", readNewest(t, h, "k"))
}

// TestHandleOpensBadgerWrittenInItsOwnMode: a state directory written
// before managed mode (Badger's own versions) opens, reads what it holds,
// and new commits land above it.
func TestHandleOpensBadgerWrittenInItsOwnMode(t *testing.T) {
	dir := t.TempDir()
	old, err := badger.Open(badger.DefaultOptions(dbDir(dir, 1)).WithLogger(nil))
	require.NoError(t, err)
	for _, v := range []string{"a", "b", "c"} {
		require.NoError(t, old.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte(v)) }))
	}
	require.NoError(t, old.Close())

	h, err := openHandle(StoreConfig{Dir: dir}, 1, fsmTestLogger())
	require.NoError(t, err)
	defer h.db.Close()
	assert.Equal(t, "c", readNewest(t, h, "k"))
	handleWrite(t, h, "k", "d")
	assert.Equal(t, "d", readNewest(t, h, "k"))
}
