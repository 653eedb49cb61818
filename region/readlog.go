package region

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// Bounds of region log reads (ReadLog, filtered subscriptions).
const (
	// FilterPrefixesMax and FilterTypesMax bound an EventFilter's lists.
	FilterPrefixesMax = 16
	FilterTypesMax    = 16
	// LogScanMax bounds the log entries one ReadLog call or one
	// subscription page scans: a sparse filter returns a short (or empty)
	// page with a next position past what it skipped, instead of scanning
	// the whole log in one request.
	LogScanMax = 4096
	// vectorEntriesMax bounds the origins of a ReadLog vector.
	vectorEntriesMax = 1024
)

// EventFilter is a validated meridianv1.EventFilter. The nil filter matches
// every event.
type EventFilter struct {
	prefixes []string
	types    []string
}

// CompileFilter validates f (nil or empty: match everything, returns nil).
func CompileFilter(f *meridianv1.EventFilter, limits Limits) (*EventFilter, error) {
	if len(f.GetEntityPrefixes()) == 0 && len(f.GetEventTypes()) == 0 {
		return nil, nil
	}
	if n := len(f.GetEntityPrefixes()); n > FilterPrefixesMax {
		return nil, &InvalidArgumentError{Field: "filter.entity_prefixes", Reason: fmt.Sprintf("at most %d, got %d", FilterPrefixesMax, n)}
	}
	if n := len(f.GetEventTypes()); n > FilterTypesMax {
		return nil, &InvalidArgumentError{Field: "filter.event_types", Reason: fmt.Sprintf("at most %d, got %d", FilterTypesMax, n)}
	}
	for i, p := range f.GetEntityPrefixes() {
		// A prefix is an entity id's first bytes: the same alphabet and
		// bound (ValidateEntity), and may end anywhere.
		if err := ValidateEntity(p, limits.EntityBytesMax); err != nil {
			return nil, &InvalidArgumentError{Field: fmt.Sprintf("filter.entity_prefixes[%d]", i), Reason: fmt.Sprintf("%q: %v", p, err)}
		}
	}
	for i, t := range f.GetEventTypes() {
		if t == "" || len(t) > limits.TypeBytesMax {
			return nil, &InvalidArgumentError{Field: fmt.Sprintf("filter.event_types[%d]", i), Reason: fmt.Sprintf("must be 1 to %d bytes, got %d", limits.TypeBytesMax, len(t))}
		}
	}
	return &EventFilter{prefixes: slices.Clone(f.GetEntityPrefixes()), types: slices.Clone(f.GetEventTypes())}, nil
}

// Prefixes returns the filter's entity prefixes (empty: every entity).
func (f *EventFilter) Prefixes() []string {
	if f == nil {
		return nil
	}
	return f.prefixes
}

// matchEntity reports whether entity passes the prefix part of the filter.
func (f *EventFilter) matchEntity(entity string) bool {
	if f == nil || len(f.prefixes) == 0 {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(entity, p) {
			return true
		}
	}
	return false
}

// matchType reports whether an event of type t passes the type part.
func (f *EventFilter) matchType(t string) bool {
	return f == nil || len(f.types) == 0 || slices.Contains(f.types, t)
}

// LogPage is one scan of the region log.
type LogPage struct {
	// Events matched, in scan order, with their positions.
	Events []*meridianv1.Event
	// Next continues the scan in its direction: forward, the first
	// position not scanned; backward, the last not scanned (0: none left).
	Next uint64
	// End: the scan reached the last applied position (forward) or the
	// first (backward).
	End bool
	// Scanned is, per origin, the highest sequence among the scanned
	// entries (matched or not); set only when ScanLog was asked to track
	// origins (vector reads).
	Scanned causal.Vector
	// LastPosition is the region's last applied position at the scan.
	LastPosition uint64
}

// LogScan describes a ScanLog call.
type LogScan struct {
	// From is the first position scanned: forward, 0 means 1; backward, 0
	// or beyond the last applied position means the last. Ignored with
	// After.
	From     uint64
	Backward bool
	// Max bounds the events returned (clamped like ReadStream's count);
	// ScanMax the entries scanned (<= 0: LogScanMax).
	Max, ScanMax int
	Filter       *EventFilter
	// After, when not nil, makes a vector read (forward only): the scan
	// starts at the vector's start (VectorStart) in the same snapshot,
	// skips events the vector covers and tracks the origins of scanned
	// entries in LogPage.Scanned.
	After causal.Vector
}

