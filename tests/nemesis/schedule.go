package nemesis

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Action is one fault-injection (or healing) step.
type Action string

const (
	ActKill      Action = "kill"      // stop Target without clean shutdown
	ActRestart   Action = "restart"   // restart Target from its directory
	ActPause     Action = "pause"     // freeze Target (SIGSTOP's effect)
	ActResume    Action = "resume"    // unfreeze Target
	ActPartition Action = "partition" // cut between Groups, both ways
	ActBlock     Action = "block"     // cut From -> To only (one way)
	ActHeal      Action = "heal"      // remove every network fault
	ActSkew      Action = "skew"      // set Target's clock offset to Amount
	ActResetClks Action = "reset-clocks"
)

// Target names a node, or a role resolved when the step runs.
type Target string

const (
	// Leader is the region leader when the step runs (any node if none).
	Leader Target = "@leader"
	// Follower is a non-leader, chosen by the step's Pick.
	Follower Target = "@follower"
	// Any is any node, chosen by the step's Pick.
	Any Target = "@any"
	// Rest is every node not named elsewhere in the step (partitions only).
	Rest Target = "@rest"
)

// Step is one timed action of a schedule.
type Step struct {
	// At is the offset from the start of the schedule.
	At     time.Duration `json:"at"`
	Action Action        `json:"action"`
	Target Target        `json:"target,omitempty"`
	// Groups are the sides of a partition; Rest fills the remaining nodes.
	Groups [][]Target `json:"groups,omitempty"`
	// From and To are the one-way link of ActBlock.
	From Target `json:"from,omitempty"`
	To   Target `json:"to,omitempty"`
	// Amount is the clock offset of ActSkew.
	Amount time.Duration `json:"amount,omitempty"`
	// Pick is the seeded choice used to resolve Follower and Any.
	Pick int `json:"pick,omitempty"`
}

func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %s", s.At.Round(time.Millisecond), s.Action)
	if s.Target != "" {
		fmt.Fprintf(&b, " %s", s.Target)
	}
	if len(s.Groups) > 0 {
		parts := make([]string, len(s.Groups))
		for i, g := range s.Groups {
			ns := make([]string, len(g))
			for j, t := range g {
				ns[j] = string(t)
			}
			parts[i] = "{" + strings.Join(ns, ",") + "}"
		}
		fmt.Fprintf(&b, " %s", strings.Join(parts, " | "))
	}
	if s.From != "" {
		fmt.Fprintf(&b, " %s -> %s", s.From, s.To)
	}
	if s.Amount != 0 {
		fmt.Fprintf(&b, " %s", s.Amount)
	}
	if s.Pick != 0 && (s.Target == Follower || s.Target == Any || s.From == Follower || s.To == Follower) {
		fmt.Fprintf(&b, " (pick %d)", s.Pick)
	}
	return b.String()
}

// Kind names a family of schedules.
type Kind string

const (
	KindLeaderKill        Kind = "leader-kill"
	KindPartitionMinority Kind = "partition-minority"
	KindPartitionLeader   Kind = "partition-leader"
	KindPartitionMajority Kind = "partition-majority"
	KindOneWay            Kind = "one-way"
	KindPause             Kind = "pause"
	KindRollingRestart    Kind = "rolling-restart"
	KindClockSkew         Kind = "clock-skew"
	KindCombined          Kind = "combined"
)

// Kinds lists every schedule kind, in a stable order.
func Kinds() []Kind {
	return []Kind{KindLeaderKill, KindPartitionMinority, KindPartitionLeader, KindPartitionMajority,
		KindOneWay, KindPause, KindRollingRestart, KindClockSkew, KindCombined}
}

// Schedule is a reproducible fault plan: the same kind, seed, nodes and
// duration always give the same steps.
type Schedule struct {
	Kind     Kind          `json:"kind"`
	Seed     int64         `json:"seed"`
	Nodes    []string      `json:"nodes"`
	Duration time.Duration `json:"duration"`
	Steps    []Step        `json:"steps"`
}

// Fractions of a schedule's duration (named bounds of the plan).
const (
	// warmupFraction: no fault before this share of the run, so the run can
	// show its fault-free throughput first.
	warmupFraction = 0.15
	// faultEndFraction: the last fault starts before this share; then
	// everything is healed and the cluster must recover and accept a final
	// write.
	faultEndFraction = 0.75
	// healFraction: everything is healed by this share of the run.
	healFraction = 0.8
	// skewMax bounds injected clock offsets.
	skewMax = 200 * time.Millisecond
)

