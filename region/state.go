package region

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
	"github.com/meridiandb/meridian/crdt"
	"google.golang.org/protobuf/proto"
)

// Merged state of active-active entities (issue 13, ADR 0005). An event
// whose Event.merge is set (stamped by the ordering region from its rule)
// changes one target of its entity's state with a CRDT op; every region
// applies each event once, in a causal order (the applied vector is
// causally closed), so op-based merging gives every region the same state
// from the same events. An op's causal context is what its writer had
// applied: its deps and its own origin's earlier events.
//
// Register writes (LWW, MV, map puts) are also kept in a write history
// (k/ keys); a write that arrives finds there the writes of the same
// register its writer had not seen (concurrent ones), and each such pair
// is a conflict (f/ keys), whichever of the two arrived first. So the
// conflict feed is a function of the set of events, like the state.

// Bounds of merge payloads (constants: apply checks them too).
const (
	// mergeTargetBytesMax bounds a target name.
	mergeTargetBytesMax = 64
	// mergeKeyBytesMax bounds a set element or map key.
	mergeKeyBytesMax = 1024
)

// mergeInput is a merge payload, parsed.
type mergeInput struct {
	amount int64
	key    string // set element or map key
	value  []byte // JSON value of a register write or map put
}

// ValidateMergeRule checks one merge rule (placement validates rule sets
// with it); field prefixes errors.
func ValidateMergeRule(field string, r *meridianv1.MergeRule) error {
	if t := r.GetEventType(); t == "" || len(t) > 256 {
		return invalidf(field+".event_type", "must be 1 to 256 bytes, got %d", len(t))
	}
	if err := validateTarget(r.GetTarget()); err != nil {
		return invalidf(field+".target", "%v", err)
	}
	if _, ok := meridianv1.MergeOp_name[int32(r.GetOp())]; !ok || r.GetOp() == meridianv1.MergeOp_MERGE_OP_UNSPECIFIED {
		return invalidf(field+".op", "must be one of COUNTER_ADD, SET_ADD, SET_REMOVE, LWW_WRITE, MV_WRITE, MAP_PUT, MAP_DELETE, got %v", r.GetOp())
	}
	return nil
}

func validateTarget(t string) error {
	if t == "" || len(t) > mergeTargetBytesMax {
		return fmt.Errorf("must be 1 to %d bytes, got %d", mergeTargetBytesMax, len(t))
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%q: allowed are [A-Za-z0-9_.-]", t)
		}
	}
	return nil
}

// targetKind is the kind of target an op needs.
func targetKind(op meridianv1.MergeOp) meridianv1.MergeOp {
	switch op {
	case meridianv1.MergeOp_MERGE_OP_SET_REMOVE:
		return meridianv1.MergeOp_MERGE_OP_SET_ADD
	case meridianv1.MergeOp_MERGE_OP_MAP_DELETE:
		return meridianv1.MergeOp_MERGE_OP_MAP_PUT
	}
	return op
}

// KindName names a target kind for messages.
func KindName(op meridianv1.MergeOp) string {
	switch targetKind(op) {
	case meridianv1.MergeOp_MERGE_OP_COUNTER_ADD:
		return "counter"
	case meridianv1.MergeOp_MERGE_OP_SET_ADD:
		return "set"
	case meridianv1.MergeOp_MERGE_OP_LWW_WRITE:
		return "lww"
	case meridianv1.MergeOp_MERGE_OP_MV_WRITE:
		return "mv"
	case meridianv1.MergeOp_MERGE_OP_MAP_PUT:
		return "map"
	}
	return op.String()
}

// payloadShape is what an op's data must look like, for errors.
func payloadShape(op meridianv1.MergeOp) string {
	switch op {
	case meridianv1.MergeOp_MERGE_OP_COUNTER_ADD:
		return `{"amount": integer}`
	case meridianv1.MergeOp_MERGE_OP_SET_ADD, meridianv1.MergeOp_MERGE_OP_SET_REMOVE:
		return `{"element": string}`
	case meridianv1.MergeOp_MERGE_OP_LWW_WRITE, meridianv1.MergeOp_MERGE_OP_MV_WRITE:
		return `{"value": any JSON}`
	case meridianv1.MergeOp_MERGE_OP_MAP_PUT:
		return `{"key": string, "value": any JSON}`
	case meridianv1.MergeOp_MERGE_OP_MAP_DELETE:
		return `{"key": string}`
	}
	return "?"
}

