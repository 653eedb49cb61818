package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

// rulesFileBytesMax bounds what set-rules --file reads: a SetRulesRequest
// of thousands of rules fits well under it.
const rulesFileBytesMax = 4 << 20

func newPlacementCmd(r *rootCmd) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "placement",
		Short: "Read and change the placement table: which region is each entity's home",
		Long: `Read and change the placement table, replicated by the placement group
across regions. An entity's home is its pin if it has one, else the first
rule whose prefix matches, else the default region. Reads answer from the
contacted node's copy and say how current it is; changes go to the
placement group's leader.`,
		Args: exactArgs(0, ""),
	}
	cmd.AddCommand(newPlacementGetCmd(r), newPlacementRulesCmd(r), newPlacementSetRulesCmd(r),
		newPlacementPinCmd(r), newPlacementUnpinCmd(r), newPlacementMoveCmd(r))
	return cmd
}

func newPlacementMoveCmd(r *rootCmd) *cobra.Command {
	var asJSON, prefix bool
	cmd := &cobra.Command{
		Use:   "move ENTITY|PREFIX REGION",
		Short: "Move an entity (or, with --prefix, a rule's entities) to another home region without losing a write",
		Long: `Move changes a home safely: the old home stops ordering writes for the
moved entities (it freezes), the new home applies everything the old home
ordered (it drains), then the home flips with a new epoch. Writes to the
moved entities wait meanwhile and resume at the new home; nothing
acknowledged is lost or renumbered. Moving an entity pins it; --prefix moves
the rule with exactly that prefix. Pins, unpins and set-rules that change a
home take the same path.`,
		Example: `  meridian placement move eu/order-9 ap-south
  meridian placement move --prefix eu/ us-east`,
		Args: exactArgs(2, "ENTITY|PREFIX REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				var resp *meridianv1.MoveResponse
				var err error
				if prefix {
					resp, err = c.MovePrefix(ctx, args[0], args[1])
				} else {
					resp, err = c.MoveEntity(ctx, args[0], args[1])
				}
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				if resp.GetChange() == nil {
					fmt.Fprintf(r.stdout, "%s is already homed in %s (epoch %d); nothing moved\n", args[0], args[1], resp.GetEpoch())
					return nil
				}
				fmt.Fprintf(r.stdout, "moved %s to %s at epoch %d\n", args[0], args[1], resp.GetEpoch())
				printChange(r.stdout, resp.GetChange())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&prefix, "prefix", false, "move the rule with exactly this prefix instead of one entity")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the MoveResponse as JSON")
	return cmd
}

// printChange describes a placement change that moved homes.
func printChange(w io.Writer, c *meridianv1.PlacementChange) {
	state := "in progress"
	switch {
	case c.GetAborted() != "":
		state = "aborted: " + c.GetAborted()
	case c.GetCompletedIndex() != 0:
		state = fmt.Sprintf("completed at index %d in %s", c.GetCompletedIndex(), c.GetDuration().AsDuration().Round(time.Millisecond))
	}
	fmt.Fprintf(w, "  change %d (%s): %s\n", c.GetIndex(), c.GetReason(), state)
	for _, m := range c.GetMoves() {
		frozen := "not frozen yet"
		if m.GetFrozen() {
			frozen = fmt.Sprintf("froze at %s/%d", m.GetFrom(), m.GetFrozenSeq())
		}
		fmt.Fprintf(w, "    %s -> %s: %s, %s drained to %d\n", m.GetFrom(), m.GetTo(), frozen, m.GetTo(), m.GetDrainedSeq())
	}
}

// withPlacementClient is withClient for the Placement calls: an
// Unimplemented answer means the node runs without a placement group.
func (r *rootCmd) withPlacementClient(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	var endpoint string
	err := r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
		endpoint = c.Endpoints()[0]
		return fn(ctx, c)
	})
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		fmt.Fprintf(r.stderr, "hint: the node at %s serves no placement group: it runs as a single-region deployment (started without --placement-addr)\n", endpoint)
	}
	return err
}

func newPlacementGetCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "get ENTITY",
		Short:   "Show an entity's home region, why, its epoch and the home's endpoints",
		Example: `  meridian placement get eu/order-1`,
		Args:    exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				p, err := c.GetPlacement(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, p)
				}
				w := r.stdout
				fmt.Fprintf(w, "%s  home %s  (%s)\n", p.GetEntity(), p.GetHomeRegion(), sourceOf(p))
				fo := listOrDash(p.GetFailover())
				if p.GetSource() == meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE && len(p.GetFailover()) > 0 {
					fo += " (policy " + policyName(p.GetFailoverPolicy()) + ")"
				}
				fmt.Fprintf(w, "  epoch %d  mode %s  failover %s\n", p.GetEpoch(), modeName(p.GetMode()), fo)
				fmt.Fprintf(w, "  home endpoints %s\n", listOrDash(p.GetHomeEndpoints()))
				if ch := p.GetChange(); ch != nil {
					fmt.Fprintf(w, "  moving: writes wait until the change completes\n")
					printChange(w, ch)
				}
				if st := p.GetHomeLease(); st != nil {
					fmt.Fprintf(w, "  home lease: holder %s/%s, renewed %s ago, %s\n", st.GetLease().GetRegion(), st.GetLease().GetHolder(),
						st.GetAge().AsDuration().Round(time.Millisecond), leaseState(st))
				}
				printTableInfo(w, p.GetTable())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the GetPlacementResponse as JSON")
	return cmd
}

func newPlacementRulesCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "List the prefix rules in match order, the default region and the pin count",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				rules, err := c.ListRules(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, rules)
				}
				printRules(r.stdout, rules.GetRules())
				if ch := rules.GetChange(); ch != nil {
					fmt.Fprintf(r.stdout, "a change that moves homes is in progress:\n")
					printChange(r.stdout, ch)
				}
				fmt.Fprintf(r.stdout, "default region %s (epoch %d); %d pins; rules index %d (for set-rules --expect-index)\n",
					orDash(rules.GetDefaultRegion()), rules.GetDefaultEpoch(), rules.GetPins(), rules.GetRulesIndex())
				printTableInfo(r.stdout, rules.GetTable())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the ListRulesResponse as JSON")
	return cmd
}

