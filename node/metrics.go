package node

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// metricsNamespace prefixes every metric name.
const metricsNamespace = "meridian"

// rpcDurationBuckets span an append's commit on loopback (100 µs) to a
// MULTI_REGION wait over a slow WAN (10 s), in seconds.
var rpcDurationBuckets = prometheus.ExponentialBucketsRange(0.0001, 10, 16)

// metrics is a node's Prometheus registry: the API's calls (an
// interceptor), the node's state read at scrape time (statusCollector),
// hashicorp/raft's and serf's go-metrics (bridged), and the Go runtime.
// docs/OPERATIONS.md lists every metric with the alert to set on it.
type metrics struct {
	reg      *prometheus.Registry
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(n *Node) (*metrics, error) {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "api_requests_total",
			Help: "API calls served, by procedure, result code (ok or the Connect code) and consistency or durability level.",
		}, []string{"procedure", "code", "level"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "api_request_duration_seconds",
			Help:    "Latency of unary API calls, by procedure and level (streams are not timed).",
			Buckets: rpcDurationBuckets,
		}, []string{"procedure", "level"}),
	}
	sink, err := raftMetricsSink()
	if err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{
		m.calls, m.duration, sink, &statusCollector{n: n},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	sinkOnce sync.Once
	sink     *gmprom.PrometheusSink
	sinkErr  error
)

// raftMetricsSink returns the process's bridge from hashicorp/go-metrics,
// which hashicorp/raft and serf emit to (raft commit and apply times,
// leader elections, ...), to Prometheus: one global per process, so a
// process running several nodes (meridian dev, tests) reports their sum.
// Names keep go-metrics' keys under meridian_ (meridian_raft_commitTime).
func raftMetricsSink() (*gmprom.PrometheusSink, error) {
	sinkOnce.Do(func() {
		// Its own registerer: each node's registry registers the sink too.
		sink, sinkErr = gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: prometheus.NewRegistry()})
		if sinkErr != nil {
			return
		}
		cfg := gometrics.DefaultConfig(metricsNamespace)
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false // the Go collector has them
		_, sinkErr = gometrics.NewGlobal(cfg, sink)
	})
	return sink, sinkErr
}

// metricsPath is where the metrics listener serves the registry.
const metricsPath = "/metrics"

// serveMetrics serves /metrics on the metrics listener until Close.
func (n *Node) serveMetrics(logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle(metricsPath, promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: metricsScrapesMax,
		Timeout:             metricsScrapeTimeout,
	}))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	n.metricsServer = &http.Server{
		Handler:           mux,
		Protocols:         protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       metricsScrapeTimeout,
		WriteTimeout:      metricsScrapeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	srv, ln := n.metricsServer, n.metricsListener
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	logger.Info("metrics served", "addr", ln.Addr().String()+metricsPath)
}

// MetricsAddr returns the address /metrics is served on, or "" without
// Config.MetricsAddr.
func (n *Node) MetricsAddr() string {
	if n.metricsListener == nil {
		return ""
	}
	return n.metricsListener.Addr().String()
}

// Bounds of the metrics endpoint.
const (
	// metricsScrapesMax: scrapes served at once; more get 503.
	metricsScrapesMax = 4
	// metricsScrapeTimeout bounds one scrape.
	metricsScrapeTimeout = 10 * time.Second
)

// Label values of levels, made once: levelOf runs on every call.
var (
	consistencyLevels = levelNames(meridianv1.Consistency_name, "CONSISTENCY_")
	durabilityLevels  = levelNames(meridianv1.Durability_name, "DURABILITY_")
)

func levelNames(names map[int32]string, prefix string) map[int32]string {
	out := make(map[int32]string, len(names))
	for v, n := range names {
		out[v] = strings.ToLower(strings.TrimPrefix(n, prefix))
	}
	return out
}

