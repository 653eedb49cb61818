package region

import (
	"fmt"

	"github.com/google/uuid"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Limits bound what one append may carry. Node edges validate with the
// configured Limits; apply re-validates (defense in depth) with HardLimits,
// which are constants so that every replica decides alike.
type Limits struct {
	// EventBytesMax bounds one event: data + metadata keys and values + type +
	// content type, in bytes. Default 1 MiB: events are facts, not blobs.
	EventBytesMax int
	// AppendEventsMax bounds the events of one append. Default 1000.
	AppendEventsMax int
	// AppendBytesMax bounds the summed event bytes of one append. Default
	// 4 MiB, so an append always fits one state-machine transaction.
	AppendBytesMax int
	// EntityBytesMax bounds the entity id, in bytes. Default 256.
	EntityBytesMax int
	// TypeBytesMax bounds an event's type, in bytes. Default 256.
	TypeBytesMax int
	// ContentTypeBytesMax bounds an event's content type, in bytes. Default 256.
	ContentTypeBytesMax int
	// MetadataEntriesMax bounds an event's metadata map. Default 64.
	MetadataEntriesMax int
	// DepsEntriesMax bounds the causal dependencies of an append (one per
	// region). Default 64.
	DepsEntriesMax int
}

// DefaultLimits returns the limits a node applies by default.
func DefaultLimits() Limits {
	return Limits{
		EventBytesMax:       1 << 20,
		AppendEventsMax:     1000,
		AppendBytesMax:      4 << 20,
		EntityBytesMax:      256,
		TypeBytesMax:        256,
		ContentTypeBytesMax: 256,
		MetadataEntriesMax:  64,
		DepsEntriesMax:      64,
	}
}

// HardLimits are the widest limits the state machine accepts. Apply
// validates with them, never with configuration. They are chosen so that the
// largest valid append fits one Badger transaction of an entry
// (TestApplyLargestAppendFitsOneTransaction): the entity is repeated in
// every key and record of every event, hence its tight bound.
func HardLimits() Limits {
	return Limits{
		EventBytesMax:       4 << 20,
		AppendEventsMax:     1000,
		AppendBytesMax:      4 << 20,
		EntityBytesMax:      256,
		TypeBytesMax:        1024,
		ContentTypeBytesMax: 1024,
		MetadataEntriesMax:  1024,
		DepsEntriesMax:      256,
	}
}

// Validate checks every limit is positive and within HardLimits.
func (l Limits) Validate() error {
	h := HardLimits()
	for _, c := range []struct {
		name   string
		v, max int
	}{
		{"EventBytesMax", l.EventBytesMax, h.EventBytesMax},
		{"AppendEventsMax", l.AppendEventsMax, h.AppendEventsMax},
		{"AppendBytesMax", l.AppendBytesMax, h.AppendBytesMax},
		{"EntityBytesMax", l.EntityBytesMax, h.EntityBytesMax},
		{"TypeBytesMax", l.TypeBytesMax, h.TypeBytesMax},
		{"ContentTypeBytesMax", l.ContentTypeBytesMax, h.ContentTypeBytesMax},
		{"MetadataEntriesMax", l.MetadataEntriesMax, h.MetadataEntriesMax},
		{"DepsEntriesMax", l.DepsEntriesMax, h.DepsEntriesMax},
	} {
		if c.v < 1 || c.v > c.max {
			return fmt.Errorf("%w: Limits.%s must be 1 to %d, got %d", ErrInvalidConfig, c.name, c.max, c.v)
		}
	}
	return nil
}

// ValidateEntity checks an entity id: 1 to max bytes of [A-Za-z0-9._:/-],
// not starting with '/'.
func ValidateEntity(entity string, max int) error {
	if len(entity) == 0 || len(entity) > max {
		return invalidf("entity", "must be 1 to %d bytes, got %d", max, len(entity))
	}
	if entity[0] == '/' {
		return invalidf("entity", "must not start with '/'")
	}
	for i := 0; i < len(entity); i++ {
		if !entityByte(entity[i]) {
			return invalidf("entity", "byte %d is %q; allowed are [A-Za-z0-9._:/-]", i, entity[i])
		}
	}
	return nil
}

func entityByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

// validateRegionName: region names are used in keys and dots: 1 to 64 bytes
// of [A-Za-z0-9._-].
func validateRegionName(field, name string) error {
	if len(name) == 0 || len(name) > 64 {
		return invalidf(field, "must be 1 to 64 bytes, got %d", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !entityByte(c) || c == ':' || c == '/' {
			return invalidf(field, "byte %d is %q; allowed are [A-Za-z0-9._-]", i, c)
		}
	}
	return nil
}

// parseEventID parses an event id that must be a non-nil UUID in canonical
// text form (8-4-4-4-12 lowercase hex).
func parseEventID(field, id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 || u.String() != id {
		return uuid.UUID{}, invalidf(field, "must be a UUID in canonical form (8-4-4-4-12 lowercase hex), got %q", truncate(id, 64))
	}
	if u == uuid.Nil {
		return uuid.UUID{}, invalidf(field, "must not be the nil UUID")
	}
	return u, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// eventBytes is what counts against EventBytesMax.
func eventBytes(e *meridianv1.ProposedEvent) int {
	n := len(e.GetData()) + len(e.GetType()) + len(e.GetContentType())
	for k, v := range e.GetMetadata() {
		n += len(k) + len(v)
	}
	return n
}

// ValidateAppend checks one append against lim. The error is an
// *InvalidArgumentError naming the field (entity, expected, events,
// events[i].id, ...) and the allowed form or range.
func ValidateAppend(op *meridianv1.AppendOp, lim Limits) error {
	if _, err := validateAppend(op, lim); err != nil {
		return err
	}
	// Lifecycle events are checked before they are proposed only: apply
	// stays as lenient as the logs written before the types were reserved.
	return validateLifecycle(op)
}

// validateAppend also returns the parsed event ids.
func validateAppend(op *meridianv1.AppendOp, lim Limits) ([]uuid.UUID, error) {
	if op == nil {
		return nil, invalidf("append", "must be set")
	}
	if err := ValidateEntity(op.GetEntity(), lim.EntityBytesMax); err != nil {
		return nil, err
	}
	evs := op.GetEvents()
	if len(evs) == 0 || len(evs) > lim.AppendEventsMax {
		return nil, invalidf("events", "must hold 1 to %d events, got %d", lim.AppendEventsMax, len(evs))
	}
	if len(op.GetDeps()) > lim.DepsEntriesMax {
		return nil, invalidf("deps", "must hold at most %d regions, got %d", lim.DepsEntriesMax, len(op.GetDeps()))
	}
	for r := range op.GetDeps() {
		if err := validateRegionName("deps", r); err != nil {
			return nil, err
		}
	}
	if from := op.GetRecoveredFrom(); from != nil {
		if err := validateRegionName("recovered_from.region", from.GetRegion()); err != nil {
			return nil, err
		}
		if from.GetSeq() == 0 || op.GetOriginalVersion() == 0 || len(evs) != 1 {
			return nil, invalidf("recovered_from", "a re-append of a superseded event holds exactly that event, with its dot and original version")
		}
	}
	ids := make([]uuid.UUID, len(evs))
	seen := make(map[uuid.UUID]int, len(evs))
	total := 0
	for i, e := range evs {
		f := func(name string) string { return fmt.Sprintf("events[%d]%s", i, name) }
		if e == nil {
			return nil, invalidf(f(""), "must be set")
		}
		u, err := parseEventID(f(".id"), e.GetId())
		if err != nil {
			return nil, err
		}
		if j, dup := seen[u]; dup {
			return nil, invalidf(f(".id"), "duplicates events[%d].id %s; ids must be unique within an append", j, e.GetId())
		}
		seen[u] = i
		ids[i] = u
		if len(e.GetType()) == 0 || len(e.GetType()) > lim.TypeBytesMax {
			return nil, invalidf(f(".type"), "must be 1 to %d bytes, got %d", lim.TypeBytesMax, len(e.GetType()))
		}
		if len(e.GetContentType()) > lim.ContentTypeBytesMax {
			return nil, invalidf(f(".content_type"), "must be at most %d bytes, got %d", lim.ContentTypeBytesMax, len(e.GetContentType()))
		}
		if len(e.GetMetadata()) > lim.MetadataEntriesMax {
			return nil, invalidf(f(".metadata"), "must hold at most %d entries, got %d", lim.MetadataEntriesMax, len(e.GetMetadata()))
		}
		n := eventBytes(e)
		if n > lim.EventBytesMax {
			return nil, invalidf(f(""), "must be at most %d bytes (data + metadata + type + content type), got %d", lim.EventBytesMax, n)
		}
		total += n
	}
	if total > lim.AppendBytesMax {
		return nil, invalidf("events", "must total at most %d bytes, got %d", lim.AppendBytesMax, total)
	}
	return ids, nil
}
