package testport

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAddrIsFreeBelowTheEphemeralRangeAndNeverRepeats(t *testing.T) {
	high := ephemeralStart()
	seen := map[string]bool{}
	for range 200 {
		addr, err := Addr()
		require.NoError(t, err)
		host, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1", host)
		p, err := strconv.Atoi(port)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, p, lowest)
		assert.Less(t, p, high, "a port of the ephemeral range can be taken by any outgoing connection")
		assert.False(t, seen[addr], "%s handed out twice", addr)
		seen[addr] = true
	}
	// The last one can be listened on.
	for addr := range seen {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		require.NoError(t, ln.Close())
		break
	}
}

func TestAddrSkipsPortsInUse(t *testing.T) {
	// A window of 8 ports, all but one held: that one is the answer, and
	// once handed out, none is left.
	low := lowest + 5000 + rand.IntN(5000)
	free := -1
	for p := low; p < low+8; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use already: as good as held
		}
		if free < 0 {
			require.NoError(t, ln.Close())
			free = p
			continue
		}
		t.Cleanup(func() { _ = ln.Close() })
	}
	require.GreaterOrEqual(t, free, 0, "no free port in [%d, %d)", low, low+8)
	addr, err := addrIn(low, low+8)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:"+strconv.Itoa(free), addr)
	_, err = addrIn(low, low+8)
	assert.Error(t, err, "every port of the window is held or handed out")
}
