package region

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeadCacheFollowsRestore: after a snapshot of another state machine
// is restored, appends continue the restored streams, not the heads apply
// had cached before (the cache is emptied with the database it mirrors).
func TestHeadCacheFollowsRestore(t *testing.T) {
	src := newTestFSM(t)
	ds := newFSMDriver(t, src)
	for i := 1; i <= 5; i++ {
		ds.mustAppend(aop("s/1", expExact(uint64(i-1)), pev(100+i, "E", "src")))
	}
	dst := newTestFSM(t)
	dd := newFSMDriver(t, dst)
	dd.mustAppend(aop("s/1", expExact(0), pev(1, "E", "dst")))
	dd.mustAppend(aop("s/1", expExact(1), pev(2, "E", "dst")))
	require.NotEmpty(t, dst.ap.heads.m, "apply cached the head it wrote")

	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, src)))))
	dd.index = dst.AppliedIndex()
	resp := dd.mustAppend(aop("s/1", expExact(5), pev(3, "E", "after")))
	assert.Equal(t, uint64(6), resp.GetFirstVersion(), "the restored stream's head, not the cached one")
	evs, head := fsmReadAll(t, dst, "s/1")
	assert.Equal(t, uint64(6), head)
	assert.Equal(t, "after", string(evs[5].GetData()))
}
