package raftstore

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNewDirectoryGetsRaftLog(t *testing.T) {
	dir := t.TempDir()
	s, kind, err := Open(dir, quiet)
	require.NoError(t, err)
	assert.Equal(t, KindRaftLog, kind)
	require.NoError(t, s.StoreLog(&raft.Log{Index: 1, Term: 1, Data: []byte("x")}))
	require.NoError(t, s.Close())
	assert.DirExists(t, filepath.Join(dir, RaftLogDir))
	assert.NoFileExists(t, filepath.Join(dir, BoltFile))

	s, kind, err = Open(dir, quiet)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, KindRaftLog, kind)
	last, err := s.LastIndex()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), last)
}

// TestExistingBoltLogIsKept: a node whose data directory predates raftlog
// reopens the log it has, with its entries and its vote.
func TestExistingBoltLogIsKept(t *testing.T) {
	dir := t.TempDir()
	old, err := raftboltdb.NewBoltStore(filepath.Join(dir, BoltFile))
	require.NoError(t, err)
	require.NoError(t, old.StoreLogs([]*raft.Log{{Index: 1, Term: 3, Data: []byte("a")}, {Index: 2, Term: 3, Data: []byte("b")}}))
	require.NoError(t, old.SetUint64([]byte("CurrentTerm"), 3))
	require.NoError(t, old.Close())

	s, kind, err := Open(dir, quiet)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, KindBoltDB, kind)
	var l raft.Log
	require.NoError(t, s.GetLog(2, &l))
	assert.Equal(t, []byte("b"), l.Data)
	term, err := s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), term)
	_, err = os.Stat(filepath.Join(dir, RaftLogDir))
	assert.True(t, os.IsNotExist(err), "no raftlog directory beside an existing raft.db")
}
