package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

func newGroupCmd(r *rootCmd) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create, list, inspect and delete consumer groups of a region",
		Long: `A consumer group is a named reader of a region's log: a filter (entity
prefixes, event types) and a checkpoint, a vector of how far the group has
read, stored through the region's Raft group. meridian consume reads the
group's events and commits its checkpoint after each page. A vector names
the same events in every region: to move a group, create it in the other
region with --after and the checkpoint group info shows.`,
		Args: exactArgs(0, ""),
	}
	cmd.AddCommand(newGroupCreateCmd(r), newGroupListCmd(r), newGroupInfoCmd(r), newGroupDeleteCmd(r))
	return cmd
}

func newGroupCreateCmd(r *rootCmd) *cobra.Command {
	var (
		after           string
		fromEnd, asJSON bool
		prefixes, types []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a consumer group, reading from the start, from now (--from-end) or after a vector (--after)",
		Example: `  meridian group create billing --prefix orders/ --type OrderPaid
  meridian group create audit --from-end
  meridian group create billing --after us-east=42,eu-west=17 --prefix orders/ --endpoint https://eu-node:7002`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &meridianv1.CreateGroupRequest{Name: args[0], Filter: eventFilter(prefixes, types)}
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
	return cmd
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
		Short: "Delete a consumer group (its checkpoint is lost)",
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
		page           uint32
	)
	cmd := &cobra.Command{
		Use:   "consume GROUP",
		Short: "Print a consumer group's events and commit its checkpoint after each page",
		Long: `Reads the group's events from its checkpoint, through its filter, a page
at a time; after printing a page it commits the page's vector as the
group's checkpoint. Delivery is at least once: a page printed but not
committed (the command stopped in between) is printed again by the next
consumer. Without --follow it stops at the end of the region log.`,
		Example: `  meridian consume billing
  meridian consume billing --follow`,
		Args: exactArgs(1, "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			// Each call has its own deadline (the SDK's attempt timeout);
			// the run as a whole ends at the log's end or on Ctrl-C.
			ctx := cmd.Context()
			n := 0
			err = c.ConsumeGroup(ctx, args[0], client.Consume{PageMax: page, Follow: follow}, func(p *meridianv1.ReadLogResponse) error {
				for _, e := range p.GetEvents() {
					n++
					if asJSON {
						if err := printJSON(r.stdout, e); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintln(r.stdout, formatEvent(e, true))
				}
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
				fmt.Fprintf(r.stdout, "(%d events; group %s at revision %d, checkpoint %s)\n", n, args[0], g.GetGroup().GetRevision(), formatCheckpoint(g.GetGroup().GetCheckpoint()))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&follow, "follow", false, "keep waiting for new events until Ctrl-C")
	f.Uint32Var(&page, "page", 0, "events per page (and per commit); 0: the server's default (100)")
	f.BoolVar(&asJSON, "json", false, "print each event as one JSON line")
	return cmd
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
