package region

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Ownership tells a region node which region orders an entity's writes. It
// is the region's view of the placement table: node/ wires it to the local
// copy of the placement group's table (region never imports placement). A
// nil Ownership in Config means every entity is homed in this region (a
// deployment of one region).
type Ownership interface {
	// Home returns the entity's home by the local placement copy. When
	// minEpoch is not 0, a node that routed the request here saw that epoch:
	// Home first waits, bounded by ctx, until the local copy has applied at
	// least that placement index (epochs are placement log indexes), so a
	// stale copy does not bounce the request back.
	Home(ctx context.Context, entity string, minEpoch uint64) (Home, error)
	// Endpoints returns the API addresses (host:port) of a region's nodes,
	// in the order to try them.
	Endpoints(region string) []string
	// Index returns the placement log index the local copy has applied.
	Index() uint64
	// WaitIndex waits, bounded by ctx and the copy's own bound, until the
	// local copy has applied idx; it reports whether it has.
	WaitIndex(ctx context.Context, idx uint64) bool
	// Changed returns a channel closed at the local copy's next apply.
	Changed() <-chan struct{}
	// Transition returns the placement change in progress that moves
	// homes, as the local copy has it; false when there is none.
	Transition() (Transition, bool)
	// Failovers returns region's last completed failovers as the local
	// copy has them, oldest first (read-only records).
	Failovers(region string) []*meridianv1.FailoverTail
	// AckTransition reports this region's part of a placement change to
	// the placement group (through its leader).
	AckTransition(ctx context.Context, ack TransitionAck) error
	// RenewLease renews this region's home lease through the placement
	// group (lease.go).
	RenewLease(ctx context.Context, r LeaseRenewal) (LeaseGrant, error)
	// Applied returns every region's applied vector as its last lease
	// renewal reported it, by region.
	Applied() map[string]map[string]uint64
	// LeaseInfo describes a region's home lease as the local copy sees it,
	// for errors ("" when unknown).
	LeaseInfo(region string) string
	// Regions returns the deployment's regions (those with a member),
	// sorted.
	Regions() []string
}

// Transition is a placement change in progress that moves homes (ADR
// 0004): each old home fences itself and reports its own origin sequence
// at that point, each new home reports once it has applied the old home's
// log up to there, then the change takes effect (the flip).
type Transition struct {
	// Index is the placement index at which the change was staged: the
	// floor an old home's fence raises its placement floor to.
	Index uint64
	Moves []TransitionMove
	// Fencers are, in a failover, the surviving regions that fence a lost
	// old home's log and report how much of it they hold.
	Fencers []string
}

// TransitionMove is one (old home, new home) pair of a Transition.
type TransitionMove struct {
	From, To string
	// Frozen is set once From has fenced itself; FrozenSeq is From's own
	// origin sequence at the fence.
	Frozen    bool
	FrozenSeq uint64
	// DrainedSeq is how far To reported having applied From's log.
	DrainedSeq uint64
	// Lost is set in a failover: From does not freeze; every fencer
	// reports (Fenced, by region) how much of From's log it holds, and the
	// longest of those is the cut To drains to.
	Lost   bool
	Fenced map[string]uint64
}

// Cut returns the failover's cut of a lost move: the longest prefix of
// From's log any fencer holds, once every fencer reported.
func (tr Transition) Cut(m TransitionMove) (uint64, bool) {
	var cut uint64
	for _, r := range tr.Fencers {
		s, ok := m.Fenced[r]
		if !ok {
			return 0, false
		}
		cut = max(cut, s)
	}
	return cut, true
}

// TransitionAckKind says what a TransitionAck reports.
type TransitionAckKind int

const (
	// AckFrozen: the region (an old home) fenced itself at Seq.
	AckFrozen TransitionAckKind = iota + 1
	// AckDrained: the region (a new home) applied Origin's log up to Seq.
	AckDrained
	// AckFenced: the region (a failover's survivor) holds Origin's log back
	// beyond Seq, what it has of it.
	AckFenced
)

// TransitionAck is a region's report on a Transition.
type TransitionAck struct {
	Transition uint64
	Kind       TransitionAckKind
	Region     string
	Origin     string
	Seq        uint64
}

