package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/internal/nodetls"
	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/region"
	"github.com/meridiandb/meridian/replication"
)

// Bounds of `meridian dev`.
const (
	// devNodesMax bounds the nodes of one region.
	devNodesMax = 7
	// devRegionsMax bounds the regions: 7 x 7 nodes is already 147 ports.
	devRegionsMax = 7
	// devReadyTimeout bounds the wait for every region's leader, a complete
	// placement group and the example rules everywhere: a few seconds on a
	// laptop, more on a loaded machine.
	devReadyTimeout = 90 * time.Second
	// devPollInterval is how often the readiness checks look again.
	devPollInterval = 50 * time.Millisecond
)

// devDefaultRegions are the regions of `meridian dev` without --regions.
var devDefaultRegions = []string{"us-east", "eu-west", "ap-south"}

// devRegionName is what --regions accepts: names that are also valid in an
// entity prefix, so that every region can have its example rule.
var devRegionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// devPlacementConfig scales the placement group's timers down for one
// machine: the group forms (one voter per region) within a second or two
// instead of production's WAN-sized timers (2 s elections, 5 s
// stabilization). `meridian server` keeps placement's defaults.
//
// With --wan-latency every round trip between regions costs 2*wan, so the
// timers that wait for one grow by a few round trips: the group then stays
// as stable as it is at loopback speed.
func devPlacementConfig(wan time.Duration) func(c *placement.Config) {
	return func(c *placement.Config) {
		devPlacementTimers(c)
		rtt := 2 * wan
		c.HeartbeatTimeout += 4 * rtt
		c.ElectionTimeout += 4 * rtt
		c.LeaderLeaseTimeout += 2 * rtt
		c.CallTimeout += 4 * rtt
		c.LastContactThreshold += 4 * rtt
		// Autopilot gives a stats fetch half the interval; a fetch across
		// regions costs a dial and a call, two round trips.
		c.StatsInterval += 4 * rtt
		c.FailedAfter += 8 * rtt
		c.ProbeInterval += 2 * rtt
	}
}

func devPlacementTimers(c *placement.Config) {
	c.HeartbeatTimeout = 500 * time.Millisecond
	c.ElectionTimeout = 500 * time.Millisecond
	c.LeaderLeaseTimeout = 250 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.CallTimeout = 2 * time.Second
	c.JoinInterval = time.Second
	c.StatsInterval = 200 * time.Millisecond
	c.LastContactThreshold = time.Second
	c.StabilizationTime = 500 * time.Millisecond
	c.FailedAfter = 3 * time.Second
	c.EpochWaitMax = time.Second
	c.ProbeInterval = 500 * time.Millisecond
}

// devReplicationConfig makes a fresh dev deployment start replicating
// within a second of the regions joining, instead of production's 10 s
// directory refresh and origin retry (sized for regions that come and go
// rarely).
func devReplicationConfig(c *replication.Config) {
	c.DirectoryRefresh = time.Second
	c.OriginRetryInterval = 2 * time.Second
}

// devOptions configure a local development deployment.
type devOptions struct {
	regions       []string
	nodes         int // per region
	host          string
	apiPort       int
	raftPort      int
	placementPort int
	// metricsPort is the first node's /metrics port (0: no metrics).
	metricsPort int
	dataDir     string // empty: a temporary directory, removed on stop
	// wanLatency is the one-way latency emulated between nodes of
	// different regions (0: none, loopback speed everywhere).
	wanLatency time.Duration
	// insecure turns TLS off: plaintext on every port.
	insecure bool
	logger   *slog.Logger
}

// devMember is one node of the dev deployment.
type devMember struct {
	region, id string
	k          int // position over all nodes, region by region: port offset
	node       *node.Node
}