// levelOf names the consistency of a read or the durability of an append
// (unspecified is the default: session, region).
func levelOf(msg any) string {
	switch r := msg.(type) {
	case interface {
		GetConsistency() meridianv1.Consistency
	}:
		c := r.GetConsistency()
		if c == meridianv1.Consistency_CONSISTENCY_UNSPECIFIED {
			c = meridianv1.Consistency_CONSISTENCY_SESSION
		}
		return consistencyLevels[int32(c)]
	case interface {
		GetDurability() meridianv1.Durability
	}:
		d := r.GetDurability()
		if d == meridianv1.Durability_DURABILITY_UNSPECIFIED {
			d = meridianv1.Durability_DURABILITY_REGION
		}
		return durabilityLevels[int32(d)]
	}
	return ""
}

func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// interceptor counts and times the API's calls.
func (m *metrics) interceptor() connect.Interceptor { return metricsInterceptor{m} }

type metricsInterceptor struct{ m *metrics }

func (i metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		proc, level := req.Spec().Procedure, levelOf(req.Any())
		i.m.calls.WithLabelValues(proc, codeOf(err), level).Inc()
		i.m.duration.WithLabelValues(proc, level).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

func (i metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		i.m.calls.WithLabelValues(conn.Spec().Procedure, codeOf(err), "").Inc()
		return err
	}
}

// statusCollector reads the node's state at scrape time.
type statusCollector struct{ n *Node }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

var (
	descApplied        = desc("region_applied_sequence", "The region's applied vector at this node: the last event of each origin's log applied here.", "origin")
	descLastPosition   = desc("region_last_position", "The last position of the region's apply log at this node.")
	descRaftApplied    = desc("raft_applied_index", "The last region Raft entry applied to this node's state machine.")
	descRaftLastIndex  = desc("raft_last_index", "The last entry of this node's copy of the region's Raft log.")
	descRaftTerm       = desc("raft_term", "The node's current region Raft term (a rise is an election).")
	descRaftLeader     = desc("raft_leader", "1 on the region's Raft leader, 0 elsewhere.")
	descRaftState      = desc("raft_state", "1 for the node's current region Raft state.", "state")
	descRaftContact    = desc("raft_last_contact_seconds", "How long ago a follower last heard from its region leader (0 on the leader).")
	descLagEvents      = desc("replication_lag_events", "Events of an origin known to exist but not yet applied in this region (on the node that leads replication).", "origin")
	descLagSeconds     = desc("replication_lag_seconds", "How old the oldest event of an origin not yet applied here is; 0 when caught up.", "origin")
	descStaleness      = desc("replication_staleness_seconds", "How old this region's view of an origin's log may be: time since its source last answered, plus the source's own staleness.", "origin")
	descKnown          = desc("replication_known_sequence", "The highest sequence of an origin's log offered by a source.", "origin")
	descSourceUp       = desc("replication_source_reachable", "1 while some region serves an origin's log to this region, 0 when none is reachable.", "origin")
	descStalled        = desc("replication_stalled", "1 while replication of an origin is stopped on an event no correct history produces (an operator must act).", "origin")
	descLease          = desc("home_lease_remaining_seconds", "How long the region's home lease still holds, on the region leader; writes are ordered only while it holds.")
	descLeaseFenced    = desc("home_lease_fenced", "1 on a region leader that does not use its lease (clock offset beyond the bound, renewals failing).")
	descSuperseded     = desc("failover_superseded_events", "Events a failover superseded in this region (appended again by the new home, marked recovered).")
	descLSM            = desc("badger_lsm_bytes", "Size of the region state's Badger LSM tree, as Badger last computed it.")
	descVlog           = desc("badger_vlog_bytes", "Size of the region state's Badger value log, as Badger last computed it.")
	descPlacementIndex = desc("placement_applied_index", "The last placement table entry this node applied (every placement change raises it).")
	descPlacementRegs  = desc("placement_regions", "Regions that have joined the placement group.")
	descBatchEntries   = desc("group_commit_entries_total", "Raft entries this node's group commit proposed while leading its region.")
	descBatchAppends   = desc("group_commit_appends_total", "Appends those entries carried: appends_total / entries_total is the batch size.")
	descTailEvents     = desc("region_unreplicated_tail_events", "A region's own events no other region had applied at its last lease renewal (what a failover would leave behind), from this node's copy of the placement table.", "region")
	descTailAge        = desc("region_unreplicated_tail_age_seconds", "How old the oldest event of a region's unreplicated tail is (0 without a tail).", "region")
	descRegionFenced   = desc("region_lease_fenced", "1 when a region's last lease renewal says its leader does not use its lease.", "region")
	descGossip         = desc("gossip_members", "Members of a gossip pool by status, as this node sees them.", "pool", "status")
)