// Home is an entity's placement as Ownership reports it.
type Home struct {
	// Region is the home region; empty when the table has none yet.
	Region string
	// Epoch is the placement index at which the entity's mapping last
	// changed; events appended under it carry it.
	Epoch uint64
	// ActiveActive is true for entities every region orders writes to
	// (ADR 0005); Merge are then their rule's merge declarations
	// (read-only).
	ActiveActive bool
	Merge        []*meridianv1.MergeRule
	// Index is the placement index of the local copy, read before the
	// lookup: appends carry it, and apply refuses them below the region's
	// placement floor.
	Index uint64
	// Moving is set while a placement change moves the entity's home:
	// Region is still the old home, which stops ordering its writes.
	Moving *Moving
}

// Moving describes a change in progress that moves an entity's home.
type Moving struct {
	Transition uint64
	From, To   string
	Reason     string
}

// Routing limits and headers of requests routed between regions.
const (
	// regionHopsMax bounds how many times one request is routed to another
	// region. One hop is the normal case; a second happens when the first
	// target's placement copy was newer than the sender's. Past the bound
	// the placement copies disagree for longer than a request should wait.
	regionHopsMax = 3
	// regionHopsHeader counts the region hops a request has taken.
	regionHopsHeader = "Meridian-Region-Hops"
	// placementEpochHeader carries the epoch the previous hop routed by.
	placementEpochHeader = "Meridian-Placement-Epoch"
	// routedFromHeader names the region that routed the request here.
	routedFromHeader = "Meridian-Routed-From"
)

// Error kinds of routing, carried in errorKindHeader.
const (
	kindNotHome      = "not-home"
	kindRoutingLoop  = "routing-loop"
	kindNoPlacement  = "no-placement"
	kindActiveActive = "active-active"
	kindMoving       = "moving"
	kindStale        = "stale-placement"
)

// Routing errors.
var (
	// ErrNotHome: the request asked for ROUTING_REDIRECT (or cannot be
	// forwarded, as a subscription) and this region is not the entity's
	// home. Returned wrapped in a *NotHomeError naming the home.
	ErrNotHome = errors.New("region: not the entity's home region")
	// ErrRoutingLoop: the request was routed between regions regionHopsMax
	// times without reaching a region that agrees it is the home: placement
	// copies disagree. Not served; retry later.
	ErrRoutingLoop = errors.New("region: routing between regions did not settle")
	// ErrNoPlacement: the placement table has no home for the entity yet
	// (no region has joined the placement group). Not served; retry later.
	ErrNoPlacement = errors.New("region: no placement for the entity yet")
	// ErrActiveActive: a request that needs one region to hold an entity's
	// whole history (a STRONG read) for an active-active entity, which
	// every region writes (FailedPrecondition).
	ErrActiveActive = errors.New("region: the entity is active-active: no region holds its whole history")
	// ErrMoving: a placement change is moving the entity's home and did not
	// complete within MoveWaitMax (or the caller's deadline). Not served;
	// retry (Unavailable).
	ErrMoving = errors.New("region: the entity's home is moving")
)

// NotHomeError says where an entity's home is, for a client to go there.
type NotHomeError struct {
	Entity    string
	Home      string
	Epoch     uint64
	Endpoints []string
}

func (e *NotHomeError) Error() string {
	return fmt.Sprintf("%v: entity %q is homed in region %q (epoch %d; endpoints %s)",
		ErrNotHome, e.Entity, e.Home, e.Epoch, strings.Join(e.Endpoints, ","))
}

// Unwrap makes errors.Is(err, ErrNotHome) true.
func (e *NotHomeError) Unwrap() error { return ErrNotHome }

// route is what a request carries between regions.
type route struct {
	hops  int
	epoch uint64
	from  string
}

type routeKey struct{}

// withRoute records the routing headers of an incoming request in ctx.
func withRoute(ctx context.Context, h interface{ Get(string) string }) context.Context {
	hops, _ := strconv.Atoi(h.Get(regionHopsHeader))
	epoch, _ := strconv.ParseUint(h.Get(placementEpochHeader), 10, 64)
	if hops <= 0 && epoch == 0 {
		return ctx
	}
	return context.WithValue(ctx, routeKey{}, route{hops: max(hops, 0), epoch: epoch, from: h.Get(routedFromHeader)})
}

func routeOf(ctx context.Context) route {
	r, _ := ctx.Value(routeKey{}).(route)
	return r
}

// setRoute writes r's headers on an outgoing request.
func setRoute(h interface{ Set(string, string) }, r route) {
	if r.hops > 0 {
		h.Set(regionHopsHeader, strconv.Itoa(r.hops))
	}
	if r.epoch > 0 {
		h.Set(placementEpochHeader, strconv.FormatUint(r.epoch, 10))
	}
	if r.from != "" {
		h.Set(routedFromHeader, r.from)
	}
}

