package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/node/console"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/region"
	"github.com/meridiandb/meridian/replication"
)

// Node is one running Meridian process: a region member and its API server.
type Node struct {
	cfg    Config
	logger *slog.Logger
	region *region.Node
	// placement is the node's placement group member; nil without one.
	placement *placement.Node
	// shipper and pulls replicate between regions; nil without placement.
	shipper *replication.Shipper
	pulls   *replication.Service
	// gossip and membership: the node's gossip member and the region
	// membership it drives; nil without Config.GossipAddr.
	gossip     *gossip
	membership *membership
	listener   net.Listener
	server     *http.Server
	served     chan struct{} // closed when Serve returns
	// metricsServer serves /metrics on Config.MetricsAddr; nil without.
	metricsServer   *http.Server
	metricsListener net.Listener
	metrics         *metrics

	// streams is cancelled when Close starts, so that long-lived
	// subscriptions end and their clients resume on another node, instead of
	// holding up the graceful shutdown of unary calls.
	streams      context.Context
	cancelStream context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// Start opens the node's region member and serves the API: the EventStore
// service (Connect, gRPC and gRPC-Web), gRPC health and server reflection,
// over HTTP/1.1 and h2c. The node runs until Close; ctx only bounds Start.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	def := DefaultConfig()
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = def.ShutdownTimeout
	}
	if cfg.DeadNodeTimeout == 0 {
		cfg.DeadNodeTimeout = def.DeadNodeTimeout
	}
	if cfg.StabilizationTime == 0 {
		cfg.StabilizationTime = def.StabilizationTime
	}
	if cfg.LastContactThreshold == 0 {
		cfg.LastContactThreshold = def.LastContactThreshold
	}
	if cfg.MaxTrailingLogs == 0 {
		cfg.MaxTrailingLogs = def.MaxTrailingLogs
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Network == nil {
		cfg.Network = region.TCP
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("component", "node", "region", cfg.Region, "node", cfg.NodeID)

	var ln net.Listener
	var err error
	if cfg.TLS != nil {
		ln, err = cfg.TLS.ListenAPI(cfg.Network, cfg.APIAddr)
		// Every other listener and dialer of the node: mutual TLS.
		cfg.Network = cfg.TLS.Network(cfg.Network)
	} else {
		ln, err = cfg.Network.Listen(cfg.APIAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("node: listen api on %s: %w", cfg.APIAddr, err)
	}
	apiAdvertise := cfg.APIAdvertise
	if apiAdvertise == "" {
		apiAdvertise = ln.Addr().String()
	}
	var metricsLn net.Listener
	started := false // for the deferred cleanups of a failed start
	if cfg.MetricsAddr != "" {
		if cfg.TLS != nil {
			metricsLn, err = cfg.TLS.ListenAPI(region.TCP, cfg.MetricsAddr)
		} else {
			metricsLn, err = region.TCP.Listen(cfg.MetricsAddr)
		}
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("node: listen metrics on %s: %w", cfg.MetricsAddr, err)
		}
		defer func() {
			if !started {
				_ = metricsLn.Close()
			}
		}()
	}

	var pn *placement.Node
	if cfg.PlacementRaftAddr != "" {
		pc := placement.DefaultConfig()
		pc.Region = cfg.Region
		pc.NodeID = cfg.NodeID
		pc.DataDir = filepath.Join(cfg.DataDir, "placement")
		pc.RaftAddr = cfg.PlacementRaftAddr
		pc.RaftAdvertise = cfg.PlacementRaftAdvertise
		pc.APIAdvertise = apiAdvertise
		pc.Bootstrap = cfg.PlacementBootstrap
		pc.Seeds = cfg.Join
		if cfg.VotersPerRegion != 0 {
			pc.VotersPerRegion = cfg.VotersPerRegion
		}
		pc.Network = cfg.Network
		pc.Logger = cfg.Logger
		if cfg.PlacementConfig != nil {
			cfg.PlacementConfig(&pc)
		}
		if pn, err = placement.Open(pc); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("node: open placement member: %w", err)
		}
	}

	rc := region.DefaultConfig()
	rc.Region = cfg.Region
	rc.NodeID = cfg.NodeID
	rc.DataDir = cfg.DataDir
	rc.RaftAddr = cfg.RaftAddr
	rc.RaftAdvertise = cfg.RaftAdvertise
	rc.APIAdvertise = apiAdvertise
	rc.Peers = cfg.Peers
	rc.Bootstrap = cfg.Bootstrap
	rc.Network = cfg.Network
	if cfg.StateCompression != "" {
		rc.StateCompression = cfg.StateCompression
	}
	rc.Logger = cfg.Logger // region adds its own component, region and node attributes
	if pn != nil {
		rc.Ownership = ownership{p: pn, svc: placement.NewService(pn)}
	}
	var tracing *otelconnect.Interceptor
	if cfg.TracerProvider != nil {
		if tracing, err = otelconnect.NewInterceptor(
			otelconnect.WithTracerProvider(cfg.TracerProvider),
			otelconnect.WithPropagator(propagation.TraceContext{}),
			otelconnect.WithoutMetrics(), // /metrics has the API's
			// Forwarded calls carry the forwarding node's span: continue
			// it, so that an append is one trace across regions.
			otelconnect.WithTrustRemote(),
		); err != nil {
			_ = ln.Close()
			if pn != nil {
				_ = pn.Close()
			}
			return nil, fmt.Errorf("node: tracing: %w", err)
		}
		rc.Tracer = cfg.TracerProvider.Tracer(tracerName)
		rc.ClientOptions = append(rc.ClientOptions, connect.WithInterceptors(tracing))
	}
	if pn != nil {
		rc.Replicas = newReplicas(cfg.Region, pn, cfg.Network, rc.ClientOptions)
	}
	if cfg.RegionConfig != nil {
		cfg.RegionConfig(&rc)
	}
	var gossipRef atomic.Pointer[gossip]
	if cfg.GossipAddr != "" {
		rc.Directory = func(id string) (string, bool) {
			if g := gossipRef.Load(); g != nil {
				return g.apiAddr(id)
			}
			return "", false
		}
	}
	rn, err := region.Open(rc)
	if err != nil {
		_ = ln.Close()
		if pn != nil {
			_ = pn.Close()
		}
		return nil, fmt.Errorf("node: open region member: %w", err)
	}

	n := &Node{cfg: cfg, logger: logger, region: rn, placement: pn, listener: ln, served: make(chan struct{})}
	if pn != nil {
		if err := n.startReplication(); err != nil {
			_ = rn.Close()
			_ = pn.Close()
			_ = ln.Close()
			return nil, err
		}
	}
	if cfg.GossipAddr != "" {
		if err := n.startMembership(apiAdvertise, &gossipRef); err != nil {
			n.closeReplication()
			_ = rn.Close()
			if pn != nil {
				_ = pn.Close()
			}
			_ = ln.Close()
			return nil, err
		}
	}
	n.streams, n.cancelStream = context.WithCancel(context.Background())

	limits := cfg.HTTPLimits.withDefaults()
	handlerOpts := []connect.HandlerOption{
		connect.WithReadMaxBytes(limits.RequestBytesMax),
		connect.WithCompressMinBytes(compressMinBytes),
	}
	if metricsLn != nil {
		m, err := newMetrics(n)
		if err != nil {
			// Only a programming error (a metric registered twice) gets here.
			panic(fmt.Sprintf("node: metrics: %v", err))
		}
		n.metrics, n.metricsListener = m, metricsLn
		// Outermost: refused calls are counted too.
		handlerOpts = append(handlerOpts, connect.WithInterceptors(m.interceptor()))
	}
	if tracing != nil {
		handlerOpts = append(handlerOpts, connect.WithInterceptors(tracing))
	}
	var authorizer *auth.Authorizer
	if cfg.Tokens != nil {
		authorizer = auth.NewAuthorizer(cfg.Tokens, func(cs *tls.ConnectionState) (string, bool) {
			id, ok := cfg.TLS.PeerNode(cs)
			return id.Region + "/" + id.Node, ok
		})
		handlerOpts = append(handlerOpts, connect.WithInterceptors(authorizer.Interceptor()))
	}
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewEventStoreHandler(region.NewService(rn), handlerOpts...))
	mux.Handle(meridianv1connect.NewConsumerGroupsHandler(region.NewGroupsService(rn), handlerOpts...))
	mux.Handle(grpchealth.NewHandler(&healthChecker{region: rn}))
	services := []string{meridianv1connect.EventStoreName, meridianv1connect.ConsumerGroupsName}
	if pn != nil {
		mux.Handle(meridianv1connect.NewPlacementHandler(placement.NewService(pn), handlerOpts...))
		mux.Handle(meridianv1connect.NewReplicationHandler(n.pulls, handlerOpts...))
		services = append(services, meridianv1connect.PlacementName, meridianv1connect.ReplicationName)
	}
	if n.membership != nil {
		mux.Handle(meridianv1connect.NewMembershipHandler(membershipService{n.membership}, handlerOpts...))
		services = append(services, meridianv1connect.MembershipName)
	}
	// Health and reflection are listed too, so that grpcurl and buf curl can
	// call them without local .proto files.
	if !cfg.DisableReflection {
		reflector := grpcreflect.NewStaticReflector(append(services,
			grpchealth.HealthV1ServiceName, grpcreflect.ReflectV1ServiceName)...)
		mux.Handle(grpcreflect.NewHandlerV1(reflector))
		mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	}
	// The operator console: static files, open like health; its calls are
	// the API's, with the viewer's token.
	mux.Handle(console.Path, console.Handler())
	var handler http.Handler = mux
	if authorizer != nil {
		// Health and reflection have no interceptor: they stay open.
		handler = authorizer.Authenticate(mux)
	}
	if pn != nil {
		// The console served by one node calls the others' APIs.
		handler = console.AllowDeploymentOrigins(handler, func() []string {
			var out []string
			for _, r := range pn.FSM().Regions() {
				out = append(out, pn.Endpoints(r)...)
			}
			return out
		})
	}

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true) // over TLS, negotiated by ALPN
	n.server = &http.Server{
		Handler:           n.endStreamsOnClose(boundUnary(handler, limits)),
		Protocols:         protocols,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.HeaderBytesMax,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: limits.StreamsPerConnMax,
			SendPingTimeout:      limits.PingInterval,
			PingTimeout:          limits.PingTimeout,
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(n.served)
		if err := n.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("api server stopped", "err", err)
		}
	}()
	if n.metrics != nil {
		n.serveMetrics(logger)
	}
	started = true
	logger.Info("node started", "api", ln.Addr().String(), "api_advertise", apiAdvertise, "raft", cfg.RaftAddr, "tls", cfg.TLS != nil, "tokens", cfg.Tokens != nil)
	return n, nil
}