// devCluster is a local multi-region deployment in one process.
type devCluster struct {
	opts    devOptions
	dataDir string
	tempDir bool
	members []*devMember
	// cutter partitions the last region from the others on SIGUSR1.
	cutter *devCutter
	// rules are the example rules set at start, in match order.
	rules []*meridianv1.PlacementRule
	// ca is the deployment's throwaway CA (nil with --insecure); its
	// certificate is caFile, for clients.
	ca     *nodetls.CA
	caFile string
	// tokens is the token file every node loads (with TLS): one admin
	// token, secret, for the CLI and dev's own clients.
	tokens *auth.Tokens
	secret string
}

// devTokens writes <data>/tls/tokens with one new admin token and loads it.
func (c *devCluster) devTokens() error {
	path := filepath.Join(c.dataDir, "tls", "tokens")
	secret, err := auth.WriteTokenFile(path, auth.Token{Name: "dev-admin", Role: auth.RoleAdmin})
	if err != nil {
		return err
	}
	toks, err := auth.LoadTokens(path)
	if err != nil {
		return err
	}
	c.tokens, c.secret = toks, secret
	return nil
}

// devDeployment is the deployment name in dev's certificates.
const devDeployment = "dev"

// devCertValidity: dev's certificates outlive any dev session.
const devCertValidity = 30 * 24 * time.Hour

// credentials makes (or, in a kept data directory, reuses) the dev CA in
// <data>/tls and returns a node's credentials, issued afresh each start
// with the dev host and localhost as SANs.
func (c *devCluster) credentials(regionName, id string) (*nodetls.Credentials, error) {
	dir := filepath.Join(c.dataDir, "tls")
	if c.ca == nil {
		ca, err := nodetls.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
		if err != nil {
			if ca, err = nodetls.NewCA(devDeployment, devCertValidity); err != nil {
				return nil, err
			}
			if err := ca.WriteCA(dir); err != nil {
				return nil, err
			}
		}
		c.ca, c.caFile = ca, filepath.Join(dir, "ca.pem")
	}
	files, err := c.ca.IssueFiles(nodetls.Identity{Deployment: devDeployment, Region: regionName, Node: id},
		[]string{c.opts.host, "localhost"}, devCertValidity, filepath.Join(dir, regionName+"-"+id), "node")
	if err != nil {
		return nil, err
	}
	return nodetls.Load(files)
}

// clientOptions are what dev's own clients need to reach its nodes.
func (c *devCluster) clientOptions() []client.Option {
	if c.ca == nil {
		return nil
	}
	return []client.Option{client.WithTLS(c.ca.ClientConfig()), client.WithBearerToken(c.secret)}
}

func (o devOptions) total() int { return len(o.regions) * o.nodes }

func (o devOptions) addr(base, k int) string {
	return net.JoinHostPort(o.host, strconv.Itoa(base+k))
}

// check reports bad options as usage errors.
func (o devOptions) check() error {
	if o.nodes < 1 || o.nodes > devNodesMax {
		return usagef("--nodes %d outside [1, %d]", o.nodes, devNodesMax)
	}
	if len(o.regions) == 0 || len(o.regions) > devRegionsMax {
		return usagef("--regions: %d regions, want 1 to %d", len(o.regions), devRegionsMax)
	}
	seen := map[string]bool{}
	for _, r := range o.regions {
		if !devRegionName.MatchString(r) {
			return usagef("--regions: %q: want 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit", r)
		}
		if seen[r] {
			return usagef("--regions: %q appears twice", r)
		}
		seen[r] = true
	}
	if o.wanLatency < 0 || o.wanLatency > wanLatencyMax {
		return usagef("--wan-latency %s outside [0, %s]", o.wanLatency, wanLatencyMax)
	}
	n := o.total()
	ranges := []struct {
		name string
		port int
	}{{"--api-port", o.apiPort}, {"--raft-port", o.raftPort}, {"--placement-port", o.placementPort}}
	if o.metricsPort != 0 {
		ranges = append(ranges, struct {
			name string
			port int
		}{"--metrics-port", o.metricsPort})
	}
	for _, p := range ranges {
		if p.port < 1 || p.port+n-1 > 65535 {
			return usagef("%s %d: the %d ports from it must lie in [1, 65535]", p.name, p.port, n)
		}
	}
	for i, a := range ranges {
		for _, b := range ranges[i+1:] {
			if a.port < b.port+n && b.port < a.port+n {
				return usagef("%s %d and %s %d ranges overlap for %d nodes", a.name, a.port, b.name, b.port, n)
			}
		}
	}
	return nil
}

