package replication

// TestingKnobs are hooks for tests; nil in production.
type TestingKnobs struct {
	// OnPending is called by a puller after every change of what it holds,
	// with the events and bytes held. Called on the puller's goroutine.
	OnPending func(origin string, events, bytes int)
}
