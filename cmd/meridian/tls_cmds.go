package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridiandb/meridian/internal/nodetls"
)

// Default validities of what 'meridian tls' issues.
const (
	caValidityDefault   = 10 * 365 * 24 * time.Hour
	certValidityDefault = 365 * 24 * time.Hour
)

func newTLSCmd(r *rootCmd) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Make a deployment's CA and its nodes' and clients' certificates",
		Long: `Make TLS material for a deployment (docs/SECURITY.md).

A deployment has one CA. Each node gets a certificate whose URI SAN names it
(spiffe://<deployment>/region/<region>/node/<node>): nodes accept each other
only with such a certificate of their own deployment. Clients verify a node
by its DNS or IP SANs (--host), as any TLS client does. Keys are ECDSA P-256;
key files are written mode 0600.`,
		Args: exactArgs(0, ""),
	}
	cmd.AddCommand(newTLSCACmd(r), newTLSCertCmd(r))
	return cmd
}

func newTLSCACmd(r *rootCmd) *cobra.Command {
	var (
		dir, deployment string
		validity        time.Duration
	)
	cmd := &cobra.Command{
		Use:     "ca",
		Short:   "Make a deployment's CA: DIR/ca.pem and DIR/ca-key.pem",
		Example: "  meridian tls ca --dir /etc/meridian/ca --deployment prod",
		Args:    exactArgs(0, ""),
		RunE: func(*cobra.Command, []string) error {
			if err := (nodetls.Identity{Deployment: deployment, Client: "x"}).Validate(); err != nil {
				return usageError{err}
			}
			if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err == nil {
				return usagef("%s already holds a CA (ca-key.pem); refusing to overwrite it", dir)
			}
			ca, err := nodetls.NewCA(deployment, validity)
			if err != nil {
				return err
			}
			if err := ca.WriteCA(dir); err != nil {
				return err
			}
			fmt.Fprintf(r.stdout, "CA of deployment %s: %s (key %s), valid until %s\n", deployment,
				filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory to write the CA into (required)")
	f.StringVar(&deployment, "deployment", "", "the deployment's name, the trust domain of its certificates (required)")
	f.DurationVar(&validity, "validity", caValidityDefault, "how long the CA is valid")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagRequired("deployment")
	return cmd
}

func newTLSCertCmd(r *rootCmd) *cobra.Command {
	var (
		caDir, out, name, regionName, nodeID, clientName, hosts string
		validity                                                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Issue a node's (--region, --node) or a client's (--client) certificate from a CA",
		Example: `  meridian tls cert --ca-dir /etc/meridian/ca --out /etc/meridian/tls \
    --region eu-west --node n1 --host 10.0.0.1,eu1.example.internal
  # the node then runs with --tls-cert /etc/meridian/tls/node.pem
  #   --tls-key /etc/meridian/tls/node-key.pem --tls-ca /etc/meridian/tls/ca.pem`,
		Args: exactArgs(0, ""),
		RunE: func(*cobra.Command, []string) error {
			ca, err := nodetls.LoadCA(filepath.Join(caDir, "ca.pem"), filepath.Join(caDir, "ca-key.pem"))
			if err != nil {
				return usageError{fmt.Errorf("--ca-dir %s: %w", caDir, err)}
			}
			deployment, err := caDeployment(ca)
			if err != nil {
				return usageError{err}
			}
			id := nodetls.Identity{Deployment: deployment, Region: regionName, Node: nodeID, Client: clientName}
			switch {
			case clientName != "" && (regionName != "" || nodeID != ""):
				return usagef("give either --client or --region with --node, not both")
			case clientName == "" && (regionName == "" || nodeID == ""):
				return usagef("a node certificate needs --region and --node (a client's: --client)")
			}
			if name == "" {
				name = "node"
				if clientName != "" {
					name = "client"
				}
			}
			if err := id.Validate(); err != nil {
				return usageError{err}
			}
			files, err := ca.IssueFiles(id, splitList(hosts), validity, out, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(r.stdout, "%s: %s (key %s, CA bundle %s)\n", id, files.Cert, files.Key, files.CA)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "directory of the CA ('meridian tls ca --dir'; required)")
	f.StringVar(&out, "out", "", "directory to write NAME.pem, NAME-key.pem and ca.pem into (required)")
	f.StringVar(&name, "name", "", "file name stem; default node (or client)")
	f.StringVar(&regionName, "region", "", "the node's region")
	f.StringVar(&nodeID, "node", "", "the node's id")
	f.StringVar(&clientName, "client", "", "a client's name, instead of --region and --node")
	f.StringVar(&hosts, "host", "", "DNS names and IP addresses clients reach the node by, comma-separated")
	f.DurationVar(&validity, "validity", certValidityDefault, "how long the certificate is valid")
	_ = cmd.MarkFlagRequired("ca-dir")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// caDeployment reads the deployment name out of a CA made by 'meridian tls
// ca' (its common name is "Meridian CA <deployment>").
func caDeployment(ca *nodetls.CA) (string, error) {
	const prefix = "Meridian CA "
	cn := ca.Cert.Subject.CommonName
	if !strings.HasPrefix(cn, prefix) {
		return "", errors.New("the CA's common name is not \"Meridian CA <deployment>\": it was not made by 'meridian tls ca'")
	}
	return strings.TrimPrefix(cn, prefix), nil
}
