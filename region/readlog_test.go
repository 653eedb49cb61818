package region

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// logFixture applies 9 events at positions 1..9:
// orders/1 Placed, orders/2 Placed, users/1 Created, orders/1 Shipped, ...
func logFixture(t *testing.T) *FSM {
	t.Helper()
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	n := 0
	for range 3 {
		for _, e := range []struct{ entity, typ string }{{"orders/1", "Placed"}, {"orders/2", "Shipped"}, {"users/1", "Created"}} {
			n++
			d.mustAppend(aop(e.entity, nil, pev(n, e.typ, fmt.Sprint(n))))
		}
	}
	return f
}

func positions(evs []*meridianv1.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.GetPosition())
	}
	return out
}

func mustFilter(t *testing.T, prefixes, types []string) *EventFilter {
	t.Helper()
	f, err := CompileFilter(&meridianv1.EventFilter{EntityPrefixes: prefixes, EventTypes: types}, DefaultLimits())
	require.NoError(t, err)
	return f
}

func TestScanLogFiltersPagesAndDirections(t *testing.T) {
	f := logFixture(t)
	for _, tc := range []struct {
		name     string
		scan     LogScan
		want     []uint64
		next     uint64
		end      bool
		prefixes []string
		types    []string
	}{
		{name: "forward from the start", scan: LogScan{Max: 4}, want: []uint64{1, 2, 3, 4}, next: 5},
		{name: "forward to the end", scan: LogScan{From: 7}, want: []uint64{7, 8, 9}, next: 10, end: true},
		{name: "beyond the end", scan: LogScan{From: 12}, next: 12, end: true},
		{name: "backward from the end", scan: LogScan{Backward: true, Max: 2}, want: []uint64{9, 8}, next: 7},
		{name: "backward to the start", scan: LogScan{From: 3, Backward: true}, want: []uint64{3, 2, 1}, next: 0, end: true},
		{name: "backward from beyond the end", scan: LogScan{From: 50, Backward: true, Max: 1}, want: []uint64{9}, next: 8},
		{name: "entity prefix", prefixes: []string{"orders/"}, want: []uint64{1, 2, 4, 5, 7, 8}, next: 10, end: true},
		{name: "two prefixes", prefixes: []string{"orders/2", "users/"}, want: []uint64{2, 3, 5, 6, 8, 9}, next: 10, end: true},
		{name: "event type", types: []string{"Shipped"}, want: []uint64{2, 5, 8}, next: 10, end: true},
		{name: "prefix and type", prefixes: []string{"orders/1"}, types: []string{"Placed", "Created"}, want: []uint64{1, 4, 7}, next: 10, end: true},
		{name: "backward filtered", scan: LogScan{Backward: true, Max: 2}, types: []string{"Created"}, want: []uint64{9, 6}, next: 5},
		// A sparse filter stops at the scan bound with what it skipped
		// behind it: the next call starts past them.
		{name: "scan bound, nothing matched", scan: LogScan{ScanMax: 4}, types: []string{"Nothing"}, next: 5},
		{name: "scan bound, one matched", scan: LogScan{From: 2, ScanMax: 4}, types: []string{"Created"}, want: []uint64{3}, next: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.scan
			if tc.prefixes != nil || tc.types != nil {
				s.Filter = mustFilter(t, tc.prefixes, tc.types)
			}
			page, err := f.ScanLog(s)
			require.NoError(t, err)
			assert.Equal(t, tc.want, positions(page.Events))
			assert.Equal(t, tc.next, page.Next, "next")
			assert.Equal(t, tc.end, page.End, "end")
			assert.Equal(t, uint64(9), page.LastPosition)
			for _, e := range page.Events {
				assert.True(t, s.Filter.matchEntity(e.GetEntity()) && s.Filter.matchType(e.GetType()), "%v", e)
			}
		})
	}
}

