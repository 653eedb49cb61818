package client

import "errors"

// ErrNoEndpoints is returned by New when it is given no endpoint to talk to.
var ErrNoEndpoints = errors.New("client: no endpoints")

// ErrInvalidEndpoint is returned by New for an endpoint that is not an
// http:// URL or a host:port. The wrapping error names the endpoint.
var ErrInvalidEndpoint = errors.New("client: invalid endpoint")

// ErrInvalidOption is returned by New or a call for an option value outside
// its allowed range. The wrapping error names the option and the range.
var ErrInvalidOption = errors.New("client: invalid option")

// ErrInvalidEventID is returned by Append for an event id that is set but is
// not a UUID. The server would reject it too; failing early saves a round trip.
var ErrInvalidEventID = errors.New("client: invalid event id")

// errStreamEnded is the cause given when a server closes a subscription
// without an error; the client resubscribes.
var errStreamEnded = errors.New("client: server ended the subscription")
