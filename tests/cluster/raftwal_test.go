package cluster

import (
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/stretchr/testify/require"
)

// TestRaftWALTailTruncationSurvivesRestart reduces the first bug TestNemesis
// found (tests/README.md, track record #1) to the log store: a follower whose
// uncommitted suffix is cut by a new leader (DeleteRange of the tail) cannot
// reopen its raft-wal log. Truncation seals the tail segment without writing
// its index block; after a restart every read from that segment fails with
// "sealed segment has no index block" and raft.NewRaft panics on it
// (hashicorp/raft-wal issue #31, present in v0.4.0).
func TestRaftWALTailTruncationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*wal.WAL, *metadb.BoltMetaDB) {
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(dir, wal.WithMetaStore(meta))
		require.NoError(t, err)
		return w, meta
	}
	w, meta := open()
	for i := uint64(1); i <= 5; i++ {
		require.NoError(t, w.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")}))
	}
	// A new leader overwrites the uncommitted suffix 4..5.
	require.NoError(t, w.DeleteRange(4, 5))
	require.NoError(t, w.StoreLog(&raft.Log{Index: 4, Term: 2, Type: raft.LogCommand, Data: []byte("y")}))
	require.NoError(t, w.Close())
	require.NoError(t, meta.Close())

	w, meta = open()
	defer meta.Close()
	defer w.Close()
	var l raft.Log
	require.NoError(t, w.GetLog(1, &l), "a committed entry must be readable after a restart")
	require.NoError(t, w.GetLog(4, &l))
	require.Equal(t, uint64(2), l.Term)
}
