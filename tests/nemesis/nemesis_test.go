package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var three = []string{"n1", "n2", "n3"}

func TestGenerateIsDeterministicPerSeed(t *testing.T) {
	for _, kind := range Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			a, err := Generate(kind, 42, three, 20*time.Second)
			require.NoError(t, err)
			b, err := Generate(kind, 42, []string{"n3", "n1", "n2"}, 20*time.Second)
			require.NoError(t, err)
			require.Equal(t, a, b, "same seed and nodes (any order) must give the same schedule")

			differs := false
			for seed := int64(1); seed <= 5 && !differs; seed++ {
				c, err := Generate(kind, seed, three, 20*time.Second)
				require.NoError(t, err)
				differs = fmt.Sprint(c.Steps) != fmt.Sprint(a.Steps)
			}
			assert.True(t, differs, "the seed must matter")
		})
	}
}

// TestSchedulesAreWellFormed: every schedule injects faults after a warm-up,
// undoes each kill and pause, and is healed by 80% of its duration.
func TestSchedulesAreWellFormed(t *testing.T) {
	for _, kind := range Kinds() {
		for _, nodes := range [][]string{three, {"a", "b", "c", "d", "e"}} {
			for seed := int64(0); seed < 20; seed++ {
				name := fmt.Sprintf("%s/%dnodes/seed%d", kind, len(nodes), seed)
				s, err := Generate(kind, seed, nodes, 20*time.Second)
				require.NoError(t, err, name)
				assert.Positive(t, s.FaultCount(), name)
				first, ok := s.FirstFault()
				require.True(t, ok, name)
				assert.GreaterOrEqual(t, first, 3*time.Second, name)
				assert.True(t, sort.SliceIsSorted(s.Steps, func(i, j int) bool { return s.Steps[i].At < s.Steps[j].At }), name)
				last := s.Steps[len(s.Steps)-1]
				assert.Equal(t, ActHeal, last.Action, name)
				assert.LessOrEqual(t, last.At, 16*time.Second, name)
				kills, pauses := 0, 0
				for _, st := range s.Steps {
					switch st.Action {
					case ActKill:
						kills++
					case ActRestart:
						kills--
					case ActPause:
						pauses++
					case ActResume:
						pauses--
					case ActPartition:
						for _, g := range st.Groups {
							assert.Less(t, len(g), len(nodes)/2+1, "%s: a partition side with a majority named explicitly is not a minority test: %s", name, st)
						}
					}
					assert.GreaterOrEqual(t, kills, 0, name)
					assert.LessOrEqual(t, kills, 1, "%s: at most one node down at a time keeps a quorum", name)
				}
				assert.Zero(t, kills, "%s: every kill is followed by a restart", name)
				assert.Zero(t, pauses, "%s: every pause is followed by a resume", name)
			}
		}
	}
	_, err := Generate("nope", 1, three, time.Second)
	require.Error(t, err)
	_, err = Generate(KindPause, 1, nil, time.Second)
	require.Error(t, err)
}

func TestScheduleJSONRoundTrip(t *testing.T) {
	s, err := Generate(KindCombined, 7, three, 20*time.Second)
	require.NoError(t, err)
	var back Schedule
	require.NoError(t, json.Unmarshal([]byte(s.JSON()), &back))
	assert.Equal(t, s, back)
	assert.Contains(t, s.String(), "seed 7")
}

// fakeCluster records calls; n1 is the leader until killed, partitioned
// away or paused, then n2.
type fakeCluster struct {
	mu     sync.Mutex
	nodes  []string
	leader string
	calls  []string
}

func (f *fakeCluster) rec(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return nil
}
func (f *fakeCluster) Nodes() []string { return f.nodes }
func (f *fakeCluster) Leader() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader, f.leader != ""
}
func (f *fakeCluster) Kill(n string) error {
	f.mu.Lock()
	if n == f.leader {
		f.leader = "n2"
	}
	f.mu.Unlock()
	return f.rec("kill " + n)
}
func (f *fakeCluster) Restart(n string) error { return f.rec("restart " + n) }
func (f *fakeCluster) Pause(n string) error   { return f.rec("pause " + n) }
func (f *fakeCluster) Resume(n string) error  { return f.rec("resume " + n) }
func (f *fakeCluster) Partition(groups ...[]string) error {
	return f.rec(fmt.Sprintf("partition %v", groups))
}
func (f *fakeCluster) Block(from, to string) error { return f.rec("block " + from + "->" + to) }
func (f *fakeCluster) Heal() error                 { return f.rec("heal") }
func (f *fakeCluster) SkewClock(n string, d time.Duration) error {
	return f.rec(fmt.Sprintf("skew %s %s", n, d))
}
func (f *fakeCluster) ResetClocks() error { return f.rec("reset-clocks") }