func newPlacementSetRulesCmd(r *rootCmd) *cobra.Command {
	var (
		rules       []string
		defRegion   string
		expectIndex uint64
		file        string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "set-rules --rule PREFIX=REGION[,failover=R1:R2][,policy=safe|never][,mode=MODE]... --default REGION | --file FILE",
		Short: "Replace every prefix rule and the default region, atomically",
		Long: `Replace every prefix rule and the default region in one change.

Each --rule is PREFIX=REGION, optionally followed by ,failover=R1:R2 (the
regions that take over, in order) and ,mode=single_home or
,mode=active_active. Rules are matched in the order given, and a rule may
not be shadowed by an earlier one: list specific prefixes first
(eu/acct/ before eu/). --default is required.

--file reads a SetRulesRequest in JSON instead (- for stdin):
  {"rules":[{"prefix":"eu/","home_region":"eu-west","failover":["us-east"]}],
   "default_region":"us-east","expected_index":"12"}

--expect-index N applies the change only if the rules were last changed at
index N (see 'meridian placement rules'); otherwise it fails with
failed_precondition. Repeating the same unconditional change is a no-op
for every entity's home and epoch.`,
		Example: `  meridian placement set-rules --rule us/=us-east --rule 'eu/=eu-west,failover=us-east' \
    --rule ap/=ap-south --default us-east
  meridian placement set-rules --rule eu/vip/=ap-south --rule eu/=eu-west --default us-east --expect-index 12
  meridian placement set-rules --file rules.json`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &meridianv1.SetRulesRequest{}
			if file != "" {
				if len(rules) > 0 || defRegion != "" {
					return usagef("--file excludes --rule and --default (the file holds both)")
				}
				var err error
				if req, err = readRulesFile(file, r.stdin); err != nil {
					return err
				}
			} else {
				if defRegion == "" {
					return usagef("--default REGION is required (the home of entities no pin or rule matches)")
				}
				for _, s := range rules {
					rule, err := parseRule(s)
					if err != nil {
						return err
					}
					req.Rules = append(req.Rules, rule)
				}
				req.DefaultRegion = defRegion
			}
			if cmd.Flags().Changed("expect-index") {
				req.ExpectedIndex = expectIndex
			}
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.SetRules(ctx, req.GetRules(), req.GetDefaultRegion(), req.GetExpectedIndex())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				fmt.Fprintf(r.stdout, "rules set at placement index %d: %d rules, default region %s (epoch %d)\n",
					resp.GetIndex(), len(resp.GetRules()), req.GetDefaultRegion(), resp.GetDefaultEpoch())
				printRules(r.stdout, resp.GetRules())
				if ch := resp.GetChange(); ch != nil {
					printChange(r.stdout, ch)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&rules, "rule", nil, "PREFIX=REGION[,failover=R1:R2][,policy=safe|never][,mode=single_home|active_active][,merge=TYPE:OP:TARGET+...] (repeatable, in match order)")
	f.StringVar(&defRegion, "default", "", "default region: the home of entities no pin or rule matches")
	f.Uint64Var(&expectIndex, "expect-index", 0, "apply only if the rules were last changed at this index (placement rules shows it)")
	f.StringVar(&file, "file", "", "read a SetRulesRequest as JSON from FILE (- for stdin) instead of --rule/--default")
	f.BoolVar(&asJSON, "json", false, "print the SetRulesResponse as JSON")
	return cmd
}

func newPlacementPinCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "pin ENTITY REGION",
		Short:   "Make REGION the home of ENTITY, whatever the rules say",
		Example: `  meridian placement pin eu/order-7 ap-south`,
		Args:    exactArgs(2, "ENTITY REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.Pin(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				if resp.GetEpoch() != resp.GetIndex() {
					fmt.Fprintf(r.stdout, "%s was already pinned to %s (epoch %d); nothing changed\n", args[0], args[1], resp.GetEpoch())
					return nil
				}
				fmt.Fprintf(r.stdout, "pinned %s to %s at epoch %d\n", args[0], args[1], resp.GetEpoch())
				if ch := resp.GetChange(); ch != nil {
					printChange(r.stdout, ch)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the PinResponse as JSON")
	return cmd
}

func newPlacementUnpinCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "unpin ENTITY",
		Short:   "Remove ENTITY's pin: the rules decide its home again",
		Example: `  meridian placement unpin eu/order-7`,
		Args:    exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.Unpin(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				if !resp.GetExisted() {
					fmt.Fprintf(r.stdout, "%s had no pin; nothing changed\n", args[0])
					return nil
				}
				fmt.Fprintf(r.stdout, "unpinned %s at placement index %d; the rules decide its home again\n", args[0], resp.GetIndex())
				if ch := resp.GetChange(); ch != nil {
					printChange(r.stdout, ch)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the UnpinResponse as JSON")
	return cmd
}

func newRegionsCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "regions",
		Short: "List the regions, their applied vectors, and how far the contacted region's replication lags",
		Long: `List the regions of the placement group as the contacted node sees them,
with each region's applied vector (per origin region, the last event of
that origin's log the region has applied), asked of each region's leader.

Then the contacted region's replication: per other origin, the sequence
applied, the highest one known to exist at a source, the lag in events
and in time (how old the oldest event not yet applied is), and the
region currently pulled from. Replication runs on the region's leader, so
when the contacted node is a follower its leader is asked.

--json prints the ListRegionsResponse with two more fields: "status", the
StatusResponse of each region's leader by region name (applied vector and,
for the contacted region, replication lag), and "status_errors" for the
regions that did not answer.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.withPlacementClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.ListRegions(ctx)
				if err != nil {
					return err
				}
				connOpts, err := r.connOptions()
				if err != nil {
					return err
				}
				self, selfErr := c.Status(ctx)
				if selfErr == nil {
					self = leaderStatus(ctx, self, connOpts...)
				}
				statuses, errs := regionStatuses(ctx, resp.GetRegions(), self, connOpts...)
				if asJSON {
					return printRegionsJSON(r.stdout, resp, statuses, errs)
				}
				now := time.Now()
				tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tREACHABLE\tVOTERS\tENDPOINTS\tLAST REACHED\tAPPLIED")
				for _, g := range resp.GetRegions() {
					reach := "no"
					if g.GetReachable() {
						reach = "yes"
					}
					last := "never"
					if g.GetLastReached() != nil {
						at := g.GetLastReached().AsTime()
						last = fmt.Sprintf("%s (%s ago)", at.UTC().Format("15:04:05.000Z"), now.Sub(at).Round(time.Millisecond))
					}
					applied := "unknown"
					if st := statuses[g.GetName()]; st != nil {
						applied = formatVector(st.GetApplied())
					} else if e := errs[g.GetName()]; e != nil {
						applied = "unknown (" + errorSummary(e) + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.GetName(), reach, listOrDash(g.GetVoters()), listOrDash(g.GetEndpoints()), last, applied)
				}
				_ = tw.Flush()
				printLeases(r.stdout, resp.GetRegions())
				if ch := resp.GetChange(); ch != nil {
					fmt.Fprintf(r.stdout, "a change that moves homes is in progress:\n")
					printChange(r.stdout, ch)
				}
				printTableInfo(r.stdout, resp.GetTable())
				if selfErr != nil {
					fmt.Fprintf(r.stdout, "replication: unknown (status: %s)\n", errorSummary(selfErr))
					return nil
				}
				printReplication(r.stdout, self)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the ListRegionsResponse, with every region leader's StatusResponse, as JSON")
	return cmd
}

// printLeases prints every region's home lease and unreplicated tail.
func printLeases(w io.Writer, regions []*meridianv1.RegionInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEASE	HOLDER	RENEWED	STATE	UNREPLICATED TAIL")
	for _, g := range regions {
		st := g.GetLease()
		if st == nil {
			fmt.Fprintf(tw, "%s	-	never	none	-\n", g.GetName())
			continue
		}
		fmt.Fprintf(tw, "%s	%s	%s ago	%s	%s\n", g.GetName(), st.GetLease().GetHolder(),
			st.GetAge().AsDuration().Round(time.Millisecond), leaseState(st), tailOf(st.GetLease()))
	}
	_ = tw.Flush()
}

// policyName is a failover policy as the CLI writes it.
func policyName(p meridianv1.FailoverPolicy) string {
	if p == meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER {
		return "never"
	}
	return "safe"
}

// leaseState says whether a lease holds, as the answering node sees it.
func leaseState(st *meridianv1.LeaseStatus) string {
	l := st.GetLease()
	switch {
	case st.GetExpired():
		return "EXPIRED"
	case l.GetFenced() != "":
		return "fenced: " + l.GetFenced()
	}
	left := l.GetDuration().AsDuration() - st.GetAge().AsDuration()
	if left <= 0 {
		return fmt.Sprintf("renewal overdue (%s leases)", l.GetDuration().AsDuration())
	}
	return fmt.Sprintf("holds (%s), expires in %s", l.GetDuration().AsDuration(), left.Round(time.Millisecond))
}

// tailOf describes a region's unreplicated tail at its last renewal.
func tailOf(l *meridianv1.RegionLease) string {
	if l.GetTailEvents() == 0 {
		return "0 events"
	}
	s := fmt.Sprintf("%d events", l.GetTailEvents())
	if t := l.GetTailOldest(); t != nil {
		s += fmt.Sprintf(", oldest %s", time.Since(t.AsTime()).Round(time.Millisecond))
	}
	return s
}

// regionStatusTimeout bounds the status call to one region, so that an
// unreachable region does not hold up the listing.
const regionStatusTimeout = 3 * time.Second

// leaderStatus returns the status of st's region leader: st itself when
// it leads or its leader is unknown (then st has no replication lag).
func leaderStatus(ctx context.Context, st *meridianv1.StatusResponse, opts ...client.Option) *meridianv1.StatusResponse {
	if st.GetIsLeader() || st.GetLeaderAddress() == "" {
		return st
	}
	if lst, err := statusAt(ctx, []string{st.GetLeaderAddress()}, opts...); err == nil && lst.GetRegion() == st.GetRegion() {
		return lst
	}
	return st
}

// statusAt asks the first of endpoints that answers for its status, within
// regionStatusTimeout and without the default retry policy's patience.
func statusAt(ctx context.Context, endpoints []string, opts ...client.Option) (*meridianv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, regionStatusTimeout)
	defer cancel()
	p := client.DefaultRetryPolicy()
	p.MaxAttempts, p.MaxElapsed, p.AttemptTimeout = max(2, len(endpoints)), regionStatusTimeout, regionStatusTimeout
	c, err := client.New(endpoints, append(opts, client.WithRetryPolicy(p))...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Status(ctx)
}

// regionStatuses asks every region's leader for its status, concurrently;
// self is the contacted region's, already known.
func regionStatuses(ctx context.Context, regions []*meridianv1.RegionInfo, self *meridianv1.StatusResponse, opts ...client.Option) (map[string]*meridianv1.StatusResponse, map[string]error) {
	var mu sync.Mutex
	statuses, errs := map[string]*meridianv1.StatusResponse{}, map[string]error{}
	var wg sync.WaitGroup
	if self != nil {
		statuses[self.GetRegion()] = self // before any goroutine writes the map
	}
	for _, g := range regions {
		if self != nil && g.GetName() == self.GetRegion() {
			continue
		}
		wg.Go(func() {
			var st *meridianv1.StatusResponse
			err := fmt.Errorf("no endpoints")
			if len(g.GetEndpoints()) > 0 {
				st, err = statusAt(ctx, g.GetEndpoints(), opts...)
			}
			if err == nil {
				st = leaderStatus(ctx, st, opts...)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[g.GetName()] = err
				return
			}
			statuses[g.GetName()] = st
		})
	}
	wg.Wait()
	return statuses, errs
}

// printReplication prints st's replication lag per origin.
func printReplication(w io.Writer, st *meridianv1.StatusResponse) {
	if !st.GetIsLeader() {
		fmt.Fprintf(w, "replication into %s: unknown (%s/%s is not the region leader, and the leader did not answer)\n", st.GetRegion(), st.GetRegion(), st.GetNode())
		return
	}
	fmt.Fprintf(w, "replication into %s (from its leader %s/%s):\n", st.GetRegion(), st.GetRegion(), st.GetNode())
	if len(st.GetReplication()) == 0 {
		fmt.Fprintln(w, "  (no other origins)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORIGIN\tAPPLIED\tKNOWN\tLAG EVENTS\tLAG\tSOURCE")
	for _, l := range st.GetReplication() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", l.GetOrigin(), l.GetApplied(), l.GetKnown(), l.GetLagEvents(),
			l.GetLag().AsDuration().Round(time.Millisecond), orDash(l.GetSource()))
	}
	_ = tw.Flush()
}

// printRegionsJSON prints resp as protojson with the statuses added.
func printRegionsJSON(w io.Writer, resp *meridianv1.ListRegionsResponse, statuses map[string]*meridianv1.StatusResponse, errs map[string]error) error {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	b, err := opts.Marshal(resp)
	if err != nil {
		return err
	}
	out := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	st := map[string]json.RawMessage{}
	for name, s := range statuses {
		if st[name], err = opts.Marshal(s); err != nil {
			return err
		}
	}
	if out["status"], err = json.Marshal(st); err != nil {
		return err
	}
	if len(errs) > 0 {
		msgs := map[string]string{}
		for name, e := range errs {
			msgs[name] = e.Error()
		}
		if out["status_errors"], err = json.Marshal(msgs); err != nil {
			return err
		}
	}
	line, err := json.Marshal(out) // map keys sorted: a stable line
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(line))
	return err
}

// formatVector prints an applied vector compactly, origins sorted:
// eu-west=2,us-east=1 ("-" when empty).
func formatVector(v map[string]uint64) string {
	if len(v) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(v))
	for _, o := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s=%d", o, v[o]))
	}
	return strings.Join(parts, ",")
}

// printRules prints rules as a table in match order.
func printRules(w io.Writer, rules []*meridianv1.PlacementRule) {
	if len(rules) == 0 {
		fmt.Fprintln(w, "(no rules)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPREFIX\tHOME\tMODE\tFAILOVER\tEPOCH")
	for i, r := range rules {
		fo := listOrDash(r.GetFailover())
		if r.GetFailoverPolicy() == meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER {
			fo += " (policy never)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\n", i+1, r.GetPrefix(), r.GetHomeRegion(), modeName(r.GetMode()), fo, r.GetEpoch())
	}
	_ = tw.Flush()
	for i, r := range rules {
		if len(r.GetMerge()) > 0 {
			fmt.Fprintf(w, "rule %d (%s) merges %s\n", i+1, r.GetPrefix(), formatMerge(r.GetMerge()))
		}
	}
}

// printTableInfo says whose copy of the table answered and how current it is.
func printTableInfo(w io.Writer, t *meridianv1.TableInfo) {
	staleness := "unknown (no contact with a leader yet)"
	if t.GetStaleness() != nil {
		staleness = t.GetStaleness().AsDuration().Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "(table index %d on %s; placement leader %s; staleness %s)\n",
		t.GetIndex(), orDash(t.GetAnsweredBy()), orDash(t.GetLeader()), staleness)
}

func sourceOf(p *meridianv1.GetPlacementResponse) string {
	switch p.GetSource() {
	case meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN:
		return "pinned"
	case meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE:
		return fmt.Sprintf("rule %q", p.GetRulePrefix())
	case meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT:
		return "default region"
	}
	return "no placement yet"
}

func modeName(m meridianv1.PlacementMode) string {
	if m == meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE {
		return "active_active"
	}
	return "single_home"
}

// parseRule parses one --rule: PREFIX=REGION[,failover=R1:R2][,mode=MODE].
func parseRule(s string) (*meridianv1.PlacementRule, error) {
	parts := strings.Split(s, ",")
	prefix, region, ok := strings.Cut(parts[0], "=")
	if !ok || prefix == "" || region == "" {
		return nil, usagef("--rule %q: want PREFIX=REGION[,failover=R1:R2][,policy=safe|never][,mode=single_home|active_active][,merge=TYPE:OP:TARGET+...]", s)
	}
	rule := &meridianv1.PlacementRule{Prefix: prefix, HomeRegion: region}
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "failover":
			for _, f := range strings.Split(v, ":") {
				if f != "" {
					rule.Failover = append(rule.Failover, f)
				}
			}
		case "mode":
			switch strings.ReplaceAll(v, "-", "_") {
			case "single_home":
				rule.Mode = meridianv1.PlacementMode_PLACEMENT_MODE_SINGLE_HOME
			case "active_active":
				rule.Mode = meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE
			default:
				return nil, usagef("--rule %q: mode %q: want single_home or active_active", s, v)
			}
		case "policy":
			switch v {
			case "safe":
				rule.FailoverPolicy = meridianv1.FailoverPolicy_FAILOVER_POLICY_SAFE
			case "never":
				rule.FailoverPolicy = meridianv1.FailoverPolicy_FAILOVER_POLICY_NEVER
			default:
				return nil, usagef("--rule %q: policy %q: want safe (fail over to the failover list once the home's lease expired) or never (writes wait for the home)", s, v)
			}
		case "merge":
			for _, m := range strings.Split(v, "+") {
				mr, err := parseMergeRule(m)
				if err != nil {
					return nil, usagef("--rule %q: merge %q: %v", s, m, err)
				}
				rule.Merge = append(rule.Merge, mr)
			}
		default:
			return nil, usagef("--rule %q: unknown option %q: want failover=R1:R2, policy=safe|never, mode=single_home|active_active or merge=TYPE:OP:TARGET+...", s, opt)
		}
	}
	return rule, nil
}

// mergeOps names the merge ops as --rule's merge= option spells them.
var mergeOps = map[string]meridianv1.MergeOp{
	"counter_add": meridianv1.MergeOp_MERGE_OP_COUNTER_ADD,
	"set_add":     meridianv1.MergeOp_MERGE_OP_SET_ADD,
	"set_remove":  meridianv1.MergeOp_MERGE_OP_SET_REMOVE,
	"lww_write":   meridianv1.MergeOp_MERGE_OP_LWW_WRITE,
	"mv_write":    meridianv1.MergeOp_MERGE_OP_MV_WRITE,
	"map_put":     meridianv1.MergeOp_MERGE_OP_MAP_PUT,
	"map_delete":  meridianv1.MergeOp_MERGE_OP_MAP_DELETE,
}

// parseMergeRule parses TYPE:OP:TARGET, for example ItemAdded:set_add:items.
func parseMergeRule(s string) (*meridianv1.MergeRule, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return nil, fmt.Errorf("want TYPE:OP:TARGET (for example ItemAdded:set_add:items)")
	}
	op, ok := mergeOps[strings.ReplaceAll(parts[1], "-", "_")]
	if !ok {
		return nil, fmt.Errorf("op %q: want counter_add, set_add, set_remove, lww_write, mv_write, map_put or map_delete", parts[1])
	}
	return &meridianv1.MergeRule{EventType: parts[0], Op: op, Target: parts[2]}, nil
}

func mergeOpName(op meridianv1.MergeOp) string {
	for name, o := range mergeOps {
		if o == op {
			return name
		}
	}
	return op.String()
}

// formatMerge is a rule's merge declarations as --rule spells them.
func formatMerge(ms []*meridianv1.MergeRule) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.GetEventType() + ":" + mergeOpName(m.GetOp()) + ":" + m.GetTarget()
	}
	return strings.Join(parts, "+")
}

// readRulesFile reads a SetRulesRequest in protojson from path (- for stdin).
func readRulesFile(path string, stdin io.Reader) (*meridianv1.SetRulesRequest, error) {
	src := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("--file: %v", err)
		}
		defer f.Close()
		src = f
	}
	b, err := io.ReadAll(io.LimitReader(src, rulesFileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	if len(b) > rulesFileBytesMax {
		return nil, usagef("--file: more than %d bytes", rulesFileBytesMax)
	}
	req := &meridianv1.SetRulesRequest{}
	if err := protojson.Unmarshal(b, req); err != nil {
		return nil, usagef("--file %s: not a SetRulesRequest in JSON: %v", path, err)
	}
	return req, nil
}

func listOrDash(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