// exampleRules returns one rule per region: "<prefix>/" -> region, where
// prefix is the region's name before its first '-' (us-east -> us/). A
// region whose prefix an earlier region took uses its full name.
func exampleRules(regions []string) []*meridianv1.PlacementRule {
	taken := map[string]bool{}
	var rules []*meridianv1.PlacementRule
	for _, r := range regions {
		p, _, _ := strings.Cut(r, "-")
		if taken[p] {
			p = r
		}
		taken[p] = true
		rules = append(rules, &meridianv1.PlacementRule{Prefix: p + "/", HomeRegion: r})
	}
	return rules
}

// cartRule is dev's active-active example: carts are written in every
// region, items merge as an add-wins set, quantities as a counter and the
// shipping address as a last-writer-wins register (ADR 0005). Nil when a
// region's rule already uses the prefix.
func cartRule(rules []*meridianv1.PlacementRule, home string) *meridianv1.PlacementRule {
	for _, r := range rules {
		if r.GetPrefix() == "cart/" {
			return nil
		}
	}
	return &meridianv1.PlacementRule{
		Prefix: "cart/", HomeRegion: home, Mode: meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE,
		Merge: []*meridianv1.MergeRule{
			{EventType: "ItemAdded", Op: meridianv1.MergeOp_MERGE_OP_SET_ADD, Target: "items"},
			{EventType: "ItemRemoved", Op: meridianv1.MergeOp_MERGE_OP_SET_REMOVE, Target: "items"},
			{EventType: "QuantityChanged", Op: meridianv1.MergeOp_MERGE_OP_COUNTER_ADD, Target: "quantity"},
			{EventType: "AddressSet", Op: meridianv1.MergeOp_MERGE_OP_LWW_WRITE, Target: "address"},
		},
	}
}

// startDev starts every node of every region; on error, what started is
// stopped. The first node of the first region bootstraps the placement
// group; every other node joins through it.
func startDev(ctx context.Context, o devOptions) (*devCluster, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	c := &devCluster{opts: o, dataDir: o.dataDir, rules: exampleRules(o.regions), cutter: newDevCutter()}
	if cart := cartRule(c.rules, o.regions[0]); cart != nil {
		c.rules = append(c.rules, cart)
	}
	if c.dataDir == "" {
		dir, err := os.MkdirTemp("", "meridian-dev-")
		if err != nil {
			return nil, err
		}
		c.dataDir, c.tempDir = dir, true
	}
	seed := o.addr(o.apiPort, 0)
	layout := o.layout()
	for ri, r := range o.regions {
		peers := make([]region.Peer, o.nodes)
		for i := range peers {
			k := ri*o.nodes + i
			peers[i] = region.Peer{ID: devNodeID(i), RaftAddr: o.addr(o.raftPort, k), APIAddr: o.addr(o.apiPort, k)}
		}
		for i := range o.nodes {
			m := &devMember{region: r, id: devNodeID(i), k: ri*o.nodes + i}
			cfg := node.Config{
				Region:            r,
				NodeID:            m.id,
				DataDir:           filepath.Join(c.dataDir, r, m.id),
				APIAddr:           o.addr(o.apiPort, m.k),
				RaftAddr:          o.addr(o.raftPort, m.k),
				Peers:             peers,
				Bootstrap:         true,
				Network:           region.TCP,
				Logger:            o.logger,
				PlacementRaftAddr: o.addr(o.placementPort, m.k),
				MetricsAddr:       o.metricsAddr(m.k),
				PlacementConfig:   devPlacementConfig(o.wanLatency),
				ReplicationConfig: devReplicationConfig,
			}
			wan := newWANNetwork(region.TCP, r, layout, o.wanLatency)
			wan.cutter = c.cutter
			cfg.Network = wan
			if !o.insecure {
				creds, err := c.credentials(r, m.id)
				if err != nil {
					_ = c.Close()
					return nil, fmt.Errorf("dev: tls for %s/%s: %w", r, m.id, err)
				}
				cfg.TLS = creds
				if c.tokens == nil {
					if err := c.devTokens(); err != nil {
						_ = c.Close()
						return nil, fmt.Errorf("dev: tokens: %w", err)
					}
				}
				cfg.Tokens = c.tokens
			}
			if m.k == 0 {
				cfg.PlacementBootstrap = true
			} else {
				cfg.Join = []string{seed}
			}
			n, err := node.Start(ctx, cfg)
			if err != nil {
				_ = c.Close()
				if errors.Is(err, syscall.EADDRINUSE) {
					return nil, fmt.Errorf("dev: start %s/%s: %w (is another 'meridian dev' running? choose other ports with --api-port, --raft-port and --placement-port)", r, m.id, err)
				}
				return nil, fmt.Errorf("dev: start %s/%s: %w", r, m.id, err)
			}
			m.node = n
			c.members = append(c.members, m)
		}
	}
	return c, nil
}

