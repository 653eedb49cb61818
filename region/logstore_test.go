package region

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// TestLogStoreTailTruncationSurvivesRestart is the regression test for the
// first bug the nemesis suite found (tests/README.md #1): a follower whose
// uncommitted suffix is cut by a new leader (DeleteRange of the tail) must be
// able to reopen its log. raft-wal v0.4.0 could not (hashicorp/raft-wal #31,
// fixed upstream but in no release the module proxy serves), which is why
// the region used raft-boltdb (ADR 0001) until it had a log of its own (ADR
// 0006, whose crash tests are in internal/raftlog).
func TestLogStoreTailTruncationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := openLogStore(Config{DataDir: dir, Logger: fsmTestLogger()})
	require.NoError(t, err)
	for i := uint64(1); i <= 5; i++ {
		require.NoError(t, s.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")}))
	}
	// A new leader overwrites the uncommitted suffix 4..5.
	require.NoError(t, s.DeleteRange(4, 5))
	require.NoError(t, s.StoreLog(&raft.Log{Index: 4, Term: 2, Type: raft.LogCommand, Data: []byte("y")}))
	require.NoError(t, s.Close())

	s, err = openLogStore(Config{DataDir: dir, Logger: fsmTestLogger()})
	require.NoError(t, err)
	defer s.Close()
	var l raft.Log
	require.NoError(t, s.GetLog(1, &l), "a committed entry must be readable after a restart")
	require.NoError(t, s.GetLog(4, &l))
	require.Equal(t, uint64(2), l.Term)
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(4), last, "the truncated entry 5 must stay gone")
}
