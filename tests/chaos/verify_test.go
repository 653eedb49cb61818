package chaos

import (
	"errors"
	"os/exec"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
)

func TestCheckHistory(t *testing.T) {
	ack := func(entity string, first uint64, ids ...string) *op {
		return &op{entity: entity, ids: ids, outcome: "ok", first: first, last: first + uint64(len(ids)) - 1}
	}
	with := func(outcome string, entity string, ids ...string) *op {
		return &op{entity: entity, ids: ids, outcome: outcome}
	}
	cases := []struct {
		name    string
		ops     []*op
		streams map[string][]string
		wantErr string
	}{
		{"good", []*op{ack("e", 1, "a", "b"), ack("e", 3, "c"), with("unknown", "e", "d"), with("unknown", "e", "x")},
			map[string][]string{"e": {"a", "b", "c", "d"}}, ""},
		{"lost acknowledged write", []*op{ack("e", 1, "a"), ack("e", 2, "b")},
			map[string][]string{"e": {"a"}}, "lost acknowledged write"},
		{"acknowledged at another version", []*op{ack("e", 2, "a")},
			map[string][]string{"e": {"a"}}, "acknowledged as 2"},
		{"duplicate", []*op{ack("e", 1, "a")},
			map[string][]string{"e": {"a", "a"}}, "appears twice"},
		{"partial unknown append", []*op{with("unknown", "e", "a", "b")},
			map[string][]string{"e": {"a"}}, "partially applied"},
		{"failed append present", []*op{with("failed", "e", "a")},
			map[string][]string{"e": {"a"}}, "failed with"},
		{"wrong entity", []*op{ack("e", 1, "a")},
			map[string][]string{"f": {"a"}}, "found in f"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHistory(tc.ops, tc.streams)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestCompareStreams(t *testing.T) {
	same := map[string]map[string][]string{"n1": {"e": {"a"}}, "n2": {"e": {"a"}}}
	require.Empty(t, compareStreams(same))
	diff := map[string]map[string][]string{"n1": {"e": {"a"}}, "n2": {"e": {"a", "b"}}}
	require.Contains(t, compareStreams(diff), "entity e")
}

func TestClassify(t *testing.T) {
	require.Equal(t, "failed", classify(connect.NewError(connect.CodeFailedPrecondition, errors.New("x"))))
	require.Equal(t, "unknown", classify(connect.NewError(connect.CodeUnavailable, errors.New("x"))))
	require.Equal(t, "unknown", classify(connect.NewError(connect.CodeDeadlineExceeded, errors.New("x"))))
	require.Equal(t, "unknown", classify(errors.New("connection reset")))
}

// TestProcessesFindsARunningProgram: the leftover-process check of TestChaos
// must be able to fail, so it has to see a process that does run.
func TestProcessesFindsARunningProgram(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	cmd := exec.Command(sleep, "30")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Between fork and exec the child's cmdline is still the test binary's,
	// so on a loaded machine the first look can miss it: poll briefly.
	require.Eventually(t, func() bool {
		pids, err := Processes(sleep)
		require.NoError(t, err)
		return slices.Contains(pids, cmd.Process.Pid)
	}, 10*time.Second, 10*time.Millisecond, "Processes(%s) never listed pid %d", sleep, cmd.Process.Pid)
	none, err := Processes("/nonexistent/meridian")
	require.NoError(t, err)
	require.Empty(t, none)
}
