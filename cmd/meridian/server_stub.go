//go:build !meridian_pending_region

package main

import "github.com/spf13/cobra"

// serverCommands returns the commands that run nodes (server, dev).
func serverCommands(r *rootCmd) []*cobra.Command { return nil }
