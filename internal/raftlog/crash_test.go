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
	for {
		op := randomLogOp(rng, first, last, curTerm, crashOpOdds)
		// Each line is one write(2) of less than PIPE_BUF bytes: the parent
		// reads whole lines or none.
		fmt.Fprintf(os.Stdout, "B %s\n", op)
		if err := op.run(s, first, last); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return 1
		}
		first, last = op.after(first, last)
		if op.kind == opTail {
			curTerm++ // a new leader cut the tail
		}
		fmt.Fprintln(os.Stdout, "A")
	}
}

// crashOpOdds: the writer mostly appends, which rolls 16 KiB segments.
var crashOpOdds = logOpOdds{appendPct: 70, tailPct: 15, headPct: 12, startMax: 1000, batchMax: 16}

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
	m := logModel{terms: map[uint64]uint64{}}
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

		inFlight := replay(t, &m, lines, &acked)
		if inFlight != nil {
			inFlightChecked++
		}
		checkAfterKill(t, &m, dir, inFlight, round)
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
// returns the operation in flight when the child died (nil if none).
func replay(t *testing.T, m *logModel, lines []string, acked *int) *logOp {
	var pending *logOp
	for _, line := range lines {
		switch {
		case line == "O":
		case line == "A":
			require.NotNil(t, pending, "acknowledgement without an operation")
			m.apply(*pending)
			pending = nil
			*acked++
		case strings.HasPrefix(line, "B "):
			require.Nil(t, pending)
			op, err := parseLogOp(strings.TrimPrefix(line, "B "))
			require.NoError(t, err)
			pending = &op
		}
	}
	return pending
}

// checkAfterKill opens the log the killed child left and requires it to be
// the acknowledged log, or what the operation in flight may have made of
// it; then the model takes what the log holds.
func checkAfterKill(t *testing.T, m *logModel, dir string, inFlight *logOp, round int) {
	t.Helper()
	s, err := Open(dir, Options{SegmentBytes: 16 << 10, Logger: quiet})
	require.NoError(t, err, "round %d: the log must reopen after a kill", round)
	defer func() { require.NoError(t, s.Close()) }()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	ctx := fmt.Sprintf("round %d, acknowledged %d..%d, in flight %v, reopened %d..%d", round, m.first, m.last, inFlight, first, last)
	inFlightTerm := uint64(0)
	switch {
	case inFlight == nil:
		require.Equal(t, [2]uint64{m.first, m.last}, [2]uint64{first, last}, ctx)
	case inFlight.kind == opAppend:
		inFlightTerm = inFlight.term
		if m.first == 0 {
			require.Contains(t, []uint64{0, inFlight.from}, first, ctx)
		} else {
			require.Equal(t, m.first, first, ctx)
		}
		if first != 0 {
			require.True(t, last >= max(m.last, inFlight.from-1) && last <= inFlight.to, ctx)
		}
	case inFlight.kind == opTail:
		require.Equal(t, m.first, first, ctx)
		require.True(t, last >= inFlight.from-1 && last <= m.last, ctx)
	case inFlight.kind == opHead:
		require.Contains(t, []uint64{m.first, inFlight.from}, first, ctx)
		require.Equal(t, m.last, last, ctx)
	case inFlight.kind == opAll:
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
