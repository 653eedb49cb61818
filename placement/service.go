package placement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// Service is the Connect handler of meridian.v1.Placement over a Node. It is
// the only place where placement errors become Connect codes:
//
//	ErrInvalidArgument   InvalidArgument (the message names the rule or field)
//	ErrConflict          FailedPrecondition (expected_index is not the rules' index)
//	ErrNotLeader         Unavailable (not proposed: retry)
//	ErrOutcomeUnknown    Unavailable (may have committed: read, then retry)
//	context errors       DeadlineExceeded / Canceled
//
// Reads (GetPlacement, ListRules, ListRegions) answer from the local copy
// with a TableInfo saying how current it is; changes are validated against
// the local copy, then proposed on the leader (forwarded when this member is
// not the leader) and validated again in apply.
type Service struct {
	node *Node
}

var _ meridianv1connect.PlacementHandler = (*Service)(nil)

// NewService returns the Connect handler for n.
func NewService(n *Node) *Service { return &Service{node: n} }

// GetPlacement implements meridianv1connect.PlacementHandler.
func (s *Service) GetPlacement(_ context.Context, req *connect.Request[meridianv1.GetPlacementRequest]) (*connect.Response[meridianv1.GetPlacementResponse], error) {
	if err := ValidateEntity(req.Msg.GetEntity()); err != nil {
		return nil, connectError(err)
	}
	p := s.node.Lookup(req.Msg.GetEntity())
	resp := &meridianv1.GetPlacementResponse{
		Entity: req.Msg.GetEntity(), HomeRegion: p.Home, Mode: p.Mode, Epoch: p.Epoch,
		Failover: p.Failover, Source: p.Source, RulePrefix: p.RulePrefix, FailoverPolicy: p.FailoverPolicy,
		HomeEndpoints: s.node.Endpoints(p.Home), Table: s.node.Info(),
	}
	if p.Moving != nil {
		if rec, active := s.node.fsm.Transition(); active && rec.GetIndex() == p.Moving.Transition {
			resp.Change = ChangeOf(rec)
		}
	}
	if p.Home != "" {
		resp.HomeLease = s.node.leaseStatus(p.Home)
	}
	return connect.NewResponse(resp), nil
}

// ListRules implements meridianv1connect.PlacementHandler.
func (s *Service) ListRules(context.Context, *connect.Request[meridianv1.ListRulesRequest]) (*connect.Response[meridianv1.ListRulesResponse], error) {
	rules, def, defEpoch, rulesIndex := s.node.fsm.Rules()
	resp := &meridianv1.ListRulesResponse{
		Rules: rules, DefaultRegion: def, DefaultEpoch: defEpoch, RulesIndex: rulesIndex,
		Pins: uint64(s.node.fsm.PinCount()), Table: s.node.Info(),
	}
	if rec, active := s.node.fsm.Transition(); active {
		resp.Change = ChangeOf(rec)
	}
	return connect.NewResponse(resp), nil
}

// SetRules implements meridianv1connect.PlacementHandler.
func (s *Service) SetRules(ctx context.Context, req *connect.Request[meridianv1.SetRulesRequest]) (*connect.Response[meridianv1.SetRulesResponse], error) {
	m := req.Msg
	if err := ValidateRules(m.GetRules(), m.GetDefaultRegion(), s.node.fsm.KnownRegions()); err != nil {
		return nil, connectError(err)
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).SetRules, func() (*meridianv1.SetRulesResponse, error) {
		res, rec, err := s.node.proposeChange(ctx, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, &meridianv1.SetRulesCommand{
			Rules: m.GetRules(), DefaultRegion: m.GetDefaultRegion(), ExpectedIndex: m.GetExpectedIndex(),
			Stage: true, ProposedAt: timestamppb.Now(),
		})
		if err != nil {
			return nil, err
		}
		return &meridianv1.SetRulesResponse{Index: res.Index, Rules: res.Rules, DefaultEpoch: res.DefaultEpoch, Change: ChangeOf(rec)}, nil
	})
}

// Pin implements meridianv1connect.PlacementHandler.
func (s *Service) Pin(ctx context.Context, req *connect.Request[meridianv1.PinRequest]) (*connect.Response[meridianv1.PinResponse], error) {
	m := req.Msg
	if err := ValidatePin(m.GetEntity(), m.GetRegion(), s.node.fsm.KnownRegions()); err != nil {
		return nil, connectError(err)
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).Pin, func() (*meridianv1.PinResponse, error) {
		res, rec, err := s.node.proposeChange(ctx, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, &meridianv1.PinCommand{
			Entity: m.GetEntity(), Region: m.GetRegion(), Stage: true, ProposedAt: timestamppb.Now(),
		})
		if err != nil {
			return nil, err
		}
		return &meridianv1.PinResponse{Epoch: res.Epoch, Index: res.Index, Change: ChangeOf(rec)}, nil
	})
}

// Unpin implements meridianv1connect.PlacementHandler.
func (s *Service) Unpin(ctx context.Context, req *connect.Request[meridianv1.UnpinRequest]) (*connect.Response[meridianv1.UnpinResponse], error) {
	m := req.Msg
	if err := ValidateEntity(m.GetEntity()); err != nil {
		return nil, connectError(err)
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).Unpin, func() (*meridianv1.UnpinResponse, error) {
		res, rec, err := s.node.proposeChange(ctx, meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNPIN, &meridianv1.UnpinCommand{
			Entity: m.GetEntity(), Stage: true, ProposedAt: timestamppb.Now(),
		})
		if err != nil {
			return nil, err
		}
		return &meridianv1.UnpinResponse{Index: res.Index, Existed: res.Existed, Change: ChangeOf(rec)}, nil
	})
}