// metricsAddr is node k's /metrics address, or "" without --metrics-port.
func (o devOptions) metricsAddr(k int) string {
	if o.metricsPort == 0 {
		return ""
	}
	return o.addr(o.metricsPort, k)
}

func devNodeID(i int) string { return "n" + strconv.Itoa(i+1) }

// layout maps every address of the deployment (API, region Raft,
// placement Raft) to its node's region, for the emulated WAN.
func (o devOptions) layout() map[string]string {
	m := make(map[string]string, 3*o.total())
	for ri, r := range o.regions {
		for i := range o.nodes {
			k := ri*o.nodes + i
			for _, base := range []int{o.apiPort, o.raftPort, o.placementPort} {
				m[o.addr(base, k)] = r
			}
		}
	}
	return m
}

// membersOf returns region's members, in order.
func (c *devCluster) membersOf(r string) []*devMember {
	var out []*devMember
	for _, m := range c.members {
		if m.region == r {
			out = append(out, m)
		}
	}
	return out
}

// endpointsOf returns the API URLs of region's nodes.
func (c *devCluster) endpointsOf(r string) []string {
	var out []string
	for _, m := range c.membersOf(r) {
		out = append(out, m.node.URL())
	}
	return out
}

// poll calls ready every devPollInterval until it returns "" (ready), ctx
// ends or devReadyTimeout passes; then the last reason is reported.
func poll(ctx context.Context, what string, ready func() string) error {
	ctx, cancel := context.WithTimeout(ctx, devReadyTimeout)
	defer cancel()
	tick := time.NewTicker(devPollInterval)
	defer tick.Stop()
	for {
		reason := ready()
		if reason == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dev: %s: not ready within %s (%s): %w", what, devReadyTimeout, reason, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitReady waits until every region's nodes agree on a leader, the
// placement group has one voter per region and every node knows every
// member; then it sets the example rules and waits until every node
// applied them.
func (c *devCluster) waitReady(ctx context.Context) error {
	err := poll(ctx, "region leaders", func() string {
		for _, r := range c.opts.regions {
			ms := c.membersOf(r)
			leader := ms[0].node.Region().Status().GetLeader()
			for _, m := range ms {
				if l := m.node.Region().Status().GetLeader(); l == "" || l != leader {
					return fmt.Sprintf("region %s has no agreed leader", r)
				}
			}
		}
		return ""
	})
	if err != nil {
		return err
	}
	err = poll(ctx, "placement group", func() string {
		lead, ok := c.placementLeader()
		if !ok {
			return "no placement leader"
		}
		voters := map[string]int{}
		f := lead.node.Placement().Raft().GetConfiguration()
		if f.Error() != nil {
			return f.Error().Error()
		}
		for _, s := range f.Configuration().Servers {
			if s.Suffrage.String() == "Voter" {
				r, _, _ := strings.Cut(string(s.ID), "/")
				voters[r]++
			}
		}
		for _, r := range c.opts.regions {
			if voters[r] != 1 {
				return fmt.Sprintf("region %s has %d placement voters, want 1", r, voters[r])
			}
		}
		for _, m := range c.members {
			if got := len(m.node.Placement().FSM().Members()); got != len(c.members) {
				return fmt.Sprintf("%s/%s knows %d of %d members", m.region, m.id, got, len(c.members))
			}
		}
		return ""
	})
	if err != nil {
		return err
	}
	cl, err := client.New([]string{c.members[0].node.URL()}, c.clientOptions()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	sctx, cancel := context.WithTimeout(ctx, devReadyTimeout)
	defer cancel()
	set, err := cl.SetRules(sctx, c.rules, c.opts.regions[0], 0)
	if err != nil {
		return fmt.Errorf("dev: set the example rules: %w", err)
	}
	err = poll(ctx, "example rules", func() string {
		for _, m := range c.members {
			if got := m.node.Placement().FSM().AppliedIndex(); got < set.GetIndex() {
				return fmt.Sprintf("%s/%s applied placement index %d of %d", m.region, m.id, got, set.GetIndex())
			}
		}
		return ""
	})
	if err != nil {
		return err
	}
	// Last, every region pulls from every other one, so that the first
	// read-your-writes read in another region is served there.
	return poll(ctx, "replication", func() string {
		for _, r := range c.opts.regions {
			lead := c.regionLeader(r)
			if lead == nil {
				return fmt.Sprintf("region %s has no leader", r)
			}
			sources := map[string]string{}
			for _, l := range lead.node.Region().Status().GetReplication() {
				sources[l.GetOrigin()] = l.GetSource()
			}
			for _, o := range c.opts.regions {
				if o != r && sources[o] == "" {
					return fmt.Sprintf("region %s does not pull %s yet", r, o)
				}
			}
		}
		return ""
	})
}

// regionLeader returns the member leading region r's group, nil if none.
func (c *devCluster) regionLeader(r string) *devMember {
	for _, m := range c.membersOf(r) {
		if m.node.Region().Status().GetIsLeader() {
			return m
		}
	}
	return nil
}

// placementLeader returns the member whose placement member leads.
func (c *devCluster) placementLeader() (*devMember, bool) {
	for _, m := range c.members {
		if m.node.Placement().Raft().State().String() == "Leader" {
			return m, true
		}
	}
	return nil, false
}

// Close stops every node (in parallel: stopping one node at a time spends
// the time re-electing) and removes a temporary data directory.
func (c *devCluster) Close() error {
	errs := make(chan error, len(c.members))
	for _, m := range c.members {
		go func() { errs <- m.node.Close() }()
	}
	var all []error
	for range c.members {
		all = append(all, <-errs)
	}
	if c.tempDir {
		all = append(all, os.RemoveAll(c.dataDir))
	}
	return errors.Join(all...)
}

// walkRegions names the regions the walk-through uses: the writer's (the
// first), the entity's home (the second) and the reader's (the third);
// with fewer regions the last one stands in.
func (c *devCluster) walkRegions() (writer, home, reader string) {
	rs := c.opts.regions
	at := func(i int) string { return rs[min(i, len(rs)-1)] }
	return at(0), at(1), at(2)
}

// prefixOf returns the example rule prefix of region r.
func (c *devCluster) prefixOf(r string) string {
	for _, rule := range c.rules {
		if rule.GetHomeRegion() == r {
			return rule.GetPrefix()
		}
	}
	return ""
}

// printBanner tells the user where every node is and what to try.
func (c *devCluster) printBanner(w io.Writer) {
	where := c.dataDir
	if c.tempDir {
		where += " (temporary, removed on exit)"
	}
	nodes := "1 node"
	if c.opts.nodes > 1 {
		nodes = fmt.Sprintf("%d nodes", c.opts.nodes)
	}
	fmt.Fprintf(w, "Meridian dev is up: %d regions of %s each, data in %s\n", len(c.opts.regions), nodes, where)
	placementLeader, _ := c.placementLeader()
	for _, r := range c.opts.regions {
		fmt.Fprintf(w, "  region %s\n", r)
		for _, m := range c.membersOf(r) {
			var roles []string
			if m.node.Region().Status().GetLeader() == m.id {
				roles = append(roles, "region leader")
			}
			if m == placementLeader {
				roles = append(roles, "placement leader")
			}
			role := ""
			if len(roles) > 0 {
				role = "  (" + strings.Join(roles, ", ") + ")"
			}
			metrics := ""
			if a := m.node.MetricsAddr(); a != "" {
				scheme := "http"
				if c.ca != nil {
					scheme = "https"
				}
				metrics = "  metrics " + scheme + "://" + a + "/metrics"
			}
			fmt.Fprintf(w, "    %s  api %s  raft %s  placement %s%s%s\n", m.id, m.node.URL(),
				c.opts.addr(c.opts.raftPort, m.k), c.opts.addr(c.opts.placementPort, m.k), metrics, role)
		}
	}
	var rules []string
	for _, r := range c.rules {
		if r.GetMode() == meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE {
			rules = append(rules, r.GetPrefix()+" -> every region (active-active: "+formatMerge(r.GetMerge())+")")
			continue
		}
		rules = append(rules, r.GetPrefix()+" -> "+r.GetHomeRegion())
	}
	fmt.Fprintf(w, "Placement rules: %s; anything else -> %s\n", strings.Join(rules, ", "), c.opts.regions[0])
	if d := c.opts.wanLatency; d > 0 {
		fmt.Fprintf(w, "WAN latency: %s one way between regions (round trip %s); nodes of one region at loopback speed\n", d, 2*d)
	} else {
		fmt.Fprintf(w, "WAN latency: none (--wan-latency 75ms emulates one between regions)\n")
	}

	if c.ca != nil {
		fmt.Fprintf(w, "TLS: on every port, certificates from a throwaway CA in %s; API calls need a bearer token (--insecure: plaintext, no tokens)\n", filepath.Dir(c.caFile))
	} else {
		fmt.Fprintf(w, "TLS: off (--insecure): every port is plaintext and the API takes calls from anyone\n")
	}

	writer, home, reader := c.walkRegions()
	entity := c.prefixOf(home) + "order-1"
	fmt.Fprintf(w, "\nTry, in another terminal (%s is homed in %s):\n", entity, home)
	if c.ca != nil {
		fmt.Fprintf(w, "  export %s=%s %s=%s    # an admin token\n", envTLSCA, c.caFile, envAuth, c.secret)
	}
	fmt.Fprintf(w, "  meridian append %s --type OrderPlaced --data '{\"total\":10}' --endpoint %s\n", entity, c.endpointsOf(writer)[0])
	fmt.Fprintf(w, "  meridian read %s --token TOKEN --endpoint %s    # TOKEN: the append's session token\n", entity, c.endpointsOf(reader)[0])
	ep := ""
	if first := c.members[0].node.URL(); !strings.HasSuffix(first, "://"+defaultEndpoint) {
		ep = " --endpoint " + first
	}
	fmt.Fprintf(w, "  meridian placement get %s%s\n", entity, ep)
	fmt.Fprintf(w, "  meridian regions%s\n", ep)
	if c.prefixOf(c.opts.regions[0]) != "" && len(c.opts.regions) > 1 {
		fmt.Fprintf(w, "Active-active carts, written in two regions at once:\n")
		fmt.Fprintf(w, "  meridian append cart/alice --type ItemAdded --data '{\"element\":\"book\"}' --endpoint %s\n", c.endpointsOf(writer)[0])
		fmt.Fprintf(w, "  meridian append cart/alice --type ItemAdded --data '{\"element\":\"pen\"}' --endpoint %s\n", c.endpointsOf(home)[0])
		fmt.Fprintf(w, "  meridian state cart/alice --endpoint %s\n", c.endpointsOf(reader)[0])
		fmt.Fprintf(w, "  kill -USR1 %d    # cuts %s off from the other regions; again to heal\n", os.Getpid(), c.opts.regions[len(c.opts.regions)-1])
	}
	fmt.Fprintf(w, "\nCtrl-C stops every region.\n")
}

// smoke appends to an entity homed in the second region through a node of
// the first, then reads it with the append's session token through a node
// of the third: the home must have ordered the write, and the third region
// must serve the read from its own replica (read-your-writes across
// regions, through replication).
func (c *devCluster) smoke(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	writerRegion, home, readerRegion := c.walkRegions()
	via, readVia := c.endpointsOf(writerRegion)[0], c.endpointsOf(readerRegion)[0]
	writer, err := client.New([]string{via}, c.clientOptions()...)
	if err != nil {
		return err
	}
	defer writer.Close()
	entity := c.prefixOf(home) + "smoke-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	resp, err := writer.Append(ctx, entity, []*meridianv1.ProposedEvent{
		{Type: "SmokeTested", Data: []byte(`{"ok":true}`), ContentType: "application/json"},
	})
	if err != nil {
		return fmt.Errorf("smoke: append: %w", err)
	}
	reader, err := client.New([]string{readVia}, append(c.clientOptions(), client.WithSessionToken(writer.SessionToken()))...)
	if err != nil {
		return err
	}
	defer reader.Close()
	start := time.Now()
	read, err := reader.Read(ctx, entity)
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("smoke: read: %w", err)
	}
	switch {
	case len(read.GetEvents()) != 1 || read.GetEvents()[0].GetVersion() != resp.GetLastVersion():
		return fmt.Errorf("smoke: read back %d events (head %d), want 1 at version %d", len(read.GetEvents()), read.GetHeadVersion(), resp.GetLastVersion())
	case resp.GetRegion() != home:
		return fmt.Errorf("smoke: %s is homed in %s, but the append was ordered by %q", entity, home, resp.GetRegion())
	case read.GetRegion() != readerRegion:
		return fmt.Errorf("smoke: the session read through %s was served by %q, not from its own replica", readerRegion, read.GetRegion())
	}
	fmt.Fprintf(w, "smoke: appended %s v%d via %s (%s), ordered by its home %s; read it with the session token via %s, served by %s/%s in %s: ok\n",
		entity, resp.GetLastVersion(), via, writerRegion, home, readVia, read.GetRegion(), read.GetNode(), took.Round(10*time.Microsecond))
	return nil
}

