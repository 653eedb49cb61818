package main

import (
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDevCutterPartitionsAndHeals: a cut refuses dials across it, closes
// the connections across it, leaves the other regions' traffic alone, and
// a heal lets dials through again.
func TestDevCutterPartitionsAndHeals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = c.Read(make([]byte, 1)); _ = c.Close() }()
		}
	}()
	c := newDevCutter()
	dial := func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }
	across, err := c.dial("us", "ap", dial)
	require.NoError(t, err)
	within, err := c.dial("us", "eu", dial)
	require.NoError(t, err)

	c.set("ap")
	_, err = across.Write([]byte("x"))
	assert.Error(t, err, "a connection across the cut is closed")
	_, err = within.Write([]byte("x"))
	assert.NoError(t, err, "traffic between the other regions goes on")
	_, err = c.dial("ap", "eu", dial)
	assert.True(t, errors.Is(err, errCut), "%v", err)
	_, err = c.dial("eu", "ap", dial)
	assert.True(t, errors.Is(err, errCut), "%v", err)

	c.set("")
	healed, err := c.dial("us", "ap", dial)
	require.NoError(t, err)
	_ = healed.Close()
	_ = within.Close()
	c.mu.Lock()
	assert.Empty(t, c.conns, "closed connections leave the registry")
	c.mu.Unlock()
}
