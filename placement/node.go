package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/internal/logadapt"
	"github.com/meridiandb/meridian/internal/raftnet"
	"github.com/meridiandb/meridian/internal/raftstore"
)

// Raft transport limits of the placement group.
const (
	// transportPoolMax is how many idle connections the transport keeps per peer.
	transportPoolMax = 2
	// transportTimeout bounds one Raft RPC's I/O.
	transportTimeout = 10 * time.Second
	// indexPollInterval is how often a wait on the applied index rechecks.
	indexPollInterval = 5 * time.Millisecond
)

// Node is one node's member of the placement group: a Raft member (voter or
// non-voter) whose state machine holds the placement table in Badger. Every
// node of every region runs one, so every node holds a current local copy
// for routing. It is safe for concurrent use.
type Node struct {
	cfg       Config
	id        string
	logger    *slog.Logger
	fsm       *FSM
	raft      *raft.Raft
	transport *raftnet.Transport
	// stream is the transport's stream layer; StopDialing before
	// Shutdown (see raftnet.StreamLayer).
	stream *raftnet.StreamLayer
	logs   raftstore.Store
	peers  *peerClients
	probe  *prober

	closing chan struct{}
	// ctx ends when Close starts: calls to other members are cancelled.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Open starts the member: the table in DataDir/state, Raft (its log in
// DataDir/raftlog, or DataDir/raft.db if the directory predates it;
// snapshots in DataDir/snapshots), then the loops that keep
// it in the group (join), lead it (voter reconciliation through
// raft-autopilot, on the leader only) and probe other regions.
func Open(cfg Config) (_ *Node, err error) {
	if cfg.Network == nil {
		cfg.Network = TCP
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id := ServerID(cfg.Region, cfg.NodeID)
	logger := cfg.Logger.With("component", "placement", "region", cfg.Region, "node", cfg.NodeID)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("placement: create data dir: %w", err)
	}
	n := &Node{cfg: cfg, id: id, logger: logger, closing: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.cancel()
			_ = n.closeParts()
		}
	}()
	if n.fsm, err = OpenFSM(StoreConfig{Dir: filepath.Join(cfg.DataDir, "state"), Logger: logger.With("component", "placement-fsm")}); err != nil {
		return nil, err
	}
	if n.logs, _, err = raftstore.Open(cfg.DataDir, logger.With("component", "placement-log")); err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	snapshots, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotsRetained,
		logadapt.HCLog(logger.With("component", "placement-snapshots"), "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("placement: open snapshot store: %w", err)
	}
	stream, err := raftnet.NewStreamLayer(cfg.Network, cfg.RaftAddr, cfg.RaftAdvertise)
	if errors.Is(err, raftnet.ErrBadAdvertise) {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	n.stream = stream
	n.transport = raftnet.NewTransport(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportPoolMax,
		Timeout: transportTimeout,
		Logger:  logadapt.HCLog(logger.With("component", "placement-transport"), "transport"),
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// The table is in Badger (synced on every apply) and apply skips what it
	// holds; RestoreIfNeeded covers a crash in the middle of a Restore.
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = logadapt.HCLog(logger.With("component", "placement-raft"), "raft")

	existing, err := raft.HasExistingState(n.logs, n.logs, snapshots)
	if err != nil {
		return nil, fmt.Errorf("placement: inspect raft state: %w", err)
	}
	if restored, err := n.fsm.RestoreIfNeeded(snapshots); err != nil {
		return nil, err
	} else if restored {
		logger.Warn("placement table restored from the newest snapshot at start")
	}
	if !existing && cfg.Bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: n.transport.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, n.logs, n.logs, snapshots, n.transport, conf); err != nil {
			return nil, fmt.Errorf("placement: bootstrap: %w", err)
		}
		logger.Info("placement group bootstrapped", "voter", id)
	}
	if !existing && !cfg.Bootstrap && len(cfg.Seeds) == 0 {
		return nil, fmt.Errorf("%w: Seeds: a node without placement state and without Bootstrap needs at least one seed to join through", ErrInvalidConfig)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.logs, n.logs, snapshots, n.transport); err != nil {
		return nil, fmt.Errorf("placement: start raft: %w", err)
	}
	n.peers = newPeerClients(cfg.Network, cfg.CallTimeout)
	n.probe = newProber()
	n.wg.Add(3)
	go n.runLeadership()
	go n.runJoin()
	go n.runProbe()
	logger.Info("placement member open", "id", id, "raft_addr", n.transport.LocalAddr(), "applied", n.fsm.AppliedIndex())
	return n, nil
}

// Close leaves the group's loops, shuts Raft down and closes the stores. The
// member stays in the group's configuration: a restart continues it.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.closing)
		n.cancel()
		var errs []error
		if n.stream != nil {
			n.stream.StopDialing()
		}
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		n.wg.Wait()
		errs = append(errs, n.closeParts())
		n.closeErr = errors.Join(errs...)
		n.logger.Info("placement member closed")
	})
	return n.closeErr
}

