package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/region"
)

// Tolerances of the WAN tests: the machine running them may be loaded, so
// lower bounds are tight (a delay is never shorter than asked) and upper
// bounds generous.
const (
	wanTestLatency = 150 * time.Millisecond
	wanTestSlack   = 2 * time.Second
)

// echoServer accepts connections on 127.0.0.1 and echoes every byte back.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// dialWAN dials addr from a node of region self, addr being in eu-west.
func dialWAN(t *testing.T, self, addr string, latency time.Duration) net.Conn {
	t.Helper()
	nw := newWANNetwork(region.TCP, self, map[string]string{addr: "eu-west"}, latency)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := nw.Dial(ctx, addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes one message and reads its echo, returning how long it took.
func roundTrip(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	msg := []byte("ping")
	start := time.Now()
	_, err := c.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	return time.Since(start)
}

func TestWANDelaysOnlyConnectionsToOtherRegions(t *testing.T) {
	echo := echoServer(t)
	cases := []struct {
		name    string
		self    string
		addr    string // "" is the echo server, in eu-west
		latency time.Duration
		far     bool
	}{
		{name: "to another region", self: "us-east", latency: wanTestLatency, far: true},
		{name: "within the region", self: "eu-west", latency: wanTestLatency},
		{name: "to an address outside the layout", self: "us-east", addr: "unlisted", latency: wanTestLatency},
		{name: "latency off", self: "us-east", latency: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			layout := map[string]string{echo: "eu-west"}
			if tc.addr == "unlisted" {
				layout = map[string]string{"127.0.0.1:1": "eu-west"}
			}
			nw := newWANNetwork(region.TCP, tc.self, layout, tc.latency)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			start := time.Now()
			c, err := nw.Dial(ctx, echo)
			require.NoError(t, err)
			defer c.Close()
			dial := time.Since(start)
			rtt := roundTrip(t, c)
			if tc.far {
				assert.GreaterOrEqual(t, dial, 2*tc.latency, "connection setup is one round trip")
				assert.GreaterOrEqual(t, rtt, 2*tc.latency, "a round trip costs twice the one-way latency")
				assert.Less(t, rtt, 2*tc.latency+wanTestSlack)
			} else {
				assert.Less(t, dial, wanTestLatency, "no delay on dial")
				assert.Less(t, rtt, wanTestLatency, "no delay on bytes")
			}
		})
	}
}

func TestWANWritesDoNotBlockForTheLatency(t *testing.T) {
	c := dialWAN(t, "us-east", echoServer(t), wanTestLatency)
	const writes = 20
	start := time.Now()
	for range writes {
		_, err := c.Write([]byte("x"))
		require.NoError(t, err)
	}
	// Twenty writes in a row take far less than one latency each: they are
	// pipelined, not delayed one by one.
	assert.Less(t, time.Since(start), wanTestLatency, "writes are queued, not delayed one by one")
	got := make([]byte, writes)
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 2*wanTestLatency+wanTestSlack, "the pipelined bytes arrive one round trip later")
}

func TestWANPreservesByteOrderUnderBackpressure(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MERIDIAN_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	t.Logf("seed %d (MERIDIAN_TEST_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	c := dialWAN(t, "us-east", echoServer(t), 20*time.Millisecond)
	// More than the link holds in each direction, in writes of every size
	// from one byte to several chunks, so both bounds push back.
	payload := make([]byte, 3*wanBufferBytesMax)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	writeErr := make(chan error, 1)
	go func() {
		for off := 0; off < len(payload); {
			n := min(len(payload)-off, 1+rng.IntN(3*wanChunkBytesMax))
			if _, err := c.Write(payload[off : off+n]); err != nil {
				writeErr <- err
				return
			}
			off += n
		}
		writeErr <- nil
	}()
	got := make([]byte, len(payload))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(60*time.Second)))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	require.NoError(t, <-writeErr)
	require.True(t, bytes.Equal(payload, got), "the echo differs from what was written")
}

func TestWANDeadlines(t *testing.T) {
	cases := []struct {
		name string
		set  func(c net.Conn, at time.Time) error
	}{
		{name: "read deadline", set: net.Conn.SetReadDeadline},
		{name: "deadline", set: net.Conn.SetDeadline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWAN(t, "us-east", echoServer(t), wanTestLatency)
			_, err := c.Write([]byte("late"))
			require.NoError(t, err)
			// The echo is a round trip away: a read with a shorter deadline
			// times out first, with a timeout error, and nothing is lost.
			start := time.Now()
			require.NoError(t, tc.set(c, start.Add(wanTestLatency/3)))
			_, err = c.Read(make([]byte, 4))
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "a timeout error")
			assert.GreaterOrEqual(t, time.Since(start), wanTestLatency/3)
			assert.Less(t, time.Since(start), 2*wanTestLatency, "the read returned at its deadline, not when data came")

			require.NoError(t, tc.set(c, time.Time{}))
			got := make([]byte, 4)
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.Equal(t, "late", string(got))
		})
	}
	t.Run("write deadline in the past", func(t *testing.T) {
		c := dialWAN(t, "us-east", echoServer(t), wanTestLatency)
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
		_, err := c.Write([]byte("x"))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
}

func TestWANClose(t *testing.T) {
	t.Run("a blocked read returns at once", func(t *testing.T) {
		c := dialWAN(t, "us-east", echoServer(t), wanTestLatency)
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		// Whether the reader is already blocked or not, Close ends it.
		start := time.Now()
		require.NoError(t, c.Close())
		select {
		case err := <-done:
			require.ErrorIs(t, err, net.ErrClosed)
		case <-time.After(wanTestSlack):
			t.Fatal("Read still blocked after Close")
		}
		assert.Less(t, time.Since(start), wanTestLatency+wanTestSlack)
		_, err := c.Write([]byte("x"))
		require.ErrorIs(t, err, net.ErrClosed)
		require.ErrorIs(t, c.Close(), net.ErrClosed, "a second Close")
	})
	t.Run("bytes written before close are delivered", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		received := make(chan []byte, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				received <- nil
				return
			}
			defer s.Close()
			b, _ := io.ReadAll(s)
			received <- b
		}()
		c := dialWAN(t, "us-east", ln.Addr().String(), wanTestLatency)
		_, err = c.Write([]byte("goodbye"))
		require.NoError(t, err)
		require.NoError(t, c.Close())
		select {
		case b := <-received:
			assert.Equal(t, "goodbye", string(b), "then EOF")
		case <-time.After(wanTestLatency + wanTestSlack):
			t.Fatal("the peer got nothing")
		}
	})
	t.Run("the peer's close arrives after its bytes", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		go func() {
			s, err := ln.Accept()
			if err == nil {
				_, _ = s.Write([]byte("last words"))
				_ = s.Close()
			}
		}()
		c := dialWAN(t, "us-east", ln.Addr().String(), wanTestLatency)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(wanTestLatency+wanTestSlack)))
		b, err := io.ReadAll(c)
		require.NoError(t, err)
		assert.Equal(t, "last words", string(b))
	})
}

func TestWANDialHonoursContext(t *testing.T) {
	echo := echoServer(t)
	nw := newWANNetwork(region.TCP, "us-east", map[string]string{echo: "eu-west"}, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := nw.Dial(ctx, echo)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second, "the dial gave up at the context's deadline")
}
