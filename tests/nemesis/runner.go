package nemesis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster is what a schedule needs of a cluster under test. The in-process
// cluster (tests/cluster) and the multi-process chaos suite implement it.
// Every method is called from one goroutine at a time.
type Cluster interface {
	// Nodes returns every node name.
	Nodes() []string
	// Leader returns the current leader, if one is known.
	Leader() (string, bool)
	// Kill stops node without a clean shutdown (its directory stays).
	Kill(node string) error
	// Restart starts a killed node again from its directory.
	Restart(node string) error
	// Pause freezes node: it neither sends nor receives, keeps its state.
	Pause(node string) error
	// Resume unfreezes a paused node.
	Resume(node string) error
	// Partition cuts every link between nodes of different groups, both
	// ways; nodes of one group still reach each other.
	Partition(groups ...[]string) error
	// Block cuts the link from -> to only.
	Block(from, to string) error
	// Heal removes every network fault (partitions, one-way cuts).
	Heal() error
	// SkewClock sets node's clock offset from real time.
	SkewClock(node string, offset time.Duration) error
	// ResetClocks removes every clock fault.
	ResetClocks() error
}

// Event is one step as it was applied: the resolved nodes and any error.
type Event struct {
	Step  Step          `json:"step"`
	When  time.Duration `json:"when"` // actual offset from the start
	Nodes []string      `json:"nodes,omitempty"`
	Err   string        `json:"err,omitempty"`
}

func (e Event) String() string {
	s := fmt.Sprintf("%s -> %v (applied at %s)", e.Step.String(), e.Nodes, e.When.Round(time.Millisecond))
	if e.Err != "" {
		s += " error: " + e.Err
	}
	return s
}

// Runner applies a schedule to a cluster and remembers what it left broken,
// so that Recover can undo it.
type Runner struct {
	C    Cluster
	Logf func(format string, args ...any)

	mu     sync.Mutex
	killed []string
	paused []string
	events []Event
}

// NewRunner returns a runner for c that logs through logf (nil: silent).
func NewRunner(c Cluster, logf func(string, ...any)) *Runner {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Runner{C: c, Logf: logf}
}

// Events returns the steps applied so far.
func (r *Runner) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Run applies every step at its offset from now, until the schedule ends or
// ctx is done. A step that fails is logged and recorded, not fatal: faults
// race with the cluster's own changes (a leader that just stepped down).
func (r *Runner) Run(ctx context.Context, s Schedule) error {
	start := time.Now()
	for _, st := range s.Steps {
		wait := time.Until(start.Add(st.At))
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		nodes, err := r.apply(st)
		ev := Event{Step: st, When: time.Since(start), Nodes: nodes}
		if err != nil {
			ev.Err = err.Error()
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		r.Logf("nemesis: %s", ev)
	}
	return nil
}

// resolve turns a target into a node name.
func (r *Runner) resolve(t Target, pick int) string {
	nodes := append([]string(nil), r.C.Nodes()...)
	sort.Strings(nodes)
	leader, ok := r.C.Leader()
	switch t {
	case Leader:
		if ok {
			return leader
		}
		return nodes[pick%len(nodes)]
	case Follower:
		var fs []string
		for _, n := range nodes {
			if n != leader {
				fs = append(fs, n)
			}
		}
		if len(fs) == 0 {
			fs = nodes
		}
		return fs[pick%len(fs)]
	case Any:
		return nodes[pick%len(nodes)]
	}
	return string(t)
}

func (r *Runner) apply(st Step) ([]string, error) {
	switch st.Action {
	case ActKill:
		n := r.resolve(st.Target, st.Pick)
		err := r.C.Kill(n)
		if err == nil {
			r.mu.Lock()
			r.killed = append(r.killed, n)
			r.mu.Unlock()
		}
		return []string{n}, err
	case ActRestart:
		n := r.takeNode(&r.killed, st.Target)
		if n == "" {
			return nil, nil // the kill did not happen
		}
		err := r.C.Restart(n)
		if err != nil {
			// Still down: Recover tries again and reports it.
			r.mu.Lock()
			r.killed = append(r.killed, n)
			r.mu.Unlock()
		}
		return []string{n}, err
	case ActPause:
		n := r.resolve(st.Target, st.Pick)
		err := r.C.Pause(n)
		if err == nil {
			r.mu.Lock()
			r.paused = append(r.paused, n)
			r.mu.Unlock()
		}
		return []string{n}, err
	case ActResume:
		n := r.takeNode(&r.paused, st.Target)
		if n == "" {
			return nil, nil
		}
		return []string{n}, r.C.Resume(n)
	case ActPartition:
		groups := r.resolveGroups(st)
		var flat []string
		for _, g := range groups {
			flat = append(flat, "{"+strings.Join(g, ",")+"}")
		}
		return flat, r.C.Partition(groups...)
	case ActBlock:
		from := r.resolve(st.From, st.Pick)
		to := r.resolve(st.To, st.Pick)
		if from == to {
			return []string{from, to}, fmt.Errorf("nemesis: one-way cut from %s to itself", from)
		}
		return []string{from, to}, r.C.Block(from, to)
	case ActHeal:
		return nil, r.C.Heal()
	case ActSkew:
		n := r.resolve(st.Target, st.Pick)
		return []string{n}, r.C.SkewClock(n, st.Amount)
	case ActResetClks:
		return nil, r.C.ResetClocks()
	}
	return nil, fmt.Errorf("nemesis: unknown action %q", st.Action)
}

// takeNode removes and returns the node a Restart/Resume undoes: the named
// node, or (for a role target) the oldest one still broken.
func (r *Runner) takeNode(list *[]string, t Target) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(*list) == 0 {
		return ""
	}
	if !strings.HasPrefix(string(t), "@") {
		i := slices.Index(*list, string(t))
		if i < 0 {
			return ""
		}
		*list = slices.Delete(*list, i, i+1)
		return string(t)
	}
	n := (*list)[0]
	*list = (*list)[1:]
	return n
}

