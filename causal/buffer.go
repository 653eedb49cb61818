package causal

import (
	"fmt"
	"slices"
)

// bufferEventsMaxDefault is the default bound on events held back by a
// Buffer (count). At a few hundred bytes per event that is a few megabytes,
// and it is far above what one replication batch brings ahead of a gap.
const bufferEventsMaxDefault = 16384

// BufferConfig configures a causal delivery Buffer.
type BufferConfig struct {
	// Applied is what has already been delivered (region -> highest
	// contiguous sequence), typically the region's applied vector on start.
	// The buffer copies it. Nil means nothing yet.
	Applied Vector
	// EventsMax bounds the events held back waiting for their deps (count).
	// Add returns ErrBufferFull instead of holding more: backpressure.
	EventsMax int
}

// DefaultBufferConfig returns a config with an empty applied vector and
// EventsMax = 16384.
func DefaultBufferConfig() BufferConfig {
	return BufferConfig{EventsMax: bufferEventsMaxDefault}
}

// Validate reports a config that cannot work.
func (c BufferConfig) Validate() error {
	if c.EventsMax < 1 {
		return fmt.Errorf("causal: buffer EventsMax %d, want >= 1", c.EventsMax)
	}
	for r := range c.Applied {
		if err := ValidateRegion(r); err != nil {
			return fmt.Errorf("causal: buffer Applied: %w", err)
		}
	}
	return nil
}

// Event is one event as the buffer sees it: its dot, what it depends on, and
// an opaque payload handed back on delivery.
type Event[T any] struct {
	Dot     Dot
	Deps    Vector
	Payload T
}

// Buffer delivers events in causal order. Events are added in any order,
// possibly more than once; each is released exactly once, only after every
// event it depends on (its deps, and the earlier events of its origin) has
// been released. Among events that become deliverable together, release
// order is deterministic (origins in ascending order, repeated until no
// progress). A Buffer is not safe for concurrent use: the replication
// receiver owns it.
type Buffer[T any] struct {
	applied   Vector
	eventsMax int

	// pending holds events that arrived ahead of their deps, per origin
	// then sequence. origins lists the keys of pending, sorted.
	pending map[string]map[uint64]Event[T]
	origins []string
	held    int

	duplicates uint64
}

// NewBuffer returns a Buffer starting from cfg.Applied. It returns an error
// if cfg does not validate.
func NewBuffer[T any](cfg BufferConfig) (*Buffer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Buffer[T]{
		applied:   cfg.Applied.Clone(),
		eventsMax: cfg.EventsMax,
		pending:   make(map[string]map[uint64]Event[T]),
	}, nil
}

// Add offers e to the buffer and appends to dst, in delivery order, every
// event that became deliverable (e itself and any held events it unblocked).
// Callers reuse dst to avoid allocation. A duplicate (already delivered or
// already held) is dropped silently: dst comes back unchanged. Add returns
// ErrInvalidEvent for an event that can never be delivered and ErrBufferFull
// when e must wait but the buffer holds EventsMax events already; in both
// cases e is not kept and dst is unchanged.
//
// The buffer keeps e.Deps only as a copy, so callers may reuse the map.
func (b *Buffer[T]) Add(dst []Event[T], e Event[T]) ([]Event[T], error) {
	o := e.Dot.Region
	if e.Dot.Seq == 0 || o == "" {
		return dst, fmt.Errorf("%w: dot %s", ErrInvalidEvent, e.Dot)
	}
	if err := ValidateDeps(e.Dot, e.Deps); err != nil {
		return dst, err
	}
	last := b.applied[o]
	if e.Dot.Seq <= last {
		b.duplicates++
		return dst, nil
	}
	if e.Dot.Seq == last+1 && b.applied.Covers(e.Deps) {
		b.applied[o] = e.Dot.Seq
		dst = append(dst, e)
		if b.held > 0 {
			dst = b.drain(dst)
		}
		return dst, nil
	}
	byOrigin := b.pending[o]
	if _, dup := byOrigin[e.Dot.Seq]; dup {
		b.duplicates++
		return dst, nil
	}
	if b.held >= b.eventsMax {
		return dst, fmt.Errorf("%w: holding %d events, max %d; %s waits for %s",
			ErrBufferFull, b.held, b.eventsMax, e.Dot, b.missing(e))
	}
	if err := ValidateRegion(o); err != nil {
		return dst, fmt.Errorf("%w: dot %s: %w", ErrInvalidEvent, e.Dot, err)
	}
	if byOrigin == nil {
		byOrigin = make(map[uint64]Event[T])
		b.pending[o] = byOrigin
		i, _ := slices.BinarySearch(b.origins, o)
		b.origins = slices.Insert(b.origins, i, o)
	}
	e.Deps = e.Deps.Clone()
	byOrigin[e.Dot.Seq] = e
	b.held++
	return dst, nil
}

// drain releases held events until none is deliverable.
func (b *Buffer[T]) drain(dst []Event[T]) []Event[T] {
	for progress := true; progress && b.held > 0; {
		progress = false
		for _, o := range b.origins {
			byOrigin := b.pending[o]
			for {
				next := b.applied[o] + 1
				e, ok := byOrigin[next]
				if !ok || !b.applied.Covers(e.Deps) {
					break
				}
				delete(byOrigin, next)
				b.held--
				b.applied[o] = next
				dst = append(dst, e)
				progress = true
			}
		}
	}
	if b.held == 0 {
		clear(b.pending)
		b.origins = b.origins[:0]
	}
	return dst
}

// missing describes what e still waits for, for error messages.
func (b *Buffer[T]) missing(e Event[T]) string {
	if next := b.applied[e.Dot.Region] + 1; e.Dot.Seq != next {
		return Dot{Region: e.Dot.Region, Seq: next}.String()
	}
	for _, r := range e.Deps.Regions() {
		if e.Deps[r] > b.applied[r] {
			return Dot{Region: r, Seq: b.applied[r] + 1}.String()
		}
	}
	return "nothing"
}

// Applied returns a copy of the delivered vector.
func (b *Buffer[T]) Applied() Vector { return b.applied.Clone() }

// Len returns the number of events held back.
func (b *Buffer[T]) Len() int { return b.held }

// Duplicates returns how many duplicate events Add has dropped.
func (b *Buffer[T]) Duplicates() uint64 { return b.duplicates }
