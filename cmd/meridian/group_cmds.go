package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

func newGroupCmd(r *rootCmd) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create, list, inspect and delete consumer groups of a region",
		Long: `A consumer group is a named reader of a region's log: a filter (entity
prefixes, event types), a checkpoint (a vector of how far the group has
handled the log) and the events acked beyond it, stored through the
region's Raft group. Its consumers (meridian consume, or the SDK's
ConsumeGroup) share its events: each event goes to one consumer at a time,
an entity's events one after another, and an event not acked within the
ack timeout or nacked is delivered again, until max deliveries, when it
is parked (meridian group parked). A vector names the same events in every
region: meridian group move recreates a group in another region where it
stopped.`,
		Args: exactArgs(0, ""),
	}
	cmd.AddCommand(newGroupCreateCmd(r), newGroupListCmd(r), newGroupInfoCmd(r), newGroupDeleteCmd(r), newGroupMoveCmd(r), newGroupParkedCmd(r))
	return cmd
}

func newGroupCreateCmd(r *rootCmd) *cobra.Command {
	var (
		after           string
		fromEnd, asJSON bool
		prefixes, types []string
		settings        groupSettingsFlags
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a consumer group, reading from the start, from now (--from-end) or after a vector (--after)",
		Example: `  meridian group create billing --prefix orders/ --type OrderPaid
  meridian group create audit --from-end
  meridian group create billing --after us-east=42,eu-west=17 --prefix orders/ --endpoint https://eu-node:7002`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &meridianv1.CreateGroupRequest{Name: args[0], Filter: eventFilter(prefixes, types), Settings: settings.proto()}
			if fromEnd && cmd.Flags().Changed("after") {
				return usagef("--from-end and --after are two ways to say where to start: give one")
			}
			if cmd.Flags().Changed("after") {
				v, err := parseVectorFlag(after)
				if err != nil {
					return err
				}
				req.Start = v
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if fromEnd {
					// The region's applied vector covers everything it holds now.
					st, err := c.Status(ctx)
					if err != nil {
						return err
					}
					req.Start = st.GetApplied()
				}
				g, err := c.CreateGroup(ctx, req)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, g)
				}
				fmt.Fprintf(r.stdout, "created group %s at %s\n", g.GetName(), formatCheckpoint(g.GetCheckpoint()))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&after, "after", "", "start after this vector: REGION=SEQ,... (a group's checkpoint from another region)")
	f.BoolVar(&fromEnd, "from-end", false, "start at the region's current end: only events applied from now on")
	f.StringArrayVar(&prefixes, "prefix", nil, "only entities starting with this prefix (repeatable, up to 16)")
	f.StringArrayVar(&types, "type", nil, "only events of this type (repeatable, up to 16)")
	f.BoolVar(&asJSON, "json", false, "print the ConsumerGroup as JSON")
	settings.register(f)
	return cmd
}

// groupSettingsFlags are the --max-deliveries, --ack-timeout and
// --max-in-flight flags of group create.
type groupSettingsFlags struct {
	maxDeliveries, maxInFlight uint32
	ackTimeout                 time.Duration
}

func (g *groupSettingsFlags) register(f *pflag.FlagSet) {
	f.Uint32Var(&g.maxDeliveries, "max-deliveries", 0, "deliveries of an event before it is parked, 1 to 100 (0: 5)")
	f.DurationVar(&g.ackTimeout, "ack-timeout", 0, "how long a consumer holds an event before it is delivered again, 100ms to 1h (0: 30s)")
	f.Uint32Var(&g.maxInFlight, "max-in-flight", 0, "unacked events per consumer, 1 to 10000 (0: 100)")
}

func (g *groupSettingsFlags) proto() *meridianv1.GroupSettings {
	return &meridianv1.GroupSettings{MaxDeliveries: g.maxDeliveries, AckTimeoutMs: uint32(g.ackTimeout.Milliseconds()), MaxInFlight: g.maxInFlight}
}

func newGroupListCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups of the contacted region",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.ListGroups(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				tw := tabwriter.NewWriter(r.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tREVISION\tFILTER\tCHECKPOINT")
				for _, g := range resp.GetGroups() {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", g.GetName(), g.GetRevision(), formatFilter(g.GetFilter()), formatCheckpoint(g.GetCheckpoint()))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(r.stdout, "(%d groups in %s, served by %s)\n", len(resp.GetGroups()), resp.GetRegion(), resp.GetNode())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the ListGroupsResponse as JSON")
	return cmd
}

func newGroupInfoCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info NAME",
		Short: "Show a consumer group: filter, checkpoint, revision",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.GetGroup(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.stdout, resp)
				}
				g := resp.GetGroup()
				fmt.Fprintf(r.stdout, "group %s in %s (served by %s)\n", g.GetName(), resp.GetRegion(), resp.GetNode())
				fmt.Fprintf(r.stdout, "  filter      %s\n", formatFilter(g.GetFilter()))
				fmt.Fprintf(r.stdout, "  checkpoint  %s\n", formatCheckpoint(g.GetCheckpoint()))
				fmt.Fprintf(r.stdout, "  acked       %d beyond the checkpoint\n", len(g.GetAcked()))
				fmt.Fprintf(r.stdout, "  acks        %d (%d duplicate)\n", g.GetAcks(), g.GetDuplicateAcks())
				fmt.Fprintf(r.stdout, "  parked      %d\n", g.GetParkedCount())
				s := g.GetSettings()
				fmt.Fprintf(r.stdout, "  settings    max deliveries %s, ack timeout %s, max in flight %s\n",
					orDefault(s.GetMaxDeliveries(), "5"), ackTimeoutText(s.GetAckTimeoutMs()), orDefault(s.GetMaxInFlight(), "100"))
				fmt.Fprintf(r.stdout, "  revision    %d\n", g.GetRevision())
				fmt.Fprintf(r.stdout, "  created     %s\n", time.Unix(0, g.GetCreatedUnixNanos()).UTC().Format(time.RFC3339Nano))
				fmt.Fprintf(r.stdout, "  updated     %s\n", time.Unix(0, g.GetUpdatedUnixNanos()).UTC().Format(time.RFC3339Nano))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the GetGroupResponse as JSON")
	return cmd
}

func newGroupDeleteCmd(r *rootCmd) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a consumer group (its checkpoint and parked events are lost)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteGroup(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(r.stdout, "deleted group %s\n", args[0])
				return nil
			})
		},
	}
}

