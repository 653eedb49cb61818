package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

func newMembersCmd(r *rootCmd) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the deployment's nodes as the contacted node's gossip pool sees them",
		Long: `List every node of every region that the contacted node's gossip pool
knows: its addresses, its gossip status (alive, leaving, left, failed) and,
for nodes of the contacted node's region, its place in the region's Raft
group (leader, voter, nonvoter, none). Then each region's health: how many
of its nodes are alive.

Nodes started without --gossip-addr do not serve it (Unimplemented).`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.ListMembers(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					b, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(r.stdout, string(b))
					return err
				}
				fmt.Fprintf(r.stdout, "answered by %s\n", resp.GetAnsweredBy())
				tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "REGION\tNODE\tSTATUS\tRAFT\tAPI\tRAFT ADDR\tLAN GOSSIP\tWAN GOSSIP")
				for _, m := range resp.GetMembers() {
					status := enumWord(m.GetStatus().String(), "MEMBER_STATUS_")
					if d := m.GetStatusFor(); d != nil {
						status += " (" + d.AsDuration().Round(time.Second).String() + ")"
					}
					role := "-"
					if m.GetRaftRole() != meridianv1.RaftRole_RAFT_ROLE_UNSPECIFIED {
						role = enumWord(m.GetRaftRole().String(), "RAFT_ROLE_")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.GetRegion(), m.GetNode(), status, role, m.GetApiAddress(), m.GetRaftAddress(), m.GetGossipAddress(), orDash(m.GetGossipWanAddress()))
				}
				_ = tw.Flush()
				tw = tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "\nREGION\tREACHABLE\tALIVE")
				for _, h := range resp.GetRegions() {
					reach := "no"
					if h.GetReachable() {
						reach = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d/%d\n", h.GetRegion(), reach, h.GetAlive(), h.GetMembers())
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the ListMembersResponse as JSON")
	return cmd
}

func newLeaveCmd(r *rootCmd) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Take the node at --endpoint out of the deployment gracefully; it then stops",
		Long: `Take one node out of the deployment: it hands on its region's leadership
if it holds it, announces its leave to the gossip pool, and waits until the
region's leader has removed it from the Raft group; then its server process
exits. --endpoint must name exactly that node. The only voter of a region
cannot leave (FailedPrecondition).`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n := len(r.endpoints()); n != 1 {
				return usagef("leave acts on the node it is sent to: --endpoint must name exactly one node (got %d)", n)
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				removed, err := c.Leave(ctx)
				if err != nil {
					return err
				}
				if !removed {
					return fmt.Errorf("leave announced but the region's group still lists the node")
				}
				_, err = fmt.Fprintln(r.stdout, "left: the region's group no longer lists the node; it is stopping")
				return err
			})
		},
	}
}

// enumWord turns "PREFIX_SOME_VALUE" into "some-value".
func enumWord(s, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s, prefix)), "_", "-")
}
