package replication

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func TestServiceValidatesPull(t *testing.T) {
	w := newWorld(t, []string{"us", "eu"}, worldOptions{noShipper: true})
	c := w.client("eu", "us")
	for _, tc := range []struct {
		name  string
		req   *meridianv1.PullRequest
		field string
	}{
		{"empty origin", &meridianv1.PullRequest{FromSeq: 1}, "origin"},
		{"origin too long", &meridianv1.PullRequest{Origin: strings.Repeat("x", 300), FromSeq: 1}, "origin"},
		{"from_seq zero", &meridianv1.PullRequest{Origin: "eu"}, "from_seq"},
		{"requester too long", &meridianv1.PullRequest{Origin: "eu", FromSeq: 1, RequesterRegion: strings.Repeat("y", 300)}, "requester_region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := c.Pull(ctx, connect.NewRequest(tc.req))
			require.NoError(t, err)
			defer st.Close()
			require.False(t, st.Receive())
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(st.Err()), "err: %v", st.Err())
			assert.Contains(t, st.Err().Error(), tc.field)
		})
	}
}

// Proto3 refuses invalid UTF-8 on the wire, so validatePull's own check
// is tested directly.
func TestValidatePullRejectsInvalidUTF8(t *testing.T) {
	_, err := validatePull(&meridianv1.PullRequest{Origin: "\xff", FromSeq: 1})
	require.ErrorIs(t, err, ErrInvalidArgument)
	var ia *InvalidArgumentError
	require.ErrorAs(t, err, &ia)
	assert.Equal(t, "origin", ia.Field)
}

func TestValidatePullCapsMaxEvents(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want int
	}{{0, PullEventsMax}, {1, 1}, {PullEventsMax, PullEventsMax}, {PullEventsMax + 1, PullEventsMax}, {1 << 31, PullEventsMax}} {
		lim, err := validatePull(&meridianv1.PullRequest{Origin: "eu", FromSeq: 1, MaxEvents: tc.in})
		require.NoError(t, err)
		assert.Equal(t, tc.want, lim.maxEvents, "max_events %d", tc.in)
	}
}

// receiveN reads messages until n events arrived, checking that they are
// origin's events from seq on; it returns the messages.
func receiveN(t *testing.T, st *connect.ServerStreamForClient[meridianv1.PullResponse], origin string, seq uint64, n int) []*meridianv1.PullResponse {
	t.Helper()
	var msgs []*meridianv1.PullResponse
	for got := 0; got < n; {
		require.True(t, st.Receive(), "stream ended: %v", st.Err())
		m := st.Msg()
		msgs = append(msgs, m)
		for _, ev := range m.GetEvents() {
			require.Equal(t, origin, ev.GetOrigin().GetRegion())
			require.Equal(t, seq, ev.GetOrigin().GetSeq())
			seq++
			got++
		}
	}
	return msgs
}

