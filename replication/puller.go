package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// backoffJitter is the randomization factor of every backoff: each wait is
// drawn from [0.5, 1.5] times the current interval, so that pullers of many
// regions do not reconnect in step.
const backoffJitter = 0.5

// puller brings this region's copy of one origin's log up to date. It runs
// on its own goroutine for one leadership term.
type puller struct {
	s      *Shipper
	origin string
	ctx    context.Context
	cancel context.CancelFunc
	logger *slog.Logger
	pend   pending

	mu sync.Mutex
	st pullerStatus
}

// pullerStatus is what Lag reads of a puller.
type pullerStatus struct {
	// source is the region the open stream comes from; empty between
	// streams.
	source string
	// headSeq and headWallNanos are the origin sequence and HLC wall time
	// of the first event held (not yet applied); 0 when nothing is held.
	headSeq       uint64
	headWallNanos int64
	// heardAt is when the current term's streams last delivered a message
	// (events or a heartbeat); zero if never. sourceStale is that message's
	// origin_staleness (how stale the source's own copy was), valid when
	// sourceStaleKnown.
	heardAt          time.Time
	sourceStale      time.Duration
	sourceStaleKnown bool
	// clock is the greatest origin clock the streams carried.
	clock *meridianv1.OriginClock
}

// staleness bounds how old this region's view of the origin's log may be
// at now, given the origin's applied entry: the age of the oldest event
// held but not applied, and the time since the source last spoke plus how
// stale the source itself was then. Unknown (false) before any message,
// and when the source could not vouch for its own copy.
func (st pullerStatus) staleness(applied uint64, now time.Time) (time.Duration, bool) {
	if st.heardAt.IsZero() || !st.sourceStaleKnown {
		return 0, false
	}
	d := max(0, now.Sub(st.heardAt)) + st.sourceStale
	if st.headSeq > applied && st.headWallNanos != 0 {
		d = max(d, now.Sub(time.Unix(0, st.headWallNanos)))
	}
	return d, true
}

func newPuller(s *Shipper, origin string, parent context.Context) *puller {
	ctx, cancel := context.WithCancel(parent)
	return &puller{
		s: s, origin: origin, ctx: ctx, cancel: cancel,
		logger: s.logger.With("origin", origin),
		pend:   pending{origin: origin},
	}
}

func (p *puller) status() pullerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// heard records a message from the current stream.
func (p *puller) heard(m *meridianv1.PullResponse) {
	p.mu.Lock()
	p.st.heardAt = time.Now()
	p.st.sourceStale, p.st.sourceStaleKnown = m.GetOriginStaleness().AsDuration(), m.GetOriginStaleness() != nil
	if c := m.GetOriginClock(); c.GetOrigin() == p.origin && c.GetHlc() != nil && (p.st.clock == nil || hlcLess(p.st.clock.GetHlc(), c.GetHlc())) {
		p.st.clock = c
	}
	p.mu.Unlock()
}

func hlcLess(a, b *meridianv1.Hlc) bool {
	return a.GetWallNanos() < b.GetWallNanos() || a.GetWallNanos() == b.GetWallNanos() && a.GetLogical() < b.GetLogical()
}

func (p *puller) setSource(source string) {
	p.mu.Lock()
	p.st.source = source
	p.mu.Unlock()
}

// published records what pending holds, for Lag and the testing knob.
func (p *puller) published() {
	p.mu.Lock()
	p.st.headSeq, p.st.headWallNanos = 0, 0
	if p.pend.len() > 0 {
		p.st.headSeq = p.pend.head()
		p.st.headWallNanos = p.pend.events[0].GetHlc().GetWallNanos()
	}
	p.mu.Unlock()
	if k := p.s.cfg.Knobs; k != nil && k.OnPending != nil {
		k.OnPending(p.origin, p.pend.len(), p.pend.bytes)
	}
}

func (p *puller) newBackoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.s.cfg.BackoffMin,
		RandomizationFactor: backoffJitter,
		Multiplier:          2,
		MaxInterval:         p.s.cfg.BackoffMax,
	}
	b.Reset()
	return b
}

