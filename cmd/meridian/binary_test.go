package main

import (
	"bytes"
	"context"
	"encoding/json"
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
// builds the binary, starts `meridian dev` (3 regions) on free ports,
// appends in one region and reads through another, asks for the entity's
// placement, the regions, pins, a bad rule change, a version conflict, an
// idempotent retry and a tail, then stops everything with SIGINT.
// devRun is a `meridian dev` started by startDevBinary.
type devRun struct {
	proc    *proc
	apiPort int
	ports   [3]int   // api, raft, placement port of the first region
	flags   []string // the --*-port flags it was started with
}

// startDevBinary starts `meridian dev` on free ports and waits for its banner.
func startDevBinary(t *testing.T, bin string) *devRun {
	t.Helper()
	apiPort := freePortRange(t, 3, 0)
	raftPort := freePortRange(t, 3, apiPort)
	placePort := freePortRange(t, 3, raftPort)
	for placePort < apiPort+3 && apiPort < placePort+3 {
		placePort = freePortRange(t, 3, raftPort)
	}
	ports := []string{"--api-port", strconv.Itoa(apiPort), "--raft-port", strconv.Itoa(raftPort), "--placement-port", strconv.Itoa(placePort)}
	dev := startProc(t, bin, []string{"TMPDIR=" + t.TempDir()}, append([]string{"dev"}, ports...)...)
	require.Eventually(t, func() bool { return strings.Contains(dev.out.String(), "Ctrl-C stops every region") },
		90*time.Second, 50*time.Millisecond, "dev did not come up\nstdout:\n%s\nstderr:\n%s", dev.out, dev.err)
	t.Logf("dev output:\n%s", dev.out)
	// A failing step's cause may be in the servers' log (a panic served as
	// a closed connection, say): print it with the failure.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dev stderr:\n%s", dev.err)
		}
	})
	return &devRun{proc: dev, apiPort: apiPort, ports: [3]int{apiPort, raftPort, placePort}, flags: ports}
}