// tracerName names the tracer of the region's spans.
const tracerName = "github.com/meridiandb/meridian"

// longLivedProcedures are the streaming calls that never end on their own.
var longLivedProcedures = map[string]bool{
	"/grpc.health.v1.Health/Watch":                                   true,
	meridianv1connect.EventStoreSubscribeProcedure:                   true,
	meridianv1connect.ReplicationPullProcedure:                       true,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
}

// boundUnary gives every call but the long-lived streams a read deadline
// for its request body and a write deadline for its response
// (HTTPLimits), and clears them when the handler returns, so that a
// keep-alive connection's next request starts unbounded by this one.
func boundUnary(next http.Handler, l HTTPLimits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if longLivedProcedures[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(l.UnaryReadTimeout))
		_ = rc.SetWriteDeadline(now.Add(l.UnaryWriteTimeout))
		body := &bodyReadDeadline{ReadCloser: r.Body}
		r.Body = body
		if r.ProtoMajor == 1 {
			w = &closeAfterFailedBody{ResponseWriter: w, body: body}
		}
		defer func() {
			if body.failed {
				// The body never came: the server must not wait for the
				// rest of it before closing the connection.
				_ = rc.SetReadDeadline(time.Now())
			} else {
				_ = rc.SetReadDeadline(time.Time{})
			}
			_ = rc.SetWriteDeadline(time.Time{})
		}()
		next.ServeHTTP(w, r)
	})
}

