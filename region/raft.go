package region

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/meridiandb/meridian/internal/raftnet"
	"github.com/meridiandb/meridian/internal/raftstore"
)

// Raft transport limits.
const (
	// transportPoolMax is how many idle outbound connections the Raft
	// transport keeps per peer. Replication is not pipelined
	// (raftnet.Transport says why).
	transportPoolMax = 3
	// transportTimeout bounds one Raft RPC's I/O (not InstallSnapshot, which
	// raft scales by size).
	transportTimeout = 10 * time.Second
	// maxAppendEntries is how many log entries one AppendEntries RPC and one
	// leader disk write carry (raft's group commit below ours).
	maxAppendEntries = 256
	// logCacheEntries is how many recent log entries Raft reads from memory
	// instead of the log store: the leader reads every entry back to
	// replicate it and followers read every committed entry back to apply
	// it, each read a pread and a decode of the whole entry. 64 covers the
	// entries in flight (InflightBatchesMax batches, and a few commit rounds
	// of them on a follower) and bounds the memory to 64 entries of at most
	// BatchBytesMax (4 MiB) each, typically a few KiB; a miss reads the store.
	logCacheEntries = 64
)

// raftParts is the Raft instance and what it owns, closed together.
type raftParts struct {
	raft      *raft.Raft
	transport *raftnet.Transport
	// stream is the transport's stream layer; StopDialing before
	// Shutdown (see raftnet.StreamLayer).
	stream *raftnet.StreamLayer
	// logs is the Raft log and stable store: raftlog (ADR 0006), or
	// raft-boltdb in a data directory created before it (ADR 0001).
	logs raftstore.Store
	// logCache is logs behind an in-memory ring of the newest entries:
	// what Raft uses as its log store. Writes go to logs first (fsynced)
	// and are cached only once stored, so durability is the store's.
	logCache  *raft.LogCache
	snapshots raft.SnapshotStore
	// lastIndexAtStart is the last index in the local log when the node
	// opened: every entry this node acknowledged is at or below it.
	lastIndexAtStart uint64
}

// stopDialing ends the transport's waits for unreachable peers, so that
// Raft's shutdown does not wait for them.
func (p *raftParts) stopDialing() {
	if p.stream != nil {
		p.stream.StopDialing()
	}
}

func (p *raftParts) close() error {
	var errs []error
	p.stopDialing()
	if p.raft != nil {
		if err := p.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	if p.transport != nil {
		if err := p.transport.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if p.logs != nil {
		if err := p.logs.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// raftConfig turns Config into raft's configuration.
func raftConfig(cfg Config) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = maxAppendEntries
	// The FSM keeps its state in Badger and skips entries at or below its
	// stored applied index, so restoring the last snapshot on every start
	// would only throw away newer state and rebuild it.
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = logadapt.HCLog(cfg.Logger.With("component", "raft"), "raft")
	return rc
}

// openRaft opens the log store, snapshot store and transport, and starts
// Raft with fsm. It bootstraps the group with all peers when cfg.Bootstrap
// is set and the node has no Raft state yet.
func openRaft(cfg Config, fsm *FSM) (_ *raftParts, err error) {
	p := &raftParts{}
	defer func() {
		if err != nil {
			_ = p.close()
		}
	}()
	if p.logs, err = openLogStore(cfg); err != nil {
		return nil, err
	}
	p.snapshots, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotsRetained,
		logadapt.HCLog(cfg.Logger.With("component", "raft-snapshots"), "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("region: open snapshot store: %w", err)
	}
	stream, err := raftnet.NewStreamLayer(cfg.Network, cfg.RaftAddr, cfg.RaftAdvertise)
	if errors.Is(err, raftnet.ErrBadAdvertise) {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	p.stream = stream
	p.transport = raftnet.NewTransport(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportPoolMax,
		Timeout: transportTimeout,
		Logger:  logadapt.HCLog(cfg.Logger.With("component", "raft-transport"), "transport"),
	})
	rc := raftConfig(cfg)
	existing, err := raft.HasExistingState(p.logs, p.logs, p.snapshots)
	if err != nil {
		return nil, fmt.Errorf("region: inspect raft state: %w", err)
	}
	if p.lastIndexAtStart, err = p.logs.LastIndex(); err != nil {
		return nil, fmt.Errorf("region: read last log index: %w", err)
	}
	if metas, err := p.snapshots.List(); err == nil && len(metas) > 0 {
		p.lastIndexAtStart = max(p.lastIndexAtStart, metas[0].Index)
	}
	// With NoSnapshotRestoreOnStart Raft replays only the log after its
	// newest snapshot: a Badger that lost its unsynced tail in a crash must
	// first be caught up from that snapshot.
	if restored, err := fsm.RestoreIfBehind(p.snapshots); err != nil {
		return nil, err
	} else if restored {
		cfg.Logger.Warn("state machine restored from the newest snapshot at start")
	}
	if !existing && cfg.Bootstrap {
		conf := raft.Configuration{}
		peers := cfg.Peers
		if len(peers) == 0 {
			peers = []Peer{{ID: cfg.NodeID, RaftAddr: string(p.transport.LocalAddr())}}
		}
		for _, peer := range peers {
			conf.Servers = append(conf.Servers, raft.Server{
				Suffrage: raft.Voter, ID: raft.ServerID(peer.ID), Address: raft.ServerAddress(peer.RaftAddr),
			})
		}
		if err := raft.BootstrapCluster(rc, p.logs, p.logs, p.snapshots, p.transport, conf); err != nil {
			return nil, fmt.Errorf("region: bootstrap: %w", err)
		}
	}
	if p.logCache, err = raft.NewLogCache(logCacheEntries, p.logs); err != nil {
		return nil, fmt.Errorf("region: log cache: %w", err)
	}
	p.raft, err = raft.NewRaft(rc, fsm, p.logCache, p.logs, p.snapshots, p.transport)
	if err != nil {
		return nil, fmt.Errorf("region: start raft: %w", err)
	}
	return p, nil
}

// openLogStore opens the Raft log and stable store; every write is fsynced
// before it is acknowledged: the log is the durability point of the region
// (doc.go).
func openLogStore(cfg Config) (raftstore.Store, error) {
	s, kind, err := raftstore.Open(cfg.DataDir, cfg.Logger.With("component", "raft-log"))
	if err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	if kind != raftstore.KindRaftLog {
		cfg.Logger.Info("raft log kept in its original store", "store", kind)
	}
	return s, nil
}
