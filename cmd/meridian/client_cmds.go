package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

// eventDataBytesMax bounds what --data @file reads: the server's default
// event size limit is 1 MiB, so anything bigger would be refused anyway.
const eventDataBytesMax = 1 << 20

func newAppendCmd(r *rootCmd) *cobra.Command {
	var (
		eventType, data, expect, id, contentType string
		durability                               string
		minRegions                               uint32
		metadata                                 []string
		asJSON, direct                           bool
	)
	cmd := &cobra.Command{
		Use:   "append ENTITY",
		Short: "Append one event to an entity's stream",
		Example: `  meridian append order-42 --type OrderPlaced --data '{"total":10}'
  meridian append order-42 --type OrderPaid --data @payment.json --expect 1
  meridian append order-43 --type OrderPlaced --expect no-stream --json
  meridian append eu/order-44 --type OrderPlaced --durability multi-region --min-regions 2`,
		Args: exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, err := parseExpect(expect)
			if err != nil {
				return err
			}
			durable, err := parseDurability(durability, minRegions, cmd.Flags().Changed("min-regions"))
			if err != nil {
				return err
			}
			payload, err := readData(data, r.stdin)
			if err != nil {
				return err
			}
			if len(payload) > 0 && strings.HasPrefix(contentType, "application/json") && !json.Valid(payload) {
				return usagef("--data is not valid JSON (use --content-type to send other data)")
			}
			md, err := parseMetadata(metadata)
			if err != nil {
				return err
			}
			ev := &meridianv1.ProposedEvent{Id: id, Type: eventType, Data: payload, Metadata: md}
			if len(payload) > 0 {
				ev.ContentType = contentType
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				opts := []client.AppendOption{opt, durable}
				if direct {
					opts = append(opts, client.Direct())
				}
				resp, err := c.Append(ctx, args[0], []*meridianv1.ProposedEvent{ev}, opts...)
				if err != nil {
					if client.IsOutcomeUnknown(err) {
						fmt.Fprintf(r.stderr, "note: the append may have been applied; retrying with --id %s is safe\n", ev.Id)
					}
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				fmt.Fprintf(r.stdout, "appended %s v%d  id=%s", args[0], resp.GetLastVersion(), ev.Id)
				if o := resp.GetOrigin(); o != nil {
					fmt.Fprintf(r.stdout, " origin=%s/%d", o.GetRegion(), o.GetSeq())
				}
				if resp.GetDuplicate() {
					fmt.Fprint(r.stdout, "  (duplicate: this id was appended before with the same content; original result)")
				}
				fmt.Fprintln(r.stdout)
				printToken(r.stdout, resp.GetSessionToken())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&eventType, "type", "Event", "event type, for example OrderPlaced")
	f.StringVar(&data, "data", "", "payload: JSON text, @FILE to read a file, or @- for stdin")
	f.StringVar(&contentType, "content-type", "application/json", "content type of the payload")
	f.StringVar(&expect, "expect", "any", "expected stream version: any, no-stream, exists or a version number")
	f.StringVar(&id, "id", "", "event id (UUID); default a new UUIDv7. Reuse it to retry safely")
	f.StringArrayVar(&metadata, "meta", nil, "metadata KEY=VALUE (repeatable)")
	f.StringVar(&durability, "durability", "region", "when the append is acknowledged: region (committed by the home region's Raft group) or multi-region (also applied by --min-regions other regions)")
	f.Uint32Var(&minRegions, "min-regions", 1, "with --durability multi-region: how many other regions must have applied the append")
	f.BoolVar(&direct, "direct", false, "ask a node outside the entity's home region for a redirect and send the append to the home itself (same event id)")
	f.BoolVar(&asJSON, "json", false, "print the AppendResponse as JSON")
	return cmd
}

func newReadCmd(r *rootCmd) *cobra.Command {
	var (
		from        uint64
		limit       uint32
		backward    bool
		consistency string
		staleness   time.Duration
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "read ENTITY",
		Short: "Read events of an entity's stream",
		Example: `  meridian read order-42
  meridian read order-42 --from 10 --limit 5
  meridian read order-42 --backward --limit 1 --consistency strong --json
  meridian read us/order-7 --consistency bounded --max-staleness 2s`,
		Args: exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			level, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			switch {
			case level == meridianv1.Consistency_CONSISTENCY_BOUNDED && staleness <= 0:
				return usagef("--consistency bounded needs --max-staleness (for example 2s)")
			case level != meridianv1.Consistency_CONSISTENCY_BOUNDED && staleness != 0:
				return usagef("--max-staleness applies only to --consistency bounded")
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				opts := []client.ReadOption{client.FromVersion(from), client.Limit(limit), client.WithConsistency(level)}
				if staleness > 0 {
					opts = append(opts, client.MaxStaleness(staleness))
				}
				if backward {
					opts = append(opts, client.Backward())
				}
				resp, err := c.Read(ctx, args[0], opts...)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				for _, e := range resp.GetEvents() {
					fmt.Fprintln(r.stdout, formatEvent(e, false))
				}
				served := ""
				if resp.GetNode() != "" {
					served = fmt.Sprintf(", served by %s/%s", resp.GetRegion(), resp.GetNode())
				}
				fmt.Fprintf(r.stdout, "(%d events, head version %d%s%s)\n", len(resp.GetEvents()), resp.GetHeadVersion(), lifecycleNote(resp), served)
				printToken(r.stdout, resp.GetSessionToken())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "first version (forward) or last version (backward); 0: start or head")
	f.Uint32Var(&limit, "limit", 0, "maximum events returned; 0: the server's default (100)")
	f.BoolVar(&backward, "backward", false, "read from the head towards version 1")
	f.StringVar(&consistency, "consistency", "session", "strong, session, bounded or eventual")
	f.DurationVar(&staleness, "max-staleness", 0, "with --consistency bounded: how old the local region's copy may be (e.g. 2s); older is served by the home region")
	f.BoolVar(&asJSON, "json", false, "print the ReadResponse as JSON")
	return cmd
}

// eventFilter is the --prefix and --type flags of tail and log; nil when
// neither is given.
func eventFilter(prefixes, types []string) *meridianv1.EventFilter {
	if len(prefixes) == 0 && len(types) == 0 {
		return nil
	}
	return &meridianv1.EventFilter{EntityPrefixes: prefixes, EventTypes: types}
}

func newTailCmd(r *rootCmd) *cobra.Command {
	var (
		all, fromEnd, asJSON bool
		from                 uint64
		prefixes, types      []string
	)
	cmd := &cobra.Command{
		Use:   "tail ENTITY | --all",
		Short: "Follow an entity's stream, or the whole region log, until Ctrl-C",
		Example: `  meridian tail order-42
  meridian tail --all --from 100
  meridian tail --all --prefix orders/ --type OrderPlaced
  meridian tail order-42 --json`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("tail takes either ENTITY or --all, not both")
			case !all && len(args) != 1:
				return usagef("tail needs ENTITY or --all")
			case !all && len(prefixes) > 0:
				return usagef("--prefix filters the region log: use it with --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			sub := client.Subscription{All: all, From: from, FromEnd: fromEnd, Filter: eventFilter(prefixes, types)}
			if !all {
				sub.Entity = args[0]
			}
			ctx := cmd.Context()
			announced := false
			for msg, err := range c.Subscribe(ctx, sub) {
				if err != nil {
					return err
				}
				if asJSON {
					if err := printJSON(r.stdout, msg); err != nil {
						return err
					}
					continue
				}
				switch m := msg.GetMessage().(type) {
				case *meridianv1.SubscribeResponse_Event:
					fmt.Fprintln(r.stdout, formatEvent(m.Event, all))
				case *meridianv1.SubscribeResponse_Checkpoint:
					if m.Checkpoint.GetCaughtUp() && !announced {
						announced = true
						fmt.Fprintf(r.stderr, "-- caught up (next position %d); waiting for new events, Ctrl-C to stop\n", m.Checkpoint.GetNextPosition())
					}
				}
			}
			// The context ended: Ctrl-C is the normal way out of tail.
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&all, "all", false, "follow the whole region log (positions) instead of one entity (versions)")
	f.Uint64Var(&from, "from", 0, "first position (entity: version) delivered; 0: the beginning")
	f.BoolVar(&fromEnd, "from-end", false, "deliver only events appended from now on")
	f.StringArrayVar(&prefixes, "prefix", nil, "with --all: only entities starting with this prefix (repeatable, up to 16)")
	f.StringArrayVar(&types, "type", nil, "only events of this type (repeatable, up to 16)")
	f.BoolVar(&asJSON, "json", false, "print every SubscribeResponse (events and checkpoints) as one JSON line")
	return cmd
}

func newLogCmd(r *rootCmd) *cobra.Command {
	var (
		from            uint64
		after           string
		limit           uint32
		backward        bool
		asJSON          bool
		prefixes, types []string
	)
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Read a page of the region log, by position or after a vector",
		Long: `Reads the region log of the node that answers: every event its region
applied, in apply order, each with its region position. Positions differ
between regions; a vector (origin region=sequence, ...) names the same
events everywhere: --after reads what the vector does not cover, and the
page ends with the vector to continue from, in this region or another.`,
		Example: `  meridian log --limit 20
  meridian log --backward --limit 5 --type OrderPlaced
  meridian log --from 1200 --prefix orders/
  meridian log --after us-east=42,eu-west=17`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &meridianv1.ReadLogRequest{MaxCount: limit, Filter: eventFilter(prefixes, types)}
			if backward {
				req.Direction = meridianv1.Direction_DIRECTION_BACKWARD
			}
			switch {
			case cmd.Flags().Changed("after") && cmd.Flags().Changed("from"):
				return usagef("--from and --after are two ways to say where to start: give one")
			case cmd.Flags().Changed("after"):
				v, err := parseVectorFlag(after)
				if err != nil {
					return err
				}
				req.From = &meridianv1.ReadLogRequest_AfterVector{AfterVector: &meridianv1.VectorStart{Vector: v}}
			default:
				req.From = &meridianv1.ReadLogRequest_Position{Position: from}
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.ReadLog(ctx, req)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				for _, e := range resp.GetEvents() {
					fmt.Fprintln(r.stdout, formatEvent(e, true))
				}
				more := fmt.Sprintf("next position %d", resp.GetNextPosition())
				if resp.GetEnd() {
					more = "end of the log"
				}
				fmt.Fprintf(r.stdout, "(%d events, %s, last position %d, served by %s/%s)\n",
					len(resp.GetEvents()), more, resp.GetLastPosition(), resp.GetRegion(), resp.GetNode())
				if v := resp.GetNextVector(); v != nil {
					fmt.Fprintf(r.stdout, "continue with: --after %s\n", formatVectorFlag(v))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "first position (forward) or last (backward); 0: the start or the end")
	f.StringVar(&after, "after", "", "read the events this vector does not cover: REGION=SEQ,... (empty: from the start); forward only")
	f.Uint32Var(&limit, "limit", 0, "maximum events returned; 0: the server's default (100)")
	f.BoolVar(&backward, "backward", false, "read from the end towards position 1")
	f.StringArrayVar(&prefixes, "prefix", nil, "only entities starting with this prefix (repeatable, up to 16)")
	f.StringArrayVar(&types, "type", nil, "only events of this type (repeatable, up to 16)")
	f.BoolVar(&asJSON, "json", false, "print the ReadLogResponse as JSON")
	return cmd
}

// parseVectorFlag parses REGION=SEQ,... ("" is the empty vector).
func parseVectorFlag(s string) (map[string]uint64, error) {
	v := map[string]uint64{}
	if strings.TrimSpace(s) == "" {
		return v, nil
	}
	for _, part := range strings.Split(s, ",") {
		region, seq, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || region == "" || err != nil {
			return nil, usagef("--after %q: want REGION=SEQ pairs separated by commas, for example us-east=42,eu-west=17", s)
		}
		if _, dup := v[region]; dup {
			return nil, usagef("--after %q: region %s given twice", s, region)
		}
		v[region] = n
	}
	return v, nil
}

// formatVectorFlag prints a vector as parseVectorFlag reads it, regions sorted.
func formatVectorFlag(v map[string]uint64) string {
	parts := make([]string, 0, len(v))
	for _, region := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s=%d", region, v[region]))
	}
	return strings.Join(parts, ",")
}

func newStatusCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of every node given by --endpoint",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				statuses, errs := c.StatusAll(ctx)
				failed := 0
				if asJSON {
					for i, st := range statuses {
						if errs[i] != nil {
							failed++
							fmt.Fprintf(r.stderr, "%s: ", c.Endpoints()[i])
							printError(r.stderr, errs[i], nil)
							continue
						}
						if err := printJSON(r.stdout, st); err != nil {
							return err
						}
					}
				} else {
					tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ENDPOINT\tREGION\tNODE\tSTATE\tLEADER\tAPPLIED INDEX\tLAST POSITION\tAPPLIED VECTOR\tLEASE")
					for i, st := range statuses {
						if errs[i] != nil {
							failed++
							fmt.Fprintf(tw, "%s\t-\t-\tunreachable (%s)\t-\t-\t-\t-\t-\n", c.Endpoints()[i], errorSummary(errs[i]))
							continue
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", c.Endpoints()[i], st.GetRegion(), st.GetNode(),
							st.GetRaftState(), st.GetLeader(), st.GetAppliedIndex(), st.GetLastPosition(), formatVector(st.GetApplied()), leaseColumn(st))
					}
					_ = tw.Flush()
				}
				if failed == len(statuses) {
					return errs[0]
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one StatusResponse per node as JSON")
	return cmd
}

// printToken shows the session token so that the next command can pass it
// with --token (or MERIDIAN_SESSION_TOKEN) for read-your-writes.
func printToken(w io.Writer, token string) {
	if token != "" {
		fmt.Fprintf(w, "session token: %s\n", token)
	}
}

func errorSummary(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "connection refused") {
		return "connection refused"
	}
	return s
}

func exactArgs(n int, name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return usagef("this command takes no arguments, got %q", args)
			}
			return usagef("expected %s, got %d arguments", name, len(args))
		}
		return nil
	}
}