// gen is the seeded generator of one schedule.
type gen struct {
	rng   *rand.Rand
	nodes []string
	d     time.Duration
	steps []Step
}

// between returns a duration uniform in [lo, hi) shares of the run.
func (g *gen) between(lo, hi float64) time.Duration {
	return time.Duration((lo + g.rng.Float64()*(hi-lo)) * float64(g.d))
}

func (g *gen) add(s Step) { g.steps = append(g.steps, s) }

// minority returns a random minority of the nodes (at least one node).
func (g *gen) minority() []Target {
	n := len(g.nodes)
	size := max(1, (n-1)/2)
	perm := g.rng.Perm(n)
	out := make([]Target, size)
	for i := range size {
		out[i] = Target(g.nodes[perm[i]])
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// noQuorum splits the nodes into groups none of which holds a majority.
func (g *gen) noQuorum() [][]Target {
	n := len(g.nodes)
	perm := g.rng.Perm(n)
	maxSide := (n - 1) / 2
	if maxSide < 1 {
		maxSide = 1
	}
	var groups [][]Target
	for i := 0; i < n; i += maxSide {
		var grp []Target
		for j := i; j < min(i+maxSide, n); j++ {
			grp = append(grp, Target(g.nodes[perm[j]]))
		}
		groups = append(groups, grp)
	}
	return groups
}

// cycles runs fault(at) -> heal(at + hold) repeatedly until faultEnd.
func (g *gen) cycles(fault func(at time.Duration) (heal func(at time.Duration))) {
	at := g.between(warmupFraction, warmupFraction+0.05)
	end := time.Duration(faultEndFraction * float64(g.d))
	for at < end {
		heal := fault(at)
		hold := g.between(0.06, 0.12)
		healAt := min(at+hold, time.Duration(healFraction*float64(g.d)))
		heal(healAt)
		at = healAt + g.between(0.04, 0.08)
	}
}

// Generate returns the schedule of kind for seed over nodes, spread over
// duration. Every fault is healed before 80% of the duration.
func Generate(kind Kind, seed int64, nodes []string, duration time.Duration) (Schedule, error) {
	if len(nodes) == 0 {
		return Schedule{}, fmt.Errorf("nemesis: no nodes")
	}
	if duration <= 0 {
		return Schedule{}, fmt.Errorf("nemesis: duration %s must be positive", duration)
	}
	ns := append([]string(nil), nodes...)
	sort.Strings(ns)
	g := &gen{rng: rand.New(rand.NewPCG(uint64(seed), hashKind(kind))), nodes: ns, d: duration}
	if !g.plan(kind) {
		return Schedule{}, fmt.Errorf("nemesis: unknown schedule kind %q (known: %v)", kind, Kinds())
	}
	g.add(Step{At: time.Duration(healFraction * float64(duration)), Action: ActHeal})
	sort.SliceStable(g.steps, func(i, j int) bool { return g.steps[i].At < g.steps[j].At })
	return Schedule{Kind: kind, Seed: seed, Nodes: ns, Duration: duration, Steps: g.steps}, nil
}

func (g *gen) plan(kind Kind) bool {
	switch kind {
	case KindLeaderKill:
		g.cycles(g.leaderKill)
	case KindPartitionMinority:
		g.cycles(g.partitionMinority)
	case KindPartitionLeader:
		g.cycles(g.partitionLeader)
	case KindPartitionMajority:
		g.cycles(g.partitionMajority)
	case KindOneWay:
		g.cycles(g.oneWay)
	case KindPause:
		g.cycles(g.pause)
	case KindRollingRestart:
		g.rollingRestart()
	case KindClockSkew:
		g.cycles(g.clockSkew)
	case KindCombined:
		faults := []func(time.Duration) func(time.Duration){g.leaderKill, g.partitionMinority, g.partitionLeader, g.oneWay, g.pause, g.clockSkew}
		g.cycles(func(at time.Duration) func(time.Duration) {
			// Two faults at once, the second shortly after the first.
			i := g.rng.IntN(len(faults))
			j := (i + 1 + g.rng.IntN(len(faults)-1)) % len(faults)
			h1 := faults[i](at)
			h2 := faults[j](at + g.between(0, 0.02))
			return func(healAt time.Duration) { h2(healAt); h1(healAt) }
		})
	default:
		return false
	}
	return true
}

func (g *gen) leaderKill(at time.Duration) func(time.Duration) {
	// Kill resolves @leader; the runner remembers whom it killed, and
	// restart of @leader means "the node the previous kill hit".
	g.add(Step{At: at, Action: ActKill, Target: Leader})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActRestart, Target: Leader}) }
}