// Describe sends nothing: the collector is unchecked, its series come
// and go with origins and states.
func (c *statusCollector) Describe(chan<- *prometheus.Desc) {}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	st := c.n.region.Status()
	for origin, seq := range st.GetApplied() {
		gauge(descApplied, float64(seq), origin)
	}
	gauge(descLastPosition, float64(st.GetLastPosition()))
	gauge(descRaftApplied, float64(st.GetAppliedIndex()))
	gauge(descRaftLastIndex, float64(st.GetRaftLastIndex()))
	gauge(descRaftTerm, float64(st.GetRaftTerm()))
	gauge(descRaftLeader, b(st.GetIsLeader()))
	gauge(descRaftState, 1, st.GetRaftState())
	if lc := st.GetRaftLastContact(); lc != nil {
		gauge(descRaftContact, lc.AsDuration().Seconds())
	}
	for _, l := range st.GetReplication() {
		gauge(descLagEvents, float64(l.GetLagEvents()), l.GetOrigin())
		gauge(descLagSeconds, l.GetLag().AsDuration().Seconds(), l.GetOrigin())
		gauge(descStaleness, l.GetStaleness().AsDuration().Seconds(), l.GetOrigin())
		gauge(descKnown, float64(l.GetKnown()), l.GetOrigin())
		gauge(descSourceUp, b(l.GetSource() != ""), l.GetOrigin())
		_, stalled := st.GetReplicationStalls()[l.GetOrigin()]
		gauge(descStalled, b(stalled), l.GetOrigin())
	}
	if st.GetIsLeader() {
		gauge(descLease, st.GetLeaseRemaining().AsDuration().Seconds())
		gauge(descLeaseFenced, b(st.GetLeaseFenced() != ""))
	}
	gauge(descSuperseded, float64(st.GetSuperseded()))
	entries, appends := c.n.region.BatchStats()
	ch <- prometheus.MustNewConstMetric(descBatchEntries, prometheus.CounterValue, float64(entries))
	ch <- prometheus.MustNewConstMetric(descBatchAppends, prometheus.CounterValue, float64(appends))
	if lsm, vlog, err := c.n.region.FSM().StoreSizes(); err == nil {
		gauge(descLSM, float64(lsm))
		gauge(descVlog, float64(vlog))
	}
	if p := c.n.placement; p != nil {
		gauge(descPlacementIndex, float64(p.FSM().AppliedIndex()))
		gauge(descPlacementRegs, float64(len(p.FSM().Regions())))
		now := time.Now()
		for r, l := range p.FSM().Leases() {
			gauge(descTailEvents, float64(l.GetTailEvents()), r)
			age := 0.0
			if l.GetTailEvents() > 0 && l.GetTailOldest() != nil {
				age = max(0, now.Sub(l.GetTailOldest().AsTime()).Seconds())
			}
			gauge(descTailAge, age, r)
			gauge(descRegionFenced, b(l.GetFenced() != ""), r)
		}
	}
	if g := c.n.gossip; g != nil {
		for pool, s := range map[string]*serf.Serf{"lan": g.lan, "wan": g.wan} {
			if s == nil {
				continue
			}
			counts := map[string]int{}
			for _, mem := range s.Members() {
				counts[mem.Status.String()]++
			}
			for status, k := range counts {
				gauge(descGossip, float64(k), pool, status)
			}
		}
	}
}
