package crdt

import "errors"

// ErrCausalCycle is returned by Order when the events' deps form a cycle,
// which no real history can: some event claims to depend on an event that
// depends on it.
var ErrCausalCycle = errors.New("crdt: causal cycle among events")

// ErrInvalidOp is returned by op decoders for malformed input; the wrapping
// error names the field and the limit.
var ErrInvalidOp = errors.New("crdt: invalid op")
