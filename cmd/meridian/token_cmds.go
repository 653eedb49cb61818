package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meridiandb/meridian/internal/auth"
)

func newTokenCmd(r *rootCmd) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make bearer tokens for a node's --auth-token-file",
		Args:  exactArgs(0, ""),
	}
	var (
		name, role, prefixes string
	)
	newCmd := &cobra.Command{
		Use:   "new",
		Short: "Make a token: prints the token (give it to the caller) and its line (add it to every node's token file)",
		Long: `Make a random bearer token. The token itself is printed once, on the
first line: give it to the caller (MERIDIAN_AUTH_TOKEN or --token-file for
the CLI, client.WithBearerToken in Go). The second line goes into every
node's --auth-token-file: it holds the token's SHA-256, never the token, so
the file is not a secret. Nodes pick up the edited file within 5 s or on
SIGHUP; deleting the line revokes the token.

Roles: read (reads, subscriptions, status, placement lookups), write (read
and appends), admin (write and placement changes, 'meridian leave').
--prefix limits the token to entities under the given prefixes; such a
token cannot call what acts on the whole deployment beyond reading it.`,
		Example: `  meridian token new --name ci-bot --role write --prefix eu/orders/,us/orders/`,
		Args:    exactArgs(0, ""),
		RunE: func(*cobra.Command, []string) error {
			rl, err := auth.ParseRole(role)
			if err != nil {
				return usageError{err}
			}
			if name == "" {
				return usagef("--name is required (it names the token in logs and errors)")
			}
			tok := auth.Token{Name: name, Role: rl, Prefixes: splitList(prefixes)}
			secret, err := auth.NewSecret()
			if err != nil {
				return err
			}
			fmt.Fprintf(r.stdout, "token: %s\nline:  %s\n", secret, auth.Line(tok, secret))
			return nil
		},
	}
	f := newCmd.Flags()
	f.StringVar(&name, "name", "", "the token's name, one word (required)")
	f.StringVar(&role, "role", "read", "read, write or admin")
	f.StringVar(&prefixes, "prefix", "", "entity prefixes the token is limited to, comma-separated (default: all entities)")
	cmd.AddCommand(newCmd)
	return cmd
}