func newDevCmd(r *rootCmd) *cobra.Command {
	o := devOptions{nodes: 1, host: "127.0.0.1", apiPort: 7001, raftPort: 7101, placementPort: 7201}
	var (
		regions string
		smoke   bool
		logs    logFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local deployment of 3 regions in this process until Ctrl-C",
		Long: `Run a local multi-region deployment in one process on 127.0.0.1: by default
the regions us-east, eu-west and ap-south (--regions to change), each of
--nodes nodes (n1, n2, ...), all members of one placement group.

Ports are laid out consecutively over all nodes, region by region, from
--api-port (API), --raft-port (region Raft) and --placement-port (placement
Raft): with the defaults, us-east/n1 is 7001/7101/7201, eu-west/n1
7002/7102/7202, ap-south/n1 7003/7103/7203.

Once every region has a leader and the placement group has one voter per
region, dev sets one example rule per region, "<prefix>/" -> region, where
the prefix is the region's name before its first '-' (us-east: us/; a
region whose prefix an earlier one took uses its full name), and makes the
first region the default. Then it prints every endpoint.

Every region replicates every other region's log, so a read with the
session token of a write in another region is served by the region read
from, once its replica has the write. --wan-latency D emulates a one-way
latency D between nodes of different regions (a round trip costs 2D;
nodes of one region stay at loopback speed), to see what replication and
forwarding cost over a WAN.

kill -USR1 on the dev process cuts the last region off from the others
(connections between them closed, dials refused; clients still reach
every node) and the next one heals it: enough to watch active-active
writes go on on both sides of a partition and merge after it.

TLS and tokens are on by default: dev makes a throwaway CA in <data>/tls,
gives every node a certificate from it, makes an admin bearer token, and
prints the export that points the CLI at the CA and the token
(MERIDIAN_TLS_CA, MERIDIAN_AUTH_TOKEN). --insecure turns both off.

Data goes to a temporary directory (removed on exit) or to --data-dir (kept).
With --smoke it appends to an entity homed in the second region through a
node of the first, reads it with the append's session token through a node
of the third, checks that the home ordered the write and that the third
region served the read from its replica, and stops: exit 0 means it works.`,
		Example: `  meridian dev
  meridian dev --nodes 3
  meridian dev --wan-latency 75ms
  meridian dev --regions eu-central,us-west --api-port 8001 --raft-port 8101 --placement-port 8201
  meridian dev --smoke`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.regions = splitList(regions)
			if err := o.check(); err != nil {
				return err
			}
			logger, err := logs.logger(r.stderr)
			if err != nil {
				return err
			}
			o.logger = logger
			ctx := cmd.Context()
			loud := logs.quietWhile()
			c, err := startDev(ctx, o)
			if err != nil {
				loud()
				return err
			}
			err = c.waitReady(ctx)
			loud()
			if err == nil {
				if smoke {
					err = c.smoke(ctx, r.stdout)
				} else {
					c.printBanner(r.stdout)
					stop := make(chan struct{})
					go c.cutter.toggleOnSignal(o.regions[len(o.regions)-1], r.stdout, stop)
					<-ctx.Done()
					close(stop)
				}
			}
			if ctx.Err() != nil {
				// Ctrl-C, possibly while starting: a normal way out.
				err = nil
				fmt.Fprintln(r.stdout, "stopping...")
			}
			logs.quietUnlessVerbose()
			if cerr := c.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			if err == nil {
				fmt.Fprintln(r.stdout, "stopped")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "keep the deployment's data here, one directory per region and node (default: a temporary directory, removed on exit)")
	f.StringVar(&regions, "regions", strings.Join(devDefaultRegions, ","), "region names, comma-separated (1 to 7); the first is the default region and bootstraps placement")
	f.IntVar(&o.nodes, "nodes", o.nodes, "nodes per region (1 to 7)")
	f.IntVar(&o.apiPort, "api-port", o.apiPort, "API port of the first node; the others use the next ones, region by region")
	f.IntVar(&o.raftPort, "raft-port", o.raftPort, "region Raft port of the first node; the others use the next ones")
	f.IntVar(&o.placementPort, "placement-port", o.placementPort, "placement Raft port of the first node; the others use the next ones")
	f.IntVar(&o.metricsPort, "metrics-port", 0, "serve /metrics (Prometheus) from this port of the first node on, the others on the next ones (0: no metrics)")
	f.DurationVar(&o.wanLatency, "wan-latency", 0, "emulated one-way latency between nodes of different regions, e.g. 75ms (0: none; at most 1s)")
	f.BoolVar(&o.insecure, "insecure", false, "no TLS and no tokens: every port plaintext, the API open to anyone (default: TLS everywhere from a throwaway CA in the data directory, and an admin token)")
	f.BoolVar(&smoke, "smoke", false, "append in one region, read it with the token through another, check that region served it, then stop (exit 0 when it works)")
	logs.register(cmd, "warn")
	return cmd
}
