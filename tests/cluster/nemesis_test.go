package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/tests/check"
	"github.com/meridiandb/meridian/tests/history"
	"github.com/meridiandb/meridian/tests/nemesis"
)

// Run sizes. The default is issue 4's acceptance run (five schedules of 20 s,
// at least 2,000 operations each), about two minutes; MERIDIAN_NEMESIS_SHORT=1
// gives a quick loop of three 8 s schedules while developing.
const (
	shortSchedules    = 3
	shortDuration     = 8 * time.Second
	shortMinOps       = 200
	longDuration      = 20 * time.Second
	longMinOps        = 2000
	minAckedBeforeHit = 10 // acknowledged appends before the first fault
	settleTimeout     = 30 * time.Second
	linTimeout        = 60 * time.Second
)

// envShort selects the quick run.
const envShort = "MERIDIAN_NEMESIS_SHORT"

// longKinds are the five schedules of the acceptance run.
var longKinds = []nemesis.Kind{nemesis.KindLeaderKill, nemesis.KindPartitionLeader, nemesis.KindOneWay,
	nemesis.KindPause, nemesis.KindCombined}

// TestNemesis runs a 3-node region under seeded fault schedules with a
// recorded workload and checks the history with every checker. A run is
// invalid (and fails) without throughput before the first fault, without a
// fault, or without a successful final write after heal.
func TestNemesis(t *testing.T) {
	seed, err := nemesis.SeedFromEnv(time.Now().UnixNano())
	require.NoError(t, err)
	long := os.Getenv(envShort) == "" || os.Getenv(nemesis.EnvLong) != ""
	kinds, dur, minOps := pickKinds(seed), shortDuration, shortMinOps
	if long {
		kinds, dur, minOps = longKinds, longDuration, longMinOps
	}
	if only := os.Getenv(nemesis.EnvSchedule); only != "" {
		kinds = []nemesis.Kind{nemesis.Kind(only)}
	}
	t.Logf("nemesis seed %d, schedules %v, %s each (replay: %s=%d)", seed, kinds, dur, nemesis.EnvSeed, seed)
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) { runNemesis(t, kind, seed, dur, minOps) })
	}
}

// pickKinds rotates the short run through every kind, seeded.
func pickKinds(seed int64) []nemesis.Kind {
	all := nemesis.Kinds()
	out := make([]nemesis.Kind, 0, shortSchedules)
	start := int(uint64(seed) % uint64(len(all)))
	for i := range shortSchedules {
		out = append(out, all[(start+i)%len(all)])
	}
	return out
}

func runNemesis(t *testing.T, kind nemesis.Kind, seed int64, dur time.Duration, minOps int) {
	c, err := Start(Config{Region: "r1", Nodes: 3, Seed: seed, Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	_, err = c.WaitLeader(ctx)
	cancel()
	require.NoError(t, err)

	sched, err := nemesis.Generate(kind, seed, c.Nodes(), dur)
	require.NoError(t, err)
	runner := nemesis.NewRunner(c, t.Logf)
	nemesis.OnFailure(t, "./tests/cluster", sched, runner)

	rec := history.NewRecorder()
	rec.SetRun(seed, string(kind))
	wl := NewWorkload(c, DefaultWorkload(seed), rec)

	runCtx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	firstFault, _ := sched.FirstFault()
	ackedBefore := make(chan int64, 1)
	go func() {
		select {
		case <-time.After(firstFault):
		case <-runCtx.Done():
		}
		ackedBefore <- wl.Acked()
	}()
	nemDone := make(chan error, 1)
	go func() { nemDone <- runner.Run(runCtx, sched) }()
	wl.Run(runCtx)
	<-nemDone
	require.NoError(t, runner.Recover(), "recover after the schedule: every node must come back")
	for _, id := range c.Nodes() {
		require.NotNil(t, c.Node(id), "node %s is not running after recovery", id)
	}

	// Honest-run rules.
	before := <-ackedBefore
	require.GreaterOrEqual(t, before, int64(minAckedBeforeHit), "invalid run: only %d appends acknowledged before the first fault", before)
	require.Positive(t, sched.FaultCount(), "invalid run: no fault injected")
	applied := 0
	for _, e := range runner.Events() {
		if e.Err == "" && e.Step.Action != nemesis.ActHeal {
			applied++
		}
	}
	require.Positive(t, applied, "invalid run: no fault step applied")
	finalWrite(t, c, rec, wl)

	h := rec.History()
	require.GreaterOrEqual(t, len(h.Ops), minOps, "invalid run: too few operations")
	ctx, cancel = context.WithTimeout(context.Background(), settleTimeout)
	require.NoError(t, c.WaitConverged(ctx))
	cancel()
	replicas, err := c.Streams(wl.Entities())
	require.NoError(t, err)

	artefacts := filepath.Join(os.TempDir(), fmt.Sprintf("meridian-nemesis-%s-%d", kind, seed))
	_, reports := check.All(h, replicas, check.LinOptions{Timeout: linTimeout, VisualizationDir: artefacts})
	t.Logf("%d ops: %d appends ok, %d unknown, %d failed; %d reads ok",
		len(h.Ops), h.Count(history.Append, history.OK), h.Count(history.Append, history.Unknown),
		h.Count(history.Append, history.Failed), h.Count(history.Read, history.OK))
	bad := check.Failed(reports)
	for _, r := range reports {
		t.Log(r.String())
	}
	if len(bad) > 0 {
		p, err := h.Dump(artefacts, "history.json")
		if err == nil {
			t.Logf("history written to %s", p)
		}
		t.Fatalf("%d checker(s) found violations", len(bad))
	}
}

// finalWrite appends once more to every entity after heal; the run is
// invalid unless it succeeds. It also settles any in-flight entry.
func finalWrite(t *testing.T, c *Cluster, rec *history.Recorder, wl *Workload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	require.NoError(t, err, "invalid run: no leader after heal")
	client := c.Client("client-final", leader)
	s := &session{id: wl.cfg.Clients, rng: nil}
	for i, e := range wl.Entities() {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		req := &meridianv1.AppendRequest{Entity: e, Events: []*meridianv1.ProposedEvent{{Id: id, Type: "Final"}}}
		var lastErr error
		ok := false
		for attempt := 1; ctx.Err() == nil && !ok; attempt++ {
			op := rec.Invoke(s.id, "", history.Append, e, history.Input{EventIDs: []string{id}, Attempt: attempt})
			resp, err := client.Append(ctx, connect.NewRequest(req))
			if err == nil {
				rec.OK(op, history.Result{FirstVersion: resp.Msg.GetFirstVersion(), LastVersion: resp.Msg.GetLastVersion(), Duplicate: resp.Msg.GetDuplicate()})
				ok = true
				break
			}
			lastErr = err
			if outcome, _, _ := classify(err); outcome == history.Failed {
				rec.Fail(op, err, history.Result{})
			} else {
				rec.Unknown(op, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.True(t, ok, "invalid run: final write to %s after heal failed: %v", e, lastErr)
	}
}