// TestScanLogPagesAddUpToOneScan checks that paging with any page size and
// scan bound, forward or backward, returns exactly what one unbounded scan
// returns, in order: nothing skipped, nothing twice.
func TestScanLogPagesAddUpToOneScan(t *testing.T) {
	f := logFixture(t)
	filter := mustFilter(t, []string{"orders/"}, []string{"Placed", "Shipped"})
	for _, backward := range []bool{false, true} {
		whole, err := f.ScanLog(LogScan{Backward: backward, Filter: filter})
		require.NoError(t, err)
		require.True(t, whole.End)
		for pageMax := 1; pageMax <= 4; pageMax++ {
			for scanMax := 1; scanMax <= 5; scanMax++ {
				var got []uint64
				from := uint64(0)
				for calls := 0; ; calls++ {
					require.Less(t, calls, 50, "paging does not end")
					page, err := f.ScanLog(LogScan{From: from, Backward: backward, Max: pageMax, ScanMax: scanMax, Filter: filter})
					require.NoError(t, err)
					got = append(got, positions(page.Events)...)
					if page.End {
						break
					}
					from = page.Next
				}
				assert.Equal(t, positions(whole.Events), got, "backward=%v page %d scan %d", backward, pageMax, scanMax)
			}
		}
	}
}

func TestCompileFilterRefusesBadFilters(t *testing.T) {
	long := string(make([]byte, 300))
	for name, f := range map[string]*meridianv1.EventFilter{
		"too many prefixes":     {EntityPrefixes: make([]string, FilterPrefixesMax+1)},
		"too many types":        {EventTypes: make([]string, FilterTypesMax+1)},
		"empty prefix":          {EntityPrefixes: []string{""}},
		"prefix with a space":   {EntityPrefixes: []string{"orders/ 1"}},
		"empty type":            {EventTypes: []string{"Placed", ""}},
		"type beyond the limit": {EventTypes: []string{long}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CompileFilter(f, DefaultLimits())
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), "filter.")
		})
	}
	f, err := CompileFilter(&meridianv1.EventFilter{}, DefaultLimits())
	require.NoError(t, err)
	assert.Nil(t, f, "an empty filter matches everything")
}

// TestVectorReadsArePortableBetweenRegions applies the same six events
// (three of eu-west, three of us-east) in two regions in different orders,
// then reads them page by page, switching region after every page and
// continuing with the vector the last page returned: every event arrives
// exactly once, whatever the page size.
func TestVectorReadsArePortableBetweenRegions(t *testing.T) {
	eu := newTestFSM(t) // region eu-west: its own events interleaved with us-east's
	d := newFSMDriver(t, eu)
	var us []*meridianv1.Event
	for i := uint64(1); i <= 3; i++ {
		d.mustAppend(aop("orders/eu", nil, pev(int(i), "Placed", "")))
		us = append(us, shipped("us-east", i, "orders/us", i, nil))
		require.Equal(t, 1, d.replicate(us[i-1]).Applied)
	}
	euEvents, err := eu.ReadOrigin(testRegion, 1, 10)
	require.NoError(t, err)
	require.Len(t, euEvents, 3)

	ap, err := OpenFSM(StoreConfig{Dir: t.TempDir(), Region: "ap-south", Logger: fsmTestLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ap.Close() })
	da := newFSMDriver(t, ap) // ap-south: us-east's first, then eu-west's
	for _, e := range append(append([]*meridianv1.Event{}, us...), euEvents...) {
		require.Equal(t, 1, da.replicate(e).Applied)
	}

	all := func(f *FSM) map[causal.Dot]bool {
		page, err := f.ScanLog(LogScan{After: causal.Vector{}})
		require.NoError(t, err)
		got := map[causal.Dot]bool{}
		for _, e := range page.Events {
			got[causal.Dot{Region: e.GetOrigin().GetRegion(), Seq: e.GetOrigin().GetSeq()}] = true
		}
		return got
	}
	require.Len(t, all(eu), 6)
	require.Equal(t, all(eu), all(ap))

	for pageMax := 1; pageMax <= 4; pageMax++ {
		for _, first := range []*FSM{eu, ap} {
			got := map[causal.Dot]int{}
			vec := causal.Vector{}
			f := first
			for calls := 0; ; calls++ {
				require.Less(t, calls, 20, "paging does not end")
				start, err := f.VectorStart(vec)
				require.NoError(t, err)
				page, err := f.ScanLog(LogScan{From: start, Max: pageMax, After: vec})
				require.NoError(t, err)
				for _, e := range page.Events {
					got[causal.Dot{Region: e.GetOrigin().GetRegion(), Seq: e.GetOrigin().GetSeq()}]++
				}
				vec = vec.Merge(page.Scanned)
				if page.End {
					break
				}
				if f == eu {
					f = ap
				} else {
					f = eu
				}
			}
			assert.Len(t, got, 6, "page %d", pageMax)
			for dot, n := range got {
				assert.Equal(t, 1, n, "page %d: %v delivered %d times", pageMax, dot, n)
			}
			assert.Equal(t, causal.Vector{testRegion: 3, "us-east": 3}, vec)
		}
	}
}