func TestServiceCatchUpThenLive(t *testing.T) {
	w := newWorld(t, []string{"us", "eu"}, worldOptions{noShipper: true})
	us := w.rs["us"].fake
	for range 600 {
		us.Append(nil, 10)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.client("eu", "us").Pull(ctx, connect.NewRequest(&meridianv1.PullRequest{Origin: "us", FromSeq: 101, MaxEvents: 100, RequesterRegion: "eu"}))
	require.NoError(t, err)
	defer st.Close()

	// Catch-up: pages of at most max_events, consecutive from from_seq,
	// each with the source's applied vector covering what it carries.
	msgs := receiveN(t, st, "us", 101, 500)
	var last uint64
	for _, m := range msgs {
		assert.LessOrEqual(t, len(m.GetEvents()), 100)
		assert.Equal(t, "us", m.GetSourceRegion())
		if n := len(m.GetEvents()); n > 0 {
			last = m.GetEvents()[n-1].GetOrigin().GetSeq()
			assert.GreaterOrEqual(t, m.GetApplied()["us"], last)
		}
	}
	require.Equal(t, uint64(600), last)

	// Live: new events follow as they are applied.
	go func() {
		for range 30 {
			us.Append(nil, 10)
			time.Sleep(time.Millisecond)
		}
	}()
	receiveN(t, st, "us", 601, 30)
}

func TestServiceFirstMessageAndHeartbeatsCarryAppliedVector(t *testing.T) {
	w := newWorld(t, []string{"us", "eu", "ap"}, worldOptions{noShipper: true})
	us := w.rs["us"]
	us.fake.Append(nil, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Asking past the end: the first message comes at once, empty, with
	// the applied vector.
	start := time.Now()
	st, err := w.client("eu", "us").Pull(ctx, connect.NewRequest(&meridianv1.PullRequest{Origin: "us", FromSeq: 2}))
	require.NoError(t, err)
	defer st.Close()
	require.True(t, st.Receive(), "%v", st.Err())
	assert.Less(t, time.Since(start), us.cfg.HeartbeatInterval*10)
	assert.Empty(t, st.Msg().GetEvents())
	assert.Equal(t, map[string]uint64{"us": 1}, st.Msg().GetApplied())

	// The region applies another origin's events: heartbeats say so.
	ap := w.rs["ap"].fake
	ap.Append(nil, 0)
	ap.Append(nil, 0)
	_, err = us.fake.Replicate(ctx, ap.Log("ap"))
	require.NoError(t, err)
	deadline := time.Now().Add(5 * time.Second)
	heartbeats := 0
	for time.Now().Before(deadline) {
		require.True(t, st.Receive(), "%v", st.Err())
		m := st.Msg()
		require.Empty(t, m.GetEvents())
		heartbeats++
		if m.GetApplied()["ap"] == 2 {
			assert.Equal(t, uint64(1), m.GetApplied()["us"])
			assert.Equal(t, "us", m.GetSourceRegion())
			return
		}
	}
	t.Fatalf("no heartbeat carried ap=2 in 5s (%d heartbeats)", heartbeats)
}

func TestServiceBoundsMessageBytes(t *testing.T) {
	const eventBytes = 100 << 10
	w := newWorld(t, []string{"us", "eu"}, worldOptions{noShipper: true, config: func(_ string, c *Config) {
		c.MessageBytesMax = 256 << 10
		c.PendingBytesMax = 256 << 10
	}})
	us := w.rs["us"].fake
	for range 10 {
		us.Append(nil, eventBytes)
	}
	us.Append(nil, 300<<10) // larger than a message: goes alone
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.client("eu", "us").Pull(ctx, connect.NewRequest(&meridianv1.PullRequest{Origin: "us", FromSeq: 1}))
	require.NoError(t, err)
	defer st.Close()
	msgs := receiveN(t, st, "us", 1, 11)
	for _, m := range msgs {
		if len(m.GetEvents()) > 1 {
			assert.LessOrEqual(t, eventsBytes(m.GetEvents()), 256<<10)
		}
	}
	require.Len(t, msgs[len(msgs)-1].GetEvents(), 1)
}

func TestServiceCloseEndsStreams(t *testing.T) {
	w := newWorld(t, []string{"us", "eu"}, worldOptions{noShipper: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.client("eu", "us").Pull(ctx, connect.NewRequest(&meridianv1.PullRequest{Origin: "us", FromSeq: 1}))
	require.NoError(t, err)
	defer st.Close()
	require.True(t, st.Receive())
	w.rs["us"].svc.Close()
	for st.Receive() {
	}
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(st.Err()))
}

// origin_staleness: without SetOriginStaleness, zero for the region's own
// origin and nothing for others; with it, what it answers for every
// origin, and nothing where it does not know.
func TestServiceSendsOriginStaleness(t *testing.T) {
	w := newWorld(t, []string{"us", "eu", "ap"}, worldOptions{noShipper: true})
	us := w.rs["us"]
	first := func(origin string) *meridianv1.PullResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := w.client("eu", "us").Pull(ctx, connect.NewRequest(&meridianv1.PullRequest{Origin: origin, FromSeq: 1}))
		require.NoError(t, err)
		defer st.Close()
		require.True(t, st.Receive(), "%v", st.Err())
		return st.Msg()
	}
	require.NotNil(t, first("us").GetOriginStaleness())
	assert.Zero(t, first("us").GetOriginStaleness().AsDuration(), "the origin's own log is never stale")
	assert.Nil(t, first("ap").GetOriginStaleness(), "no answer installed: nothing claimed")

	us.svc.SetOriginStaleness(func(origin string) (time.Duration, bool) {
		switch origin {
		case "ap":
			return 1500 * time.Millisecond, true
		case "us":
			return 40 * time.Millisecond, true // a follower of us, say
		}
		return 0, false
	})
	assert.Equal(t, 1500*time.Millisecond, first("ap").GetOriginStaleness().AsDuration())
	assert.Nil(t, first("eu").GetOriginStaleness(), "unknown for eu: nothing claimed")
	assert.Equal(t, 40*time.Millisecond, first("us").GetOriginStaleness().AsDuration())
}
