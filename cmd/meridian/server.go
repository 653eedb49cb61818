package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridiandb/meridian/internal/auth"
	"github.com/meridiandb/meridian/internal/nodetls"
	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/placement"
	"github.com/meridiandb/meridian/region"
)

// serverCommands returns the commands that run nodes (server, dev).
func serverCommands(r *rootCmd) []*cobra.Command {
	return []*cobra.Command{newServerCmd(r), newDevCmd(r)}
}

func newServerCmd(r *rootCmd) *cobra.Command {
	def := node.DefaultConfig()
	var (
		cfg     node.Config
		peers   string
		join    string
		keyFile string
		tlsf    nodetls.Files
		tokens  string
		reflect bool
		otlp    string
		ratio   float64
		compr   string
		logs    logFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one Meridian node (a member of its region's Raft group)",
		Long: `Run one Meridian node until SIGINT or SIGTERM.

Every flag can also be set through the MERIDIAN_* environment variable named
after it (flags win). A new region is formed by starting every initial member
with the same --peers and --bootstrap; a node with existing data ignores
--bootstrap.

Several regions: every node also runs a member of the placement group (the
table of entity homes) on --placement-addr. Exactly one node of a new
deployment starts with --placement-bootstrap; every other node, in any
region, starts with --join listing API addresses of nodes already in the
group. Without --placement-addr the node is a deployment of one region, as
before: every entity is homed in it.

Gossip (--gossip-addr, ADR 0007): nodes find each other through serf
pools, one per region (LAN) and, with --gossip-wan-addr, one for the
whole deployment (WAN). The first node of a region starts with --bootstrap alone (no
--peers); every other node starts with --join naming the API address of
any node of the deployment, and its region's leader adds it to the Raft
group, first as a non-voter, then as a voter once it has caught up. A node
failed in gossip for --dead-node-timeout is removed; 'meridian leave'
takes a node out gracefully (the process exits once it is out). With
--gossip-key-file gossip is encrypted; SIGHUP re-reads the file (rotation:
docs/OPERATIONS.md).

TLS (--tls-cert, --tls-key, --tls-ca; docs/SECURITY.md): the API serves
TLS, and every connection between nodes (Raft, placement, forwarding,
replication, joins) is mutual TLS, accepted only from a certificate the CA
bundle verifies that names a node of the same deployment
(spiffe://<deployment>/region/<region>/node/<node>; 'meridian tls' makes
them). The files are re-read when they change and on SIGHUP. Without them
every port is plaintext and the node says so in its log.

Tokens (--auth-token-file, needs TLS): every API call except health (and
reflection) then needs "Authorization: Bearer <token>" of a token whose role
(read, write, admin) covers it, within the token's entity prefixes if it has
any; nodes call each other by certificate. 'meridian token new' makes one.`,
		Example: `  meridian server --region eu --node-id n1 --data-dir /var/lib/meridian \
    --api-addr 0.0.0.0:7001 --raft-addr 0.0.0.0:7101 \
    --api-advertise 10.0.0.1:7001 --raft-advertise 10.0.0.1:7101 \
    --peers n1=10.0.0.1:7101=10.0.0.1:7001,n2=10.0.0.2:7101=10.0.0.2:7001,n3=10.0.0.3:7101=10.0.0.3:7001 \
    --bootstrap

  # a second region's first node, joining the placement group through the first region
  meridian server --region us-east --node-id n1 --data-dir /var/lib/meridian \
    --api-addr 0.0.0.0:7001 --raft-addr 0.0.0.0:7101 --placement-addr 0.0.0.0:7201 \
    --api-advertise 10.1.0.1:7001 --raft-advertise 10.1.0.1:7101 --placement-advertise 10.1.0.1:7201 \
    --peers n1=10.1.0.1:7101=10.1.0.1:7001 --bootstrap --join 10.0.0.1:7001

  # with gossip: any further node of any region joins by one address
  meridian server --region us-east --node-id n2 --data-dir /var/lib/meridian \
    --api-addr 0.0.0.0:7001 --raft-addr 0.0.0.0:7101 --placement-addr 0.0.0.0:7201 \
    --gossip-addr 0.0.0.0:7301 --gossip-wan-addr 0.0.0.0:7302 \
    --api-advertise 10.1.0.2:7001 --raft-advertise 10.1.0.2:7101 --placement-advertise 10.1.0.2:7201 \
    --gossip-advertise 10.1.0.2:7301 --gossip-wan-advertise 10.1.0.2:7302 \
    --gossip-key-file /etc/meridian/gossip.keys --join 10.0.0.1:7001`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Peers, err = parsePeers(peers); err != nil {
				return err
			}
			c, err := region.ParseCompression(compr)
			if err != nil {
				return usagef("--state-compression %q: want %s", compr, compressionNames())
			}
			cfg.StateCompression = c
			for _, s := range splitList(join) {
				s = strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://")
				cfg.Join = append(cfg.Join, s)
			}
			if err := checkPlacementFlags(cmd, cfg); err != nil {
				return err
			}
			if keyFile != "" {
				if cfg.GossipAddr == "" {
					return usagef("--gossip-key-file needs --gossip-addr")
				}
				if cfg.GossipKeys, err = readGossipKeys(keyFile); err != nil {
					return usageError{err}
				}
			}
			logger, err := logs.logger(r.stderr)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			switch {
			case tlsf == (nodetls.Files{}):
				logger.Warn("tls off: every port of this node is plaintext and unauthenticated; pass --tls-cert, --tls-key and --tls-ca (docs/SECURITY.md)")
			case tlsf.Cert == "" || tlsf.Key == "" || tlsf.CA == "":
				return usagef("TLS needs all of --tls-cert, --tls-key and --tls-ca (got cert %q, key %q, ca %q)", tlsf.Cert, tlsf.Key, tlsf.CA)
			default:
				if cfg.TLS, err = nodetls.Load(tlsf); err != nil {
					return usageError{err}
				}
				if want := (nodetls.Identity{Deployment: cfg.TLS.Identity().Deployment, Region: cfg.Region, Node: cfg.NodeID}); cfg.TLS.Identity() != want {
					return usagef("--tls-cert %s names %s, but this node is %s", tlsf.Cert, cfg.TLS.Identity(), want)
				}
				go cfg.TLS.Watch(cmd.Context(), 0, logger)
				if cfg.GossipAddr != "" && keyFile == "" {
					logger.Warn("tls on but gossip unencrypted: anyone who reaches the gossip ports can join the pools; pass --gossip-key-file (docs/SECURITY.md)")
				}
			}
			cfg.DisableReflection = !reflect
			if otlp != "" {
				tp, err := newTracerProvider(cmd.Context(), otlp, ratio, cfg.Region, cfg.NodeID)
				if err != nil {
					return err
				}
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), traceShutdownTimeout)
					defer cancel()
					if err := tp.Shutdown(ctx); err != nil {
						logger.Warn("tracing: spans not flushed at exit", "err", err)
					}
				}()
				cfg.TracerProvider = tp
			}
			switch {
			case tokens != "" && cfg.TLS == nil:
				return usagef("--auth-token-file needs TLS (--tls-cert, --tls-key, --tls-ca): bearer tokens must not cross the network in plaintext")
			case tokens != "":
				if cfg.Tokens, err = auth.LoadTokens(tokens); err != nil {
					return usageError{err}
				}
				go cfg.Tokens.Watch(cmd.Context(), 0, logger)
			case cfg.TLS != nil:
				logger.Warn("no --auth-token-file: anyone who reaches the API port can read, write and change placement (docs/SECURITY.md)")
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			n, err := node.Start(cmd.Context(), cfg)
			if errors.Is(err, placement.ErrInvalidConfig) {
				if !cfg.PlacementBootstrap && len(cfg.Join) == 0 {
					return usagef("--placement-addr on a node without placement state needs --placement-bootstrap (the first node of a new deployment) or --join (every other node): %v", err)
				}
				return usageError{err}
			}
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-cmd.Context().Done():
					logger.Info("signal received; stopping")
					return n.Close()
				case <-n.Left():
					logger.Info("left the deployment; stopping")
					return n.Close()
				case <-hup:
					if cfg.TLS != nil {
						if err := cfg.TLS.Reload(); err != nil {
							logger.Error("SIGHUP: tls credentials not reloaded; the old ones stay", "err", err)
						} else {
							logger.Info("SIGHUP: tls credentials reloaded", "not_after", cfg.TLS.Leaf().NotAfter.UTC().Format(time.RFC3339))
						}
					}
					if cfg.Tokens != nil {
						if err := cfg.Tokens.Reload(); err != nil {
							logger.Error("SIGHUP: token file not reloaded; the old tokens stay", "err", err)
						} else {
							logger.Info("SIGHUP: token file reloaded", "tokens", cfg.Tokens.Len())
						}
					}
					if keyFile == "" {
						if cfg.TLS == nil {
							logger.Info("SIGHUP: nothing to reload (no --gossip-key-file, no --tls-cert)")
						}
						continue
					}
					keys, err := readGossipKeys(keyFile)
					if err == nil {
						err = n.SetGossipKeys(keys)
					}
					if err != nil {
						logger.Error("SIGHUP: gossip keys not reloaded; the old keyring stays", "file", keyFile, "err", err)
					}
				}
			}
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
	f.StringVar(&cfg.PlacementRaftAddr, "placement-addr", os.Getenv("MERIDIAN_PLACEMENT_ADDR"), "listen address of this node's placement group member; empty: a single-region deployment (env MERIDIAN_PLACEMENT_ADDR)")
	f.StringVar(&cfg.PlacementRaftAdvertise, "placement-advertise", os.Getenv("MERIDIAN_PLACEMENT_ADVERTISE"), "placement address other members use; default --placement-addr (env MERIDIAN_PLACEMENT_ADVERTISE)")
	f.BoolVar(&cfg.PlacementBootstrap, "placement-bootstrap", envBool("MERIDIAN_PLACEMENT_BOOTSTRAP"), "form a new placement group with this node as its first voter, if it has no placement state; one node of a new deployment (env MERIDIAN_PLACEMENT_BOOTSTRAP)")
	f.StringVar(&join, "join", os.Getenv("MERIDIAN_JOIN"), "API addresses (host:port, comma-separated) of nodes already in the placement group, any region, to join through on first start (env MERIDIAN_JOIN)")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", os.Getenv("MERIDIAN_GOSSIP_ADDR"), "listen address in the region's LAN gossip pool (serf), TCP and UDP; empty: no gossip, static --peers only (env MERIDIAN_GOSSIP_ADDR)")
	f.StringVar(&cfg.GossipAdvertise, "gossip-advertise", os.Getenv("MERIDIAN_GOSSIP_ADVERTISE"), "LAN gossip address the region's nodes use; default --gossip-addr (env MERIDIAN_GOSSIP_ADVERTISE)")
	f.StringVar(&cfg.GossipWANAddr, "gossip-wan-addr", os.Getenv("MERIDIAN_GOSSIP_WAN_ADDR"), "listen address in the deployment's WAN gossip pool (region health, other regions' members), TCP and UDP; needs --gossip-addr (env MERIDIAN_GOSSIP_WAN_ADDR)")
	f.StringVar(&cfg.GossipWANAdvertise, "gossip-wan-advertise", os.Getenv("MERIDIAN_GOSSIP_WAN_ADVERTISE"), "WAN gossip address other regions use; default --gossip-wan-addr (env MERIDIAN_GOSSIP_WAN_ADVERTISE)")
	f.StringVar(&keyFile, "gossip-key-file", os.Getenv("MERIDIAN_GOSSIP_KEY_FILE"), "file of base64 gossip keys (16, 24 or 32 bytes), one per line, the first encrypts; re-read on SIGHUP (env MERIDIAN_GOSSIP_KEY_FILE)")
	f.StringVar(&tlsf.Cert, "tls-cert", os.Getenv("MERIDIAN_TLS_CERT"), "PEM certificate chain of this node (its URI SAN names the node: see 'meridian tls'); with --tls-key and --tls-ca turns TLS on for every port (env MERIDIAN_TLS_CERT)")
	f.StringVar(&tlsf.Key, "tls-key", os.Getenv("MERIDIAN_TLS_KEY"), "PEM private key of --tls-cert (env MERIDIAN_TLS_KEY)")
	f.StringVar(&tlsf.CA, "tls-ca", os.Getenv("MERIDIAN_TLS_CA"), "PEM CA bundle that peers' and clients' certificates must chain to (env MERIDIAN_TLS_CA)")
	f.StringVar(&tokens, "auth-token-file", os.Getenv("MERIDIAN_AUTH_TOKEN_FILE"), "file of bearer token hashes with roles ('meridian token new'); every API call but health then needs a token or a node certificate; needs TLS; re-read on change and SIGHUP (env MERIDIAN_AUTH_TOKEN_FILE)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", os.Getenv("MERIDIAN_METRICS_ADDR"), "listen address of /metrics (Prometheus), apart from the API; over TLS with --tls-cert, without tokens: keep it private (env MERIDIAN_METRICS_ADDR; empty: no metrics)")
	f.StringVar(&otlp, "otlp-endpoint", os.Getenv("MERIDIAN_OTLP_ENDPOINT"), "OTLP/HTTP collector to send traces to (http://host:4318 or host:port); empty: no tracing, at no cost (env MERIDIAN_OTLP_ENDPOINT)")
	f.Float64Var(&ratio, "trace-sample-ratio", envFloat("MERIDIAN_TRACE_SAMPLE_RATIO", 0.1), "share of traces started at this node that are recorded; calls from a traced caller follow its decision (env MERIDIAN_TRACE_SAMPLE_RATIO)")
	f.BoolVar(&reflect, "reflection", envBoolDefault("MERIDIAN_REFLECTION", true), "serve gRPC server reflection (env MERIDIAN_REFLECTION)")
	f.DurationVar(&cfg.DeadNodeTimeout, "dead-node-timeout", envDuration("MERIDIAN_DEAD_NODE_TIMEOUT", def.DeadNodeTimeout), "remove a region member from the Raft group once gossip has reported it failed for this long (env MERIDIAN_DEAD_NODE_TIMEOUT)")
	f.DurationVar(&cfg.StabilizationTime, "stabilization-time", envDuration("MERIDIAN_STABILIZATION_TIME", def.StabilizationTime), "how long a joining node must stay healthy before it becomes a voter (env MERIDIAN_STABILIZATION_TIME)")
	f.StringVar(&compr, "state-compression", envOr("MERIDIAN_STATE_COMPRESSION", string(region.CompressionNone)), "compression of the state's Badger tables: "+compressionNames()+"; none spends no CPU on it, snappy or zstd trade CPU for disk; tables already written keep theirs (env MERIDIAN_STATE_COMPRESSION)")
	f.IntVar(&cfg.VotersPerRegion, "voters-per-region", envInt("MERIDIAN_VOTERS_PER_REGION", 1), "placement voters each region keeps: 1 or 3 (env MERIDIAN_VOTERS_PER_REGION)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", def.ShutdownTimeout, "how long in-flight calls may take to finish on shutdown")
	logs.register(cmd, "info")
	return cmd
}