// closeAfterFailedBody answers "Connection: close" when the request body
// failed (its deadline passed): the connection holds the rest of a body
// nobody will read, so it cannot serve another request.
type closeAfterFailedBody struct {
	http.ResponseWriter
	body        *bodyReadDeadline
	wroteHeader bool
}

func (c *closeAfterFailedBody) WriteHeader(code int) {
	if !c.wroteHeader {
		c.wroteHeader = true
		if c.body.failed {
			c.Header().Set("Connection", "close")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *closeAfterFailedBody) Write(p []byte) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the underlying writer.
func (c *closeAfterFailedBody) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Flush implements http.Flusher.
func (c *closeAfterFailedBody) Flush() {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// bodyReadDeadline notes whether reading the body failed (its deadline
// passed, the client went away).
type bodyReadDeadline struct {
	io.ReadCloser
	failed bool
}

func (b *bodyReadDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.failed = true
	}
	return n, err
}

// endStreamsOnClose gives Subscribe (and reflection) calls a context that also ends when Close
// starts: http.Server.Shutdown waits for handlers, and a subscription never
// returns on its own.
func (n *Node) endStreamsOnClose(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !longLivedProcedures[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(n.streams, cancel)
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Addr returns the address the API listener is bound to (host:port).
func (n *Node) Addr() string { return n.listener.Addr().String() }

// URL returns the API's base URL, for clients: "https://" + Addr() with
// TLS, else "http://" + Addr().
func (n *Node) URL() string {
	if n.cfg.TLS != nil {
		return "https://" + n.Addr()
	}
	return "http://" + n.Addr()
}

// closeReplication stops the shipper and the Pull service, if running.
func (n *Node) closeReplication() {
	if n.shipper == nil {
		return
	}
	if err := n.shipper.Close(); err != nil {
		n.logger.Warn("replication shipper close", "err", err)
	}
	n.pulls.Close()
}

// startMembership joins the deployment's gossip pool and starts driving the
// region's Raft membership from it (ADR 0007).
func (n *Node) startMembership(apiAdvertise string, ref *atomic.Pointer[gossip]) error {
	tags := map[string]string{
		tagRegion: n.cfg.Region, tagNode: n.cfg.NodeID, tagAPI: apiAdvertise, tagRaft: n.region.RaftAddr(),
	}
	if n.placement != nil {
		tags[tagPlacement] = n.placement.RaftAddr()
	}
	g, err := startGossip(n.cfg, tags, n.cfg.Logger)
	if err != nil {
		return err
	}
	ref.Store(g)
	n.gossip = g
	n.membership = newMembership(n.cfg, g, n.region, n.logger)
	seeds := append([]string(nil), n.cfg.Join...)
	for _, p := range n.cfg.Peers {
		if p.ID != n.cfg.NodeID && p.APIAddr != "" {
			seeds = append(seeds, p.APIAddr)
		}
	}
	n.membership.start(seeds)
	return nil
}

// Left is closed once a Leave call has taken the node out of the
// deployment (the process should then stop); nil without gossip.
func (n *Node) Left() <-chan struct{} {
	if n.membership == nil {
		return nil
	}
	return n.membership.left
}

// Region returns the node's region member, for tests and status.
func (n *Node) Region() *region.Node { return n.region }

// Placement returns the node's placement group member; nil without one.
func (n *Node) Placement() *placement.Node { return n.placement }

// startReplication starts the Pull service and the shipper over the region
// member, with the placement table as the directory of regions.
func (n *Node) startReplication() error {
	rcfg := replication.DefaultConfig()
	rcfg.Region = n.cfg.Region
	rcfg.Network = n.cfg.Network
	rcfg.Logger = n.cfg.Logger
	if n.cfg.ReplicationConfig != nil {
		n.cfg.ReplicationConfig(&rcfg)
	}
	pulls, err := replication.NewService(rcfg, n.region)
	if err != nil {
		return fmt.Errorf("node: replication service: %w", err)
	}
	shipper, err := replication.NewShipper(rcfg, replication.Deps{
		Log: n.region, Applier: n.region, Leadership: n.region, Directory: directory{n.placement},
	})
	if err != nil {
		return fmt.Errorf("node: replication shipper: %w", err)
	}
	// Regions that pull from this node learn how stale its copy of each
	// origin's log is: of its own region's, from its Raft contact; of the
	// others', from the shipper (the region leader knows; followers send
	// none).
	own := n.cfg.Region
	pulls.SetOriginStaleness(func(origin string) (time.Duration, bool) {
		if origin == own {
			return n.region.LogStaleness()
		}
		return shipper.OriginStaleness(origin)
	})
	n.pulls, n.shipper = pulls, shipper
	n.region.SetLagReporter(shipper.Lag)
	return nil
}

// directory lists the regions (members of the placement table) and their
// endpoints, for the shipper.
type directory struct{ p *placement.Node }

func (d directory) Regions() []string { return d.p.FSM().Regions() }

func (d directory) Endpoints(r string) []string { return d.p.Endpoints(r) }

func (d directory) Changed() <-chan struct{} { return d.p.FSM().Changed() }

// ownership answers the region member's routing questions from the local
// copy of the placement table, and carries its reports on placement
// changes to the placement group.
type ownership struct {
	p   *placement.Node
	svc *placement.Service
}

func (o ownership) Home(ctx context.Context, entity string, minEpoch uint64) (region.Home, error) {
	if minEpoch > 0 {
		// Bounded: past it the local copy answers as it is, and a request
		// that keeps bouncing ends at region's hop limit.
		o.p.WaitIndex(ctx, minEpoch)
	}
	// The index is read before the lookup, so the lookup saw at least it.
	idx := o.p.FSM().AppliedIndex()
	p := o.p.Lookup(entity)
	h := region.Home{Region: p.Home, Epoch: p.Epoch, Index: idx, ActiveActive: p.Mode == meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE, Merge: p.Merge}
	if m := p.Moving; m != nil {
		h.Moving = &region.Moving{Transition: m.Transition, From: m.From, To: m.To, Reason: m.Reason}
	}
	return h, nil
}

func (o ownership) Endpoints(r string) []string { return o.p.Endpoints(r) }

func (o ownership) Index() uint64 { return o.p.FSM().AppliedIndex() }

func (o ownership) WaitIndex(ctx context.Context, idx uint64) bool { return o.p.WaitIndex(ctx, idx) }

func (o ownership) Changed() <-chan struct{} { return o.p.FSM().Changed() }

func (o ownership) Failovers(r string) []*meridianv1.FailoverTail { return o.p.FSM().Failovers(r) }

func (o ownership) Transition() (region.Transition, bool) {
	rec, active := o.p.FSM().Transition()
	if !active {
		return region.Transition{}, false
	}
	tr := region.Transition{Index: rec.GetIndex(), Fencers: rec.GetFencers()}
	for _, m := range rec.GetMoves() {
		tr.Moves = append(tr.Moves, region.TransitionMove{
			From: m.GetFrom(), To: m.GetTo(), Frozen: m.GetFrozen(), FrozenSeq: m.GetFrozenSeq(), DrainedSeq: m.GetDrainedSeq(),
			Lost: m.GetLost(), Fenced: m.GetFenced(),
		})
	}
	return tr, true
}

func (o ownership) AckTransition(ctx context.Context, ack region.TransitionAck) error {
	kind := map[region.TransitionAckKind]meridianv1.TransitionAckKind{
		region.AckFrozen:  meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_FROZEN,
		region.AckDrained: meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_DRAINED,
		region.AckFenced:  meridianv1.TransitionAckKind_TRANSITION_ACK_KIND_FENCED,
	}[ack.Kind]
	_, err := o.svc.AckTransition(ctx, connect.NewRequest(&meridianv1.AckTransitionRequest{
		Transition: ack.Transition, Kind: kind, Region: ack.Region, Origin: ack.Origin, Seq: ack.Seq,
	}))
	return err
}

func (o ownership) RenewLease(ctx context.Context, r region.LeaseRenewal) (region.LeaseGrant, error) {
	l := &meridianv1.RegionLease{
		Region: r.Region, Holder: r.Holder, RenewedAt: timestamppb.New(r.SentAt), Duration: durationpb.New(r.Duration),
		Applied: r.Applied, TailEvents: r.TailEvents, Fenced: r.Fenced, ClockOffset: durationpb.New(r.ClockOffset),
	}
	if !r.TailOldest.IsZero() {
		l.TailOldest = timestamppb.New(r.TailOldest)
	}
	resp, err := o.svc.RenewLease(ctx, connect.NewRequest(&meridianv1.RenewLeaseRequest{Lease: l}))
	if err != nil {
		return region.LeaseGrant{}, err
	}
	return region.LeaseGrant{Index: resp.Msg.GetIndex(), Required: resp.Msg.GetRequiredIndex(), LeaderTime: resp.Msg.GetLeaderTime().AsTime()}, nil
}

func (o ownership) LeaseInfo(r string) string { return o.p.LeaseInfo(r) }

func (o ownership) Regions() []string { return o.p.FSM().Regions() }

func (o ownership) Applied() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for r, l := range o.p.FSM().Leases() {
		out[r] = l.GetApplied()
	}
	return out
}

// Close stops the node gracefully: subscriptions end, in-flight calls get up
// to Config.ShutdownTimeout to finish, then the region member closes. Close
// is idempotent; later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.logger.Info("node stopping")
		if n.placement != nil {
			// Every region renews its home lease through the placement
			// leader's API, which stops below: hand leadership over first,
			// or every region's lease would lapse while this node drains.
			n.placement.HandOff()
		}
		n.cancelStream()
		// Stop pulling first: its proposals go through the region member.
		n.closeReplication()
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		if err := n.server.Shutdown(ctx); err != nil {
			n.logger.Warn("api shutdown timed out; closing connections", "err", err)
			errs = append(errs, n.server.Close())
		}
		<-n.served
		if n.metricsServer != nil {
			_ = n.metricsServer.Close()
		}
		if n.membership != nil {
			n.membership.close()
			if err := n.gossip.close(); err != nil {
				errs = append(errs, fmt.Errorf("node: close gossip: %w", err))
			}
		}
		if err := n.region.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close region member: %w", err))
		}
		if n.placement != nil {
			if err := n.placement.Close(); err != nil {
				errs = append(errs, fmt.Errorf("node: close placement member: %w", err))
			}
		}
		n.closeErr = errors.Join(errs...)
		n.logger.Info("node stopped")
	})
	return n.closeErr
}

// healthChecker answers gRPC health checks: SERVING while the node's region
// knows a leader (writes can commit), NOT_SERVING otherwise.
type healthChecker struct{ region *region.Node }

func (h *healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && req.Service != meridianv1connect.EventStoreName {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node: unknown service %q", req.Service))
	}
	if h.region.Status().GetLeader() == "" {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