// parseExpect turns --expect into an append option.
func parseExpect(s string) (client.AppendOption, error) {
	switch s {
	case "", "any":
		return client.ExpectAny(), nil
	case "no-stream":
		return client.ExpectNoStream(), nil
	case "exists":
		return client.ExpectStreamExists(), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, usagef("--expect %q: want any, no-stream, exists or a version number", s)
	}
	return client.ExpectVersion(v), nil
}

// parseDurability turns --durability and --min-regions into an append option.
func parseDurability(s string, minRegions uint32, minSet bool) (client.AppendOption, error) {
	switch strings.ReplaceAll(s, "_", "-") {
	case "", "region":
		if minSet {
			return nil, usagef("--min-regions needs --durability multi-region")
		}
		return client.WithDurability(meridianv1.Durability_DURABILITY_REGION, 0), nil
	case "multi-region":
		if minRegions == 0 {
			return nil, usagef("--min-regions 0: want at least 1 other region")
		}
		return client.WithDurability(meridianv1.Durability_DURABILITY_MULTI_REGION, minRegions), nil
	}
	return nil, usagef("--durability %q: want region or multi-region", s)
}

func parseConsistency(s string) (meridianv1.Consistency, error) {
	switch s {
	case "strong":
		return meridianv1.Consistency_CONSISTENCY_STRONG, nil
	case "session", "":
		return meridianv1.Consistency_CONSISTENCY_SESSION, nil
	case "bounded":
		return meridianv1.Consistency_CONSISTENCY_BOUNDED, nil
	case "eventual":
		return meridianv1.Consistency_CONSISTENCY_EVENTUAL, nil
	}
	return 0, usagef("--consistency %q: want strong, session, bounded or eventual", s)
}

