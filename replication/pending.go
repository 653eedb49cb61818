package replication

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// pending is what a puller holds of its origin's log: events received but
// not yet seen applied, consecutive and ascending by origin sequence. Only
// the puller's goroutine touches it.
type pending struct {
	origin string
	events []*meridianv1.Event
	sizes  []int // proto size of events[i]
	bytes  int   // sum of sizes
}

func (p *pending) len() int { return len(p.events) }

// tail is the sequence of the last event held, 0 when empty.
func (p *pending) tail() uint64 {
	if len(p.events) == 0 {
		return 0
	}
	return p.events[len(p.events)-1].GetOrigin().GetSeq()
}

// head is the sequence of the first event held, 0 when empty.
func (p *pending) head() uint64 {
	if len(p.events) == 0 {
		return 0
	}
	return p.events[0].GetOrigin().GetSeq()
}

// reset drops everything held.
func (p *pending) reset() {
	clear(p.events)
	p.events, p.sizes, p.bytes = p.events[:0], p.sizes[:0], 0
}

// dropApplied drops the events at or below applied, the region's applied
// entry for the origin. It returns ErrGap when what is left does not
// continue applied: only a regressed applied vector does that, and the
// caller then pulls again from the vector.
func (p *pending) dropApplied(applied uint64) error {
	i := 0
	for i < len(p.events) && p.events[i].GetOrigin().GetSeq() <= applied {
		p.bytes -= p.sizes[i]
		i++
	}
	if i > 0 {
		clear(p.events[:i])
		p.events, p.sizes = p.events[i:], p.sizes[i:]
	}
	if h := p.head(); h != 0 && h != applied+1 {
		return fmt.Errorf("%w: %s applied %d, holding from %d", ErrGap, p.origin, applied, h)
	}
	return nil
}

// add appends the events of a message, which the caller checked are
// consecutive, skipping those at or below both the tail and applied. It
// returns how many were added, or ErrGap if they do not continue what is
// held (or applied, when nothing is).
func (p *pending) add(events []*meridianv1.Event, applied uint64) (int, error) {
	last := max(p.tail(), applied)
	added := 0
	for _, ev := range events {
		seq := ev.GetOrigin().GetSeq()
		if seq <= last {
			continue // a duplicate: already held or applied
		}
		if seq != last+1 {
			return added, fmt.Errorf("%w: %s next is %d, got %d", ErrGap, p.origin, last+1, seq)
		}
		size := proto.Size(ev)
		p.events = append(p.events, ev)
		p.sizes = append(p.sizes, size)
		p.bytes += size
		last = seq
		added++
	}
	return added, nil
}

// fits reports whether a message of n events and b bytes may be taken:
// always when nothing is held (a message is at most BatchEventsMax events,
// or one event), else when both limits still hold after it.
func (p *pending) fits(n, b, eventsMax, bytesMax int) bool {
	return len(p.events) == 0 || (len(p.events)+n <= eventsMax && p.bytes+b <= bytesMax)
}

// hasRoom reports whether pending is below both limits, so that reading
// the next message is worth it.
func (p *pending) hasRoom(eventsMax, bytesMax int) bool {
	return len(p.events) < eventsMax && p.bytes < bytesMax
}

// nextBatch returns how many events at the start of events apply would take
// right now, given the region's applied vector: each must continue its
// origin (seq = applied[origin] + 1, the batch so far counting as applied)
// and have its deps covered by applied merged with the batch so far. At
// most eventsMax events and bytesMax bytes (the first event always fits).
// When the first event cannot go, blocked says why.
func nextBatch(origin string, events []*meridianv1.Event, sizes []int, applied map[string]uint64, eventsMax, bytesMax int) (n int, blocked string) {
	next := applied[origin] + 1
	total := 0
	for i, ev := range events {
		if i == eventsMax || (i > 0 && total+sizes[i] > bytesMax) {
			break
		}
		seq := ev.GetOrigin().GetSeq()
		if ev.GetOrigin().GetRegion() != origin || seq != next {
			if i == 0 {
				blocked = fmt.Sprintf("next of %s is %d, holding %d", origin, next, seq)
			}
			break
		}
		if r, want, ok := uncovered(origin, seq, ev.GetDeps(), applied); ok {
			if i == 0 {
				blocked = fmt.Sprintf("%s/%d depends on %s/%d", origin, seq, r, want)
			}
			break
		}
		total += sizes[i]
		next++
		n++
	}
	return n, blocked
}

// uncovered returns a dep of the event (origin, seq) that applied does not
// cover. The origin's own entry counts as seq-1: the batch's earlier events
// of the origin go first.
func uncovered(origin string, seq uint64, deps, applied map[string]uint64) (string, uint64, bool) {
	for r, want := range deps {
		have := applied[r]
		if r == origin {
			have = seq - 1
		}
		if want > have {
			return r, want, true
		}
	}
	return "", 0, false
}