// parseMerge parses an event's data for rule r. field names the event
// ("events[2]") in errors, which are *InvalidArgumentError naming the
// data field at fault and the shape the op wants.
func parseMerge(field string, r *meridianv1.MergeRule, data []byte) (mergeInput, error) {
	var in mergeInput
	bad := func(sub, format string, args ...any) error {
		return invalidf(field+".data"+sub, "event type %q merges as %s into %q, whose data must be %s: %s",
			r.GetEventType(), strings.ToLower(strings.TrimPrefix(r.GetOp().String(), "MERGE_OP_")), r.GetTarget(), payloadShape(r.GetOp()), fmt.Sprintf(format, args...))
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return in, bad("", "not a JSON object")
	}
	if dec.More() {
		return in, bad("", "trailing data after the JSON object")
	}
	str := func(name string) (string, error) {
		raw, ok := obj[name]
		if !ok {
			return "", bad("."+name, "missing")
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", bad("."+name, "not a string")
		}
		if s == "" || len(s) > mergeKeyBytesMax || strings.IndexByte(s, 0) >= 0 {
			return "", bad("."+name, "must be 1 to %d bytes without NUL, got %d bytes", mergeKeyBytesMax, len(s))
		}
		return s, nil
	}
	value := func() ([]byte, error) {
		raw, ok := obj["value"]
		if !ok {
			return nil, bad(".value", "missing")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, bad(".value", "not JSON")
		}
		return buf.Bytes(), nil
	}
	var err error
	switch r.GetOp() {
	case meridianv1.MergeOp_MERGE_OP_COUNTER_ADD:
		raw, ok := obj["amount"]
		if !ok {
			return in, bad(".amount", "missing")
		}
		var n json.Number
		if e := json.Unmarshal(raw, &n); e != nil {
			return in, bad(".amount", "not a number")
		}
		v, e := n.Int64()
		if e != nil {
			return in, bad(".amount", "%s is not an integer in the int64 range", n)
		}
		in.amount = v
	case meridianv1.MergeOp_MERGE_OP_SET_ADD, meridianv1.MergeOp_MERGE_OP_SET_REMOVE:
		in.key, err = str("element")
	case meridianv1.MergeOp_MERGE_OP_LWW_WRITE, meridianv1.MergeOp_MERGE_OP_MV_WRITE:
		in.value, err = value()
	case meridianv1.MergeOp_MERGE_OP_MAP_PUT:
		if in.key, err = str("key"); err == nil {
			in.value, err = value()
		}
	case meridianv1.MergeOp_MERGE_OP_MAP_DELETE:
		in.key, err = str("key")
	default:
		return in, invalidf(field+".merge.op", "unknown op %v", r.GetOp())
	}
	return in, err
}

// MergeRuleFor returns the rule of rules for an event type, or nil.
func MergeRuleFor(rules []*meridianv1.MergeRule, eventType string) *meridianv1.MergeRule {
	for _, r := range rules {
		if r.GetEventType() == eventType {
			return r
		}
	}
	return nil
}

// stateWriter accumulates the state changes of the events of one op (or
// one replicated event) of one entity: the state read once, the write
// history and conflicts staged with the events, in one stage call.
type stateWriter struct {
	txn     *badger.Txn
	entity  string
	state   *meridianv1.EntityState
	changed bool
	writes  []kv
	// pending are history writes of this op not yet in the transaction.
	pending []historyEntry
}

type historyEntry struct {
	target, key string
	w           *meridianv1.StateWrite
}

// newStateWriter reads the state at the first event that merges.
func newStateWriter(txn *badger.Txn, entity string) *stateWriter {
	return &stateWriter{txn: txn, entity: entity}
}