// readData returns the payload of --data: literal text, @FILE, or @- (stdin).
func readData(s string, stdin io.Reader) ([]byte, error) {
	if !strings.HasPrefix(s, "@") {
		return []byte(s), nil
	}
	var src io.Reader
	if s == "@-" {
		src = stdin
	} else {
		f, err := os.Open(s[1:])
		if err != nil {
			return nil, usagef("--data: %v", err)
		}
		defer f.Close()
		src = f
	}
	b, err := io.ReadAll(io.LimitReader(src, eventDataBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	if len(b) > eventDataBytesMax {
		return nil, usagef("--data: more than %d bytes", eventDataBytesMax)
	}
	return b, nil
}

func parseMetadata(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	md := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--meta %q: want KEY=VALUE", kv)
		}
		md[k] = v
	}
	return md, nil
}

// leaseColumn is how long a region leader's home lease still holds, or
// why it holds none; "-" on followers and single-region deployments.
func leaseColumn(st *meridianv1.StatusResponse) string {
	switch {
	case st.GetLeaseFenced() != "":
		return "none (" + st.GetLeaseFenced() + ")"
	case st.GetLeaseRemaining() != nil:
		return st.GetLeaseRemaining().AsDuration().Round(time.Millisecond).String()
	}
	return "-"
}

