package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildBinary compiles the meridian binary once per test process, into a
// temporary directory that TestMain removes.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meridian-bin-")
		if err != nil {
			binErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "meridian")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// freePortRange finds base such that base..base+n-1 are all free on 127.0.0.1.
// The seed is logged; MERIDIAN_TEST_PORT_SEED replays it.
func freePortRange(t *testing.T, n int, avoid int) int {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MERIDIAN_TEST_PORT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	t.Logf("port seed %d (MERIDIAN_TEST_PORT_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 100 {
		// Below Linux's ephemeral range (32768-60999), so outgoing
		// connections of other tests cannot take a port between probe and bind.
		base := 20000 + rng.IntN(12000)
		if base+n > avoid-n && base < avoid+n && avoid > 0 {
			continue
		}
		var lns []net.Listener
		ok := true
		for i := range n {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range found")
	return 0
}

// syncBuf collects a process's output while it runs.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a started meridian process.
type proc struct {
	cmd      *exec.Cmd
	out, err *syncBuf
	done     chan error
}

func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuf{}, err: &syncBuf{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	p.cmd.Env = append(os.Environ(), env...)
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// interrupt sends SIGINT and waits for a clean exit.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-p.done:
		require.NoError(t, err, "exit after SIGINT\nstdout:\n%s\nstderr:\n%s", p.out, p.err)
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("no exit within 30s of SIGINT\nstdout:\n%s\nstderr:\n%s", p.out, p.err)
	}
	assert.Equal(t, 0, p.cmd.ProcessState.ExitCode())
	// The process is gone: signal 0 fails for a reaped pid.
	assert.Error(t, p.cmd.Process.Signal(syscall.Signal(0)), "process still running")
}

// runBin runs one short command and returns its exit code and output.
func runBin(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run %v: %v", args, err)
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// TestBinaryDevWalkthrough is the README's walk-through, run for real: it
// builds the binary, starts `meridian dev` on free ports, appends, reads and
// tails through the CLI, then stops everything with SIGINT.
func TestBinaryDevWalkthrough(t *testing.T) {
	bin := buildBinary(t)
	apiPort := freePortRange(t, 3, 0)
	raftPort := freePortRange(t, 3, apiPort)
	tmp := t.TempDir()
	dev := startProc(t, bin, []string{"TMPDIR=" + tmp}, "dev", "--api-port", strconv.Itoa(apiPort), "--raft-port", strconv.Itoa(raftPort))
	require.Eventually(t, func() bool { return strings.Contains(dev.out.String(), "Ctrl-C stops the region") },
		60*time.Second, 50*time.Millisecond, "dev did not come up\nstdout:\n%s\nstderr:\n%s", dev.out, dev.err)
	t.Logf("dev output:\n%s", dev.out)
	banner := dev.out.String()
	m := regexp.MustCompile(`data in (\S+) \(temporary`).FindStringSubmatch(banner)
	require.Len(t, m, 2, banner)
	dataDir := m[1]
	require.DirExists(t, dataDir)
	for i := range 3 {
		assert.Contains(t, banner, fmt.Sprintf("n%d  api http://127.0.0.1:%d  raft 127.0.0.1:%d", i+1, apiPort+i, raftPort+i))
	}

	n1 := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	n3 := fmt.Sprintf("http://127.0.0.1:%d", apiPort+2)

	tail := startProc(t, bin, nil, "tail", "order-42", "--endpoint", n1)

	code, out, errOut := runBin(t, bin, "append", "order-42", "--type", "OrderPlaced", "--data", `{"total":10}`, "--endpoint", n3)
	require.Equal(t, 0, code, errOut)
	t.Logf("append:\n%s", out)
	assert.Regexp(t, `^appended order-42 v1  id=[0-9a-f-]{36} origin=local/\d+\nsession token: \S+\n$`, out)
	token := regexp.MustCompile(`session token: (\S+)`).FindStringSubmatch(out)[1]

	code, out, errOut = runBin(t, bin, "append", "order-42", "--type", "OrderPaid", "--data", `{"paid":true}`, "--expect", "1", "--endpoint", n1)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "appended order-42 v2")

	code, _, errOut = runBin(t, bin, "append", "order-42", "--type", "OrderPaid", "--expect", "1", "--endpoint", n1)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: failed_precondition:")
	t.Logf("conflict stderr:\n%s", errOut)

	code, out, errOut = runBin(t, bin, "read", "order-42", "--endpoint", n1, "--token", token)
	require.Equal(t, 0, code, errOut)
	t.Logf("read:\n%s", out)
	assert.Regexp(t, `(?m)^order-42 v1  OrderPlaced  \{"total":10\}  id=`, out)
	assert.Regexp(t, `(?m)^order-42 v2  OrderPaid  \{"paid":true\}  id=`, out)
	assert.Contains(t, out, "(2 events, head version 2")

	code, out, errOut = runBin(t, bin, "read", "order-42", "--json", "--consistency", "strong", "--endpoint", n3)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"type":"OrderPaid"`)

	code, out, errOut = runBin(t, bin, "status", "--endpoint", strings.Join([]string{n1, fmt.Sprintf("http://127.0.0.1:%d", apiPort+1), n3}, ","))
	require.Equal(t, 0, code, errOut)
	t.Logf("status:\n%s", out)
	assert.Equal(t, 1, strings.Count(out, "Leader"), out)

	require.Eventually(t, func() bool { return strings.Contains(tail.out.String(), "order-42 v2  OrderPaid") },
		20*time.Second, 50*time.Millisecond, "tail saw:\n%s\nstderr:\n%s", tail.out, tail.err)
	t.Logf("tail:\n%s%s", tail.out, tail.err)
	assert.Contains(t, tail.out.String(), "order-42 v1  OrderPlaced")
	tail.interrupt(t)

	dev.interrupt(t)
	assert.Contains(t, dev.out.String(), "stopped")
	assert.NoDirExists(t, dataDir, "temporary data directory removed")
	// Every port is free again.
	for _, port := range []int{apiPort, apiPort + 1, apiPort + 2, raftPort, raftPort + 1, raftPort + 2} {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		require.NoError(t, err, "port %d still in use", port)
		_ = ln.Close()
	}

	// No node running: the client says so, with a hint, and exits 1.
	code, _, errOut = runBin(t, bin, "read", "order-42", "--endpoint", n1, "--timeout", "2s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "hint: no Meridian node answers")

	// The smoke mode proves the same path in one command, with a kept data dir.
	keep := filepath.Join(t.TempDir(), "data")
	code, out, errOut = runBin(t, bin, "dev", "--smoke", "--data-dir", keep, "--api-port", strconv.Itoa(apiPort), "--raft-port", strconv.Itoa(raftPort))
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	t.Logf("smoke:\n%s", out)
	assert.Contains(t, out, "smoke: appended")
	assert.DirExists(t, filepath.Join(keep, "n1"))
}