// apply merges ev (its Event.merge) into the state. An event whose data
// does not parse (cannot come from a correct origin: apply validated it
// there) or whose op does not fit its target's kind is counted in ignored.
func (sw *stateWriter) apply(ev *meridianv1.Event) {
	r := ev.GetMerge()
	if r == nil || r.GetOp() == meridianv1.MergeOp_MERGE_OP_UNSPECIFIED {
		return
	}
	if sw.state == nil {
		sw.state = &meridianv1.EntityState{}
		getProto(sw.txn, stateKey(sw.entity), sw.state)
	}
	sw.changed = true
	in, err := parseMerge("event", r, ev.GetData())
	if err != nil || validateTarget(r.GetTarget()) != nil {
		sw.state.Ignored++
		return
	}
	if sw.state.Targets == nil {
		sw.state.Targets = map[string]*meridianv1.TargetState{}
	}
	t := sw.state.Targets[r.GetTarget()]
	if t == nil {
		t = &meridianv1.TargetState{Kind: targetKind(r.GetOp())}
		sw.state.Targets[r.GetTarget()] = t
	}
	if t.GetKind() != targetKind(r.GetOp()) {
		sw.state.Ignored++
		return
	}
	ctx := opContext(ev)
	w := &meridianv1.StateWrite{Origin: ev.GetOrigin(), Hlc: ev.GetHlc(), Value: in.value, EventId: ev.GetId()}
	switch r.GetOp() {
	case meridianv1.MergeOp_MERGE_OP_COUNTER_ADD:
		t.Counter += in.amount // wraps, like crdt.PNCounter
	case meridianv1.MergeOp_MERGE_OP_SET_ADD:
		t.Live = liveWith(t.Live, in.key, ctx, &meridianv1.StateWrite{Origin: ev.GetOrigin(), Hlc: ev.GetHlc(), EventId: ev.GetId()})
	case meridianv1.MergeOp_MERGE_OP_SET_REMOVE, meridianv1.MergeOp_MERGE_OP_MAP_DELETE:
		t.Live = liveWith(t.Live, in.key, ctx, nil)
	case meridianv1.MergeOp_MERGE_OP_LWW_WRITE, meridianv1.MergeOp_MERGE_OP_MV_WRITE, meridianv1.MergeOp_MERGE_OP_MAP_PUT:
		t.Live = liveWith(t.Live, in.key, ctx, w)
		sw.conflicts(r, in.key, ctx, w)
	}
}

// opContext is what ev's writer had applied when it wrote: its deps and
// its own origin's earlier events (of this append too).
func opContext(ev *meridianv1.Event) map[string]uint64 {
	ctx := make(map[string]uint64, len(ev.GetDeps())+1)
	for r, s := range ev.GetDeps() {
		ctx[r] = s
	}
	o := ev.GetOrigin()
	ctx[o.GetRegion()] = max(ctx[o.GetRegion()], o.GetSeq()-1)
	return ctx
}

func covers(ctx map[string]uint64, d *meridianv1.Dot) bool { return ctx[d.GetRegion()] >= d.GetSeq() }

// liveWith drops key's writes that ctx covers and adds w (if not nil),
// keeping them sorted by dot; a key left without writes is removed.
func liveWith(live map[string]*meridianv1.LiveWrites, key string, ctx map[string]uint64, w *meridianv1.StateWrite) map[string]*meridianv1.LiveWrites {
	if live == nil {
		live = map[string]*meridianv1.LiveWrites{}
	}
	cur := live[key].GetWrites()
	out := make([]*meridianv1.StateWrite, 0, len(cur)+1)
	for _, x := range cur {
		if !covers(ctx, x.GetOrigin()) {
			out = append(out, x)
		}
	}
	if w != nil {
		out = append(out, w)
		slices.SortFunc(out, func(a, b *meridianv1.StateWrite) int { return metaOf(a).Dot.Compare(metaOf(b).Dot) })
	}
	if len(out) == 0 {
		delete(live, key)
	} else {
		live[key] = &meridianv1.LiveWrites{Writes: out}
	}
	return live
}

// metaOf is a write's place as crdt orders concurrent writes.
func metaOf(w *meridianv1.StateWrite) crdt.Meta {
	return crdt.Meta{
		Dot: causal.Dot{Region: w.GetOrigin().GetRegion(), Seq: w.GetOrigin().GetSeq()},
		HLC: causal.Timestamp{WallNanos: w.GetHlc().GetWallNanos(), Logical: w.GetHlc().GetLogical()},
	}
}