// readExtraFlags are the consistency flags of state and conflicts.
type readExtraFlags struct {
	consistency string
	staleness   time.Duration
	asJSON      bool
}

func (x *readExtraFlags) register(f interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
}, what string) {
	f.StringVar(&x.consistency, "consistency", "session", "session, bounded or eventual (strong is refused: every region writes an active-active entity)")
	f.DurationVar(&x.staleness, "max-staleness", 0, "with --consistency bounded: how far behind every other region this one may be (e.g. 2s)")
	f.BoolVar(&x.asJSON, "json", false, "print the "+what+" as JSON")
}

func (x *readExtraFlags) options() ([]client.ReadOption, error) {
	level, err := parseConsistency(x.consistency)
	if err != nil {
		return nil, err
	}
	switch {
	case level == meridianv1.Consistency_CONSISTENCY_BOUNDED && x.staleness <= 0:
		return nil, usagef("--consistency bounded needs --max-staleness (for example 2s)")
	case level != meridianv1.Consistency_CONSISTENCY_BOUNDED && x.staleness != 0:
		return nil, usagef("--max-staleness applies only to --consistency bounded")
	}
	opts := []client.ReadOption{client.WithConsistency(level)}
	if x.staleness > 0 {
		opts = append(opts, client.MaxStaleness(x.staleness))
	}
	return opts, nil
}

