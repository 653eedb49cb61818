package causal

import "errors"

// ErrClockOffset is returned by HLC.Update when a remote timestamp is further
// ahead of the local wall clock than the configured maximum offset. The clock
// is left unchanged: a faulty remote clock must not drag ours into the future.
var ErrClockOffset = errors.New("causal: remote clock offset exceeds maximum")

// ErrInvalidVector is returned when a vector cannot be encoded or a binary
// vector cannot be decoded. The wrapping error names the field and the limit.
var ErrInvalidVector = errors.New("causal: invalid vector")

// ErrInvalidToken is returned by ParseToken and UnmarshalToken for any input
// that is not a well-formed session token. The wrapping error says what is wrong.
var ErrInvalidToken = errors.New("causal: invalid session token")

// ErrInvalidRegion is returned for a region name that is empty, too long or
// not valid UTF-8.
var ErrInvalidRegion = errors.New("causal: invalid region name")

// ErrInvalidEvent is returned by Buffer.Add for an event that can never be
// delivered: a zero dot, or deps that include the event itself or a later
// event of its own origin.
var ErrInvalidEvent = errors.New("causal: invalid event")

// ErrBufferFull is returned by Buffer.Add when the buffer already holds its
// maximum number of undeliverable events. It is backpressure: the caller
// should stop pulling until deliveries make room.
var ErrBufferFull = errors.New("causal: delivery buffer full")