// compareWrites is the merged order of two writes (crdt.Meta.Compare: HLC,
// region, seq), so the LWW winner here is crdt's.
func compareWrites(a, b *meridianv1.StateWrite) int { return metaOf(a).Compare(metaOf(b)) }

// conflicts records w in the register's write history and a conflict with
// every earlier-arrived write of the register its writer had not seen.
func (sw *stateWriter) conflicts(r *meridianv1.MergeRule, key string, ctx map[string]uint64, w *meridianv1.StateWrite) {
	concurrent := func(y *meridianv1.StateWrite) {
		win, lose := w, y
		if compareWrites(w, y) < 0 {
			win, lose = y, w
		}
		c := &meridianv1.Conflict{
			Target: r.GetTarget(), Key: key, Op: r.GetOp(),
			Winner: conflictWrite(win), Loser: conflictWrite(lose),
		}
		sw.writes = append(sw.writes, kv{key: conflictKey(sw.entity, lose, win), value: mustMarshal(c)})
	}
	for _, p := range sw.pending {
		if p.target == r.GetTarget() && p.key == key && !covers(ctx, p.w.GetOrigin()) {
			concurrent(p.w)
		}
	}
	prefix := historyPrefix(sw.entity, r.GetTarget(), key)
	it := sw.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
	for it.Seek(prefix); it.Valid(); {
		k := it.Item().Key()
		origin, seq, ok := parseHistoryTail(k[len(prefix):])
		if !ok {
			panic(fmt.Errorf("region: apply: %w: history key %q", ErrCorruptState, k))
		}
		if seq <= ctx[origin] {
			// Seen by the writer: skip to this origin's first unseen write.
			it.Seek(historyKey(sw.entity, r.GetTarget(), key, origin, ctx[origin]+1))
			continue
		}
		y := &meridianv1.StateWrite{}
		if err := it.Item().Value(func(b []byte) error { return proto.Unmarshal(b, y) }); err != nil {
			panic(fmt.Errorf("region: apply: %w: history %q: %v", ErrCorruptState, k, err))
		}
		concurrent(y)
		it.Next()
	}
	it.Close()
	sw.pending = append(sw.pending, historyEntry{target: r.GetTarget(), key: key, w: w})
	sw.writes = append(sw.writes, kv{key: historyKey(sw.entity, r.GetTarget(), key, w.GetOrigin().GetRegion(), w.GetOrigin().GetSeq()), value: mustMarshal(w)})
}

func conflictWrite(w *meridianv1.StateWrite) *meridianv1.ConflictWrite {
	return &meridianv1.ConflictWrite{EventId: w.GetEventId(), Origin: w.GetOrigin(), Hlc: w.GetHlc(), Value: string(w.GetValue())}
}

// kvs are the state's writes: the state itself (if an event changed it),
// history and conflicts.
func (sw *stateWriter) kvs() []kv {
	if !sw.changed {
		return nil
	}
	return append(sw.writes, kv{key: stateKey(sw.entity), value: mustMarshal(sw.state)})
}

// Keys of the state (keys.go documents the families).

// stateKey is c/<entity>.
func stateKey(entity string) []byte { return append([]byte(prefixState), entity...) }

// historyPrefix is k/<entity>\x00<target>\x00<key>\x00.
func historyPrefix(entity, target, key string) []byte {
	b := make([]byte, 0, 2+len(entity)+len(target)+len(key)+3)
	b = append(b, prefixHistory...)
	b = append(b, entity...)
	b = append(b, 0)
	b = append(b, target...)
	b = append(b, 0)
	b = append(b, key...)
	return append(b, 0)
}

// historyKey is historyPrefix + <origin>\x00<seq u64>.
func historyKey(entity, target, key, origin string, seq uint64) []byte {
	b := historyPrefix(entity, target, key)
	b = append(b, origin...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, seq)
}

func parseHistoryTail(b []byte) (string, uint64, bool) {
	i := bytes.IndexByte(b, 0)
	if i <= 0 || len(b) != i+1+8 {
		return "", 0, false
	}
	return string(b[:i]), binary.BigEndian.Uint64(b[i+1:]), true
}