func TestVectorStart(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	// Positions: 1 eu:1, 2 us:1, 3 eu:2, 4 us:2.
	for i := uint64(1); i <= 2; i++ {
		d.mustAppend(aop("orders/eu", nil, pev(int(i), "Placed", "")))
		require.Equal(t, 1, d.replicate(shipped("us-east", i, "orders/us", i, nil)).Applied)
	}
	for _, tc := range []struct {
		vector causal.Vector
		want   uint64
	}{
		{causal.Vector{}, 1},
		{causal.Vector{testRegion: 1}, 2},
		{causal.Vector{testRegion: 1, "us-east": 1}, 3},
		{causal.Vector{testRegion: 2, "us-east": 1}, 4},
		{causal.Vector{testRegion: 2, "us-east": 2}, 5},
		{causal.Vector{testRegion: 9, "us-east": 9, "ap-south": 4}, 5},
	} {
		got, err := f.VectorStart(tc.vector)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "%v", tc.vector)
	}
}

// TestFilteredSubscriptionCheckpointsPastWhatItSkips subscribes to the
// region log with a filter that matches one event in a hundred: while
// catching up, checkpoints move past the skipped entries (a consumer that
// stores them resumes without rescanning); live, the idle checkpoint does.
func TestFilteredSubscriptionCheckpointsPastWhatItSkips(t *testing.T) {
	r := newTestRegion(t, 3, func(c *Config) { c.SubscribePageMax = 4 }) // scans 64 entries a page
	leader := r.waitLeader()
	ctx := testContext(t, 30*time.Second)
	appendN := func(entity string, n int) {
		for range n {
			_, err := r.node(leader).Append(ctx, appendRequest(entity, newTestEvent()))
			require.NoError(t, err)
		}
	}
	appendN("noise/1", 100)
	appendN("wanted/1", 1) // position 101
	r.waitConverged()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan *meridianv1.SubscribeResponse, 1024)
	done := make(chan error, 1)
	go func() {
		done <- r.node(r.follower(leader)).Subscribe(sctx, &meridianv1.SubscribeRequest{
			Target: &meridianv1.SubscribeRequest_All{All: true},
			Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"wanted/"}},
			// Longer than the test: only the catch-up sends checkpoints.
			CheckpointInterval: durationpb.New(time.Hour),
		}, func(m *meridianv1.SubscribeResponse) error { got <- m; return nil })
	}()
	recv := func() *meridianv1.SubscribeResponse {
		select {
		case m := <-got:
			return m
		case err := <-done:
			t.Fatalf("subscription ended: %v", err)
		case <-ctx.Done():
			t.Fatal("no message")
		}
		return nil
	}
	cp := recv().GetCheckpoint()
	require.NotNil(t, cp, "a checkpoint past the first 64 skipped entries")
	assert.Equal(t, uint64(65), cp.GetNextPosition())
	assert.False(t, cp.GetCaughtUp())
	ev := recv().GetEvent()
	require.NotNil(t, ev)
	assert.Equal(t, "wanted/1", ev.GetEntity())
	assert.Equal(t, uint64(101), ev.GetPosition())
	cp = recv().GetCheckpoint()
	require.NotNil(t, cp)
	assert.True(t, cp.GetCaughtUp())
	assert.Equal(t, uint64(102), cp.GetNextPosition())

	// Live: more noise and one match; nothing but the match arrives.
	appendN("noise/2", 10)
	appendN("wanted/2", 1) // position 112
	ev = recv().GetEvent()
	require.NotNil(t, ev)
	assert.Equal(t, "wanted/2", ev.GetEntity())
	assert.Equal(t, uint64(112), ev.GetPosition())
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Empty(t, got)
}

