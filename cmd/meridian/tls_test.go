package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLSCommandsAndServerChecks: 'meridian tls ca' and 'tls cert' make a
// CA and a node certificate; a server refuses to start with a certificate
// naming another node, and a second CA in the same directory is refused.
func TestTLSCommandsAndServerChecks(t *testing.T) {
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "tls")
	code, stdout, errOut := runCLI(t, t.Context(), "tls", "ca", "--dir", caDir, "--deployment", "prod")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, stdout, "CA of deployment prod")
	code, _, errOut = runCLI(t, t.Context(), "tls", "ca", "--dir", caDir, "--deployment", "prod")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "refusing to overwrite")

	code, stdout, errOut = runCLI(t, t.Context(), "tls", "cert", "--ca-dir", caDir, "--out", out, "--region", "eu-west", "--node", "n1", "--host", "127.0.0.1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, stdout, "spiffe://prod/region/eu-west/node/n1")
	code, _, errOut = runCLI(t, t.Context(), "tls", "cert", "--ca-dir", caDir, "--out", out, "--region", "eu-west")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "needs --region and --node")

	code, _, errOut = runCLI(t, t.Context(), "server", "--data-dir", filepath.Join(dir, "data"), "--region", "eu-west", "--node-id", "n2",
		"--tls-cert", filepath.Join(out, "node.pem"), "--tls-key", filepath.Join(out, "node-key.pem"), "--tls-ca", filepath.Join(out, "ca.pem"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "names spiffe://prod/region/eu-west/node/n1, but this node is spiffe://prod/region/eu-west/node/n2")
}