// compressionNames lists --state-compression's values: "none, snappy or zstd".
func compressionNames() string {
	names := region.CompressionNames()
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
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

// checkPlacementFlags reports contradictory placement flags as usage errors.
func checkPlacementFlags(cmd *cobra.Command, cfg node.Config) error {
	set := func(flag, env string) bool { return cmd.Flags().Changed(flag) || os.Getenv(env) != "" }
	if cfg.PlacementRaftAddr == "" {
		for _, f := range []struct{ flag, env string }{
			{"placement-advertise", "MERIDIAN_PLACEMENT_ADVERTISE"},
			{"placement-bootstrap", "MERIDIAN_PLACEMENT_BOOTSTRAP"},
			{"join", "MERIDIAN_JOIN"},
			{"voters-per-region", "MERIDIAN_VOTERS_PER_REGION"},
		} {
			if f.flag == "join" && cfg.GossipAddr != "" {
				continue // a single-region deployment joins its gossip pool
			}
			if set(f.flag, f.env) {
				return usagef("--%s needs --placement-addr (without it the node is a single-region deployment and runs no placement member)", f.flag)
			}
		}
		return checkJoinAddrs(cfg.Join)
	}
	// A node with no placement state and --placement-bootstrap forms its own
	// group and never asks the seeds: with --join as well it would split
	// the deployment into two placement groups.
	if cfg.PlacementBootstrap && len(cfg.Join) > 0 {
		return usagef("--placement-bootstrap and --join exclude each other: bootstrap forms a new placement group, --join joins an existing one; start one node of a new deployment with --placement-bootstrap and every other with --join")
	}
	if v := cfg.VotersPerRegion; v != 1 && v != 3 {
		return usagef("--voters-per-region %d: want 1 or 3", v)
	}
	return checkJoinAddrs(cfg.Join)
}

func checkJoinAddrs(addrs []string) error {
	for _, s := range addrs {
		if host, port, err := net.SplitHostPort(s); err != nil || host == "" || port == "" || port == "0" {
			return usagef("--join item %q: want host:port", s)
		}
	}
	return nil
}

// readGossipKeys reads a gossip key file: one base64 key per line (blank
// lines and lines starting with # ignored), the first one encrypts.
func readGossipKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("gossip key file %s line %d: not base64: %v", path, i+1, err)
		}
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("gossip key file %s line %d: key is %d bytes: want 16, 24 or 32 (for example: head -c 32 /dev/urandom | base64)", path, i+1, l)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip key file %s holds no key", path)
	}
	return keys, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// envInt returns key's integer value, or def when unset or not an integer
// (an unparsable value then fails the flag's own validation instead).
func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envBool(key string) bool { return envBoolDefault(key, false) }

// envFloat returns key's float value, or def when unset or not a number.
func envFloat(key string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(key), 64); err == nil {
		return v
	}
	return def
}

// envBoolDefault returns key's boolean value, or def when unset or not a
// boolean.
func envBoolDefault(key string, def bool) bool {
	if b, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return b
	}
	return def
}

// envDuration returns key's duration value, or def when unset or not a
// duration (an unparsable value is ignored, as for envInt).
func envDuration(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}
