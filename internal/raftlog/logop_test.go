package raftlog

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Kinds of logOp.
const (
	opAppend = "append"
	opTail   = "tail"
	opHead   = "head"
	opAll    = "all"
)

// logOp is one operation of the random tests (the model test and the crash
// test's writer) on a log: append from..to in term, cut the tail from
// `from` on, cut the head below `from` (the new first index), or empty it.
type logOp struct {
	kind           string
	from, to, term uint64
	// slack widens a cut past the log's ends (DeleteRange clips it).
	slack uint64
}

func (o logOp) String() string {
	switch o.kind {
	case opAppend:
		return fmt.Sprintf("%s %d %d %d", o.kind, o.from, o.to, o.term)
	case opAll:
		return o.kind
	default:
		return fmt.Sprintf("%s %d %d", o.kind, o.from, o.slack)
	}
}

// parseLogOp reads what String wrote.
func parseLogOp(s string) (logOp, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return logOp{}, fmt.Errorf("empty operation")
	}
	o := logOp{kind: f[0]}
	nums := []*uint64{&o.from, &o.to, &o.term}
	if o.kind != opAppend {
		nums = []*uint64{&o.from, &o.slack}
	}
	if o.kind == opAll {
		nums = nil
	}
	if len(f)-1 != len(nums) {
		return logOp{}, fmt.Errorf("operation %q: want %d numbers", s, len(nums))
	}
	for i, p := range nums {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return logOp{}, fmt.Errorf("operation %q: %w", s, err)
		}
		*p = n
	}
	return o, nil
}

// logOpOdds: how often each kind is picked (the rest empties the log), where
// an empty log starts (1..startMax), how long a batch is (1..batchMax) and
// how far a cut may reach past the log's ends (0..slackMax).
type logOpOdds struct {
	appendPct, tailPct, headPct  int
	startMax, batchMax, slackMax uint64
}

// randomLogOp picks the next operation on a log holding first..last (0, 0
// when empty); appends are in term.
func randomLogOp(rng *rand.Rand, first, last, term uint64, odds logOpOdds) logOp {
	slack := uint64(0)
	if odds.slackMax > 0 {
		slack = rng.Uint64N(odds.slackMax)
	}
	switch p := rng.IntN(100); {
	case p < odds.appendPct || last == 0:
		from := last + 1
		if last == 0 {
			from = 1 + rng.Uint64N(odds.startMax)
		}
		return logOp{kind: opAppend, from: from, to: from + rng.Uint64N(odds.batchMax), term: term}
	case p < odds.appendPct+odds.tailPct && last > first:
		return logOp{kind: opTail, from: first + 1 + rng.Uint64N(last-first), slack: slack}
	case p < odds.appendPct+odds.tailPct+odds.headPct && last > first:
		return logOp{kind: opHead, from: first + 1 + rng.Uint64N(last-first), slack: min(slack, first)}
	default:
		return logOp{kind: opAll}
	}
}

// run applies o to s, which holds first..last.
func (o logOp) run(s *Store, first, last uint64) error {
	switch o.kind {
	case opAppend:
		return s.StoreLogs(batch(o.from, o.to, o.term))
	case opTail:
		return s.DeleteRange(o.from, last+o.slack)
	case opHead:
		return s.DeleteRange(first-o.slack, o.from-1)
	default:
		return s.DeleteRange(first, last)
	}
}

// after is the log's bounds once o is applied to first..last.
func (o logOp) after(first, last uint64) (uint64, uint64) {
	switch o.kind {
	case opAppend:
		if first == 0 {
			first = o.from
		}
		return first, o.to
	case opTail:
		return first, o.from - 1
	case opHead:
		return o.from, last
	default:
		return 0, 0
	}
}

// logModel is the log a sequence of acknowledged operations leaves: its
// bounds and each entry's term.
type logModel struct {
	first, last uint64
	terms       map[uint64]uint64
}

func (m *logModel) apply(o logOp) {
	switch o.kind {
	case opAppend:
		for i := o.from; i <= o.to; i++ {
			m.terms[i] = o.term
		}
	case opTail:
		for i := o.from; i <= m.last; i++ {
			delete(m.terms, i)
		}
	case opHead:
		for i := m.first; i < o.from; i++ {
			delete(m.terms, i)
		}
	case opAll:
		m.terms = map[uint64]uint64{}
	}
	m.first, m.last = o.after(m.first, m.last)
}