// sleep waits d or until the puller stops; it reports whether to go on.
func (p *puller) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// run pulls until the term ends: one stream at a time, from the source
// pickSource chooses, reconnecting with backoff and jitter.
func (p *puller) run() {
	defer p.published()
	bo := p.newBackoff()
	var prev, served string
	var lastErr error
	progressed := false
	failures := 0
	for p.ctx.Err() == nil {
		cands := p.s.sources(p.origin)
		src := p.pickSource(cands, prev, lastErr, progressed)
		var opened bool
		opened, progressed, lastErr = p.session(src, served)
		if p.ctx.Err() != nil {
			return
		}
		prev = src
		if opened {
			served = src
		}
		if progressed {
			bo.Reset()
			failures = 0
		} else {
			failures++
		}
		wait := bo.NextBackOff()
		switch {
		case failures == len(cands):
			p.logger.Warn("no source can serve the origin's log", "tried", cands, "last_source", src, "err", lastErr)
		case errors.Is(lastErr, ErrBadStream):
			p.logger.Warn("source sent a bad stream", "source", src, "err", lastErr)
		default:
			p.logger.Debug("pull ended", "source", src, "err", lastErr, "progressed", progressed, "retry_in", wait)
		}
		if !p.sleep(wait) {
			return
		}
	}
}

// pickSource chooses the next source among cands (the origin first). After
// a stream that made progress, or at the start, the origin is preferred;
// when the last source fell behind, the region that has offered the most;
// otherwise the next in order after the last one tried, so a source that
// cannot be reached (or a partition between this region and the origin)
// is routed around.
func (p *puller) pickSource(cands []string, prev string, lastErr error, progressed bool) string {
	if prev == "" || errors.Is(lastErr, ErrRevisitOrigin) || (progressed && !errors.Is(lastErr, ErrSourceBehind)) {
		return cands[0]
	}
	if errors.Is(lastErr, ErrSourceBehind) {
		if best, most := p.s.bestOffer(p.origin, prev, cands); best != "" && most > p.s.offeredBy(prev, p.origin) {
			return best
		}
	}
	i := slices.Index(cands, prev)
	return cands[(i+1)%len(cands)]
}

// proposal is the outcome of one Replicate call.
type proposal struct {
	first, last uint64 // origin sequences of the batch
	before      uint64 // the origin's applied entry when it was proposed
	got         int
	err         error
}

