package region

import (
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// committedFuture is an ApplyFuture whose entry committed and whose state
// machine answered resp.
type committedFuture struct {
	raft.ApplyFuture
	resp any
}

func (f committedFuture) Error() error  { return nil }
func (f committedFuture) Response() any { return f.resp }
func (f committedFuture) Index() uint64 { return 42 }

// TestAwaitCommittedButUnappliedIsOutcomeUnknown: an entry that committed is
// applied later (after a restart here, and on every other replica), so a
// state machine that was closing when it arrived must not turn it into a
// plain failure the client would take for "not written".
func TestAwaitCommittedButUnappliedIsOutcomeUnknown(t *testing.T) {
	b := &batcher{logger: slog.New(slog.DiscardHandler), slots: make(chan struct{}, 1)}
	p := &proposal{done: make(chan proposalResult, 1)}
	b.slots <- struct{}{}
	b.wg.Add(1)
	b.await(committedFuture{resp: ErrStoreClosed}, []*proposal{p})
	res := <-p.done
	require.ErrorIs(t, res.err, ErrOutcomeUnknown)
	require.Nil(t, res.resp)
}
