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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/node"
	"github.com/meridiandb/meridian/region"
)

// Bounds of `meridian dev`.
const (
	devNodesMax = 7
	// devLeaderTimeout bounds the wait for the first leader; an election
	// takes 1-3 s, more on a loaded machine.
	devLeaderTimeout = 60 * time.Second
)

// devOptions configure a local development region.
type devOptions struct {
	region   string
	nodes    int
	host     string
	apiPort  int
	raftPort int
	dataDir  string // empty: a temporary directory, removed on stop
	logger   *slog.Logger
}

// devCluster is a local region of several nodes in one process.
type devCluster struct {
	opts    devOptions
	dataDir string
	tempDir bool
	nodes   []*node.Node
}

func (o devOptions) apiAddr(i int) string {
	return net.JoinHostPort(o.host, strconv.Itoa(o.apiPort+i))
}

func (o devOptions) raftAddr(i int) string {
	return net.JoinHostPort(o.host, strconv.Itoa(o.raftPort+i))
}

// startDev starts every node of the dev region; on error, what started is stopped.
func startDev(ctx context.Context, o devOptions) (*devCluster, error) {
	if o.nodes < 1 || o.nodes > devNodesMax {
		return nil, usagef("--nodes %d outside [1, %d]", o.nodes, devNodesMax)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"--api-port", o.apiPort}, {"--raft-port", o.raftPort}} {
		if p.port < 1 || p.port+o.nodes-1 > 65535 {
			return nil, usagef("%s %d: the %d ports from it must lie in [1, 65535]", p.name, p.port, o.nodes)
		}
	}
	if o.apiPort < o.raftPort+o.nodes && o.raftPort < o.apiPort+o.nodes {
		return nil, usagef("--api-port %d and --raft-port %d ranges overlap for %d nodes", o.apiPort, o.raftPort, o.nodes)
	}
	c := &devCluster{opts: o, dataDir: o.dataDir}
	if c.dataDir == "" {
		dir, err := os.MkdirTemp("", "meridian-dev-")
		if err != nil {
			return nil, err
		}
		c.dataDir, c.tempDir = dir, true
	}
	peers := make([]region.Peer, o.nodes)
	for i := range peers {
		peers[i] = region.Peer{ID: devNodeID(i), RaftAddr: o.raftAddr(i), APIAddr: o.apiAddr(i)}
	}
	for i := range o.nodes {
		n, err := node.Start(ctx, node.Config{
			Region:    o.region,
			NodeID:    devNodeID(i),
			DataDir:   filepath.Join(c.dataDir, devNodeID(i)),
			APIAddr:   o.apiAddr(i),
			RaftAddr:  o.raftAddr(i),
			Peers:     peers,
			Bootstrap: true,
			Network:   region.TCP,
			Logger:    o.logger,
		})
		if err != nil {
			_ = c.Close()
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("dev: start %s: %w (is another 'meridian dev' running? choose other ports with --api-port and --raft-port)", devNodeID(i), err)
			}
			return nil, fmt.Errorf("dev: start %s: %w", devNodeID(i), err)
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

func devNodeID(i int) string { return "n" + strconv.Itoa(i+1) }

// endpoints returns the API URLs of every node.
func (c *devCluster) endpoints() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.URL()
	}
	return out
}

