package check

import (
	"fmt"
	"sort"

	"github.com/meridiandb/meridian/tests/history"
)

// seenAt is what a session saw at one version of an entity.
type seenAt struct {
	id  string
	op  int
	own bool // the session wrote it
}

// sessionState is what a session had observed when an operation started:
// everything of its operations that completed before.
type sessionState struct {
	write, head     map[string]uint64 // entity -> own acked head, read head
	writeOp, headOp map[string]int
	seen            map[string]map[uint64]seenAt
	observed        history.Vector // dots (and their deps) written or read
	observedOp      map[string]int // region -> op that raised observed
	writes          history.Vector // own write dots
	reads           history.Vector // dots read, with their deps
	token           history.Vector // merge of tokens received
	tokenOp         int
}

func newSessionState() *sessionState {
	return &sessionState{
		write: map[string]uint64{}, head: map[string]uint64{},
		writeOp: map[string]int{}, headOp: map[string]int{},
		seen:     map[string]map[uint64]seenAt{},
		observed: history.Vector{}, observedOp: map[string]int{},
		writes: history.Vector{}, reads: history.Vector{}, token: history.Vector{},
	}
}

// finalIndex is what the session checker needs of the final streams.
type finalIndex struct {
	byID     map[string]location           // event id -> where (first replica holding it)
	byEntity map[string][]history.EventRef // entity -> stream (first replica holding it)
	hasDots  bool                          // events carry origin dots
	hasDeps  bool                          // events carry deps
}

func newFinalIndex(replicas Replicas) finalIndex {
	fi := finalIndex{byID: map[string]location{}, byEntity: map[string][]history.EventRef{}}
	for _, n := range replicas.names() {
		for e, evs := range replicas[n] {
			if _, ok := fi.byEntity[e]; !ok {
				fi.byEntity[e] = evs
			}
			for _, ev := range evs {
				if _, ok := fi.byID[ev.ID]; !ok {
					fi.byID[ev.ID] = location{entity: e, version: ev.Version, origin: ev.Origin, deps: ev.Deps}
				}
				if !ev.Origin.IsZero() {
					fi.hasDots = true
				}
				if len(ev.Deps) > 0 {
					fi.hasDeps = true
				}
			}
		}
	}
	return fi
}

// eventDot returns the event's dot and deps, from the op or the final
// streams.
func (fi finalIndex) eventDot(ev history.EventRef) (history.Dot, history.Vector) {
	d, deps := ev.Origin, ev.Deps
	if l, ok := fi.byID[ev.ID]; ok {
		if d.IsZero() {
			d = l.origin
		}
		if deps == nil {
			deps = l.deps
		}
	}
	return d, deps
}

func (s *sessionState) observe(d history.Dot, deps history.Vector, op int) {
	if !d.IsZero() && s.observed[d.Region] < d.Seq {
		s.observed[d.Region] = d.Seq
		s.observedOp[d.Region] = op
	}
	for r, q := range deps {
		if s.observed[r] < q {
			s.observed[r] = q
			s.observedOp[r] = op
		}
	}
}

func (s *sessionState) see(entity string, v uint64, id string, op int, own bool) {
	m := s.seen[entity]
	if m == nil {
		m = map[uint64]seenAt{}
		s.seen[entity] = m
	}
	if _, ok := m[v]; !ok {
		m[v] = seenAt{id: id, op: op, own: own}
	}
}

// absorb adds a completed op to what the session has observed.
func (s *sessionState) absorb(op *history.Op, fi finalIndex) {
	if op.VectorOut != nil {
		s.token = s.token.Merge(op.VectorOut)
		s.tokenOp = op.ID
	}
	switch {
	case op.Kind == history.Append && op.Outcome == history.OK && !op.Resolved:
		if op.LastVersion > s.write[op.Entity] {
			s.write[op.Entity], s.writeOp[op.Entity] = op.LastVersion, op.ID
		}
		for k, id := range op.EventIDs {
			if op.FirstVersion > 0 {
				s.see(op.Entity, op.FirstVersion+uint64(k), id, op.ID, true)
			}
			d, deps := fi.eventDot(history.EventRef{ID: id})
			if d.IsZero() && !op.Origin.IsZero() {
				d = history.Dot{Region: op.Origin.Region, Seq: op.Origin.Seq + uint64(k)}
			}
			s.observe(d, deps, op.ID)
			if !d.IsZero() && s.writes[d.Region] < d.Seq {
				s.writes[d.Region] = d.Seq
			}
		}
	case sessionRead(op) || (op.Kind == history.Delivery && op.Outcome == history.OK):
		head := op.Head
		if op.Kind == history.Delivery && len(op.Events) > 0 {
			head = op.Events[0].Version
		}
		if head > s.head[op.Entity] {
			s.head[op.Entity], s.headOp[op.Entity] = head, op.ID
		}
		for _, ev := range op.Events {
			s.see(op.Entity, ev.Version, ev.ID, op.ID, false)
			d, deps := fi.eventDot(ev)
			s.observe(d, deps, op.ID)
			s.reads = s.reads.Merge(deps)
			if !d.IsZero() && s.reads[d.Region] < d.Seq {
				s.reads[d.Region] = d.Seq
			}
		}
	}
}