func (n *Node) closeParts() error {
	var errs []error
	if n.stream != nil {
		n.stream.StopDialing()
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	if n.peers != nil {
		n.peers.close()
	}
	if n.fsm != nil {
		errs = append(errs, n.fsm.Close())
	}
	return errors.Join(errs...)
}

// ID returns the member's Raft server id, "<region>/<node>".
func (n *Node) ID() string { return n.id }

// Raft returns the member's Raft instance, for tests and metrics.
func (n *Node) Raft() *raft.Raft { return n.raft }

// RaftAddr is the address other members dial to reach this one.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// FSM returns the member's state machine (read-only use).
func (n *Node) FSM() *FSM { return n.fsm }

// Lookup returns entity's placement from the local copy (microseconds, no I/O).
func (n *Node) Lookup(entity string) Placement { return n.fsm.Lookup(entity) }

// WaitIndex waits until the local copy has applied at least idx, ctx ends
// or EpochWaitMax passes; it reports whether the copy reached idx.
func (n *Node) WaitIndex(ctx context.Context, idx uint64) bool {
	if n.fsm.AppliedIndex() >= idx {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.EpochWaitMax)
	defer cancel()
	t := time.NewTicker(indexPollInterval)
	defer t.Stop()
	for {
		ch := n.fsm.Changed()
		if n.fsm.AppliedIndex() >= idx {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return false
		case <-n.closing:
			return false
		}
	}
}

// Endpoints returns the API addresses of region's members, those this node
// reached most recently first.
func (n *Node) Endpoints(region string) []string {
	var out []string
	for _, m := range n.fsm.Members() {
		if m.GetRegion() == region && m.GetApiAddress() != "" {
			out = append(out, m.GetApiAddress())
		}
	}
	n.probe.order(out)
	return out
}

// Info describes how current the local copy is.
func (n *Node) Info() *meridianv1.TableInfo {
	info := &meridianv1.TableInfo{Index: n.fsm.AppliedIndex(), AnsweredBy: n.id}
	_, leaderID := n.raft.LeaderWithID()
	info.Leader = string(leaderID)
	now := time.Now()
	var contact time.Time
	if n.raft.State() == raft.Leader {
		contact = now
	} else {
		contact = n.raft.LastContact()
	}
	if !contact.IsZero() {
		info.LastLeaderContact = timestampProto(contact)
		info.Staleness = durationProto(now.Sub(contact))
	}
	return info
}

// isLeader reports whether this member leads the placement group.
func (n *Node) isLeader() bool { return n.raft.State() == raft.Leader }

// leaderPollInterval is how often a change waiting for a leader asks Raft
// again.
const leaderPollInterval = 20 * time.Millisecond

// leaderWait bounds how long a change waits for this member to learn a
// leader: two election rounds, so that one election after a restart or a
// leader's loss is waited out.
func (n *Node) leaderWait() time.Duration {
	return 2 * max(n.cfg.HeartbeatTimeout, n.cfg.ElectionTimeout)
}

// leaderAPI returns the leader's server id and API address, from the member
// directory.
func (n *Node) leaderAPI() (string, string, bool) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", "", false
	}
	for _, m := range n.fsm.Members() {
		if m.GetId() == string(id) {
			return string(id), m.GetApiAddress(), m.GetApiAddress() != ""
		}
	}
	return string(id), "", false
}

// propose applies one command on the leader and returns its result; a
// deterministic rejection comes back as the result's error.
func (n *Node) propose(t meridianv1.PlacementCommandType, m proto.Message) (*ApplyResult, error) {
	data, err := EncodeCommand(t, m)
	if err != nil {
		return nil, err
	}
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			// Not in the log: safe to retry elsewhere.
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		default:
			// Leadership lost or shutdown: the change may still commit.
			return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
	}
	res, ok := f.Response().(*ApplyResult)
	if !ok {
		return nil, fmt.Errorf("placement: unexpected apply response %T", f.Response())
	}
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// join is the leader's handling of a Join: record the member, then add it
// to the Raft configuration as a non-voter (a voter stays a voter). The
// record comes first so that the voter reconciliation never sees a server
// in the configuration that the directory does not know.
func (n *Node) join(m *meridianv1.Member) (uint64, error) {
	if err := ValidateMember(m); err != nil {
		return 0, err
	}
	var index uint64
	if !n.memberRecorded(m) {
		res, err := n.propose(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_JOIN, &meridianv1.JoinCommand{Member: m})
		if err != nil {
			return 0, err
		}
		index = res.Index
		n.logger.Info("member recorded", "member", m.GetId(), "api", m.GetApiAddress(), "raft", m.GetRaftAddress())
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == m.GetId() && string(s.Address) == m.GetRaftAddress() {
			return max(index, n.fsm.AppliedIndex()), nil
		}
	}
	f := n.raft.AddNonvoter(raft.ServerID(m.GetId()), raft.ServerAddress(m.GetRaftAddress()), 0, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return 0, fmt.Errorf("%w: add %s to the configuration: %v", ErrOutcomeUnknown, m.GetId(), err)
	}
	n.logger.Info("member added to the placement group", "member", m.GetId())
	return max(index, f.Index()), nil
}

