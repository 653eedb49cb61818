package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/region"
)

// serverCommands returns the commands that run nodes (server, dev).
func serverCommands(r *rootCmd) []*cobra.Command {
	return []*cobra.Command{newServerCmd(r), newDevCmd(r)}
}

func newServerCmd(r *rootCmd) *cobra.Command {
	def := node.DefaultConfig()
	var (
		cfg   node.Config
		peers string
		logs  logFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one Meridian node (a member of its region's Raft group)",
		Long: `Run one Meridian node until SIGINT or SIGTERM.

Every flag can also be set through the MERIDIAN_* environment variable named
after it (flags win). A new region is formed by starting every initial member
with the same --peers and --bootstrap; a node with existing data ignores
--bootstrap.`,
		Example: `  meridian server --region eu --node-id n1 --data-dir /var/lib/meridian \
    --api-addr 0.0.0.0:7001 --raft-addr 0.0.0.0:7101 \
    --api-advertise 10.0.0.1:7001 --raft-advertise 10.0.0.1:7101 \
    --peers n1=10.0.0.1:7101=10.0.0.1:7001,n2=10.0.0.2:7101=10.0.0.2:7001,n3=10.0.0.3:7101=10.0.0.3:7001 \
    --bootstrap`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Peers, err = parsePeers(peers); err != nil {
				return err
			}
			logger, err := logs.logger(r.stderr)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			n, err := node.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			logger.Info("signal received; stopping")
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Region, "region", envOr("MERIDIAN_REGION", def.Region), "region name (env MERIDIAN_REGION)")
	f.StringVar(&cfg.NodeID, "node-id", envOr("MERIDIAN_NODE_ID", def.NodeID), "node id, unique in the region (env MERIDIAN_NODE_ID)")
	f.StringVar(&cfg.DataDir, "data-dir", os.Getenv("MERIDIAN_DATA_DIR"), "data directory (env MERIDIAN_DATA_DIR; required)")
	f.StringVar(&cfg.APIAddr, "api-addr", envOr("MERIDIAN_API_ADDR", def.APIAddr), "API listen address (env MERIDIAN_API_ADDR)")
	f.StringVar(&cfg.RaftAddr, "raft-addr", envOr("MERIDIAN_RAFT_ADDR", def.RaftAddr), "Raft listen address (env MERIDIAN_RAFT_ADDR)")
	f.StringVar(&cfg.APIAdvertise, "api-advertise", os.Getenv("MERIDIAN_API_ADVERTISE"), "API address others use; default the listen address (env MERIDIAN_API_ADVERTISE)")
	f.StringVar(&cfg.RaftAdvertise, "raft-advertise", os.Getenv("MERIDIAN_RAFT_ADVERTISE"), "Raft address others use; default --raft-addr (env MERIDIAN_RAFT_ADVERTISE)")
	f.StringVar(&peers, "peers", os.Getenv("MERIDIAN_PEERS"), "initial members: id=raftaddr=apiaddr, comma-separated (env MERIDIAN_PEERS)")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", envBool("MERIDIAN_BOOTSTRAP"), "form the region from --peers if this node has no state (env MERIDIAN_BOOTSTRAP)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", def.ShutdownTimeout, "how long in-flight calls may take to finish on shutdown")
	logs.register(cmd, "info")
	return cmd
}

// parsePeers parses "id=raftaddr=apiaddr,..." (apiaddr optional).
func parsePeers(s string) ([]region.Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var peers []region.Peer
	for _, item := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, usagef("--peers item %q: want id=raftaddr=apiaddr", item)
		}
		p := region.Peer{ID: parts[0], RaftAddr: parts[1]}
		if len(parts) == 3 {
			p.APIAddr = parts[2]
		}
		peers = append(peers, p)
	}
	return peers, nil
}

func envBool(key string) bool {
	b, err := strconv.ParseBool(os.Getenv(key))
	return err == nil && b
}
