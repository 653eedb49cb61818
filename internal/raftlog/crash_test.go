package raftlog

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// The crash test runs a writer in a child process (this test binary,
// re-executed with crashChildEnv set) and kills it with SIGKILL at a random
// moment: during appends, segment rolls, tail and head truncations, whole-log
// deletions, or its own recovery. The writer announces each operation
// before it starts ("B ...") and after the store acknowledged it ("A"), so
// the parent knows what was acknowledged and which one operation was in
// flight, and checks the reopened log against exactly that.
const crashChildEnv = "RAFTLOG_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild writes random operations to the store in dir until killed.
// Its terms start at RAFTLOG_CRASH_TERM, above every term of earlier runs.
func crashChild(dir string) int {
	curTerm, _ := strconv.ParseUint(os.Getenv("RAFTLOG_CRASH_TERM"), 10, 64)
	seed, _ := strconv.ParseUint(os.Getenv("RAFTLOG_CRASH_SEED"), 10, 64)
	rng := rand.New(rand.NewPCG(seed, curTerm))
	s, err := Open(dir, Options{SegmentBytes: 16 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	fmt.Fprintln(os.Stdout, "O")
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	say := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	for {
		var err error
		switch op := rng.IntN(100); {
		case op < 70 || last == 0:
			from := last + 1
			if last == 0 {
				from = 1 + rng.Uint64N(1000)
			}
			to := from + rng.Uint64N(16)
			say("B append %d %d %d", from, to, curTerm)
			if err = s.StoreLogs(batch(from, to, curTerm)); err == nil {
				if first == 0 {
					first = from
				}
				last = to
			}
		case op < 85 && last > first:
			lo := first + 1 + rng.Uint64N(last-first)
			say("B tail %d", lo)
			if err = s.DeleteRange(lo, last); err == nil {
				last = lo - 1
			}
			curTerm++
		case op < 97 && last > first:
			hi := first + rng.Uint64N(last-first)
			say("B head %d", hi+1)
			if err = s.DeleteRange(first, hi); err == nil {
				first = hi + 1
			}
		default:
			say("B all")
			if err = s.DeleteRange(first, last); err == nil {
				first, last = 0, 0
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return 1
		}
		say("A")
	}
}

// crashModel is the acknowledged log: its bounds and each entry's term.
type crashModel struct {
	first, last uint64
	terms       map[uint64]uint64
}

func TestCrashDuringWrites(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 8
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (RAFTLOG_CRASH_SEED)", seed)
	if s, err := strconv.ParseUint(os.Getenv("RAFTLOG_CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	m := crashModel{terms: map[uint64]uint64{}}
	var acked, inFlightChecked int
	for round := 1; round <= rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir,
			fmt.Sprintf("RAFTLOG_CRASH_TERM=%d", round*1000),
			fmt.Sprintf("RAFTLOG_CRASH_SEED=%d", seed+uint64(round)))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		// Kill at a random moment: sometimes during the child's recovery,
		// mostly after some hundreds of operations.
		time.AfterFunc(time.Duration(rng.IntN(400))*time.Millisecond, func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
		})
		lines := readLines(out)
		err = cmd.Wait()
		require.Error(t, err, "the child only ends when killed; stderr: %s", stderr.String())
		require.Equal(t, "signal: killed", err.Error(), "stderr: %s", stderr.String())

		inFlight := m.replay(t, lines, &acked)
		if inFlight != "" {
			inFlightChecked++
		}
		m.check(t, dir, inFlight, round)
	}
	t.Logf("%d rounds, %d operations acknowledged, %d kills with an operation in flight", rounds, acked, inFlightChecked)
	require.Greater(t, acked, rounds, "the children should have acknowledged operations")
}

func readLines(r io.Reader) []string {
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// replay applies the acknowledged operations of lines to the model and
// returns the operation in flight when the child died ("" if none). A line
// cut by the kill is treated as never written: the child had not started
// the operation it announces only after the announcement is complete.
func (m *crashModel) replay(t *testing.T, lines []string, acked *int) string {
	var pending string
	for _, line := range lines {
		switch {
		case line == "O":
		case line == "A":
			require.NotEmpty(t, pending, "acknowledgement without an operation")
			m.apply(pending)
			pending = ""
			*acked++
		case strings.HasPrefix(line, "B "):
			require.Empty(t, pending)
			pending = strings.TrimPrefix(line, "B ")
		}
	}
	return pending
}

func fields(op string) (string, []uint64) {
	f := strings.Fields(op)
	var nums []uint64
	for _, s := range f[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		nums = append(nums, n)
	}
	return f[0], nums
}

func (m *crashModel) apply(op string) {
	kind, n := fields(op)
	switch kind {
	case "append":
		for i := n[0]; i <= n[1]; i++ {
			m.terms[i] = n[2]
		}
		if m.first == 0 {
			m.first = n[0]
		}
		m.last = n[1]
	case "tail":
		for i := n[0]; i <= m.last; i++ {
			delete(m.terms, i)
		}
		m.last = n[0] - 1
	case "head":
		for i := m.first; i < n[0]; i++ {
			delete(m.terms, i)
		}
		m.first = n[0]
	case "all":
		m.first, m.last, m.terms = 0, 0, map[uint64]uint64{}
	}
}

// check opens the log the killed child left and requires it to be the
// acknowledged log, or what the operation in flight may have made of it;
// then the model takes what the log holds.
func (m *crashModel) check(t *testing.T, dir, inFlight string, round int) {
	t.Helper()
	s, err := Open(dir, Options{SegmentBytes: 16 << 10, Logger: quiet})
	require.NoError(t, err, "round %d: the log must reopen after a kill", round)
	defer func() { require.NoError(t, s.Close()) }()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	ctx := fmt.Sprintf("round %d, acknowledged %d..%d, in flight %q, reopened %d..%d", round, m.first, m.last, inFlight, first, last)
	var kind string
	var n []uint64
	if inFlight != "" {
		kind, n = fields(inFlight)
	}
	inFlightTerm := uint64(0)
	switch kind {
	case "":
		require.Equal(t, [2]uint64{m.first, m.last}, [2]uint64{first, last}, ctx)
	case "append":
		inFlightTerm = n[2]
		if m.first == 0 {
			require.Contains(t, []uint64{0, n[0]}, first, ctx)
		} else {
			require.Equal(t, m.first, first, ctx)
		}
		if first != 0 {
			require.True(t, last >= max(m.last, n[0]-1) && last <= n[1], ctx)
		}
	case "tail":
		require.Equal(t, m.first, first, ctx)
		require.True(t, last >= n[0]-1 && last <= m.last, ctx)
	case "head":
		require.Contains(t, []uint64{m.first, n[0]}, first, ctx)
		require.Equal(t, m.last, last, ctx)
	case "all":
		if first != 0 {
			require.Equal(t, [2]uint64{m.first, m.last}, [2]uint64{first, last}, ctx)
		}
	}
	terms := map[uint64]uint64{}
	var l raft.Log
	for i := first; first != 0 && i <= last; i++ {
		require.NoError(t, s.GetLog(i, &l), "%s: index %d", ctx, i)
		want, ok := m.terms[i]
		if !ok {
			want = inFlightTerm // beyond the acknowledged log: the append in flight
		}
		require.Equal(t, want, l.Term, "%s: term of %d", ctx, i)
		require.Equal(t, payload(i, want), l.Data, "%s: data of %d", ctx, i)
		terms[i] = l.Term
	}
	m.first, m.last, m.terms = first, last, terms
}