func newStateCmd(r *rootCmd) *cobra.Command {
	var x readExtraFlags
	cmd := &cobra.Command{
		Use:   "state ENTITY",
		Short: "Show an active-active entity's merged state (counters, sets, registers, maps)",
		Example: `  meridian state cart/alice
  meridian state cart/alice --consistency eventual --json`,
		Args: exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := x.options()
			if err != nil {
				return err
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.ReadState(ctx, args[0], opts...)
				if err != nil {
					return err
				}
				if x.asJSON {
					return printJSON(r.stdout, resp)
				}
				fmt.Fprintln(r.stdout, resp.GetState())
				fmt.Fprintf(r.stdout, "(%d events, vector %s, served by %s/%s)\n", resp.GetEvents(), formatVector(resp.GetVector()), resp.GetRegion(), resp.GetNode())
				printToken(r.stdout, resp.GetSessionToken())
				return nil
			})
		},
	}
	x.register(cmd.Flags(), "ReadStateResponse")
	return cmd
}

func newConflictsCmd(r *rootCmd) *cobra.Command {
	var (
		x     readExtraFlags
		after string
		limit uint32
	)
	cmd := &cobra.Command{
		Use:   "conflicts ENTITY",
		Short: "List an active-active entity's conflicts: concurrent register writes, loser beside winner",
		Example: `  meridian conflicts cart/alice
  meridian conflicts cart/alice --limit 10 --after TOKEN`,
		Args: exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := x.options()
			if err != nil {
				return err
			}
			opts = append(opts, client.Limit(limit))
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.ReadConflicts(ctx, args[0], after, opts...)
				if err != nil {
					return err
				}
				if x.asJSON {
					return printJSON(r.stdout, resp)
				}
				side := func(w *meridianv1.ConflictWrite) string {
					return fmt.Sprintf("%s (%s:%d, hlc %s, event %s)", w.GetValue(), w.GetOrigin().GetRegion(), w.GetOrigin().GetSeq(),
						time.Unix(0, w.GetHlc().GetWallNanos()).UTC().Format("15:04:05.000"), w.GetEventId())
				}
				for _, cf := range resp.GetConflicts() {
					field := cf.GetTarget()
					if cf.GetKey() != "" {
						field += "[" + strconv.Quote(cf.GetKey()) + "]"
					}
					fmt.Fprintf(r.stdout, "%s  %s\n    winner %s\n    loser  %s\n", field, strings.ToLower(strings.TrimPrefix(cf.GetOp().String(), "MERGE_OP_")), side(cf.GetWinner()), side(cf.GetLoser()))
				}
				fmt.Fprintf(r.stdout, "(%d conflicts, served by %s/%s)\n", len(resp.GetConflicts()), resp.GetRegion(), resp.GetNode())
				if next := resp.GetNextPageToken(); next != "" {
					fmt.Fprintf(r.stdout, "more: --after %s\n", next)
				}
				return nil
			})
		},
	}
	x.register(cmd.Flags(), "ReadConflictsResponse")
	cmd.Flags().StringVar(&after, "after", "", "page token from a previous page (more: --after ...)")
	cmd.Flags().Uint32Var(&limit, "limit", 0, "maximum conflicts returned; 0: the server's default (100)")
	return cmd
}
