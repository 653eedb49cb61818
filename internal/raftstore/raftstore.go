// Package raftstore opens the Raft log and stable store of a node's data
// directory: raftlog (ADR 0006) for a new directory, raft-boltdb for one
// that already holds a raft.db (ADR 0001), so that nodes created before the
// change keep their log.
package raftstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"

	"github.com/meridiandb/meridian/internal/raftlog"
)

// Store is a Raft log and stable store that can be closed.
type Store interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// Kinds of store, as Open reports them.
const (
	KindRaftLog = "raftlog"
	KindBoltDB  = "raft-boltdb"
)

// Names in the data directory.
const (
	BoltFile   = "raft.db"
	RaftLogDir = "raftlog"
)

// Open opens the store in dataDir: raft-boltdb when dataDir/raft.db exists,
// raftlog in dataDir/raftlog otherwise. Both fsync every write.
func Open(dataDir string, logger *slog.Logger) (Store, string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create data dir: %w", err)
	}
	bolt := filepath.Join(dataDir, BoltFile)
	if _, err := os.Stat(bolt); err == nil {
		s, err := raftboltdb.NewBoltStore(bolt)
		if err != nil {
			return nil, "", fmt.Errorf("open raft log store %s: %w", bolt, err)
		}
		return s, KindBoltDB, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("inspect %s: %w", bolt, err)
	}
	s, err := raftlog.Open(filepath.Join(dataDir, RaftLogDir), raftlog.Options{Logger: logger})
	if err != nil {
		return nil, "", fmt.Errorf("open raft log store: %w", err)
	}
	return s, KindRaftLog, nil
}