// conflictKey is f/<entity>\x00 + the loser's then the winner's place in
// merged order (HLC 12 bytes, origin, 0x00, seq 8 bytes each): the feed is
// sorted by loser.
func conflictKey(entity string, lose, win *meridianv1.StateWrite) []byte {
	b := conflictPrefix(entity)
	for _, w := range []*meridianv1.StateWrite{lose, win} {
		h := hlcOf(w.GetHlc())
		b = binary.BigEndian.AppendUint64(b, uint64(h.wall)^1<<63)
		b = binary.BigEndian.AppendUint32(b, h.logical)
		b = append(b, w.GetOrigin().GetRegion()...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, w.GetOrigin().GetSeq())
	}
	return b
}

// conflictPrefix is f/<entity>\x00.
func conflictPrefix(entity string) []byte {
	b := append([]byte(prefixConflict), entity...)
	return append(b, 0)
}

// ReadMergedState returns entity's merged state as JSON (see
// ReadStateResponse.state) and its head, from one snapshot.
func (f *FSM) ReadMergedState(entity string) (string, *meridianv1.StreamHead, error) {
	if err := ValidateEntity(entity, HardLimits().EntityBytesMax); err != nil {
		return "", nil, err
	}
	h, err := f.acquire()
	if err != nil {
		return "", nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	head := &meridianv1.StreamHead{}
	if _, err := readProto(txn, headKey(entity), head); err != nil {
		return "", nil, fmt.Errorf("region: read %q: %w", entity, err)
	}
	st := &meridianv1.EntityState{}
	if _, err := readProto(txn, stateKey(entity), st); err != nil {
		return "", nil, fmt.Errorf("region: read state of %q: %w", entity, err)
	}
	return renderState(st), head, nil
}

// renderState is the state as a JSON object, targets sorted by name.
func renderState(st *meridianv1.EntityState) string {
	var b bytes.Buffer
	b.WriteByte('{')
	names := make([]string, 0, len(st.GetTargets()))
	for n := range st.GetTargets() {
		names = append(names, n)
	}
	slices.Sort(names)
	str := func(s string) {
		j, _ := json.Marshal(s) // a string always marshals
		b.Write(j)
	}
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		str(n)
		b.WriteByte(':')
		t := st.GetTargets()[n]
		switch t.GetKind() {
		case meridianv1.MergeOp_MERGE_OP_COUNTER_ADD:
			fmt.Fprintf(&b, "%d", t.GetCounter())
		case meridianv1.MergeOp_MERGE_OP_SET_ADD:
			b.WriteByte('[')
			for j, e := range sortedKeys(t.GetLive()) {
				if j > 0 {
					b.WriteByte(',')
				}
				str(e)
			}
			b.WriteByte(']')
		case meridianv1.MergeOp_MERGE_OP_LWW_WRITE:
			if w := lwwWinner(t.GetLive()[""].GetWrites()); w != nil {
				b.Write(w.GetValue())
			} else {
				b.WriteString("null")
			}
		case meridianv1.MergeOp_MERGE_OP_MV_WRITE:
			ws := slices.Clone(t.GetLive()[""].GetWrites())
			slices.SortFunc(ws, compareWrites)
			b.WriteByte('[')
			for j, w := range ws {
				if j > 0 {
					b.WriteByte(',')
				}
				b.Write(w.GetValue())
			}
			b.WriteByte(']')
		case meridianv1.MergeOp_MERGE_OP_MAP_PUT:
			b.WriteByte('{')
			for j, k := range sortedKeys(t.GetLive()) {
				if j > 0 {
					b.WriteByte(',')
				}
				str(k)
				b.WriteByte(':')
				b.Write(lwwWinner(t.GetLive()[k].GetWrites()).GetValue())
			}
			b.WriteByte('}')
		default:
			b.WriteString("null")
		}
	}
	b.WriteByte('}')
	return b.String()
}

func sortedKeys(m map[string]*meridianv1.LiveWrites) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// lwwWinner is the greatest write in merged order (nil for none).
func lwwWinner(ws []*meridianv1.StateWrite) *meridianv1.StateWrite {
	var w *meridianv1.StateWrite
	for _, x := range ws {
		if w == nil || compareWrites(x, w) > 0 {
			w = x
		}
	}
	return w
}

