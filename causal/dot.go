package causal

import (
	"fmt"
	"strconv"
)

// Dot names one event: its origin region and its sequence in that region's
// log (1, 2, 3, ... with no gaps).
type Dot struct {
	Region string
	Seq    uint64
}

// IsZero reports whether d is the zero dot (no event).
func (d Dot) IsZero() bool { return d.Region == "" && d.Seq == 0 }

// Valid reports whether d can name an event: a valid region and Seq >= 1.
func (d Dot) Valid() error {
	if err := ValidateRegion(d.Region); err != nil {
		return err
	}
	if d.Seq == 0 {
		return fmt.Errorf("%w: dot %s has sequence 0", ErrInvalidEvent, d)
	}
	return nil
}

// Compare orders dots by region, then sequence. It is a total order used
// only for determinism (sorting), not a causal relation.
func (d Dot) Compare(e Dot) int {
	switch {
	case d.Region < e.Region:
		return -1
	case d.Region > e.Region:
		return 1
	case d.Seq < e.Seq:
		return -1
	case d.Seq > e.Seq:
		return 1
	}
	return 0
}

// Prev returns the previous event of the same origin (Seq 0 means none).
func (d Dot) Prev() Dot { return Dot{Region: d.Region, Seq: d.Seq - min(d.Seq, 1)} }

// Next returns the next event of the same origin.
func (d Dot) Next() Dot { return Dot{Region: d.Region, Seq: d.Seq + 1} }

// String formats d as "region:seq".
func (d Dot) String() string { return d.Region + ":" + strconv.FormatUint(d.Seq, 10) }

// CoversDot reports whether v includes the event d (v[d.Region] >= d.Seq).
func (v Vector) CoversDot(d Dot) bool { return v[d.Region] >= d.Seq }

// AddDot raises v's entry for d's region to d.Seq if lower, in place.
// v must be non-nil.
func (v Vector) AddDot(d Dot) {
	if d.Seq > v[d.Region] {
		v[d.Region] = d.Seq
	}
}

// Deps returns the dependencies of a new event: the writer's session vector
// merged with the dots it must follow (typically the entity's previous event).
// The result is a new vector; session is not modified.
func Deps(session Vector, after ...Dot) Vector {
	d := session.Clone()
	for _, a := range after {
		if a.Seq != 0 {
			d.AddDot(a)
		}
	}
	return d
}

// Deliverable reports whether an event with dot d and dependencies deps can
// be applied on top of applied: it is the next event of its origin (no gap,
// no duplicate) and applied covers its deps.
func Deliverable(applied Vector, d Dot, deps Vector) bool {
	return d.Seq == applied[d.Region]+1 && applied.Covers(deps)
}

// ValidateDeps checks that deps can be satisfied before event d: an event
// cannot depend on itself or on a later event of its own origin.
func ValidateDeps(d Dot, deps Vector) error {
	if deps[d.Region] >= d.Seq {
		return fmt.Errorf("%w: event %s depends on %s:%d (itself or later)", ErrInvalidEvent, d, d.Region, deps[d.Region])
	}
	return nil
}
