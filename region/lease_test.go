package region

import (
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/clock"
)

// leaseTestRegion is one node of region r1 with a hand-set placement table
// and short lease timers.
func leaseTestRegion(t *testing.T, clk *clock.Clock) (*raftRegion, *fakeOwnership) {
	own := newFakeOwnership()
	own.set("", Home{Region: "r1", Epoch: 1})
	own.setIndex(5)
	r := newTestRegion(t, 1, func(c *Config) {
		c.Region, c.Ownership = "r1", own
		c.LeaseDuration, c.LeaseRenewInterval, c.LeaseWaitMax = 600*time.Millisecond, 150*time.Millisecond, 300*time.Millisecond
		c.ClockOffsetMax = 200 * time.Millisecond
		if clk != nil {
			c.Clock = clk
		}
	})
	r.waitLeader()
	own.setEndpoints("r1", r.peers[0].APIAddr)
	return r, own
}

func TestLeaseThatCannotBeRenewedStopsWritesUntilRenewed(t *testing.T) {
	r, own := leaseTestRegion(t, nil)
	ctx := testContext(t, 20*time.Second)
	_, err := r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.NoError(t, err)

	// The placement group is unreachable: once the lease runs out the
	// leader orders nothing, and says why.
	own.setLeaseErr(errors.New("placement leader unreachable"))
	require.Eventually(t, func() bool { return !r.node(0).leaseValid() }, 5*time.Second, 10*time.Millisecond)
	_, err = r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.Error(t, err)
	assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
	var ce *connect.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, kindLeaseExpired, ce.Meta().Get(errorKindHeader))
	assert.Contains(t, err.Error(), "placement leader unreachable")
	assert.Len(t, readStreamAll(t, r.node(0), "x/1"), 1, "nothing written without the lease")
	st := r.node(0).Status()
	assert.NotEmpty(t, st.GetLeaseFenced())
	assert.Nil(t, st.GetLeaseRemaining())

	// Renewals succeed again; a failover moved homes away from r1 at index
	// 9 meanwhile: the lease counts once the copy has it, and the floor is
	// raised to it first.
	own.setRequired(9)
	own.setLeaseErr(nil)
	time.Sleep(300 * time.Millisecond)
	assert.False(t, r.node(0).leaseValid(), "the copy (index 5) has not applied the failover (index 9)")
	own.setIndex(9)
	_, err = r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.NoError(t, err)
	assert.Equal(t, uint64(9), r.node(0).FSM().ApplyState().GetPlacementFloor())
	assert.NotNil(t, r.node(0).Status().GetLeaseRemaining())
}

func TestClockOffsetBeyondTheBoundFencesTheLeader(t *testing.T) {
	clk := clock.New()
	r, _ := leaseTestRegion(t, clk)
	ctx := testContext(t, 20*time.Second)
	clk.Skew(100 * time.Millisecond) // within the 200 ms bound
	time.Sleep(300 * time.Millisecond)
	_, err := r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.NoError(t, err, "an offset within the bound changes nothing")

	clk.Skew(2 * time.Second)
	require.Eventually(t, func() bool { return !r.node(0).leaseValid() }, 5*time.Second, 10*time.Millisecond)
	_, err = r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "off the placement leader's")
	assert.Contains(t, r.node(0).Status().GetLeaseFenced(), "beyond the bound of 200ms")
	assert.Len(t, readStreamAll(t, r.node(0), "x/1"), 1)

	clk.Skew(0)
	require.Eventually(t, func() bool { return r.node(0).leaseValid() }, 5*time.Second, 10*time.Millisecond)
	_, err = r.client(0).Append(ctx, connect.NewRequest(appendRequest("x/1", newTestEvent())))
	require.NoError(t, err)
}