func TestRunnerResolvesTargets(t *testing.T) {
	s := Schedule{Kind: "hand", Seed: 1, Nodes: three, Duration: 50 * time.Millisecond, Steps: []Step{
		{At: 0, Action: ActKill, Target: Leader},
		{At: time.Millisecond, Action: ActRestart, Target: Leader},
		{At: 2 * time.Millisecond, Action: ActPartition, Groups: [][]Target{{Leader}, {Rest}}},
		{At: 3 * time.Millisecond, Action: ActBlock, From: Leader, To: Follower, Pick: 1},
		{At: 4 * time.Millisecond, Action: ActPause, Target: Any, Pick: 2},
		{At: 5 * time.Millisecond, Action: ActSkew, Target: "n1", Amount: time.Second},
		{At: 6 * time.Millisecond, Action: ActKill, Target: "n3"},
	}}
	f := &fakeCluster{nodes: three, leader: "n1"}
	var logs []string
	r := NewRunner(f, func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) })
	require.NoError(t, r.Run(context.Background(), s))
	assert.Equal(t, []string{
		"kill n1", "restart n1",
		"partition [[n2] [n1 n3]]",
		"block n2->n3",
		"pause n3",
		"skew n1 1s",
		"kill n3",
	}, f.calls)
	assert.Len(t, r.Events(), len(s.Steps))
	assert.Len(t, logs, len(s.Steps))

	require.NoError(t, r.Recover())
	assert.Equal(t, []string{"heal", "resume n3", "restart n3", "reset-clocks"}, f.calls[7:])
}

func TestRunnerRunsAGeneratedSchedule(t *testing.T) {
	for _, kind := range Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			s, err := Generate(kind, 3, three, 100*time.Millisecond)
			require.NoError(t, err)
			f := &fakeCluster{nodes: three, leader: "n1"}
			r := NewRunner(f, t.Logf)
			require.NoError(t, r.Run(context.Background(), s))
			require.NoError(t, r.Recover())
			for _, e := range r.Events() {
				assert.Empty(t, e.Err, e.String())
			}
			assert.Equal(t, "heal", f.calls[len(f.calls)-3], "recover heals")
		})
	}
}

func TestRunnerStopsOnContext(t *testing.T) {
	s, err := Generate(KindPause, 1, three, time.Hour)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r := NewRunner(&fakeCluster{nodes: three}, nil)
	require.ErrorIs(t, r.Run(ctx, s), context.DeadlineExceeded)
}

func TestReplayCommand(t *testing.T) {
	t.Setenv(EnvSeed, "99")
	seed, err := SeedFromEnv(1)
	require.NoError(t, err)
	assert.Equal(t, int64(99), seed)
	t.Setenv(EnvSeed, "x")
	_, err = SeedFromEnv(1)
	require.Error(t, err)
	t.Setenv(EnvSeed, "")
	seed, err = SeedFromEnv(5)
	require.NoError(t, err)
	assert.Equal(t, int64(5), seed)

	s, err := Generate(KindOneWay, 99, three, time.Second)
	require.NoError(t, err)
	cmd := ReplayCommand("./tests/cluster", "^TestNemesis/one-way$", s)
	assert.True(t, strings.Contains(cmd, "MERIDIAN_NEMESIS_SEED=99") && strings.Contains(cmd, "MERIDIAN_NEMESIS_SCHEDULE=one-way"), cmd)
}

// failingRestart fails the first restart of every node.
type failingRestart struct {
	fakeCluster
	failed map[string]bool
}

func (f *failingRestart) Restart(n string) error {
	if !f.failed[n] {
		f.failed[n] = true
		return fmt.Errorf("cannot restart %s", n)
	}
	return f.fakeCluster.Restart(n)
}

func TestRecoverRetriesFailedRestart(t *testing.T) {
	f := &failingRestart{fakeCluster: fakeCluster{nodes: three, leader: "n1"}, failed: map[string]bool{}}
	r := NewRunner(f, nil)
	s := Schedule{Kind: "hand", Nodes: three, Steps: []Step{
		{Action: ActKill, Target: "n2"}, {Action: ActRestart, Target: "n2"},
	}}
	require.NoError(t, r.Run(context.Background(), s))
	assert.NotEmpty(t, r.Events()[1].Err, "the failed restart is recorded")
	require.NoError(t, r.Recover())
	assert.Contains(t, f.calls, "restart n2", "recover restarts the node that failed to come back")
}