// session opens one stream from src and works it until it fails, stalls
// or the term ends. It reports whether the stream opened, whether anything
// moved (events received or applied), and why it ended.
//
// One proposal is in flight at a time, on its own goroutine, while the
// session goes on reading the stream into pending: pending is the buffer
// that keeps the Raft group busy across the round trips to the source.
func (p *puller) session(src, served string) (opened, progressed bool, err error) {
	cfg := p.s.cfg
	applied := p.s.deps.Log.Applied()
	if err := p.pend.dropApplied(applied[p.origin]); err != nil {
		p.pend.reset()
	}
	p.published()
	// What is held stays valid whatever the source: every region's copy of
	// an origin's log is a prefix of the same log.
	from := max(applied[p.origin], p.pend.tail()) + 1
	req := &meridianv1.PullRequest{Origin: p.origin, FromSeq: from, RequesterRegion: cfg.Region, MaxEvents: uint32(cfg.BatchEventsMax)}
	st, held, err := p.s.client.open(p.ctx, p.s.deps.Directory.Endpoints(src), req)
	if err != nil {
		return false, false, fmt.Errorf("open pull from %s: %w", src, err)
	}
	defer st.close()
	if held != nil {
		p.heard(held)
	}
	p.setSource(src)
	defer p.setSource("")
	if src != served {
		p.logger.Info("pulling from source", "source", src, "endpoint", st.endpoint, "from_seq", from, "previous", served)
	} else {
		p.logger.Debug("pull stream opened", "source", src, "endpoint", st.endpoint, "from_seq", from)
	}

	started := time.Now()
	next := from          // the first sequence the stream's next message must carry
	var srcApplied uint64 // the source's applied entry for the origin, from its messages
	heldChecked := false  // held was checked against next and observed
	lastProgress := time.Now()
	var readingSince time.Time // when the puller started waiting on the stream; zero when not
	var holdUntil time.Time    // no proposal before this (after a failed or fruitless one)
	var lastBlocked string
	applyBackoff := p.newBackoff()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	// srcStale is the source's own staleness for the origin, from its
	// last message (origin_staleness), when srcStaleKnown.
	srcStale, srcStaleKnown := held.GetOriginStaleness().AsDuration(), held.GetOriginStaleness() != nil

	// inflight is non-nil while a proposal runs; the session waits for it
	// before returning, so that two never overlap.
	var inflight chan proposal
	defer func() {
		if inflight != nil {
			<-inflight
		}
	}()

	for {
		if held != nil && !heldChecked {
			p.s.observe(src, held.GetApplied())
			srcApplied = max(srcApplied, held.GetApplied()[p.origin])
			if len(held.GetEvents()) > cfg.BatchEventsMax {
				return true, progressed, badStreamf("%d events in one message, asked for at most %d", len(held.GetEvents()), cfg.BatchEventsMax)
			}
			if next, err = continues(p.origin, next, held.GetEvents()); err != nil {
				return true, progressed, err
			}
			heldChecked = true
		}

		changed := p.s.deps.Log.Changed()
		applied = p.s.deps.Log.Applied()
		if err := p.pend.dropApplied(applied[p.origin]); err != nil {
			p.pend.reset()
			p.published()
			return true, progressed, err
		}
		if held != nil && p.pend.fits(len(held.GetEvents()), eventsBytes(held.GetEvents()), cfg.PendingEventsMax, cfg.PendingBytesMax) {
			n, err := p.pend.add(held.GetEvents(), applied[p.origin])
			p.published()
			if err != nil {
				p.pend.reset()
				p.published()
				return true, progressed, err
			}
			if n > 0 {
				progressed, lastProgress = true, time.Now()
			}
			held = nil
		}

		now := time.Now()
		if inflight == nil && !now.Before(holdUntil) && !p.heldByKnob() {
			n, blocked := nextBatch(p.origin, p.pend.events, p.pend.sizes, applied, cfg.BatchEventsMax, cfg.BatchBytesMax)
			if n > 0 {
				lastBlocked = ""
				inflight = p.propose(slices.Clone(p.pend.events[:n]), applied[p.origin])
			} else if blocked != "" && blocked != lastBlocked {
				p.logger.Debug("waiting for dependencies", "reason", blocked)
			}
			lastBlocked = blocked
		}

		// Has the source given all it has while more is known to exist?
		known := p.s.known(p.origin)
		caughtUp := p.pend.len() == 0 && held == nil && inflight == nil && applied[p.origin] >= srcApplied
		if caughtUp && known > applied[p.origin] && now.Sub(lastProgress) >= cfg.StallTimeout {
			return true, progressed, fmt.Errorf("%w: %s offers %s up to %d, %d is known", ErrSourceBehind, src, p.origin, srcApplied, known)
		}
		// Another region's copy is only as fresh as that region: once caught
		// up with it, try the origin again now and then (it may be reachable
		// again, and only it knows its newest events).
		revisit := src != p.origin && caughtUp
		if revisit && now.Sub(started) >= cfg.OriginRetryInterval {
			return true, progressed, fmt.Errorf("%w: caught up with %s after %s", ErrRevisitOrigin, src, now.Sub(started).Round(time.Millisecond))
		}
		// A source that says its own copy is stale has nothing newer to
		// give (two regions that pull the origin through each other after
		// a heal would otherwise wait out OriginRetryInterval): try the
		// origin once StallTimeout has passed on this source.
		staleSource := revisit && srcStaleKnown && srcStale > cfg.StallTimeout
		if staleSource && now.Sub(started) >= cfg.StallTimeout {
			return true, progressed, fmt.Errorf("%w: %s's own copy of %s is %s old", ErrRevisitOrigin, src, p.origin, srcStale.Round(time.Millisecond))
		}

		var msgs <-chan *meridianv1.PullResponse
		wait := time.Duration(1<<63 - 1)
		if held == nil {
			msgs = st.msgs
			if readingSince.IsZero() {
				readingSince = now
			}
			wait = min(wait, cfg.StreamIdleTimeout-now.Sub(readingSince))
		} else {
			readingSince = time.Time{}
		}
		if inflight == nil && (p.pend.len() > 0 || held != nil) {
			wait = min(wait, cfg.DepsPollInterval, max(0, holdUntil.Sub(now)))
		}
		if caughtUp && known > applied[p.origin] {
			wait = min(wait, cfg.StallTimeout-now.Sub(lastProgress))
		}
		if revisit {
			wait = min(wait, cfg.OriginRetryInterval-now.Sub(started))
		}
		if staleSource {
			wait = min(wait, cfg.StallTimeout-now.Sub(started))
		}
		timer.Reset(max(wait, timerMin))
		select {
		case res := <-inflight:
			inflight = nil
			if err := p.proposed(res, &holdUntil, applyBackoff); err == nil {
				progressed, lastProgress = true, time.Now()
			}
		case m := <-msgs:
			held, heldChecked, readingSince = m, false, time.Time{}
			p.heard(m)
			srcStale, srcStaleKnown = m.GetOriginStaleness().AsDuration(), m.GetOriginStaleness() != nil
		case <-st.done:
			err := st.err
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("source %s ended the stream: %w", src, err)
			}
			return true, progressed, err
		case <-changed:
			holdUntil = time.Time{}
		case <-timer.C:
			if !readingSince.IsZero() && time.Since(readingSince) >= cfg.StreamIdleTimeout {
				return true, progressed, fmt.Errorf("%w: nothing from %s for %s", ErrStreamIdle, src, cfg.StreamIdleTimeout)
			}
		case <-p.ctx.Done():
			return true, progressed, p.ctx.Err()
		}
		drainTimer(timer)
	}
}