func (r *Runner) resolveGroups(st Step) [][]string {
	used := map[string]bool{}
	groups := make([][]string, len(st.Groups))
	restAt := -1
	for i, g := range st.Groups {
		for _, t := range g {
			if t == Rest {
				restAt = i
				continue
			}
			n := r.resolve(t, st.Pick)
			if t == Follower {
				// Do not pick a node already placed (e.g. the leader).
				nodes := append([]string(nil), r.C.Nodes()...)
				sort.Strings(nodes)
				for k := 0; used[n] && k < len(nodes); k++ {
					n = r.resolve(t, st.Pick+k+1)
				}
			}
			if !used[n] {
				used[n] = true
				groups[i] = append(groups[i], n)
			}
		}
	}
	if restAt >= 0 {
		nodes := append([]string(nil), r.C.Nodes()...)
		sort.Strings(nodes)
		for _, n := range nodes {
			if !used[n] {
				groups[restAt] = append(groups[restAt], n)
			}
		}
	}
	return groups
}

// Recover undoes everything the runner left broken: heals the network,
// resumes paused nodes, restarts killed ones and resets clocks. Call it at
// the end of a run (also after a failure) before the final write.
func (r *Runner) Recover() error {
	var errs []error
	if err := r.C.Heal(); err != nil {
		errs = append(errs, fmt.Errorf("heal: %w", err))
	}
	r.mu.Lock()
	paused, killed := r.paused, r.killed
	r.paused, r.killed = nil, nil
	r.mu.Unlock()
	for _, n := range paused {
		if err := r.C.Resume(n); err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", n, err))
		}
	}
	for _, n := range killed {
		if err := r.C.Restart(n); err != nil {
			errs = append(errs, fmt.Errorf("restart %s: %w", n, err))
		}
	}
	if err := r.C.ResetClocks(); err != nil {
		errs = append(errs, fmt.Errorf("reset clocks: %w", err))
	}
	return errors.Join(errs...)
}

// Environment variables that select and replay a nemesis run.
const (
	EnvSeed     = "MERIDIAN_NEMESIS_SEED"
	EnvSchedule = "MERIDIAN_NEMESIS_SCHEDULE"
	EnvLong     = "MERIDIAN_NEMESIS_LONG"
)

// SeedFromEnv returns MERIDIAN_NEMESIS_SEED if set, else fallback.
func SeedFromEnv(fallback int64) (int64, error) {
	v := os.Getenv(EnvSeed)
	if v == "" {
		return fallback, nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("nemesis: %s=%q: %w", EnvSeed, v, err)
	}
	return s, nil
}

// ReplayCommand is the shell command that replays schedule s of test (a
// -run pattern) in package pkg.
func ReplayCommand(pkg, test string, s Schedule) string {
	long := ""
	if os.Getenv(EnvLong) != "" {
		long = EnvLong + "=1 "
	}
	return fmt.Sprintf("%s%s=%d %s=%s go test %s -run '%s' -count=1 -v", long, EnvSeed, s.Seed, EnvSchedule, s.Kind, pkg, test)
}

// OnFailure registers a cleanup on t that, if t failed, prints the seed, the
// schedule, what was applied and the command that replays the run.
func OnFailure(t testing.TB, pkg string, s Schedule, r *Runner) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "nemesis run failed: seed %d, schedule %s\n%s\n", s.Seed, s.Kind, s)
		if r != nil {
			b.WriteString("applied:\n")
			for _, e := range r.Events() {
				fmt.Fprintf(&b, "  %s\n", e)
			}
		}
		fmt.Fprintf(&b, "replay: %s", ReplayCommand(pkg, "^"+t.Name()+"$", s))
		t.Log(b.String())
	})
}
