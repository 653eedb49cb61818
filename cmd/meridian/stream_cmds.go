package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/region"
)

func newStreamCmd(r *rootCmd) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "A stream's lifecycle: metadata (max count, max age, truncation, custom keys), soft and hard delete",
		Long: `A stream's lifecycle is kept as events of the stream itself, with the
reserved types $metadata, $deleted and $tombstone: its home orders them and
every region applies them like any other event, so every region hides the
same versions. Reads skip what they hide, and each region's leader drops
the hidden events' data (status --json reports the reclaimed bytes). A
$tombstone refuses every later append, in every region.`,
		Args: exactArgs(0, ""),
	}
	cmd.AddCommand(newStreamMetaCmd(r), newStreamDeleteCmd(r))
	return cmd
}

func newStreamMetaCmd(r *rootCmd) *cobra.Command {
	var (
		maxCount, truncateBefore uint64
		maxAge                   time.Duration
		custom                   []string
	)
	cmd := &cobra.Command{
		Use:   "meta ENTITY",
		Short: "Show a stream's metadata, or set it (the flags replace the whole metadata)",
		Example: `  meridian stream meta eu/order-1
  meridian stream meta eu/order-1 --max-count 100 --custom owner=billing
  meridian stream meta eu/order-1 --truncate-before 42`,
		Args: exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			set := fl.Changed("max-count") || fl.Changed("max-age") || fl.Changed("truncate-before") || fl.Changed("custom")
			m := &meridianv1.StreamMetadata{MaxCount: maxCount, MaxAgeMs: uint64(maxAge.Milliseconds()), TruncateBefore: truncateBefore}
			for _, kv := range custom {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--custom %q: want KEY=VALUE", kv)
				}
				if m.Custom == nil {
					m.Custom = map[string]string{}
				}
				m.Custom[k] = v
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if set {
					data, err := protojson.Marshal(m)
					if err != nil {
						return err
					}
					return appendLifecycle(ctx, r, c, args[0], region.TypeStreamMetadata, data)
				}
				resp, err := c.Read(ctx, args[0], client.Backward(), client.Limit(1))
				if err != nil {
					return err
				}
				md := resp.GetMetadata()
				fmt.Fprintf(r.stdout, "%s  head version %d%s\n", args[0], resp.GetHeadVersion(), lifecycleNote(resp))
				fmt.Fprintf(r.stdout, "  max count        %s\n", zeroNone(md.GetMaxCount(), ""))
				fmt.Fprintf(r.stdout, "  max age          %s\n", zeroNone(md.GetMaxAgeMs(), "ms"))
				fmt.Fprintf(r.stdout, "  truncate before  %s\n", zeroNone(resp.GetTruncateBefore(), ""))
				for k, v := range md.GetCustom() {
					fmt.Fprintf(r.stdout, "  custom %s = %s\n", k, v)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&maxCount, "max-count", 0, "reads return at most the last N versions (0: no limit)")
	f.DurationVar(&maxAge, "max-age", 0, "reads skip events stamped longer ago (0: no limit)")
	f.Uint64Var(&truncateBefore, "truncate-before", 0, "reads skip versions below this one (never moves back)")
	f.StringArrayVar(&custom, "custom", nil, "an application key KEY=VALUE (repeatable, up to 64)")
	return cmd
}

func newStreamDeleteCmd(r *rootCmd) *cobra.Command {
	var hard bool
	cmd := &cobra.Command{
		Use:   "delete ENTITY",
		Short: "Delete a stream: soft (appends go on after it, versions continue) or --hard (appends refused everywhere)",
		Example: `  meridian stream delete eu/order-1
  meridian stream delete eu/order-1 --hard`,
		Args: exactArgs(1, "ENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ := region.TypeStreamDeleted
			if hard {
				typ = region.TypeStreamTombstone
			}
			return r.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				return appendLifecycle(ctx, r, c, args[0], typ, nil)
			})
		},
	}
	cmd.Flags().BoolVar(&hard, "hard", false, "a tombstone: the stream refuses every later append, in every region")
	return cmd
}

// appendLifecycle appends one lifecycle event and says what it did.
func appendLifecycle(ctx context.Context, r *rootCmd, c *client.Client, entity, typ string, data []byte) error {
	ev := &meridianv1.ProposedEvent{Id: uuid.Must(uuid.NewV7()).String(), Type: typ, Data: data}
	if data != nil {
		ev.ContentType = "application/json"
	}
	resp, err := c.Append(ctx, entity, []*meridianv1.ProposedEvent{ev})
	if err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "appended %s to %s at version %d (%s)\n", typ, entity, resp.GetLastVersion(), resp.GetRegion())
	printToken(r.stdout, resp.GetSessionToken())
	return nil
}

// lifecycleNote says what a read's stream lifecycle hides, "" when nothing.
func lifecycleNote(resp *meridianv1.ReadResponse) string {
	switch {
	case resp.GetTombstone() != 0:
		return fmt.Sprintf(", deleted for good at version %d", resp.GetTombstone())
	case resp.GetTruncateBefore() > 1:
		return fmt.Sprintf(", versions below %d deleted or truncated", resp.GetTruncateBefore())
	}
	return ""
}

func zeroNone(v uint64, unit string) string {
	if v == 0 {
		return "none"
	}
	return fmt.Sprintf("%d%s", v, unit)
}
