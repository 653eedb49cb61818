package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/region"
)

func TestParsePeers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []region.Peer
		wantErr bool
	}{
		{name: "empty", in: ""},
		{name: "three", in: "n1=h1:7101=h1:7001, n2=h2:7101=h2:7001,n3=h3:7101=h3:7001", want: []region.Peer{
			{ID: "n1", RaftAddr: "h1:7101", APIAddr: "h1:7001"},
			{ID: "n2", RaftAddr: "h2:7101", APIAddr: "h2:7001"},
			{ID: "n3", RaftAddr: "h3:7101", APIAddr: "h3:7001"},
		}},
		{name: "no api addr", in: "n1=h1:7101", want: []region.Peer{{ID: "n1", RaftAddr: "h1:7101"}}},
		{name: "no raft addr", in: "n1", wantErr: true},
		{name: "empty id", in: "=h1:7101", wantErr: true},
		{name: "too many parts", in: "n1=a=b=c", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePeers(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.True(t, isUsageError(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestServerConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "data dir required", args: []string{"server"}, wantErr: "DataDir is empty"},
		{name: "bad peers from env", env: map[string]string{"MERIDIAN_PEERS": "n1"}, args: []string{"server", "--data-dir", "x"}, wantErr: `--peers item "n1"`},
		{name: "bootstrap without self", env: map[string]string{"MERIDIAN_NODE_ID": "n9", "MERIDIAN_BOOTSTRAP": "true"},
			args: []string{"server", "--data-dir", "x", "--peers", "n1=127.0.0.1:1"}, wantErr: `do not include NodeID "n9"`},
		{name: "bad log level", args: []string{"server", "--data-dir", "x", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "placement bootstrap without placement addr", args: []string{"server", "--data-dir", "x", "--placement-bootstrap"},
			wantErr: "--placement-bootstrap needs --placement-addr"},
		{name: "join without placement addr from env", env: map[string]string{"MERIDIAN_JOIN": "127.0.0.1:7001"}, args: []string{"server", "--data-dir", "x"},
			wantErr: "--join needs --placement-addr"},
		{name: "voters without placement addr", args: []string{"server", "--data-dir", "x", "--voters-per-region", "3"},
			wantErr: "--voters-per-region needs --placement-addr"},
		{name: "bootstrap and join", args: []string{"server", "--data-dir", "x", "--placement-addr", "127.0.0.1:0", "--placement-bootstrap", "--join", "127.0.0.1:7001"},
			wantErr: "--placement-bootstrap and --join exclude each other"},
		{name: "two voters per region", env: map[string]string{"MERIDIAN_PLACEMENT_ADDR": "127.0.0.1:0", "MERIDIAN_VOTERS_PER_REGION": "2"},
			args: []string{"server", "--data-dir", "x", "--placement-bootstrap"}, wantErr: "--voters-per-region 2: want 1 or 3"},
		{name: "bad join item", args: []string{"server", "--data-dir", "x", "--placement-addr", "127.0.0.1:0", "--join", "nohost"},
			wantErr: `--join item "nohost"`},
		{name: "placement addr on a new node without bootstrap or join", args: []string{"server", "--region", "eu-west", "--data-dir", "TEMP",
			"--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--placement-addr", "127.0.0.1:0"},
			wantErr: "needs --placement-bootstrap (the first node of a new deployment) or --join"},
		{name: "key file without gossip", args: []string{"server", "--data-dir", "x", "--gossip-key-file", "/nonexistent"},
			wantErr: "--gossip-key-file needs --gossip-addr"},
		{name: "missing key file", args: []string{"server", "--data-dir", "x", "--gossip-addr", "127.0.0.1:0", "--gossip-key-file", "/nonexistent/keys"},
			wantErr: "gossip key file: open /nonexistent/keys"},
		{name: "bad join item with gossip", args: []string{"server", "--data-dir", "x", "--gossip-addr", "127.0.0.1:0", "--join", "7001"},
			wantErr: `--join item "7001"`},
		{name: "wan gossip without lan gossip", args: []string{"server", "--data-dir", "x", "--gossip-wan-addr", "127.0.0.1:0"},
			wantErr: "GossipWANAddr needs GossipAddr"},
		{name: "dev overlapping ports", args: []string{"dev", "--api-port", "7001", "--raft-port", "7002"}, wantErr: "overlap"},
		{name: "dev too many nodes", args: []string{"dev", "--nodes", "9"}, wantErr: "--nodes 9"},
		{name: "dev placement ports overlap raft ports", args: []string{"dev", "--nodes", "3", "--raft-port", "7101", "--placement-port", "7105"},
			wantErr: "--raft-port 7101 and --placement-port 7105 ranges overlap for 9 nodes"},
		{name: "dev duplicate region", args: []string{"dev", "--regions", "eu-west,eu-west"}, wantErr: `"eu-west" appears twice`},
		{name: "dev bad region name", args: []string{"dev", "--regions", "eu west"}, wantErr: `--regions: "eu west"`},
		{name: "dev no region", args: []string{"dev", "--regions", ","}, wantErr: "--regions: 0 regions"},
		{name: "dev metrics ports overlap api ports", args: []string{"dev", "--metrics-port", "7002"}, wantErr: "--api-port 7001 and --metrics-port 7002 ranges overlap for 3 nodes"},
		{name: "tokens without tls", args: []string{"server", "--data-dir", "x", "--auth-token-file", "t"}, wantErr: "--auth-token-file needs TLS"},
		{name: "half of tls", args: []string{"server", "--data-dir", "x", "--tls-cert", "c.pem"}, wantErr: "TLS needs all of --tls-cert, --tls-key and --tls-ca"},
		{name: "unknown state compression", args: []string{"server", "--data-dir", "x", "--state-compression", "lz4"},
			wantErr: `--state-compression "lz4": want none, snappy or zstd`},
		{name: "state compression from env", env: map[string]string{"MERIDIAN_STATE_COMPRESSION": "gzip"}, args: []string{"server", "--data-dir", "x"},
			wantErr: `--state-compression "gzip"`},
		{name: "trace ratio out of range", args: []string{"server", "--data-dir", "x", "--otlp-endpoint", "127.0.0.1:4318", "--trace-sample-ratio", "2"}, wantErr: "--trace-sample-ratio 2: want 0 to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string(nil), tt.args...)
			for i, a := range args {
				if a == "TEMP" {
					args[i] = t.TempDir()
				}
			}
			code, _, errOut := runCLI(t, t.Context(), args...)
			assert.Equal(t, 2, code, errOut)
			assert.Contains(t, errOut, tt.wantErr)
		})
	}
}

// TestBinaryServerSingleNode runs `meridian server` as a one-node region
// configured through MERIDIAN_* variables (zstd state tables among them),
// uses it, and stops it with SIGTERM.
func TestBinaryServerSingleNode(t *testing.T) {
	bin := buildBinary(t)
	api := freePortRange(t, 1, 0)
	raft := freePortRange(t, 1, api)
	apiAddr := fmt.Sprintf("127.0.0.1:%d", api)
	raftAddr := fmt.Sprintf("127.0.0.1:%d", raft)
	srv := startProc(t, bin, []string{
		"MERIDIAN_REGION=solo", "MERIDIAN_NODE_ID=s1", "MERIDIAN_DATA_DIR=" + t.TempDir(),
		"MERIDIAN_API_ADDR=" + apiAddr, "MERIDIAN_RAFT_ADDR=" + raftAddr,
		"MERIDIAN_PEERS=s1=" + raftAddr + "=" + apiAddr, "MERIDIAN_BOOTSTRAP=1",
		"MERIDIAN_STATE_COMPRESSION=zstd",
	}, "server")
	ep := "http://" + apiAddr
	require.Eventually(t, func() bool {
		code, out, _ := runBin(t, bin, "status", "--endpoint", ep, "--timeout", "1s")
		return code == 0 && strings.Contains(out, "Leader")
	}, 30*time.Second, 100*time.Millisecond, "server not leader\nstderr:\n%s", srv.err)

	code, out, errOut := runBin(t, bin, "append", "acct-1", "--type", "Opened", "--expect", "no-stream", "--endpoint", ep)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "appended acct-1 v1")
	t.Setenv("MERIDIAN_ENDPOINT", ep)
	code, out, errOut = runBin(t, bin, "read", "acct-1", "--backward", "--limit", "1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "acct-1 v1  Opened")
	assert.Contains(t, out, "served by solo/s1")
	// The region opened its state with what the variable asked for.
	assert.Contains(t, srv.err.String(), "state_compression=zstd")

	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-srv.done:
		require.NoError(t, err, "stderr:\n%s", srv.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not stop on SIGTERM\nstderr:\n%s", srv.err)
	}
}

func TestReadGossipKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 16))
	keys, err := readGossipKeys(write("ok", "# rotation in progress\n"+k32+"\n\n  "+k16+"  \n"))
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.Len(t, keys[0], 32, "the first key is the one that encrypts")

	for name, tc := range map[string]struct{ body, want string }{
		"empty":      {"# nothing\n", "holds no key"},
		"not base64": {"not-base64!\n", "line 1: not base64"},
		"short key":  {k32 + "\n" + base64.StdEncoding.EncodeToString([]byte("short")) + "\n", "line 2: key is 5 bytes"},
	} {
		_, err := readGossipKeys(write(name, tc.body))
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

// TestBinaryGossipJoinMembersLeave runs a region of three `meridian server`
// processes formed through gossip: the first bootstraps alone, the others
// join by its API address only. `meridian members` lists all three as
// voters; SIGHUP reloads a rotated key file; `meridian leave` takes one
// out and its process exits by itself.
func TestBinaryGossipJoinMembersLeave(t *testing.T) {
	bin := buildBinary(t)
	base := freePortRange(t, 9, 0)
	keyFile := filepath.Join(t.TempDir(), "gossip.keys")
	keyA := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	keyB := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	require.NoError(t, os.WriteFile(keyFile, []byte(keyA+"\n"), 0o600))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", base+i) }
	start := func(i int, extra ...string) *proc {
		args := append([]string{"server", "--region", "g", "--node-id", fmt.Sprintf("n%d", i+1), "--data-dir", t.TempDir(),
			"--api-addr", addr(3 * i), "--raft-addr", addr(3*i + 1), "--gossip-addr", addr(3*i + 2),
			"--gossip-key-file", keyFile, "--stabilization-time", "500ms", "--dead-node-timeout", "5s"}, extra...)
		return startProc(t, bin, nil, args...)
	}
	procs := []*proc{start(0, "--bootstrap")}
	ep := "http://" + addr(0)
	require.Eventually(t, func() bool {
		code, out, _ := runBin(t, bin, "status", "--endpoint", ep, "--timeout", "1s")
		return code == 0 && strings.Contains(out, "Leader")
	}, 30*time.Second, 100*time.Millisecond, "first node not leader\nstderr:\n%s", procs[0].err)
	procs = append(procs, start(1, "--join", addr(0)), start(2, "--join", addr(0)))

	require.Eventually(t, func() bool {
		code, out, _ := runBin(t, bin, "members", "--endpoint", ep, "--timeout", "2s")
		return code == 0 && strings.Count(out, "alive") == 3 && strings.Count(out, " voter ")+strings.Count(out, " leader ") == 3
	}, 60*time.Second, 200*time.Millisecond, "three alive voters never listed\nn2 stderr:\n%s", procs[1].err)

	// Rotation round 1 through SIGHUP: every node then decrypts with B too.
	require.NoError(t, os.WriteFile(keyFile, []byte(keyA+"\n"+keyB+"\n"), 0o600))
	for _, p := range procs {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	}
	require.Eventually(t, func() bool {
		return strings.Count(procs[0].err.String()+procs[1].err.String()+procs[2].err.String(), "gossip keyring replaced") == 3
	}, 10*time.Second, 50*time.Millisecond, "SIGHUP did not reload the key file on every node")

	// A write through a joined node, then that node leaves; it exits 0.
	code, _, errOut := runBin(t, bin, "append", "gossip-1", "--type", "Created", "--endpoint", "http://"+addr(6))
	require.Equal(t, 0, code, errOut)
	code, out, errOut := runBin(t, bin, "leave", "--endpoint", "http://"+addr(6))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "no longer lists the node")
	select {
	case err := <-procs[2].done:
		require.NoError(t, err, "stderr:\n%s", procs[2].err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the node that left did not exit\nstderr:\n%s", procs[2].err)
	}
	code, out, errOut = runBin(t, bin, "members", "--endpoint", ep)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "left")
	code, out, errOut = runBin(t, bin, "read", "gossip-1", "--endpoint", ep)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "Created")

	code, _, errOut = runBin(t, bin, "leave", "--endpoint", ep+",http://"+addr(3))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "exactly one node")
	procs[0].interrupt(t)
	procs[1].interrupt(t)
}