// ScanLog scans the region log (x/) from s.From in one consistent
// snapshot, returning the events that pass s.Filter and are not covered
// by s.After. An entity-prefix filter is decided from the log entry alone;
// an event-type filter and vector reads read each scanned event.
func (f *FSM) ScanLog(s LogScan) (LogPage, error) {
	want := clampCount(s.Max)
	scanMax := s.ScanMax
	if scanMax <= 0 {
		scanMax = LogScanMax
	}
	h, err := f.acquire()
	if err != nil {
		return LogPage{}, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	st, err := readApplyState(txn)
	if err != nil {
		return LogPage{}, err
	}
	last := st.GetLastPosition()
	page := LogPage{LastPosition: last}
	if s.After != nil {
		page.Scanned = causal.Vector{}
	}
	pos := s.From
	switch {
	case s.After != nil:
		if s.Backward {
			return LogPage{}, invalidf("direction", "a read after a vector goes forward; read backward from a position")
		}
		if pos, err = vectorStart(txn, st, s.After); err != nil {
			return LogPage{}, err
		}
	case s.Backward:
		if pos == 0 || pos > last {
			pos = last
		}
	default:
		pos = max(pos, 1)
	}
	needEvent := s.After != nil || (s.Filter != nil && len(s.Filter.types) > 0)
	it := txn.NewIterator(badger.IteratorOptions{Reverse: s.Backward, PrefetchValues: true, PrefetchSize: min(want, 64), Prefix: []byte(prefixLog)})
	defer it.Close()
	scanned := 0
	it.Seek(logKey(pos))
	for ; it.Valid() && len(page.Events) < want && scanned < scanMax; it.Next() {
		item := it.Item()
		k := item.Key()
		p, err := logPosition(k)
		if err != nil {
			return LogPage{}, err
		}
		scanned++
		if s.Backward {
			pos = p - 1
		} else {
			pos = p + 1
		}
		r, err := itemRef(item)
		if err != nil {
			return LogPage{}, fmt.Errorf("region: read log: %w", err)
		}
		if !needEvent && !s.Filter.matchEntity(r.Entity) {
			continue
		}
		ev, err := readRefOf(txn, item, r)
		if err != nil {
			return LogPage{}, fmt.Errorf("region: read log: %w", err)
		}
		if o := ev.GetOrigin(); s.After != nil && o != nil {
			page.Scanned[o.GetRegion()] = max(page.Scanned[o.GetRegion()], o.GetSeq())
			if s.After.CoversDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()}) {
				continue
			}
		}
		if !s.Filter.matchEntity(r.Entity) || !s.Filter.matchType(ev.GetType()) {
			continue
		}
		page.Events = append(page.Events, ev)
	}
	page.Next = pos
	if s.Backward {
		page.End = pos == 0
	} else {
		page.End = pos > last
	}
	return page, nil
}

// readApplyState reads the apply state of txn's snapshot (empty before
// the first apply).
func readApplyState(txn *badger.Txn) (*meridianv1.ApplyState, error) {
	st := &meridianv1.ApplyState{}
	if _, err := readProto(txn, keyApplyState, st); err != nil {
		return nil, fmt.Errorf("region: read apply state: %w", err)
	}
	return st, nil
}

// logPosition parses an x/ key.
func logPosition(k []byte) (uint64, error) {
	pk, err := ParseKey(k)
	if err != nil || pk.Kind != KeyLog {
		return 0, fmt.Errorf("%w: %q in the region log is not an x/ key", ErrCorruptState, k)
	}
	return pk.N, nil
}

// VectorStart returns the first region position holding an event that
// vector does not cover: for each origin this region has applied beyond
// the vector, the position of the origin's first uncovered event, the
// least of them; the position after the last when every applied event is
// covered. An origin's events are applied in sequence order in every
// region (causal delivery), so no uncovered event lies before the start.
func (f *FSM) VectorStart(vector causal.Vector) (uint64, error) {
	h, err := f.acquire()
	if err != nil {
		return 0, err
	}
	defer h.refs.Done()
	txn := h.beginRead()
	defer h.endRead(txn)
	st, err := readApplyState(txn)
	if err != nil {
		return 0, err
	}
	return vectorStart(txn, st, vector)
}

