package replication

// TestingKnobs are hooks for tests; nil in production.
type TestingKnobs struct {
	// OnPending is called by a puller after every change of what it holds,
	// with the events and bytes held. Called on the puller's goroutine.
	OnPending func(origin string, events, bytes int)
	// HoldOrigin, when it returns true for an origin, keeps the puller of
	// that origin from proposing (it still reads and holds its stream), so
	// that a test can give a region an unreplicated tail. Polled.
	HoldOrigin func(origin string) bool
}
