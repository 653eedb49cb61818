package testport

import (
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
	// Hold every port of a small window; Addr never returns one of them.
	held := map[string]bool{}
	for p := lowest; p < lowest+50; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		t.Cleanup(func() { _ = ln.Close() })
		held[ln.Addr().String()] = true
	}
	for range 100 {
		addr, err := Addr()
		require.NoError(t, err)
		assert.False(t, held[addr], "%s is in use", addr)
	}
}
