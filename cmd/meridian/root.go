package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/internal/nodetls"
)

// Environment variables read by the client commands.
const (
	envEndpoint = "MERIDIAN_ENDPOINT"
	envToken    = "MERIDIAN_SESSION_TOKEN"
	envTLSCA    = "MERIDIAN_TLS_CA"
	envTLSCert  = "MERIDIAN_TLS_CLIENT_CERT"
	envTLSKey   = "MERIDIAN_TLS_CLIENT_KEY"
	envAuth     = "MERIDIAN_AUTH_TOKEN"
	// defaultEndpoint is the first node of `meridian dev`; https:// with
	// --tls-ca, else http://.
	defaultEndpoint = "127.0.0.1:7001"
)

// rootCmd is the `meridian` command with the global client flags.
type rootCmd struct {
	*cobra.Command
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	endpoint string
	token    string
	timeout  time.Duration
	tlsCA    string
	tlsCert  string
	tlsKey   string
	// tokenFile holds the bearer token; MERIDIAN_AUTH_TOKEN the token itself.
	tokenFile string
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *rootCmd {
	r := &rootCmd{stdin: stdin, stdout: stdout, stderr: stderr}
	r.Command = &cobra.Command{
		Use:   "meridian",
		Short: "Meridian: a geo-replicated event store",
		Long: `Meridian is a geo-replicated event store: append events to per-entity
streams and read them back, with session guarantees.

Start a local deployment of 3 regions with 'meridian dev', then try:
  meridian append eu/order-42 --type OrderPlaced --data '{"total":10}'
  meridian read eu/order-42
  meridian tail eu/order-42
  meridian placement get eu/order-42
  meridian regions`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	r.SetIn(stdin)
	r.SetOut(stdout)
	r.SetErr(stderr)
	pf := r.PersistentFlags()
	pf.StringVar(&r.endpoint, "endpoint", envOr(envEndpoint, defaultEndpoint),
		"node API endpoint(s), comma-separated; the client fails over between them (env "+envEndpoint+")")
	pf.StringVar(&r.token, "token", os.Getenv(envToken),
		"session token from an earlier command, for read-your-writes across commands (env "+envToken+")")
	pf.DurationVar(&r.timeout, "timeout", 30*time.Second, "bound on one client command, retries included")
	pf.StringVar(&r.tlsCA, "tls-ca", os.Getenv(envTLSCA), "PEM CA bundle to verify nodes by; makes host:port endpoints https:// (env "+envTLSCA+"; 'meridian dev' prints its own)")
	pf.StringVar(&r.tlsCert, "tls-client-cert", os.Getenv(envTLSCert), "PEM client certificate, for deployments that ask for one (env "+envTLSCert+")")
	pf.StringVar(&r.tokenFile, "token-file", "", "file holding the bearer token to authenticate with (default: env "+envAuth+", the token itself); not the session token")
	pf.StringVar(&r.tlsKey, "tls-client-key", os.Getenv(envTLSKey), "PEM key of --tls-client-cert (env "+envTLSKey+")")
	r.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	r.AddCommand(newAppendCmd(r), newReadCmd(r), newStateCmd(r), newConflictsCmd(r), newTailCmd(r), newLogCmd(r), newGroupCmd(r), newConsumeCmd(r), newStreamCmd(r), newStatusCmd(r), newPlacementCmd(r), newRegionsCmd(r), newMembersCmd(r), newLeaveCmd(r), newBenchCmd(r), newTLSCmd(r), newTokenCmd(r))
	r.AddCommand(serverCommands(r)...)
	return r
}

// endpoints returns the --endpoint list.
func (r *rootCmd) endpoints() []string {
	var out []string
	for _, e := range strings.Split(r.endpoint, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// withClient runs fn with a client from the global flags and the command's timeout.
func (r *rootCmd) withClient(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	c, err := r.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), r.timeout)
	defer cancel()
	return fn(ctx, c)
}

// newClient builds a client from the global flags.
func (r *rootCmd) newClient(opts ...client.Option) (*client.Client, error) {
	connOpts, err := r.connOptions()
	if err != nil {
		return nil, err
	}
	return client.New(r.endpoints(), append(append(connOpts, client.WithSessionToken(r.token)), opts...)...)
}

// connOptions returns the client options of the --tls-* flags and of the
// bearer token (--token-file or MERIDIAN_AUTH_TOKEN).
func (r *rootCmd) connOptions() ([]client.Option, error) {
	var opts []client.Option
	bearer := os.Getenv(envAuth)
	if r.tokenFile != "" {
		b, err := os.ReadFile(r.tokenFile)
		if err != nil {
			return nil, usagef("--token-file: %v", err)
		}
		if bearer = strings.TrimSpace(string(b)); bearer == "" {
			return nil, usagef("--token-file %s is empty", r.tokenFile)
		}
	}
	if bearer != "" {
		opts = append(opts, client.WithBearerToken(strings.TrimSpace(bearer)))
	}
	if r.tlsCA == "" && r.tlsCert == "" && r.tlsKey == "" {
		return opts, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.tlsCA != "" {
		pool, err := nodetls.LoadPool(r.tlsCA)
		if err != nil {
			return nil, usageError{fmt.Errorf("--tls-ca: %w", err)}
		}
		cfg.RootCAs = pool
	}
	if (r.tlsCert == "") != (r.tlsKey == "") {
		return nil, usagef("--tls-client-cert and --tls-client-key go together")
	}
	if r.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(r.tlsCert, r.tlsKey)
		if err != nil {
			return nil, usagef("--tls-client-cert %s with --tls-client-key %s: %v", r.tlsCert, r.tlsKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return append(opts, client.WithTLS(cfg)), nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// usageError marks an error in the command line itself (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func isUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	// The client rejects bad flag values before sending anything.
	for _, target := range []error{client.ErrNoEndpoints, client.ErrInvalidEndpoint, client.ErrInvalidEventID, client.ErrInvalidOption} {
		if errors.Is(err, target) {
			return true
		}
	}
	// cobra's own argument-count and unknown-command errors.
	msg := err.Error()
	return strings.Contains(msg, "unknown command") || strings.Contains(msg, "arg(s)") || strings.Contains(msg, "unknown flag")
}
