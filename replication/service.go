package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/causal"
)

// Service is the Connect handler of meridian.v1.Replication over this
// node's LogSource. Any node of a region may serve it, followers too: their
// copy of every origin's log is a contiguous prefix, and each message says
// (applied) how far it reaches. Errors become Connect codes only here:
//
//	ErrInvalidArgument   InvalidArgument (message names the field)
//	ErrClosed            Unavailable
//	LogSource errors     Unavailable (the puller tries another source)
//	a broken local log   Internal (events not consecutive: a bug below)
type Service struct {
	region            string
	source            LogSource
	heartbeatInterval time.Duration
	messageBytesMax   int
	logger            *slog.Logger

	// staleness, when set, answers how stale this node's copy of an
	// origin's log is (SetOriginStaleness).
	staleness atomic.Pointer[func(origin string) (time.Duration, bool)]

	closeOnce sync.Once
	closing   chan struct{}
}

var _ meridianv1connect.ReplicationHandler = (*Service)(nil)

// NewService returns the handler serving cfg.Region's copy of the logs in
// source. It uses Region, HeartbeatInterval, MessageBytesMax and Logger.
func NewService(cfg Config, source LogSource) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Service{
		region:            cfg.Region,
		source:            source,
		heartbeatInterval: cfg.HeartbeatInterval,
		messageBytesMax:   cfg.MessageBytesMax,
		logger:            cfg.Logger.With("component", "replication", "region", cfg.Region, "side", "service"),
		closing:           make(chan struct{}),
	}, nil
}

// SetOriginStaleness installs how the service learns how stale this
// node's copy of an origin's log is, sent with every message as
// origin_staleness. fn answers for every origin, this region's own
// included: node/ wires the region member's LogStaleness for its own
// origin (zero on the leader, the time since it heard from the leader on a
// follower) and the Shipper's OriginStaleness for the others (known only
// on the node that runs replication, the region leader). Where fn does not
// know, messages carry none, and pullers served by this node claim no
// freshness. Without fn, the region's own origin goes out with zero and
// the others with none.
func (s *Service) SetOriginStaleness(fn func(origin string) (time.Duration, bool)) {
	s.staleness.Store(&fn)
}

// originStaleness is origin_staleness for a message about origin.
func (s *Service) originStaleness(origin string) *durationpb.Duration {
	fn := s.staleness.Load()
	if fn == nil {
		if origin == s.region {
			return durationpb.New(0)
		}
		return nil
	}
	if d, ok := (*fn)(origin); ok {
		return durationpb.New(d)
	}
	return nil
}

// Close ends every Pull stream waiting for new events (at its next wait)
// and refuses new ones. A stream blocked sending to a slow client ends when
// the HTTP server closes its connection.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// pullLimits are the validated parameters of one Pull.
type pullLimits struct {
	origin    string
	fromSeq   uint64
	maxEvents int
}

// validatePull checks a PullRequest and applies the max_events default and
// cap.
func validatePull(req *meridianv1.PullRequest) (pullLimits, error) {
	if err := causal.ValidateRegion(req.GetOrigin()); err != nil {
		return pullLimits{}, invalidf("origin", "%v", err)
	}
	if req.GetFromSeq() < 1 {
		return pullLimits{}, invalidf("from_seq", "must be at least 1 (sequences are 1-based), got %d", req.GetFromSeq())
	}
	if r := req.GetRequesterRegion(); r != "" {
		if err := causal.ValidateRegion(r); err != nil {
			return pullLimits{}, invalidf("requester_region", "%v", err)
		}
	}
	maxEvents := int(req.GetMaxEvents())
	if maxEvents == 0 || maxEvents > PullEventsMax {
		maxEvents = PullEventsMax
	}
	return pullLimits{origin: req.GetOrigin(), fromSeq: req.GetFromSeq(), maxEvents: maxEvents}, nil
}

// Pull implements meridianv1connect.ReplicationHandler: it sends the local
// copy of the origin's log from from_seq on, then follows it live. The
// first message goes out at once (events, or an empty one carrying the
// applied vector), so the caller learns quickly that it is connected.
// Caught up, the stream waits for the next apply and sends a heartbeat
// every HeartbeatInterval. stream.Send blocks while the client does not
// read (HTTP/2 flow control), so one message is the most the handler holds.
func (s *Service) Pull(ctx context.Context, req *connect.Request[meridianv1.PullRequest], stream *connect.ServerStream[meridianv1.PullResponse]) error {
	lim, err := validatePull(req.Msg)
	if err != nil {
		return serviceError(err)
	}
	select {
	case <-s.closing:
		return serviceError(ErrClosed)
	default:
	}
	log := s.logger.With("origin", lim.origin, "requester", req.Msg.GetRequesterRegion())
	log.Debug("pull started", "from_seq", lim.fromSeq)

	heartbeat := time.NewTicker(s.heartbeatInterval)
	defer heartbeat.Stop()
	next, sent := lim.fromSeq, false
	for {
		// Take the wake-up before reading, so an apply between the read and
		// the wait is not missed.
		changed := s.source.Changed()
		events, err := s.source.ReadOrigin(lim.origin, next, lim.maxEvents)
		if err != nil {
			log.Debug("pull read failed", "from_seq", next, "err", err)
			return serviceError(fmt.Errorf("replication: read %s from %d: %w", lim.origin, next, err))
		}
		events = boundBytes(events, s.messageBytesMax)
		if err := checkConsecutive(lim.origin, next, events); err != nil {
			log.Error("local origin log is not consecutive", "err", err)
			return connect.NewError(connect.CodeInternal, err)
		}
		if len(events) > 0 || !sent {
			// Read the vector after the events: it then covers them.
			msg := &meridianv1.PullResponse{Events: events, Applied: s.source.Applied(), SourceRegion: s.region,
				OriginStaleness: s.originStaleness(lim.origin), OriginClock: s.source.Clock(lim.origin)}
			if err := stream.Send(msg); err != nil {
				return err
			}
			sent = true
			next += uint64(len(events))
			if len(events) > 0 {
				heartbeat.Reset(s.heartbeatInterval)
				continue
			}
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			msg := &meridianv1.PullResponse{Applied: s.source.Applied(), SourceRegion: s.region,
				OriginStaleness: s.originStaleness(lim.origin), OriginClock: s.source.Clock(lim.origin)}
			if err := stream.Send(msg); err != nil {
				return err
			}
		case <-s.closing:
			return serviceError(ErrClosed)
		case <-ctx.Done():
			return nil
		}
	}
}

// boundBytes returns the longest prefix of events whose summed size is at
// most bytesMax, and at least one event.
func boundBytes(events []*meridianv1.Event, bytesMax int) []*meridianv1.Event {
	total := 0
	for i, ev := range events {
		total += proto.Size(ev)
		if total > bytesMax && i > 0 {
			return events[:i]
		}
	}
	return events
}

// checkConsecutive reports whether events are origin's events from seq on,
// one by one.
func checkConsecutive(origin string, seq uint64, events []*meridianv1.Event) error {
	for i, ev := range events {
		if o := ev.GetOrigin(); o.GetRegion() != origin || o.GetSeq() != seq+uint64(i) {
			return fmt.Errorf("%w: event %d is %s/%d, want %s/%d", ErrBadStream, i, o.GetRegion(), o.GetSeq(), origin, seq+uint64(i))
		}
	}
	return nil
}

// serviceError maps a replication error to a Connect error (see Service).
func serviceError(err error) *connect.Error {
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	default:
		return connect.NewError(connect.CodeUnavailable, err)
	}
}