func newConsumeCmd(r *rootCmd) *cobra.Command {
	var (
		follow, asJSON bool
		batch          uint32
		consumer       string
		nackTypes      []string
	)
	cmd := &cobra.Command{
		Use:   "consume GROUP",
		Short: "Consume a group's events as one of its consumers: print each, then ack it",
		Long: `Joins the group as a consumer: fetches the events the group leases to
it, prints each and acks them after each batch. Several consumers of one
group share its events (each event to one of them, an entity's events one
at a time, in order). An event printed but not acked (the command stopped
in between) is delivered again after the group's ack timeout. --nack-type
gives events of a type back instead (delivered again until the group's max
deliveries, then parked). Without --follow it stops once nothing is ready.`,
		Example: `  meridian consume billing
  meridian consume billing --follow --consumer billing-1`,
		Args: exactArgs(1, "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			// Each call has its own deadline (the SDK's attempt timeout);
			// the run as a whole ends when nothing is ready or on Ctrl-C.
			ctx := cmd.Context()
			var stats client.ConsumeStats
			err = c.ConsumeGroup(ctx, args[0], client.Consume{Consumer: consumer, Batch: batch, Follow: follow, Stats: &stats},
				func(_ context.Context, d *meridianv1.Delivery) error {
					e := d.GetEvent()
					if slices.Contains(nackTypes, e.GetType()) {
						return fmt.Errorf("--nack-type %s", e.GetType())
					}
					if asJSON {
						return printJSON(r.stdout, d)
					}
					line := formatEvent(e, true)
					if d.GetDelivery() > 1 {
						line += fmt.Sprintf("  (delivery %d)", d.GetDelivery())
					}
					fmt.Fprintln(r.stdout, line)
					return nil
				})
			if err != nil {
				return err
			}
			if !asJSON {
				g, err := c.GetGroup(context.WithoutCancel(ctx), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(r.stdout, "(%d delivered, %d acked, %d duplicate, %d nacked, %d parked; group %s at checkpoint %s)\n",
					stats.Delivered, stats.Acked, stats.Duplicate, stats.Nacked, stats.Parked, args[0], formatCheckpoint(g.GetGroup().GetCheckpoint()))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&follow, "follow", false, "keep waiting for new events until Ctrl-C")
	f.Uint32Var(&batch, "batch", 0, "events fetched (and acked) at once; 0: 100, bounded by the group's max in flight")
	f.StringVar(&consumer, "consumer", "", "this consumer's name in the group (default: a random one)")
	f.StringArrayVar(&nackTypes, "nack-type", nil, "give events of this type back instead of acking them (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print each delivery as one JSON line")
	return cmd
}

func newGroupMoveCmd(r *rootCmd) *cobra.Command {
	var (
		to         string
		keepSource bool
	)
	cmd := &cobra.Command{
		Use:   "move NAME --to ENDPOINTS",
		Short: "Recreate a group in another region where it stopped, then delete it here",
		Long: `Reads the group from the contacted region and creates it, with the same
filter, settings, checkpoint and acked events, in the region of --to, then
deletes it in the contacted region (unless --keep-source). Stop the
group's consumers first: an ack stored here after the copy is not moved,
and that event is delivered again there. Events leased but not acked are
delivered again there. Parked events do not move: a group with parked
events is refused unless --keep-source (handle or drop them first).`,
		Example: `  meridian group move billing --endpoint http://us-node:7001 --to http://eu-node:7002`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(to) == "" {
				return usagef("--to: give an endpoint (or several, comma separated) of the region to move the group to")
			}
			return r.withClient(cmd, func(ctx context.Context, src *client.Client) error {
				got, err := src.GetGroup(ctx, args[0])
				if err != nil {
					return err
				}
				g := got.GetGroup()
				if g.GetParkedCount() > 0 && !keepSource {
					return usagef("group %s has %d parked events, which do not move: list them with meridian group parked %s, drop them, or pass --keep-source", g.GetName(), g.GetParkedCount(), g.GetName())
				}
				connOpts, err := r.connOptions()
				if err != nil {
					return err
				}
				dst, err := client.New(strings.Split(to, ","), connOpts...)
				if err != nil {
					return err
				}
				defer dst.Close()
				created, err := dst.CreateGroup(ctx, &meridianv1.CreateGroupRequest{
					Name: g.GetName(), Filter: g.GetFilter(), Settings: g.GetSettings(), Start: g.GetCheckpoint(), Acked: g.GetAcked(),
				})
				if err != nil {
					return fmt.Errorf("create the group at %s: %w", to, err)
				}
				fmt.Fprintf(r.stdout, "created group %s at %s with %d acked beyond it (from region %s)\n",
					created.GetName(), formatCheckpoint(created.GetCheckpoint()), len(created.GetAcked()), got.GetRegion())
				if keepSource {
					return nil
				}
				if err := src.DeleteGroup(ctx, g.GetName()); err != nil {
					return fmt.Errorf("the group was created at %s; deleting it in %s failed: %w", to, got.GetRegion(), err)
				}
				fmt.Fprintf(r.stdout, "deleted group %s in %s\n", g.GetName(), got.GetRegion())
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "endpoints of the region to move the group to (comma separated)")
	cmd.Flags().BoolVar(&keepSource, "keep-source", false, "keep the group in the contacted region too")
	return cmd
}

func newGroupParkedCmd(r *rootCmd) *cobra.Command {
	var (
		drop   []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "parked NAME",
		Short: "List a group's parked events, or drop some (--drop REGION:SEQ)",
		Example: `  meridian group parked billing
  meridian group parked billing --drop us-east:42`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var dots []*meridianv1.Dot
			for _, s := range drop {
				region, seq, ok := strings.Cut(s, ":")
				n, err := strconv.ParseUint(seq, 10, 64)
				if !ok || region == "" || err != nil || n == 0 {
					return usagef("--drop %q: want REGION:SEQ, an event's origin as group parked prints it, for example us-east:42", s)
				}
				dots = append(dots, &meridianv1.Dot{Region: region, Seq: n})
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if len(dots) > 0 {
					n, err := c.DropParked(ctx, args[0], dots)
					if err != nil {
						return err
					}
					fmt.Fprintf(r.stdout, "dropped %d parked events of group %s\n", n, args[0])
					return nil
				}
				var after *meridianv1.Dot
				total := 0
				for {
					page, err := c.ListParked(ctx, args[0], after, 0)
					if err != nil {
						return err
					}
					for _, p := range page.GetParked() {
						total++
						if asJSON {
							if err := printJSON(r.stdout, p); err != nil {
								return err
							}
							continue
						}
						o := p.GetEvent().GetOrigin()
						fmt.Fprintf(r.stdout, "%s:%d  %s  deliveries %d  parked %s  reason %q\n", o.GetRegion(), o.GetSeq(),
							formatEvent(p.GetEvent(), true), p.GetDeliveries(), time.Unix(0, p.GetParkedUnixNanos()).UTC().Format(time.RFC3339), p.GetReason())
					}
					if page.GetEnd() || len(page.GetParked()) == 0 {
						break
					}
					after = page.GetParked()[len(page.GetParked())-1].GetEvent().GetOrigin()
				}
				if !asJSON {
					fmt.Fprintf(r.stdout, "(%d parked events)\n", total)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&drop, "drop", nil, "drop this parked event, REGION:SEQ (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each parked event as one JSON line")
	return cmd
}

func ackTimeoutText(ms uint32) string {
	if ms == 0 {
		return "30s (default)"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// orDefault prints a setting, or the default it stands for when 0.
func orDefault[T ~uint32](v T, def string) string {
	if v == 0 {
		return def + " (default)"
	}
	return fmt.Sprint(v)
}

// formatCheckpoint prints a vector; "the start" when empty.
func formatCheckpoint(v map[string]uint64) string {
	if s := formatVectorFlag(v); s != "" {
		return s
	}
	return "the start"
}

// formatFilter prints a filter; "everything" when empty.
func formatFilter(f *meridianv1.EventFilter) string {
	var parts []string
	if p := f.GetEntityPrefixes(); len(p) > 0 {
		parts = append(parts, "prefix "+strings.Join(p, ","))
	}
	if t := f.GetEventTypes(); len(t) > 0 {
		parts = append(parts, "type "+strings.Join(t, ","))
	}
	if len(parts) == 0 {
		return "everything"
	}
	return strings.Join(parts, "; ")
}