// Sessions checks the session guarantees of every session (a client, or
// several clients sharing a session token) over the real-time order of its
// operations: op a constrains op b when a completed before b was invoked.
//
//   - read-your-writes: a STRONG/SESSION read sees the session's acknowledged
//     appends to that entity (head at least their last version, same ids);
//   - monotonic reads: such a read never sees a lower head, or other ids at a
//     version, than an earlier read or delivery of the session;
//   - monotonic writes: an append is ordered after the session's earlier
//     acknowledged appends (higher versions; across entities, its deps cover
//     their dots when the final streams carry deps);
//   - writes-follow-reads: an append is ordered after what the session read
//     (versions above the head read; deps cover the dots read);
//   - causal order: a read of entity e includes every event of e whose dot
//     the session had observed, directly or through deps (needs dots in the
//     final streams);
//   - token monotonic: a session never sends a token older than one it
//     received, and a response's token covers the request's.
//
// EVENTUAL and BOUNDED reads, failed ops and unknown ops constrain nothing.
// Appends resolved from unknown outcomes were never acknowledged, so the
// session need not read them.
func Sessions(h history.History, replicas Replicas) Report {
	rep := Report{Check: NameSession}
	fi := newFinalIndex(replicas)
	sessions := map[string][]*history.Op{}
	var names []string
	for i := range h.Ops {
		op := &h.Ops[i]
		sid := op.SessionID()
		if _, ok := sessions[sid]; !ok {
			names = append(names, sid)
		}
		sessions[sid] = append(sessions[sid], op)
	}
	sort.Strings(names)
	for _, sid := range names {
		checkSession(&rep, sid, sessions[sid], fi)
	}
	return rep
}

func checkSession(rep *Report, sid string, ops []*history.Op, fi finalIndex) {
	byCall := append([]*history.Op(nil), ops...)
	sort.SliceStable(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	var done []*history.Op
	for _, op := range ops {
		if op.Outcome != history.Pending && op.Return != 0 {
			done = append(done, op)
		}
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].Return < done[j].Return })
	st := newSessionState()
	j := 0
	for _, b := range byCall {
		for j < len(done) && done[j].Return < b.Call {
			st.absorb(done[j], fi)
			j++
		}
		rep.Checked++
		checkTokens(rep, sid, b, st)
		switch {
		case sessionRead(b):
			checkRead(rep, sid, b, st, fi)
		case b.Kind == history.Append && b.Outcome == history.OK && !b.Duplicate:
			checkWrite(rep, sid, b, st, fi)
		}
	}
}

func checkTokens(rep *Report, sid string, b *history.Op, st *sessionState) {
	if b.VectorIn != nil && !b.VectorIn.Covers(st.token) {
		rep.add(Violation{Kind: TokenMonotonic, Entity: b.Entity, Ops: []int{b.ID, st.tokenOp},
			Message: fmt.Sprintf("session %s sent token %v, older than %v received before", sid, b.VectorIn, st.token)})
	}
	if b.Outcome == history.OK && b.VectorIn != nil && b.VectorOut != nil && !b.VectorOut.Covers(b.VectorIn) {
		rep.add(Violation{Kind: TokenMonotonic, Entity: b.Entity, Ops: []int{b.ID},
			Message: fmt.Sprintf("session %s: response token %v does not cover request token %v", sid, b.VectorOut, b.VectorIn)})
	}
}