// waitLeader polls every node until all of them name the same leader.
func (c *devCluster) waitLeader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, devLeaderTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		leader := c.nodes[0].Region().Status().GetLeader()
		agreed := leader != ""
		for _, n := range c.nodes[1:] {
			agreed = agreed && n.Region().Status().GetLeader() == leader
		}
		if agreed {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("dev: no leader elected within %s: %w", devLeaderTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// Close stops every node (in parallel: a region stopping one node at a time
// spends its time re-electing) and removes a temporary data directory.
func (c *devCluster) Close() error {
	errs := make(chan error, len(c.nodes))
	for _, n := range c.nodes {
		go func() { errs <- n.Close() }()
	}
	var all []error
	for range c.nodes {
		all = append(all, <-errs)
	}
	if c.tempDir {
		all = append(all, os.RemoveAll(c.dataDir))
	}
	return errors.Join(all...)
}

// printBanner tells the user where the region is and what to try.
func (c *devCluster) printBanner(w io.Writer, leader string) {
	where := c.dataDir
	if c.tempDir {
		where += " (temporary, removed on exit)"
	}
	fmt.Fprintf(w, "Meridian dev region %q is up: %d nodes, data in %s\n", c.opts.region, len(c.nodes), where)
	for i, n := range c.nodes {
		role := ""
		if devNodeID(i) == leader {
			role = "  (leader)"
		}
		fmt.Fprintf(w, "  %s  api %s  raft %s%s\n", devNodeID(i), n.URL(), c.opts.raftAddr(i), role)
	}
	ep := ""
	if c.nodes[0].URL() != defaultEndpoint {
		ep = " --endpoint " + c.nodes[0].URL()
	}
	fmt.Fprintf(w, "\nTry, in another terminal:\n")
	fmt.Fprintf(w, "  meridian append order-42 --type OrderPlaced --data '{\"total\":10}'%s\n", ep)
	fmt.Fprintf(w, "  meridian read order-42%s\n", ep)
	fmt.Fprintf(w, "  meridian tail order-42%s\n", ep)
	fmt.Fprintf(w, "  meridian status --endpoint %s\n", strings.Join(c.endpoints(), ","))
	fmt.Fprintf(w, "  grpcurl -plaintext %s list\n", c.nodes[0].Addr())
	fmt.Fprintf(w, "\nCtrl-C stops the region.\n")
}

// smoke appends through one node and reads back through another.
func (c *devCluster) smoke(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	eps := c.endpoints()
	writer, err := client.New([]string{eps[len(eps)-1]})
	if err != nil {
		return err
	}
	defer writer.Close()
	entity := "smoke-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	resp, err := writer.Append(ctx, entity, []*meridianv1.ProposedEvent{
		{Type: "SmokeTested", Data: []byte(`{"ok":true}`), ContentType: "application/json"},
	})
	if err != nil {
		return fmt.Errorf("smoke: append: %w", err)
	}
	reader, err := client.New([]string{eps[0]}, client.WithSessionToken(writer.SessionToken()))
	if err != nil {
		return err
	}
	defer reader.Close()
	read, err := reader.Read(ctx, entity, client.WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG))
	if err != nil {
		return fmt.Errorf("smoke: read: %w", err)
	}
	if len(read.GetEvents()) != 1 || read.GetEvents()[0].GetVersion() != resp.GetLastVersion() {
		return fmt.Errorf("smoke: read back %d events (head %d), want 1 at version %d", len(read.GetEvents()), read.GetHeadVersion(), resp.GetLastVersion())
	}
	fmt.Fprintf(w, "smoke: appended %s v%d via %s, read it back via %s: ok\n", entity, resp.GetLastVersion(), eps[len(eps)-1], eps[0])
	return nil
}

func newDevCmd(r *rootCmd) *cobra.Command {
	o := devOptions{region: "local", nodes: 3, host: "127.0.0.1", apiPort: 7001, raftPort: 7101}
	var (
		smoke bool
		logs  logFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local 3-node region in this process until Ctrl-C",
		Long: `Run a local region ("local", nodes n1..n3) in one process on 127.0.0.1:
APIs on --api-port and the ports after it, Raft on --raft-port and after.
Data goes to a temporary directory (removed on exit) or to --data-dir (kept).
With --smoke it appends and reads one event, then stops: exit 0 means it works.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(r.stderr)
			if err != nil {
				return err
			}
			o.logger = logger
			ctx := cmd.Context()
			c, err := startDev(ctx, o)
			if err != nil {
				return err
			}
			leader, err := c.waitLeader(ctx)
			if err == nil {
				if smoke {
					err = c.smoke(ctx, r.stdout)
				} else {
					c.printBanner(r.stdout, leader)
					<-ctx.Done()
					fmt.Fprintln(r.stdout, "stopping...")
				}
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
	f.StringVar(&o.dataDir, "data-dir", "", "keep the region's data here (default: a temporary directory, removed on exit)")
	f.IntVar(&o.apiPort, "api-port", o.apiPort, "API port of n1; n2, n3 use the next ones")
	f.IntVar(&o.raftPort, "raft-port", o.raftPort, "Raft port of n1; n2, n3 use the next ones")
	f.IntVar(&o.nodes, "nodes", o.nodes, "number of nodes (1 to 7)")
	f.BoolVar(&smoke, "smoke", false, "append and read one event, then stop (exit 0 when it works)")
	logs.register(cmd, "warn")
	return cmd
}