// ReadConflicts returns up to max (clamped like ReadStream) conflicts of
// entity's feed after the page token after (empty: from the start), the
// token of the next page ("" at the end) and the head, from one snapshot.
func (f *FSM) ReadConflicts(entity, after string, max int) ([]*meridianv1.Conflict, string, *meridianv1.StreamHead, error) {
	if err := ValidateEntity(entity, HardLimits().EntityBytesMax); err != nil {
		return nil, "", nil, err
	}
	prefix := conflictPrefix(entity)
	start := prefix
	if after != "" {
		raw, err := hexDecode(after)
		if err != nil {
			return nil, "", nil, invalidf("after", "not a page token of this feed: %v", err)
		}
		start = append(append(append([]byte(nil), prefix...), raw...), 0) // just after it
	}
	n := clampCount(max)
	h, err := f.acquire()
	if err != nil {
		return nil, "", nil, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	head := &meridianv1.StreamHead{}
	if _, err := readProto(txn, headKey(entity), head); err != nil {
		return nil, "", nil, fmt.Errorf("region: read %q: %w", entity, err)
	}
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
	defer it.Close()
	var out []*meridianv1.Conflict
	var last []byte
	for it.Seek(start); it.Valid(); it.Next() {
		if len(out) == n {
			return out, hexEncode(last), head, nil
		}
		c := &meridianv1.Conflict{}
		if err := it.Item().Value(func(b []byte) error { return proto.Unmarshal(b, c) }); err != nil {
			return nil, "", nil, fmt.Errorf("%w: conflict %q: %v", ErrCorruptState, it.Item().Key(), err)
		}
		out = append(out, c)
		last = it.Item().KeyCopy(nil)[len(prefix):]
	}
	return out, "", head, nil
}

func hexEncode(b []byte) string { return hex.EncodeToString(b) }

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

// ErrNotActiveActive: ReadState or ReadConflicts for an entity that is not
// active-active (FailedPrecondition): its stream is all there is.
var ErrNotActiveActive = errors.New("region: the entity is not active-active")

// checkExtra validates a read's ReadExtra and that the entity is
// active-active here.
func (n *Node) checkExtra(ctx context.Context, entity string, x *meridianv1.ReadExtra) error {
	if x.GetState() == x.GetConflicts() {
		return invalidf("extra", "ask for exactly one of state and conflicts")
	}
	if x.GetConflictsMax() > ReadCountMax {
		return invalidf("max_count", "must be 0 (default %d) to %d, got %d", ReadCountDefault, ReadCountMax, x.GetConflictsMax())
	}
	if n.cfg.Ownership == nil {
		return nil
	}
	h, _, err := n.home(ctx, entity)
	if err != nil {
		return err
	}
	if !h.ActiveActive {
		return fmt.Errorf("%w: entity %q is single-home (region %s): read its stream; merged state and conflicts exist only for active-active entities",
			ErrNotActiveActive, entity, h.Region)
	}
	return nil
}

// readExtra serves ReadExtra from this node's state: the merged state or a
// page of conflicts, with a token that covers the entity's events here.
func (n *Node) readExtra(req *meridianv1.ReadRequest, token causal.Vector) (*meridianv1.ReadResponse, error) {
	x := req.GetExtra()
	resp := &meridianv1.ReadResponse{Region: n.cfg.Region, Node: n.cfg.NodeID}
	var head *meridianv1.StreamHead
	var err error
	if x.GetState() {
		resp.State, head, err = n.fsm.ReadMergedState(req.GetEntity())
	} else {
		resp.Conflicts, resp.ConflictsNext, head, err = n.fsm.ReadConflicts(req.GetEntity(), x.GetConflictsAfter(), int(x.GetConflictsMax()))
	}
	if err != nil {
		return nil, err
	}
	v := token.Clone()
	resp.Vector = map[string]uint64{}
	for r, s := range head.GetVector() {
		resp.Vector[r] = s
		v.AddDot(causal.Dot{Region: r, Seq: s})
	}
	if o := head.GetLastOrigin(); o != nil {
		v.AddDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()})
	}
	resp.HeadVersion = head.GetVersion()
	resp.SessionToken = causal.FormatToken(v)
	return resp, nil
}