func checkRead(rep *Report, sid string, b *history.Op, st *sessionState, fi finalIndex) {
	e := b.Entity
	bad := false
	if w := st.write[e]; b.Head < w {
		bad = true
		rep.add(Violation{Kind: ReadYourWrites, Entity: e, Ops: []int{b.ID, st.writeOp[e]},
			Message: fmt.Sprintf("session %s read head %d%s after its own write up to version %d was acknowledged", sid, b.Head, servedBy(b), w)})
	}
	if hd := st.head[e]; b.Head < hd {
		bad = true
		rep.add(Violation{Kind: MonotonicReads, Entity: e, Ops: []int{b.ID, st.headOp[e]},
			Message: fmt.Sprintf("session %s read head %d%s after having read head %d", sid, b.Head, servedBy(b), hd)})
	}
	for _, ev := range b.Events {
		if s, ok := st.seen[e][ev.Version]; ok && s.id != ev.ID {
			bad = true
			kind := MonotonicReads
			if s.own {
				kind = ReadYourWrites
			}
			rep.add(Violation{Kind: kind, Entity: e, Ops: []int{b.ID, s.op},
				Message: fmt.Sprintf("session %s read %s at version %d, where it had seen %s", sid, ev.ID, ev.Version, s.id)})
		}
	}
	if bad || !fi.hasDots {
		return
	}
	// Causal: every event of e the session observed (transitively) is visible.
	var need uint64
	var needEv history.EventRef
	for _, ev := range fi.byEntity[e] {
		if ev.Version > b.Head && st.observed.CoversDot(ev.Origin) && ev.Version > need {
			need, needEv = ev.Version, ev
		}
	}
	if need > 0 {
		rep.add(Violation{Kind: CausalOrder, Entity: e, Ops: []int{b.ID, st.observedOp[needEv.Origin.Region]},
			Message: fmt.Sprintf("session %s read head %d, but had observed (directly or through deps) %s at version %d, dot %s/%d", sid, b.Head, needEv.ID, need, needEv.Origin.Region, needEv.Origin.Seq)})
	}
}

func checkWrite(rep *Report, sid string, b *history.Op, st *sessionState, fi finalIndex) {
	e := b.Entity
	if w := st.write[e]; b.FirstVersion != 0 && b.FirstVersion <= w {
		rep.add(Violation{Kind: MonotonicWrites, Entity: e, Ops: []int{b.ID, st.writeOp[e]},
			Message: fmt.Sprintf("session %s's append got version %d, not after its earlier acknowledged write at version %d", sid, b.FirstVersion, w)})
	}
	if hd := st.head[e]; b.FirstVersion != 0 && b.FirstVersion <= hd {
		rep.add(Violation{Kind: WritesFollowReads, Entity: e, Ops: []int{b.ID, st.headOp[e]},
			Message: fmt.Sprintf("session %s's append got version %d, not after head %d it had read", sid, b.FirstVersion, hd)})
	}
	if !fi.hasDeps || len(b.EventIDs) == 0 {
		return
	}
	l, ok := fi.byID[b.EventIDs[0]]
	if !ok {
		return // lost writes are NoLostWrites' business
	}
	deps := l.deps.Merge(history.Vector{})
	if !l.origin.IsZero() && l.origin.Seq > 0 {
		// An event is ordered after its own region's earlier events.
		if deps[l.origin.Region] < l.origin.Seq-1 {
			deps[l.origin.Region] = l.origin.Seq - 1
		}
	}
	if !deps.Covers(st.writes) {
		rep.add(Violation{Kind: MonotonicWrites, Entity: e, Ops: []int{b.ID},
			Message: fmt.Sprintf("session %s's append %s has deps %v, which do not cover its earlier writes %v", sid, b.EventIDs[0], l.deps, st.writes)})
	}
	if !deps.Covers(st.reads) {
		rep.add(Violation{Kind: WritesFollowReads, Entity: e, Ops: []int{b.ID},
			Message: fmt.Sprintf("session %s's append %s has deps %v, which do not cover what it had read %v", sid, b.EventIDs[0], l.deps, st.reads)})
	}
}

// servedBy describes who served a read, for messages.
func servedBy(op *history.Op) string {
	c := op.Consistency
	if c == "" {
		c = history.Session
	}
	s := fmt.Sprintf(" (%s", c)
	if op.Region != "" || op.Node != "" {
		s += fmt.Sprintf(", served by %s/%s", op.Region, op.Node)
	}
	return s + ")"
}