func TestBinaryDevWalkthrough(t *testing.T) {
	bin := buildBinary(t)
	d := startDevBinary(t, bin)
	dev, apiPort, raftPort, placePort := d.proc, d.apiPort, d.ports[1], d.ports[2]
	banner := dev.out.String()
	m := regexp.MustCompile(`data in (\S+) \(temporary`).FindStringSubmatch(banner)
	require.Len(t, m, 2, banner)
	dataDir := m[1]
	require.DirExists(t, dataDir)
	for i, r := range []string{"us-east", "eu-west", "ap-south"} {
		assert.Regexp(t, fmt.Sprintf(`(?m)^  region %s\n    n1  api https://127.0.0.1:%d  raft 127.0.0.1:%d  placement 127.0.0.1:%d  \(region leader`, r, apiPort+i, raftPort+i, placePort+i), banner)
	}
	assert.Contains(t, banner, "(region leader, placement leader)", "the bootstrapping node leads placement")
	assert.Contains(t, banner, "Placement rules: us/ -> us-east, eu/ -> eu-west, ap/ -> ap-south, cart/ -> every region (active-active: ItemAdded:set_add:items+ItemRemoved:set_remove:items+QuantityChanged:counter_add:quantity+AddressSet:lww_write:address); anything else -> us-east")
	assert.Contains(t, banner, "WAN latency: none")
	assert.Contains(t, banner, "Try, in another terminal (eu/order-1 is homed in eu-west)")
	// TLS is on by default; the banner's export points the CLI at dev's CA.
	assert.Contains(t, banner, "TLS: on every port")
	ca := regexp.MustCompile(`(?m)^  export MERIDIAN_TLS_CA=(\S+) MERIDIAN_AUTH_TOKEN=(\S+) `).FindStringSubmatch(banner)
	require.Len(t, ca, 3, banner)
	require.FileExists(t, ca[1])
	// The commands below inherit both, as after the README's export.
	t.Setenv("MERIDIAN_TLS_CA", ca[1])
	t.Setenv("MERIDIAN_AUTH_TOKEN", "")
	// Without the token a call is refused, saying what is missing.
	code, out, errOut := runBin(t, bin, "status", "--endpoint", fmt.Sprintf("https://127.0.0.1:%d", apiPort), "--timeout", "3s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: unauthenticated: auth: unauthenticated: /meridian.v1.EventStore/Status needs a bearer token")
	t.Setenv("MERIDIAN_AUTH_TOKEN", ca[2])

	us := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	eu := fmt.Sprintf("127.0.0.1:%d", apiPort+1)
	ap := fmt.Sprintf("https://127.0.0.1:%d", apiPort+2)

	// A plaintext client is refused: the API speaks only TLS.
	code, out, errOut = runBin(t, bin, "status", "--endpoint", fmt.Sprintf("http://127.0.0.1:%d", apiPort), "--timeout", "3s")
	assert.Equal(t, 1, code, errOut)

	// A tail through the third region follows the redirect to the home.
	tail := startProc(t, bin, nil, "tail", "eu/order-1", "--endpoint", ap)

	// Written through us-east, ordered by eu-west, read through ap-south.
	code, out, errOut = runBin(t, bin, "append", "eu/order-1", "--type", "OrderPlaced", "--data", `{"total":10}`, "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	t.Logf("append:\n%s", out)
	assert.Regexp(t, `^appended eu/order-1 v1  id=[0-9a-f-]{36} origin=eu-west/\d+\nsession token: \S+\n$`, out)
	token := regexp.MustCompile(`session token: (\S+)`).FindStringSubmatch(out)[1]

	// Read-your-writes in a third region: the token makes ap-south wait
	// for its replica to have the write, and ap-south serves it.
	code, out, errOut = runBin(t, bin, "read", "eu/order-1", "--endpoint", ap, "--token", token)
	require.Equal(t, 0, code, errOut)
	t.Logf("read:\n%s", out)
	assert.Regexp(t, `(?m)^eu/order-1 v1  OrderPlaced  \{"total":10\}  id=\S+ origin=eu-west/\d+ at=`, out)
	assert.Contains(t, out, "(1 events, head version 1, served by ap-south/n1)")
	// STRONG reads still go to the home.
	code, out, errOut = runBin(t, bin, "read", "eu/order-1", "--endpoint", ap, "--consistency", "strong")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "(1 events, head version 1, served by eu-west/n1)")

	// MULTI_REGION with k=2: acknowledged once both other regions applied
	// it, so an EVENTUAL read (no token, no wait) in either sees it at once.
	code, out, errOut = runBin(t, bin, "append", "eu/order-3", "--type", "OrderPlaced", "--durability", "multi-region", "--min-regions", "2", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "appended eu/order-3 v1")
	for _, via := range []string{us, ap} {
		code, out, errOut = runBin(t, bin, "read", "eu/order-3", "--consistency", "eventual", "--endpoint", via)
		require.Equal(t, 0, code, errOut)
		assert.Regexp(t, `\(1 events, head version 1, served by (us-east|ap-south)/n1\)`, out, via)
	}
	code, _, errOut = runBin(t, bin, "append", "eu/order-3", "--durability", "multi-region", "--min-regions", "3", "--endpoint", us)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: invalid_argument:")
	assert.Contains(t, errOut, "min_regions")

	// The region log after a vector: a page through ap-south, continued
	// through us-east with the vector it printed; each event once.
	code, out, errOut = runBin(t, bin, "log", "--after", "", "--limit", "1", "--prefix", "eu/", "--type", "OrderPlaced", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	t.Logf("log:\n%s", out)
	assert.Regexp(t, `(?m)^#\d+ eu/order-1 v1  OrderPlaced  \{"total":10\}`, out)
	next := regexp.MustCompile(`continue with: --after (\S+)`).FindStringSubmatch(out)
	require.Len(t, next, 2, out)
	code, out, errOut = runBin(t, bin, "log", "--after", next[1], "--prefix", "eu/", "--type", "OrderPlaced", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	t.Logf("log, continued:\n%s", out)
	assert.Regexp(t, `(?m)^#\d+ eu/order-3 v1  OrderPlaced`, out)
	assert.NotContains(t, out, "eu/order-1")
	assert.Contains(t, out, "(1 events, end of the log")

	// A consumer group in ap-south: a consumer prints and acks both
	// orders; moved to us-east where it stopped, it has nothing left there.
	code, out, errOut = runBin(t, bin, "group", "create", "orders", "--prefix", "eu/", "--type", "OrderPlaced", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "created group orders at the start\n", out)
	code, out, errOut = runBin(t, bin, "consume", "orders", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	t.Logf("consume:\n%s", out)
	assert.Regexp(t, `(?m)^#\d+ eu/order-1 v1  OrderPlaced`, out)
	assert.Regexp(t, `(?m)^#\d+ eu/order-3 v1  OrderPlaced`, out)
	cp := regexp.MustCompile(`\(2 delivered, 2 acked, 0 duplicate, 0 nacked, 0 parked; group orders at checkpoint (\S+)\)`).FindStringSubmatch(out)
	require.Len(t, cp, 2, out)
	code, out, errOut = runBin(t, bin, "group", "info", "orders", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	t.Logf("group info:\n%s", out)
	assert.Contains(t, out, "  checkpoint  "+cp[1]+"\n")
	assert.Contains(t, out, "  filter      prefix eu/; type OrderPlaced\n")
	assert.Contains(t, out, "  acks        2 (0 duplicate)\n")
	code, out, errOut = runBin(t, bin, "group", "move", "orders", "--endpoint", ap, "--to", us)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "created group orders at "+cp[1]+" with 0 acked beyond it (from region ap-south)\ndeleted group orders in ap-south\n", out)
	code, out, errOut = runBin(t, bin, "consume", "orders", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.True(t, strings.HasPrefix(out, "(0 delivered, 0 acked"), out)
	code, _, errOut = runBin(t, bin, "group", "create", "orders", "--endpoint", us)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: already_exists:")
	code, out, errOut = runBin(t, bin, "group", "list", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^orders\s+1\s+prefix eu/; type OrderPlaced\s+\S+$`, out)
	code, out, errOut = runBin(t, bin, "group", "delete", "orders", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "deleted group orders\n", out)

	// A consumer that cannot handle an event type gives it back; after the
	// group's max deliveries it is parked, listed and dropped.
	code, _, errOut = runBin(t, bin, "group", "create", "audit", "--prefix", "eu/", "--max-deliveries", "1", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = runBin(t, bin, "consume", "audit", "--nack-type", "OrderPlaced", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	t.Logf("consume --nack-type:\n%s", out)
	assert.Contains(t, out, "2 nacked, 2 parked;")
	code, out, errOut = runBin(t, bin, "group", "parked", "audit", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	t.Logf("group parked:\n%s", out)
	parked := regexp.MustCompile(`(?m)^(\S+:\d+)  #\d+ eu/order-1 v1  OrderPlaced .* deliveries 1 .* reason "--nack-type OrderPlaced"$`).FindStringSubmatch(out)
	require.Len(t, parked, 2, out)
	assert.Contains(t, out, "(2 parked events)\n")
	code, out, errOut = runBin(t, bin, "group", "parked", "audit", "--drop", parked[1], "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "dropped 1 parked events of group audit\n", out)
	code, out, errOut = runBin(t, bin, "group", "info", "audit", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "  parked      1\n")
	assert.Contains(t, out, "max deliveries 1, ack timeout 30s (default)")

	code, out, errOut = runBin(t, bin, "placement", "get", "eu/order-1", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	t.Logf("placement get:\n%s", out)
	assert.Contains(t, out, `eu/order-1  home eu-west  (rule "eu/")`)
	assert.Contains(t, out, "  home endpoints "+eu)
	assert.Regexp(t, `\(table index \d+ on us-east/n1; placement leader us-east/n1; staleness \S+\)`, out)

	code, out, errOut = runBin(t, bin, "placement", "rules", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^1  us/     us-east   single_home    -         \d+$`, out)
	assert.Regexp(t, `(?m)^3  ap/     ap-south  single_home    -         \d+$`, out)
	assert.Regexp(t, `(?m)^4  cart/   us-east   active_active  -         \d+$`, out)
	assert.Contains(t, out, "rule 4 (cart/) merges ItemAdded:set_add:items+ItemRemoved:set_remove:items+QuantityChanged:counter_add:quantity+AddressSet:lww_write:address")

	code, out, errOut = runBin(t, bin, "regions", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	t.Logf("regions:\n%s", out)
	for i, r := range []string{"ap-south", "eu-west", "us-east"} {
		assert.Regexp(t, fmt.Sprintf(`(?m)^%s\s+yes\s+%s/n1\s+127.0.0.1:%d\s+`, r, r, apiPort+2-i), out)
	}
	// Every region has applied eu-west's two events; us-east, the contacted
	// region, pulls each other origin from the origin itself.
	assert.Regexp(t, `(?m)^us-east\s.*[\s,]eu-west=2\S*$`, out)
	assert.Regexp(t, `(?m)^ap-south\s.*[\s,]eu-west=2\S*$`, out)
	assert.Contains(t, out, "replication into us-east (from its leader us-east/n1):")
	assert.Regexp(t, `(?m)^ORIGIN\s+APPLIED\s+KNOWN\s+LAG EVENTS\s+LAG\s+SOURCE$`, out)
	assert.Regexp(t, `(?m)^ap-south\s+\d+\s+\d+\s+\d+\s+\S+\s+ap-south$`, out)
	assert.Regexp(t, `(?m)^eu-west\s+2\s+2\s+0\s+\S+\s+eu-west$`, out)
	code, out, errOut = runBin(t, bin, "regions", "--json", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"status":{"ap-south":{"region":"ap-south"`)
	assert.Contains(t, out, `"replication":[{"origin":"eu-west"`)

	// A pin moves one entity: a write through eu-west is now ordered by ap-south.
	code, out, errOut = runBin(t, bin, "placement", "pin", "eu/order-7", "ap-south", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "pinned eu/order-7 to ap-south at epoch")
	require.Eventually(t, func() bool {
		code, out, _ := runBin(t, bin, "placement", "get", "eu/order-7", "--endpoint", "https://"+eu)
		return code == 0 && strings.Contains(out, "home ap-south  (pinned)")
	}, 10*time.Second, 50*time.Millisecond)
	code, out, errOut = runBin(t, bin, "append", "eu/order-7", "--type", "OrderPlaced", "--direct", "--endpoint", "https://"+eu)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "origin=ap-south/")

	code, _, errOut = runBin(t, bin, "placement", "set-rules", "--rule", "eu/=eu-west", "--rule", "eu/acct/=us-east", "--default", "us-east", "--endpoint", us)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `error: invalid_argument: placement: invalid argument: rules[1].prefix: rules[1] (prefix "eu/acct/") is shadowed by rules[0]`)

	// The single-region walk-through's behaviour holds across regions.
	code, out, errOut = runBin(t, bin, "append", "eu/order-1", "--type", "OrderPaid", "--data", `{"paid":true}`, "--expect", "1", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "appended eu/order-1 v2")
	code, _, errOut = runBin(t, bin, "append", "eu/order-1", "--type", "OrderPaid", "--expect", "1", "--endpoint", us)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: failed_precondition: region: wrong expected version")
	id := "01a20184-0000-7000-8000-000000000001"
	for range 2 {
		code, out, errOut = runBin(t, bin, "append", "us/order-2", "--type", "OrderPlaced", "--id", id, "--endpoint", ap)
		require.Equal(t, 0, code, errOut)
	}
	assert.Contains(t, out, "(duplicate: this id was appended before with the same content; original result)")

	// A stream's lifecycle, set through regions other than its home:
	// metadata, a soft delete (appends go on), a hard delete (refused).
	code, out, errOut = runBin(t, bin, "stream", "meta", "eu/life-1", "--max-count", "1", "--custom", "owner=billing", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "appended $metadata to eu/life-1 at version 1 (eu-west)\n")
	code, out, errOut = runBin(t, bin, "stream", "meta", "eu/life-1", "--endpoint", eu)
	require.Equal(t, 0, code, errOut)
	t.Logf("stream meta:\n%s", out)
	assert.Contains(t, out, "  max count        1\n")
	assert.Contains(t, out, "  custom owner = billing\n")
	code, out, errOut = runBin(t, bin, "stream", "delete", "eu/life-1", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "appended $deleted to eu/life-1 at version 2 (eu-west)\n")
	code, _, errOut = runBin(t, bin, "append", "eu/life-1", "--type", "Placed", "--data", "{}", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = runBin(t, bin, "read", "eu/life-1", "--consistency", "strong", "--endpoint", eu)
	require.Equal(t, 0, code, errOut)
	t.Logf("read after a soft delete:\n%s", out)
	assert.Regexp(t, `(?m)^eu/life-1 v3  Placed`, out)
	assert.Contains(t, out, "(1 events, head version 3, versions below 3 deleted or truncated, served by eu-west/")
	code, _, errOut = runBin(t, bin, "stream", "delete", "eu/life-1", "--hard", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runBin(t, bin, "append", "eu/life-1", "--type", "Placed", "--data", "{}", "--endpoint", ap)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: failed_precondition:")
	assert.Contains(t, errOut, "deleted by its $tombstone at version 4")

	// meridian bench through us-east on entities homed in ap-south: what it
	// counts as appended is what the home stored (an append cut off by the
	// end of the run may be stored uncounted: at most one per client).
	code, out, errOut = runBin(t, bin, "bench", "--duration", "1s", "--clients", "4", "--prefix", "ap/bench-", "--json", "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	t.Logf("bench: %s", out)
	require.Positive(t, rep.Appends.OK)
	assert.Zero(t, rep.Appends.Failed)
	stored := int64(0)
	for i := range 4 {
		code, out, errOut = runBin(t, bin, "read", fmt.Sprintf("ap/bench-%d", i), "--consistency", "strong", "--limit", "1", "--endpoint", us)
		require.Equal(t, 0, code, errOut)
		m := regexp.MustCompile(`head version (\d+)`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		n, err := strconv.ParseInt(m[1], 10, 64)
		require.NoError(t, err)
		stored += n
	}
	assert.GreaterOrEqual(t, stored, rep.Appends.OK)
	assert.LessOrEqual(t, stored, rep.Appends.OK+4)

	// Active-active: a cart written through two regions; a third region
	// reads the merged state; data that does not fit its merge op is
	// refused naming the field; a single-home entity has no merged state.
	for _, w := range []struct{ ep, data string }{{us, `{"element":"book"}`}, {"https://" + eu, `{"element":"pen"}`}} {
		code, out, errOut = runBin(t, bin, "append", "cart/alice", "--type", "ItemAdded", "--data", w.data, "--endpoint", w.ep)
		require.Equal(t, 0, code, errOut)
	}
	code, _, errOut = runBin(t, bin, "append", "cart/alice", "--type", "QuantityChanged", "--data", `{"amount":"two"}`, "--endpoint", us)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: invalid_argument:")
	assert.Contains(t, errOut, "events[0].data.amount")
	require.Eventually(t, func() bool {
		code, out, _ := runBin(t, bin, "state", "cart/alice", "--consistency", "eventual", "--endpoint", ap)
		return code == 0 && strings.Contains(out, `{"items":["book","pen"]}`)
	}, 10*time.Second, 50*time.Millisecond, "the merged cart in ap-south")
	code, out, errOut = runBin(t, bin, "conflicts", "cart/alice", "--endpoint", ap)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "(0 conflicts, served by ap-south/n1)")
	code, _, errOut = runBin(t, bin, "state", "eu/order-1", "--endpoint", ap)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: failed_precondition:")
	assert.Contains(t, errOut, "is single-home")

	require.Eventually(t, func() bool { return strings.Contains(tail.out.String(), "eu/order-1 v2  OrderPaid") },
		20*time.Second, 50*time.Millisecond, "tail saw:\n%s\nstderr:\n%s", tail.out, tail.err)
	t.Logf("tail:\n%s%s", tail.out, tail.err)
	assert.Contains(t, tail.out.String(), "eu/order-1 v1  OrderPlaced")
	tail.interrupt(t)

	dev.interrupt(t)
	assert.Contains(t, dev.out.String(), "stopped")
	assert.NoDirExists(t, dataDir, "temporary data directory removed")
	// Every port is free again.
	for _, base := range []int{apiPort, raftPort, placePort} {
		for i := range 3 {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			require.NoError(t, err, "port %d still in use", base+i)
			_ = ln.Close()
		}
	}

	// No node running: the client says so, with a hint, and exits 1 (dev
	// removed its temporary CA with its data).
	t.Setenv("MERIDIAN_TLS_CA", "")
	t.Setenv("MERIDIAN_AUTH_TOKEN", "")
	code, _, errOut = runBin(t, bin, "read", "eu/order-1", "--endpoint", us, "--timeout", "2s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "hint: no Meridian node answers")

	// The smoke mode proves the cross-region path in one command, with a kept data dir.
	keep := filepath.Join(t.TempDir(), "data")
	code, out, errOut = runBin(t, bin, append([]string{"dev", "--smoke", "--data-dir", keep}, d.flags...)...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	t.Logf("smoke:\n%s", out)
	assert.Regexp(t, `smoke: appended eu/smoke-\S+ v1 via \S+ \(us-east\), ordered by its home eu-west; read it with the session token via \S+, served by ap-south/n1 in \S+: ok`, out)
	assert.DirExists(t, filepath.Join(keep, "eu-west", "n1"))

	// With an emulated WAN the deployment still forms, replicates and
	// serves read-your-writes from the reading region; plaintext here.
	code, out, errOut = runBin(t, bin, append([]string{"dev", "--smoke", "--insecure", "--wan-latency", "50ms"}, d.flags...)...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	t.Logf("smoke with WAN:\n%s", out)
	assert.Regexp(t, `served by ap-south/n1 in \S+: ok`, out)
	assert.Contains(t, out, "via http://127.0.0.1:")
}