// propose runs Replicate for batch on its own goroutine.
func (p *puller) propose(batch []*meridianv1.Event, before uint64) chan proposal {
	ch := make(chan proposal, 1)
	res := proposal{first: batch[0].GetOrigin().GetSeq(), last: batch[len(batch)-1].GetOrigin().GetSeq(), before: before}
	go func() {
		res.got, res.err = p.s.deps.Applier.Replicate(p.ctx, batch)
		ch <- res
	}()
	return ch
}

// errNoProgress: a proposal returned but the applied vector did not move.
var errNoProgress = errors.New("replication: proposal applied nothing")

// proposed handles a proposal's outcome. The applied vector, not the
// count, is the truth: what moved is dropped from pending at the next
// iteration, what did not is proposed again. After an error (not leader,
// outcome unknown, overloaded: the term may be ending) or a fruitless
// proposal, the next waits (holdUntil). It returns nil when the origin's
// applied entry advanced.
func (p *puller) proposed(res proposal, holdUntil *time.Time, bo *backoff.ExponentialBackOff) error {
	if res.err != nil {
		wait := bo.NextBackOff()
		*holdUntil = time.Now().Add(wait)
		if p.ctx.Err() == nil {
			p.logger.Debug("replicate failed", "first_seq", res.first, "last_seq", res.last, "err", res.err, "retry_in", wait)
		}
		return res.err
	}
	bo.Reset()
	after := p.s.deps.Log.Applied()[p.origin]
	p.logger.Debug("batch replicated", "first_seq", res.first, "last_seq", res.last, "applied_new", res.got, "applied", after)
	if after <= res.before {
		// The region stopped the batch (its apply rules are the final
		// word): wait for an apply or a poll before proposing again.
		*holdUntil = time.Now().Add(p.s.cfg.DepsPollInterval)
		return errNoProgress
	}
	return nil
}

// continues checks a message's events against next, the sequence the
// stream should carry next: they must be consecutive events of origin
// starting at or below next (events below it are duplicates, which pending
// skips; a source may resend after all). It returns the new next.
func continues(origin string, next uint64, events []*meridianv1.Event) (uint64, error) {
	if len(events) == 0 {
		return next, nil
	}
	first := events[0].GetOrigin().GetSeq()
	if first == 0 || first > next {
		return next, badStreamf("message starts at %s/%d, expected %d", origin, first, next)
	}
	if err := checkConsecutive(origin, first, events); err != nil {
		return next, err
	}
	return max(next, first+uint64(len(events))), nil
}

// drainTimer stops t and empties its channel, so that Reset starts clean.
func drainTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

func eventsBytes(events []*meridianv1.Event) int {
	n := 0
	for _, ev := range events {
		n += proto.Size(ev)
	}
	return n
}

// heldByKnob reports whether a test holds this origin's proposals back.
func (p *puller) heldByKnob() bool {
	k := p.s.cfg.Knobs
	return k != nil && k.HoldOrigin != nil && k.HoldOrigin(p.origin)
}