// TestReadLogOverConnect reads the region log through a follower's Connect
// API: pages by position both ways, a filter, a vector read, the session
// token (read-your-writes through a follower), and bad requests.
func TestReadLogOverConnect(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	c := r.client(r.follower(leader))
	ctx := testContext(t, 30*time.Second)
	var last *meridianv1.AppendResponse
	for i := range 6 {
		ev := newTestEvent()
		ev.Type = []string{"Placed", "Shipped"}[i%2]
		resp, err := r.node(leader).Append(ctx, appendRequest(fmt.Sprintf("orders/%d", i%3), ev))
		require.NoError(t, err)
		last = resp
	}
	// Read-your-writes: the token of the last append, through a follower.
	page, err := c.ReadLog(ctx, connect.NewRequest(&meridianv1.ReadLogRequest{SessionToken: last.GetSessionToken(), MaxCount: 4}))
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3, 4}, positions(page.Msg.GetEvents()))
	assert.Equal(t, uint64(5), page.Msg.GetNextPosition())
	assert.False(t, page.Msg.GetEnd())
	assert.Equal(t, uint64(6), page.Msg.GetLastPosition())
	assert.NotEqual(t, r.nodes[leader].id, page.Msg.GetNode(), "served by the follower")

	page, err = c.ReadLog(ctx, connect.NewRequest(&meridianv1.ReadLogRequest{
		From: &meridianv1.ReadLogRequest_Position{Position: 5}, Direction: meridianv1.Direction_DIRECTION_BACKWARD,
		Filter: &meridianv1.EventFilter{EventTypes: []string{"Shipped"}},
	}))
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 2}, positions(page.Msg.GetEvents()))
	assert.True(t, page.Msg.GetEnd())

	page, err = c.ReadLog(ctx, connect.NewRequest(&meridianv1.ReadLogRequest{
		From:   &meridianv1.ReadLogRequest_AfterVector{AfterVector: &meridianv1.VectorStart{Vector: map[string]uint64{"r1": 4}}},
		Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"orders/1", "orders/2"}},
	}))
	require.NoError(t, err)
	assert.Equal(t, []uint64{5, 6}, positions(page.Msg.GetEvents()))
	assert.Equal(t, map[string]uint64{"r1": 6}, page.Msg.GetNextVector())
	assert.True(t, page.Msg.GetEnd())

	for name, tc := range map[string]struct {
		req   *meridianv1.ReadLogRequest
		field string
	}{
		"max_count":       {&meridianv1.ReadLogRequest{MaxCount: 5000}, "max_count"},
		"direction":       {&meridianv1.ReadLogRequest{Direction: 7}, "direction"},
		"vector backward": {&meridianv1.ReadLogRequest{From: &meridianv1.ReadLogRequest_AfterVector{AfterVector: &meridianv1.VectorStart{}}, Direction: meridianv1.Direction_DIRECTION_BACKWARD}, "forward"},
		"filter":          {&meridianv1.ReadLogRequest{Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"bad prefix"}}}, "filter.entity_prefixes[0]"},
		"token":           {&meridianv1.ReadLogRequest{SessionToken: "!!"}, "session_token"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.ReadLog(ctx, connect.NewRequest(tc.req))
			assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, tc.field)
		})
	}
}