// Move implements meridianv1connect.PlacementHandler.
func (s *Service) Move(ctx context.Context, req *connect.Request[meridianv1.MoveRequest]) (*connect.Response[meridianv1.MoveResponse], error) {
	m := req.Msg
	switch t := m.GetTarget().(type) {
	case *meridianv1.MoveRequest_Entity:
		if err := ValidatePin(t.Entity, m.GetRegion(), s.node.fsm.KnownRegions()); err != nil {
			return nil, connectError(err)
		}
	case *meridianv1.MoveRequest_Prefix:
		if err := validateKnownRegion("region", m.GetRegion(), s.node.fsm.KnownRegions()); err != nil {
			return nil, connectError(err)
		}
	default:
		return nil, connectError(invalidf("target", "must be an entity or a prefix"))
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).Move, func() (*meridianv1.MoveResponse, error) {
		return s.node.move(ctx, m)
	})
}

// RenewLease implements meridianv1connect.PlacementHandler.
func (s *Service) RenewLease(ctx context.Context, req *connect.Request[meridianv1.RenewLeaseRequest]) (*connect.Response[meridianv1.RenewLeaseResponse], error) {
	if err := validateLease(req.Msg.GetLease(), s.node.fsm.KnownRegions()); err != nil {
		return nil, connectError(err)
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).RenewLease, func() (*meridianv1.RenewLeaseResponse, error) {
		return s.node.renewLease(req.Msg.GetLease())
	})
}

// AckTransition implements meridianv1connect.PlacementHandler.
func (s *Service) AckTransition(ctx context.Context, req *connect.Request[meridianv1.AckTransitionRequest]) (*connect.Response[meridianv1.AckTransitionResponse], error) {
	m := req.Msg
	if m.GetTransition() == 0 || m.GetRegion() == "" {
		return nil, connectError(invalidf("transition", "transition and region are required"))
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).AckTransition, func() (*meridianv1.AckTransitionResponse, error) {
		return s.node.ackTransition(m)
	})
}

// ListRegions implements meridianv1connect.PlacementHandler.
func (s *Service) ListRegions(context.Context, *connect.Request[meridianv1.ListRegionsRequest]) (*connect.Response[meridianv1.ListRegionsResponse], error) {
	resp := &meridianv1.ListRegionsResponse{Regions: s.node.Regions(), Table: s.node.Info()}
	if rec, active := s.node.fsm.Transition(); active {
		resp.Change = ChangeOf(rec)
	}
	return connect.NewResponse(resp), nil
}

// Join implements meridianv1connect.PlacementHandler.
func (s *Service) Join(ctx context.Context, req *connect.Request[meridianv1.JoinRequest]) (*connect.Response[meridianv1.JoinResponse], error) {
	if err := ValidateMember(req.Msg.GetMember()); err != nil {
		return nil, connectError(err)
	}
	return change(ctx, s, req, (meridianv1connect.PlacementClient).Join, func() (*meridianv1.JoinResponse, error) {
		idx, err := s.node.join(req.Msg.GetMember())
		if err != nil {
			return nil, err
		}
		return &meridianv1.JoinResponse{Index: idx}, nil
	})
}

// MemberStats implements meridianv1connect.PlacementHandler.
func (s *Service) MemberStats(context.Context, *connect.Request[meridianv1.MemberStatsRequest]) (*connect.Response[meridianv1.MemberStatsResponse], error) {
	return connect.NewResponse(s.node.Stats()), nil
}

// change runs local on the leader, or forwards the request to the leader
// (once: a forwarded change that reaches a follower fails with
// ErrNotLeader, so leadership moving cannot make it loop).
func change[Req, Resp any](ctx context.Context, s *Service, req *connect.Request[Req],
	call func(meridianv1connect.PlacementClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
	local func() (*Resp, error),
) (*connect.Response[Resp], error) {
	// Right after a restart, or during an election, a member knows no
	// leader yet: wait for one (bounded by leaderWait and ctx) rather than
	// fail a change that the caller could only retry.
	var id, addr string
	deadline := time.Now().Add(s.node.leaderWait())
	for {
		if s.node.isLeader() {
			resp, err := local()
			if err != nil {
				return nil, connectError(err)
			}
			return connect.NewResponse(resp), nil
		}
		if from := req.Header().Get(forwardedHeader); from != "" {
			return nil, connectError(fmt.Errorf("%w: change forwarded by %s reached follower %s", ErrNotLeader, from, s.node.id))
		}
		var ok bool
		if id, addr, ok = s.node.leaderAPI(); ok {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, connectError(fmt.Errorf("%w: this member (%s) knows no leader with an API address (leader %q) after %s", ErrNotLeader, s.node.id, id, s.node.leaderWait()))
		}
		select {
		case <-ctx.Done():
			return nil, connectError(fmt.Errorf("%w: waiting for a leader: %w", ErrNotLeader, ctx.Err()))
		case <-time.After(leaderPollInterval):
		}
	}
	resp, err := forward(ctx, s.node.peers, s.node.id, call, addr, req.Msg)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce // the leader's answer, code and message unchanged
		}
		return nil, connectError(fmt.Errorf("%w: forwarding to leader %s at %s: %v", ErrNotLeader, id, addr, err))
	}
	return connect.NewResponse(resp), nil
}

// connectError maps a placement error to a Connect error (see Service).
func connectError(err error) *connect.Error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, ErrConflict):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ErrBusy), errors.Is(err, ErrAborted):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, ErrHomeLost):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrStoreClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	default:
		return connect.NewError(connect.CodeInternal, err)
	}
}