func (n *Node) memberRecorded(m *meridianv1.Member) bool {
	for _, have := range n.fsm.Members() {
		if have.GetId() == m.GetId() {
			return proto.Equal(have, m)
		}
	}
	return false
}

// self is this node's member record.
func (n *Node) self() *meridianv1.Member {
	return &meridianv1.Member{
		Id: n.id, Region: n.cfg.Region, Node: n.cfg.NodeID,
		RaftAddress: string(n.transport.LocalAddr()), ApiAddress: n.cfg.APIAdvertise,
	}
}

// runJoin keeps this node in the group: at start and every JoinInterval it
// asks the leader (itself, or through any known member) to record and add
// it. The leader answers without a log entry when nothing changed.
func (n *Node) runJoin() {
	defer n.wg.Done()
	delay := time.Duration(0)
	for {
		select {
		case <-n.closing:
			return
		case <-time.After(delay):
		}
		err := n.joinOnce()
		switch {
		case err == nil:
			delay = n.cfg.JoinInterval
		case errors.Is(err, ErrNotLeader):
			n.logger.Debug("join: no leader yet", "err", err)
			delay = min(n.cfg.JoinInterval, 200*time.Millisecond)
		default:
			n.logger.Warn("join failed; retrying", "err", err)
			delay = min(n.cfg.JoinInterval, time.Second)
		}
	}
}

func (n *Node) joinOnce() error {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.CallTimeout)
	defer cancel()
	me := n.self()
	if n.isLeader() {
		_, err := n.join(me)
		return err
	}
	// The leader if known, then every member in the local table, then seeds.
	var targets []string
	if _, addr, ok := n.leaderAPI(); ok {
		targets = append(targets, addr)
	}
	for _, m := range n.fsm.Members() {
		if m.GetId() != n.id {
			targets = append(targets, m.GetApiAddress())
		}
	}
	targets = append(targets, n.cfg.Seeds...)
	var errs []error
	for _, addr := range dedupe(targets) {
		if addr == n.cfg.APIAdvertise {
			continue
		}
		if _, err := n.peers.join(ctx, addr, me); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: nobody to join through", ErrNotLeader)
	}
	return fmt.Errorf("%w: %w", ErrNotLeader, errors.Join(errs...))
}

// Stats reports this member's Raft state for the leader's health checks.
func (n *Node) Stats() *meridianv1.MemberStatsResponse {
	s := n.raft.Stats()
	term, _ := strconv.ParseUint(s["last_log_term"], 10, 64)
	index, _ := strconv.ParseUint(s["last_log_index"], 10, 64)
	resp := &meridianv1.MemberStatsResponse{Id: n.id, LastTerm: term, LastIndex: index, RaftState: n.raft.State().String()}
	switch c := s["last_contact"]; {
	case n.raft.State() == raft.Leader:
		resp.LastContact = durationProto(0)
	case c == "never" || c == "":
	default:
		if d, err := time.ParseDuration(c); err == nil {
			resp.LastContact = durationProto(d)
		}
	}
	return resp
}

// voters returns the current voters' server ids.
func (n *Node) voters() map[string]bool {
	out := map[string]bool{}
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return out
	}
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out[string(s.ID)] = true
		}
	}
	return out
}

// Regions describes every region that has joined, as this node sees it.
func (n *Node) Regions() []*meridianv1.RegionInfo {
	voters := n.voters()
	byName := map[string]*meridianv1.RegionInfo{}
	for _, m := range n.fsm.Members() {
		r := byName[m.GetRegion()]
		if r == nil {
			r = &meridianv1.RegionInfo{Name: m.GetRegion()}
			byName[m.GetRegion()] = r
		}
		r.Endpoints = append(r.Endpoints, m.GetApiAddress())
		if voters[m.GetId()] {
			r.Voters = append(r.Voters, m.GetId())
		}
	}
	for name, r := range byName {
		r.Lease = n.leaseStatus(name)
	}
	out := make([]*meridianv1.RegionInfo, 0, len(byName))
	for name, r := range byName {
		if name == n.cfg.Region {
			r.Reachable = true
			r.LastReached = timestampProto(time.Now())
		} else if at, ok := n.probe.lastReached(name); ok {
			r.LastReached = timestampProto(at)
			r.Reachable = time.Since(at) <= 2*n.cfg.ProbeInterval+n.cfg.CallTimeout
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// regionOf returns the region part of a server id "<region>/<node>".
func regionOf(id string) string {
	r, _, _ := strings.Cut(id, "/")
	return r
}
