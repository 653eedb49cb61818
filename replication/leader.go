package replication

import (
	"context"
	"sync"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// term is one stretch of leadership: the pullers started in it and what
// stops them.
type term struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// runLeadership follows the region's leadership until Close: pullers run
// while this node leads, and the region list is re-read whenever the
// directory changes (and every DirectoryRefresh, in case a wake-up is
// lost) so that regions that joined get a puller.
func (s *Shipper) runLeadership() {
	defer close(s.done)
	refresh := time.NewTicker(s.cfg.DirectoryRefresh)
	defer refresh.Stop()
	var t *term
	for {
		// Take the change channel before asking, so a change in between
		// is not missed.
		changed := s.deps.Leadership.LeaderChanged()
		dirChanged := s.deps.Directory.Changed()
		leading := s.deps.Leadership.IsLeader()
		switch {
		case leading && t == nil:
			t = s.establishLeadership()
		case !leading && t != nil:
			s.revokeLeadership(t)
			t = nil
		}
		if t != nil {
			s.reconcile(t)
		}
		select {
		case <-changed:
		case <-dirChanged:
		case <-refresh.C:
		case <-s.closing:
			if t != nil {
				s.revokeLeadership(t)
			}
			return
		}
	}
}

// establishLeadership starts a term. There is no cursor to load: each
// puller starts from the applied vector, which the region stores atomically
// with the data, so a new leader resumes exactly where the region stopped.
func (s *Shipper) establishLeadership() *term {
	ctx, cancel := context.WithCancel(context.Background())
	s.logger.Info("replication started: leading the region", "applied", s.deps.Log.Applied())
	t := &term{ctx: ctx, cancel: cancel}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		s.runClocks(t)
	}()
	return t
}

// runClocks records, every HeartbeatInterval, the origin clocks the
// pullers heard that say more than this region knows: one Raft entry for
// all of them, only when one moves. A clock counts only once the region
// has applied the origin's log as far as the clock's seq.
func (s *Shipper) runClocks(t *term) {
	tick := time.NewTicker(s.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		heard := make([]*meridianv1.OriginClock, 0, len(s.pullers))
		for _, p := range s.pullers {
			if c := p.status().clock; c != nil {
				heard = append(heard, c)
			}
		}
		s.mu.Unlock()
		applied := s.deps.Log.Applied()
		var moved []*meridianv1.OriginClock
		for _, c := range heard {
			if applied[c.GetOrigin()] < c.GetSeq() {
				continue
			}
			if mine := s.deps.Log.Clock(c.GetOrigin()).GetHlc(); mine == nil || hlcLess(mine, c.GetHlc()) {
				moved = append(moved, c)
			}
		}
		if len(moved) == 0 {
			continue
		}
		if err := s.deps.Applier.AdvanceClocks(t.ctx, moved); err != nil {
			s.logger.Debug("recording origin clocks failed; retrying at the next heartbeat", "err", err)
		}
	}
}

// revokeLeadership stops every puller of the term and waits for them: a
// proposal in flight returns with its context's error. What the pullers
// held is dropped; the next leader pulls it again.
func (s *Shipper) revokeLeadership(t *term) {
	t.cancel()
	t.wg.Wait()
	s.mu.Lock()
	clear(s.pullers)
	clear(s.offered)
	s.mu.Unlock()
	s.logger.Info("replication stopped: no longer leading the region")
}

// reconcile starts a puller for every region in the directory that has
// none, and stops those of regions that left it.
func (s *Shipper) reconcile(t *term) {
	want := map[string]bool{}
	for _, r := range s.deps.Directory.Regions() {
		if r != s.cfg.Region && r != "" {
			want[r] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for origin, p := range s.pullers {
		if !want[origin] {
			p.cancel()
			delete(s.pullers, origin)
			s.logger.Info("puller stopped: region left the directory", "origin", origin)
		}
	}
	for origin := range want {
		if s.pullers[origin] != nil {
			continue
		}
		p := newPuller(s, origin, t.ctx)
		s.pullers[origin] = p
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			p.run()
		}()
	}
}