func (g *gen) partitionMinority(at time.Duration) func(time.Duration) {
	g.add(Step{At: at, Action: ActPartition, Groups: [][]Target{g.minority(), {Rest}}})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActHeal}) }
}

func (g *gen) partitionLeader(at time.Duration) func(time.Duration) {
	side := []Target{Leader}
	if n := len(g.nodes); (n-1)/2 >= 2 {
		side = append(side, Follower) // leader plus one follower: still a minority
	}
	g.add(Step{At: at, Action: ActPartition, Groups: [][]Target{side, {Rest}}, Pick: g.rng.IntN(1 << 16)})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActHeal}) }
}

func (g *gen) partitionMajority(at time.Duration) func(time.Duration) {
	g.add(Step{At: at, Action: ActPartition, Groups: g.noQuorum()})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActHeal}) }
}

func (g *gen) oneWay(at time.Duration) func(time.Duration) {
	// The leader cannot reach one follower, which still reaches the leader:
	// the follower times out and campaigns; the leader hears it.
	g.add(Step{At: at, Action: ActBlock, From: Leader, To: Follower, Pick: g.rng.IntN(1 << 16)})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActHeal}) }
}

func (g *gen) pause(at time.Duration) func(time.Duration) {
	t := Leader
	if g.rng.IntN(2) == 0 {
		t = Any
	}
	pick := g.rng.IntN(1 << 16)
	g.add(Step{At: at, Action: ActPause, Target: t, Pick: pick})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActResume, Target: t, Pick: pick}) }
}

func (g *gen) clockSkew(at time.Duration) func(time.Duration) {
	amount := time.Duration(g.rng.Int64N(int64(2*skewMax))) - skewMax
	pick := g.rng.IntN(1 << 16)
	g.add(Step{At: at, Action: ActSkew, Target: Any, Amount: amount, Pick: pick})
	return func(h time.Duration) { g.add(Step{At: h, Action: ActResetClks}) }
}

func (g *gen) rollingRestart() {
	at := g.between(warmupFraction, warmupFraction+0.05)
	end := time.Duration(healFraction * float64(g.d))
	slot := (end - at) / time.Duration(len(g.nodes))
	for _, i := range g.rng.Perm(len(g.nodes)) {
		n := Target(g.nodes[i])
		g.add(Step{At: at, Action: ActKill, Target: n})
		g.add(Step{At: at + slot/3, Action: ActRestart, Target: n})
		at += slot
	}
}

func hashKind(k Kind) uint64 {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(k); i++ {
		h ^= uint64(k[i])
		h *= 1099511628211
	}
	return h
}

// String prints the schedule for logs and failure reports.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "schedule %s seed %d over %s on %v:", s.Kind, s.Seed, s.Duration, s.Nodes)
	for _, st := range s.Steps {
		b.WriteString("\n  ")
		b.WriteString(st.String())
	}
	return b.String()
}

// JSON returns the schedule as indented JSON (for failure artefacts).
func (s Schedule) JSON() string {
	b, _ := json.MarshalIndent(s, "", "  ")
	return string(b)
}

// FaultCount returns how many fault steps (not heals/restarts) it has.
func (s Schedule) FaultCount() int {
	n := 0
	for _, st := range s.Steps {
		switch st.Action {
		case ActKill, ActPause, ActPartition, ActBlock, ActSkew:
			n++
		}
	}
	return n
}

// FirstFault returns the offset of the first fault step.
func (s Schedule) FirstFault() (time.Duration, bool) {
	for _, st := range s.Steps {
		switch st.Action {
		case ActKill, ActPause, ActPartition, ActBlock, ActSkew:
			return st.At, true
		}
	}
	return 0, false
}