// vectorStart is VectorStart in txn's snapshot, whose apply state is st.
func vectorStart(txn *badger.Txn, st *meridianv1.ApplyState, vector causal.Vector) (uint64, error) {
	start := st.GetLastPosition() + 1
	for origin, applied := range st.GetApplied() {
		seq := vector[origin] + 1
		if seq > applied {
			continue
		}
		item, err := txn.Get(originKey(origin, seq))
		if err != nil {
			return 0, fmt.Errorf("%w: origin %s seq %d applied (up to %d) but not in its log: %v", ErrCorruptState, origin, seq, applied, err)
		}
		ev, err := readRef(txn, item)
		if err != nil {
			return 0, fmt.Errorf("region: vector start: %w", err)
		}
		if p := ev.GetPosition(); p > 0 {
			start = min(start, p)
		}
	}
	return start, nil
}

// validateVector checks a vector a request carries (field names it):
// region names as validateRegionName allows, a bounded count.
func validateVector(field string, v map[string]uint64) error {
	if len(v) > vectorEntriesMax {
		return invalidf(field, "at most %d origins, got %d", vectorEntriesMax, len(v))
	}
	for origin := range v {
		if err := validateRegionName(field, origin); err != nil {
			return err
		}
	}
	return nil
}

// ReadLog serves a page of the region log from this node's state, once it
// covers the request's session token: from a position (forward or
// backward) or after a vector (forward; portable between regions).
func (n *Node) ReadLog(ctx context.Context, req *meridianv1.ReadLogRequest) (*meridianv1.ReadLogResponse, error) {
	if req.GetMaxCount() > ReadCountMax {
		return nil, &InvalidArgumentError{Field: "max_count", Reason: fmt.Sprintf("must be 0 (default %d) to %d, got %d", ReadCountDefault, ReadCountMax, req.GetMaxCount())}
	}
	var backward bool
	switch d := req.GetDirection(); d {
	case meridianv1.Direction_DIRECTION_UNSPECIFIED, meridianv1.Direction_DIRECTION_FORWARD:
	case meridianv1.Direction_DIRECTION_BACKWARD:
		backward = true
	default:
		return nil, &InvalidArgumentError{Field: "direction", Reason: fmt.Sprintf("must be FORWARD or BACKWARD, got %d", d)}
	}
	filter, err := CompileFilter(req.GetFilter(), n.cfg.Limits)
	if err != nil {
		return nil, err
	}
	token, err := causal.ParseToken(req.GetSessionToken())
	if err != nil {
		return nil, &InvalidArgumentError{Field: "session_token", Reason: err.Error()}
	}
	scan := LogScan{From: req.GetPosition(), Backward: backward, Max: int(req.GetMaxCount()), Filter: filter}
	if v, ok := req.GetFrom().(*meridianv1.ReadLogRequest_AfterVector); ok {
		if err := validateVector("after_vector", v.AfterVector.GetVector()); err != nil {
			return nil, err
		}
		scan.After = causal.Vector(v.AfterVector.GetVector()).Clone()
	}
	if err := n.waitCovers(ctx, token); err != nil {
		return nil, err
	}
	page, err := n.fsm.ScanLog(scan)
	if err != nil {
		return nil, err
	}
	seen := token.Clone()
	for _, e := range page.Events {
		if o := e.GetOrigin(); o != nil {
			seen.AddDot(causal.Dot{Region: o.GetRegion(), Seq: o.GetSeq()})
		}
	}
	resp := &meridianv1.ReadLogResponse{
		Events: page.Events, NextPosition: page.Next, End: page.End, LastPosition: page.LastPosition,
		SessionToken: causal.FormatToken(seen), Region: n.cfg.Region, Node: n.cfg.NodeID,
	}
	if scan.After != nil {
		resp.NextVector = scan.After.Merge(page.Scanned)
	}
	return resp, nil
}
