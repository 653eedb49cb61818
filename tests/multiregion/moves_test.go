package multiregion

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/check"
	"github.com/meridiandb/meridian/tests/history"
	"github.com/meridiandb/meridian/tests/nemesis"
)

// TestPlacementChangesUnderLoadKeepOneChainPerEntity is the fenced-homes
// issue's first scenario, with every region up: sessions append to and read
// 18 entities through random regions while pins and unpins move random
// entities between regions every 300 ms. Afterwards every acknowledged
// append is stored once at its version in every region, no two events share
// a version, the streams are identical everywhere, and the history is
// linearizable per entity across its home changes.
func TestPlacementChangesUnderLoadKeepOneChainPerEntity(t *testing.T) {
	seed, err := nemesis.SeedFromEnv(time.Now().UnixNano())
	require.NoError(t, err)
	const dur = 10 * time.Second
	t.Logf("seed %d (replay: %s=%d go test ./tests/multiregion -run '^TestPlacementChangesUnderLoadKeepOneChainPerEntity$' -count=1 -v)",
		seed, nemesis.EnvSeed, seed)
	c, err := Start(Config{Regions: threeRegions, NodesPerRegion: 1, Dir: t.TempDir(), Seed: seed, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	waitPlacementComplete(t, c, c.Hosts())
	setExampleRules(t, c)
	waitRegionLeaders(t, c)

	rec := history.NewRecorder()
	rec.SetRun(seed, "moves")
	hop := DefaultHop(seed)
	hop.Sessions, hop.EntitiesPerHome, hop.ReadShare = 8, 6, 0.3
	wl := NewHopWorkload(c, hop, rec)
	churn := NewChurn(c, ChurnConfig{Seed: seed, Interval: 300 * time.Millisecond, Entities: wl.Entities()})
	artefacts := filepath.Join(os.TempDir(), fmt.Sprintf("meridian-moves-%d", seed))
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "placement changes (seed %d):\n", seed)
		for _, e := range churn.Events() {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		if p, err := rec.History().Dump(artefacts, "history.json"); err == nil {
			fmt.Fprintf(&b, "history: %s\n", p)
		}
		t.Log(b.String())
	})

	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { churn.Run(ctx) })
	wl.Run(ctx)
	wg.Wait()
	quietAt := time.Now()
	require.Positive(t, churn.OK(), "invalid run: no placement change succeeded")

	finalWrites(t, c, rec, wl)
	entities := wl.Entities()
	regionsIn, _, last := waitConvergence(t, c, entities, quietAt)
	require.Empty(t, last, "did not converge within %s", convergeWaitMax)
	t.Logf("%d placement changes (%d ok); regions converged %s after the load stopped",
		len(churn.Events()), churn.OK(), regionsIn.Round(time.Millisecond))

	replicas, err := c.Replicas(entities)
	require.NoError(t, err)
	h := rec.History()
	resolved, res := check.ResolveUnknown(h, replicas)
	reports := []check.Report{
		res,
		check.Linearizability(resolved, check.LinOptions{Timeout: nemesisLinTimeout, VisualizationDir: artefacts}),
		check.NoLostWrites(resolved, replicas),
		check.Convergence(replicas),
		check.Idempotency(resolved, replicas),
		check.SessionsAcrossRegions(resolved, replicas),
	}
	logRunFigures(t, h, resolved, dur)
	logFailures(t, h)
	for _, r := range reports {
		t.Log(r.String())
	}
	require.Empty(t, check.Failed(reports), "checkers found violations")
}

// errShape matches what varies between errors of one kind: quoted names
// and numbers.
var errShape = regexp.MustCompile(`"[^"]*"|[0-9]+`)

// logFailures logs how many appends failed or ended unknown, by the start
// of their error text (what a reader of a run wants to know first).
func logFailures(t *testing.T, h history.History) {
	t.Helper()
	byErr := map[string]int{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != history.Append || op.Outcome == history.OK {
			continue
		}
		e := errShape.ReplaceAllString(op.Error, "N")
		if len(e) > 100 {
			e = e[:100]
		}
		byErr[string(op.Outcome)+": "+e]++
	}
	keys := make([]string, 0, len(byErr))
	for k := range byErr {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return byErr[keys[i]] > byErr[keys[j]] })
	for i, k := range keys {
		if i == 10 {
			break
		}
		t.Logf("  %5d x %s", byErr[k], k)
	}
}