// home looks up entity's home; ok is true when this region is the home
// (always, without an Ownership), and for an active-active entity, which
// every region orders itself (h.ActiveActive). While a placement change
// moves the entity it waits, at most MoveWaitMax, for the change to
// complete. It fails with ErrNoPlacement, ErrMoving or the lookup's error.
func (n *Node) home(ctx context.Context, entity string) (Home, bool, error) {
	if n.cfg.Ownership == nil {
		return Home{Region: n.cfg.Region}, true, nil
	}
	h, err := n.cfg.Ownership.Home(ctx, entity, routeOf(ctx).epoch)
	if err != nil {
		return Home{}, false, err
	}
	if h.Moving != nil {
		if h, err = n.waitSettled(ctx, entity, h); err != nil {
			return h, false, err
		}
	}
	switch {
	case h.ActiveActive:
		return h, true, nil
	case h.Region == "":
		return h, false, fmt.Errorf("%w: entity %q", ErrNoPlacement, entity)
	}
	return h, h.Region == n.cfg.Region, nil
}

// toHome sends a request for entity to its home region h: the first of the
// region's endpoints that answers serves it (a node there forwards to its
// leader). call sends one attempt to one address. Only a failure to connect
// moves on to the next endpoint: anything else is the home's answer.
func (n *Node) toHome(ctx context.Context, entity string, h Home, call func(ctx context.Context, addr string, r route) error) error {
	r := routeOf(ctx)
	if r.hops >= regionHopsMax {
		return fmt.Errorf("%w: entity %q: %d hops (last from region %q, now at %q, whose copy says %q at epoch %d)",
			ErrRoutingLoop, entity, r.hops, r.from, n.cfg.Region, h.Region, h.Epoch)
	}
	next := route{hops: r.hops + 1, epoch: h.Epoch, from: n.cfg.Region}
	endpoints := n.cfg.Ownership.Endpoints(h.Region)
	if len(endpoints) == 0 {
		return fmt.Errorf("%w: home region %q of entity %q has no known endpoints", ErrNotLeader, h.Region, entity)
	}
	var errs []error
	for _, addr := range endpoints {
		err := call(ctx, addr, next)
		if err == nil || !isDialError(err) {
			return err
		}
		errs = append(errs, err)
	}
	lease := ""
	if info := n.cfg.Ownership.LeaseInfo(h.Region); info != "" {
		lease = " (" + info + ")"
	}
	return fmt.Errorf("%w: no node of home region %q of entity %q answers%s; writes wait for it to return, or for a failover if its rule allows one: %w",
		ErrNotLeader, h.Region, entity, lease, errors.Join(errs...))
}

// notHome builds the redirect answer for entity.
func (n *Node) notHome(entity string, h Home) error {
	return &NotHomeError{Entity: entity, Home: h.Region, Epoch: h.Epoch, Endpoints: n.cfg.Ownership.Endpoints(h.Region)}
}

// setNotHomeDetail adds the redirect detail to a Connect error.
func setNotHomeDetail(ce *connect.Error, e *NotHomeError) {
	if d, err := connect.NewErrorDetail(&meridianv1.HomeRedirect{
		Entity: e.Entity, HomeRegion: e.Home, Epoch: e.Epoch, Endpoints: e.Endpoints,
	}); err == nil {
		ce.AddDetail(d)
	}
}

// waitSettled waits, at most MoveWaitMax and ctx, until no placement change
// moves entity, and returns its home then.
func (n *Node) waitSettled(ctx context.Context, entity string, h Home) (Home, error) {
	own := n.cfg.Ownership
	wctx, cancel := context.WithTimeout(ctx, n.cfg.MoveWaitMax)
	defer cancel()
	for h.Moving != nil {
		ch := own.Changed()
		var err error
		if h, err = own.Home(ctx, entity, 0); err != nil {
			return h, err
		}
		if h.Moving == nil {
			break
		}
		select {
		case <-ch:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return h, ctx.Err()
			}
			return h, fmt.Errorf("%w: entity %q is moving from %s to %s (%s, placement change %d) and the move did not complete within %s; retry",
				ErrMoving, entity, h.Moving.From, h.Moving.To, h.Moving.Reason, h.Moving.Transition, n.cfg.MoveWaitMax)
		case <-n.closing:
			return h, ErrNodeClosed
		}
	}
	return h, nil
}
