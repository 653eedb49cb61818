package client

import (
	"context"
	"iter"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Subscription says what to subscribe to and from where.
type Subscription struct {
	// Entity subscribes to one stream (positions are versions); empty with
	// All for the whole region log (positions are region positions).
	Entity string
	All    bool
	// From is the first position delivered; 0 means the beginning.
	From uint64
	// FromEnd delivers only events appended after the subscription started.
	FromEnd bool
	// CheckpointInterval is how often an idle stream sends a checkpoint; 0
	// means the server's default.
	CheckpointInterval time.Duration
	// Filter delivers only matching events (entity prefixes need All);
	// checkpoints still move past the others, and a reconnect resumes
	// after them.
	Filter *meridianv1.EventFilter
}

func (s Subscription) request(next uint64, resumed bool) *meridianv1.SubscribeRequest {
	req := &meridianv1.SubscribeRequest{FromPosition: next, FromEnd: s.FromEnd && !resumed}
	if s.All {
		req.Target = &meridianv1.SubscribeRequest_All{All: true}
	} else {
		req.Target = &meridianv1.SubscribeRequest_Entity{Entity: s.Entity}
	}
	if s.CheckpointInterval > 0 {
		req.CheckpointInterval = durationpb.New(s.CheckpointInterval)
	}
	req.Filter = s.Filter
	return req
}

// Subscribe streams events and checkpoints. It yields each message the
// server sends; on an Unavailable error, or a stream the server cancelled
// (a node shutting down), it reconnects (next endpoint, with
// backoff, bounded by the retry policy, reset by every message received) and
// resumes at the first position not yet delivered. The sequence ends when the
// context is cancelled (no error is yielded then), the caller stops, or an
// error that cannot be retried, which is yielded last.
//
// A node outside the entity's home region answers an entity subscription
// with a HomeRedirect (subscriptions are not proxied between regions): the
// client reconnects to the home's endpoints, at most redirectsMax times in a
// row without a message in between. When the home's endpoints have all
// failed once, it goes back to its own endpoints, whose answer names the
// home anew (which may have moved).
func (c *Client) Subscribe(ctx context.Context, sub Subscription) iter.Seq2[*meridianv1.SubscribeResponse, error] {
	return func(yield func(*meridianv1.SubscribeResponse, error) bool) {
		next := sub.From
		resumed := false
		b := &backoff.ExponentialBackOff{
			InitialInterval:     c.retry.InitialBackoff,
			RandomizationFactor: backoff.DefaultRandomizationFactor,
			Multiplier:          backoff.DefaultMultiplier,
			MaxInterval:         c.retry.MaxBackoff,
		}
		b.Reset()
		failures := 0
		var failingSince time.Time
		// set is where the subscription connects: the client's own
		// endpoints, or the home's after a redirect.
		set := c.own()
		redirects := 0    // redirects followed since the last message
		homeFailures := 0 // failures on the home's endpoints since the redirect
		for {
			ep, idx := set.pick()
			sctx, cancel := context.WithCancel(ctx)
			stream, err := ep.store.Subscribe(sctx, connect.NewRequest(sub.request(next, resumed)))
			if err == nil {
				for stream.Receive() {
					msg := stream.Msg()
					failures = 0
					redirects = 0
					homeFailures = 0
					b.Reset()
					switch m := msg.GetMessage().(type) {
					case *meridianv1.SubscribeResponse_Event:
						if sub.All {
							next = m.Event.GetPosition() + 1
						} else {
							next = m.Event.GetVersion() + 1
						}
						resumed = true
					case *meridianv1.SubscribeResponse_Checkpoint:
						next = max(next, m.Checkpoint.GetNextPosition())
						resumed = true
						c.session.observe(m.Checkpoint.GetSessionToken())
					}
					if !yield(msg, nil) {
						cancel()
						_ = stream.Close()
						return
					}
				}
				err = stream.Err()
				_ = stream.Close()
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			if hr, ok := HomeRedirectOf(err); ok && redirects < redirectsMax {
				if home, herr := c.homeSet(hr); herr == nil {
					redirects++
					homeFailures = 0
					c.logger.Debug("following redirect", "method", "subscribe", "entity", sub.Entity, "home", hr.GetHomeRegion(), "epoch", hr.GetEpoch())
					set = home
					continue
				}
			}
			if err == nil {
				// The server ended the stream cleanly (shutdown): resume elsewhere.
				err = connect.NewError(connect.CodeUnavailable, errStreamEnded)
			}
			if !retryable(err) && !serverEnded(err) {
				yield(nil, err)
				return
			}
			if failures == 0 {
				failingSince = time.Now()
			}
			failures++
			wait := b.NextBackOff()
			if failures >= c.retry.MaxAttempts || time.Since(failingSince)+wait > c.retry.MaxElapsed {
				yield(nil, err)
				return
			}
			set.advance(idx)
			if set != c.own() {
				if homeFailures++; homeFailures >= len(set.eps) {
					// Every home endpoint failed: ask the client's own
					// endpoints where the home is now.
					set, redirects = c.own(), 0
				}
			}
			c.logger.Debug("resubscribing", "next", next, "attempt", failures, "err", err)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// serverEnded reports whether the server cut a subscription off (a node
// shutting down cancels its streams) rather than refusing it: the client's
// own context is alive, so the subscription resumes on another node.
func serverEnded(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeCanceled, connect.CodeAborted:
		return true
	}
	return false
}
