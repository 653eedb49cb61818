package faultnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/nettest"
)

// testSeed returns the seed for randomized tests: FAULTNET_SEED or a fixed
// default, logged so that a failure can be replayed.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := int64(1)
	if s := os.Getenv("FAULTNET_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	t.Logf("seed %d (replay with FAULTNET_SEED=%d)", seed, seed)
	return seed
}

func newNet(t *testing.T) *Net {
	t.Helper()
	n := New(testSeed(t))
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// echoServer listens on h and echoes every connection. Every byte received
// is also copied to the returned channel (best effort, buffered).
func echoServer(t *testing.T, h *Host) (string, <-chan []byte) {
	t.Helper()
	l, err := h.Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	got := make(chan []byte, 1024)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						select {
						case got <- append([]byte(nil), buf[:n]...):
						default:
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), got
}

func dial(t *testing.T, h *Host, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads it back, with a deadline.
func roundTrip(c net.Conn, msg string, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestEchoNoFaults(t *testing.T) {
	n := newNet(t)
	addr, _ := echoServer(t, n.Host("b"))
	c := dial(t, n.Host("a"), addr)
	require.NoError(t, roundTrip(c, "hello", 5*time.Second))
	owner, ok := n.OwnerOf(addr)
	require.True(t, ok)
	assert.Equal(t, "b", owner)
	assert.Equal(t, 1, n.Conns())
}

// TestConnConformance runs x/net's net.Conn conformance suite over a
// proxied connection, with and without delay.
func TestConnConformance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration
	}{
		{"no delay", 0},
		{"1ms each way", time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				n := New(1)
				n.SetLatency("a", "b", tc.latency, 0)
				n.SetLatency("b", "a", tc.latency, 0)
				l, err := n.Host("b").Listen("127.0.0.1:0")
				if err != nil {
					return nil, nil, nil, err
				}
				accepted := make(chan net.Conn, 1)
				go func() {
					c, err := l.Accept()
					if err == nil {
						accepted <- c
					}
					close(accepted)
				}()
				c1, err = n.Host("a").Dial(context.Background(), l.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				c2, ok := <-accepted
				if !ok {
					return nil, nil, nil, errors.New("accept failed")
				}
				stop = func() {
					_ = c1.Close()
					_ = c2.Close()
					_ = l.Close()
					_ = n.Close()
				}
				return c1, c2, stop, nil
			})
		})
	}
}

func TestLatencyPerDirectedLink(t *testing.T) {
	n := newNet(t)
	n.SetLatency("a", "b", 40*time.Millisecond, 0)
	n.SetLatency("b", "a", 10*time.Millisecond, 0)
	addr, _ := echoServer(t, n.Host("b"))

	start := time.Now()
	c := dial(t, n.Host("a"), addr)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "dial costs one round trip")

	start = time.Now()
	require.NoError(t, roundTrip(c, "ping", 10*time.Second))
	rtt := time.Since(start)
	assert.GreaterOrEqual(t, rtt, 50*time.Millisecond)
	assert.Less(t, rtt, 5*time.Second)
}

func TestJitterKeepsOrder(t *testing.T) {
	n := newNet(t)
	n.SetLatency("a", "b", time.Millisecond, 5*time.Millisecond)
	n.SetLatency("b", "a", time.Millisecond, 5*time.Millisecond)
	addr, _ := echoServer(t, n.Host("b"))
	c := dial(t, n.Host("a"), addr)
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))

	const msgs = 200
	go func() {
		for i := range msgs {
			if _, err := fmt.Fprintf(c, "%d\n", i); err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	for i := range msgs {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("%d\n", i), line, "bytes reordered")
	}
}

func TestOneWayPartition(t *testing.T) {
	n := newNet(t)
	a, b := n.Host("a"), n.Host("b")
	addrA, gotA := echoServer(t, a)
	addrB, _ := echoServer(t, b)

	n.Block("a", "b")
	require.True(t, n.Blocked("a", "b"))
	require.False(t, n.Blocked("b", "a"))

	// a cannot dial b.
	_, err := a.Dial(context.Background(), addrB)
	require.ErrorIs(t, err, ErrPartitioned)

	// b can dial a, and a receives what b sends ...
	c := dial(t, b, addrA)
	_, err = c.Write([]byte("from-b"))
	require.NoError(t, err)
	select {
	case got := <-gotA:
		assert.Equal(t, "from-b", string(got))
	case <-time.After(10 * time.Second):
		t.Fatal("b -> a did not flow")
	}
	// ... but a's echo back to b is black-holed.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = c.Read(make([]byte, 16))
	require.True(t, isTimeout(err), "want timeout, got %v", err)

	// Heal: the connection that lost bytes is reset; new dials work.
	n.HealAll()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 16))
	require.ErrorIs(t, err, ErrReset)
	c2 := dial(t, a, addrB)
	require.NoError(t, roundTrip(c2, "healed", 10*time.Second))
}

func TestPartitionBreaksExistingConnections(t *testing.T) {
	n := newNet(t)
	addr, _ := echoServer(t, n.Host("b"))
	c := dial(t, n.Host("a"), addr)
	require.NoError(t, roundTrip(c, "before", 5*time.Second))

	n.Partition("a", "b")
	err := roundTrip(c, "during", 300*time.Millisecond)
	require.True(t, isTimeout(err), "existing connection must stop carrying data, got %v", err)
	_, err = n.Host("b").Dial(context.Background(), addr) // b owns addr: self dial is never cut
	require.NoError(t, err)
	_, err = n.Host("a").Dial(context.Background(), addr)
	require.ErrorIs(t, err, ErrPartitioned)

	n.Heal("a", "b")
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrReset, "a connection with a hole must not survive heal")
	c2 := dial(t, n.Host("a"), addr)
	require.NoError(t, roundTrip(c2, "after", 5*time.Second))
}

func TestPartitionGroupsAndIsolate(t *testing.T) {
	n := newNet(t)
	for _, h := range []string{"n1", "n2", "n3", "n4", "n5"} {
		n.Host(h)
	}
	n.PartitionGroups([]string{"n1", "n2"}, []string{"n3", "n4", "n5"})
	for _, tc := range []struct {
		from, to string
		blocked  bool
	}{
		{"n1", "n2", false}, {"n2", "n1", false}, {"n3", "n5", false},
		{"n1", "n3", true}, {"n3", "n1", true}, {"n2", "n5", true}, {"n5", "n2", true},
	} {
		assert.Equal(t, tc.blocked, n.Blocked(tc.from, tc.to), "%s -> %s", tc.from, tc.to)
	}
	n.HealAll()
	n.Isolate("n3")
	assert.True(t, n.Blocked("n3", "n1"))
	assert.True(t, n.Blocked("n5", "n3"))
	assert.False(t, n.Blocked("n1", "n2"))
}

func TestStallDeliversAfterHeal(t *testing.T) {
	n := newNet(t)
	addr, got := echoServer(t, n.Host("b"))
	c := dial(t, n.Host("a"), addr)

	n.Pause("b")
	_, err := c.Write([]byte("held"))
	require.NoError(t, err)
	select {
	case <-got:
		t.Fatal("stalled bytes were delivered")
	case <-time.After(200 * time.Millisecond):
	}
	n.Resume("b")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err, "a stall loses nothing")
	assert.Equal(t, "held", string(buf))
}

func TestDialLossIsSeeded(t *testing.T) {
	seed := testSeed(t)
	outcomes := func() []bool {
		n := New(seed)
		defer n.Close()
		addr, _ := echoServer(t, n.Host("b"))
		n.SetLoss("a", "b", 0.5, 0)
		var res []bool
		for range 40 {
			c, err := n.Host("a").Dial(context.Background(), addr)
			if err == nil {
				_ = c.Close()
			} else {
				require.ErrorIs(t, err, ErrDialLost)
			}
			res = append(res, err == nil)
		}
		return res
	}
	first, second := outcomes(), outcomes()
	require.Equal(t, first, second, "same seed, same losses")
	ok := 0
	for _, v := range first {
		if v {
			ok++
		}
	}
	assert.Greater(t, ok, 5)
	assert.Less(t, ok, 35)
}

func TestChunkResetAndResetHost(t *testing.T) {
	n := newNet(t)
	addr, _ := echoServer(t, n.Host("b"))

	c := dial(t, n.Host("a"), addr)
	n.SetLoss("a", "b", 0, 1)
	_, _ = c.Write([]byte("x"))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrReset)

	n.HealAll()
	c2 := dial(t, n.Host("a"), addr)
	c3 := dial(t, n.Host("c"), addr)
	require.NoError(t, roundTrip(c2, "ok", 5*time.Second))
	assert.Equal(t, 2, n.ResetHost("b"))
	_, err = c3.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrReset)
	assert.Equal(t, 0, n.Conns())
}

func TestProfileWAN3(t *testing.T) {
	n := newNet(t)
	p, err := ProfileByName("wan3", "us", "eu", "ap")
	require.NoError(t, err)
	n.SetProfile(p)
	addrEU, _ := echoServer(t, n.Host("eu-1"))
	addrAP, _ := echoServer(t, n.Host("ap-1"))

	for _, tc := range []struct {
		from, addr string
		oneWay     time.Duration
	}{
		{"us-1", addrEU, 35 * time.Millisecond},
		{"us-2", addrAP, 75 * time.Millisecond},
		{"eu-2", addrAP, 110 * time.Millisecond},
	} {
		start := time.Now()
		c := dial(t, n.Host(tc.from), tc.addr)
		require.NoError(t, roundTrip(c, "x", 10*time.Second))
		// dial (1 RTT) + echo (1 RTT)
		assert.GreaterOrEqual(t, time.Since(start), 4*tc.oneWay, "%s -> %s", tc.from, tc.addr)
	}
	// Explicit latency overrides the profile.
	n.SetLatency("us-3", "eu-1", 0, 0)
	n.SetLatency("eu-1", "us-3", 0, 0)
	start := time.Now()
	c := dial(t, n.Host("us-3"), addrEU)
	require.NoError(t, roundTrip(c, "x", 10*time.Second))
	assert.Less(t, time.Since(start), 35*time.Millisecond)

	_, err = ProfileByName("wan3", "us")
	require.Error(t, err)
	_, err = ProfileByName("moon")
	require.Error(t, err)
	assert.Equal(t, "us", RegionFromHost("us-1"))
	assert.Equal(t, "eu-west", RegionFromHost("eu-west-2"))
	assert.Equal(t, "solo", RegionFromHost("solo"))
}

func TestCloseFlushesWrittenBytes(t *testing.T) {
	n := newNet(t)
	n.SetLatency("a", "b", 20*time.Millisecond, 0)
	b := n.Host("b")
	l, err := b.Listen("localhost:0")
	require.NoError(t, err)
	defer l.Close()
	var wg sync.WaitGroup
	var received int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		m, _ := io.Copy(io.Discard, c)
		received = m
	}()
	c := dial(t, n.Host("a"), l.Addr().String())
	payload := make([]byte, 100<<10)
	_, err = c.Write(payload)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	wg.Wait()
	assert.Equal(t, int64(len(payload)), received)
}

func TestAddresses(t *testing.T) {
	n := newNet(t)
	h := n.Host("a")
	for _, addr := range []string{"0.0.0.0:0", "10.1.2.3:0", "[::1]:0", "example.com:80"} {
		_, err := h.Listen(addr)
		require.ErrorIs(t, err, ErrNotLoopback, addr)
		_, err = h.Dial(context.Background(), addr)
		require.ErrorIs(t, err, ErrNotLoopback, addr)
	}
	// A listener outside faultnet is never proxied.
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer raw.Close()
	_, err = h.Dial(context.Background(), raw.Addr().String())
	require.ErrorIs(t, err, ErrUnknownAddress)
	// A closed faultnet address answers connection refused.
	l, err := n.Host("b").Listen("127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = h.Dial(context.Background(), addr)
	require.Error(t, err)

	require.NoError(t, n.Close())
	_, err = h.Listen("127.0.0.1:0")
	require.ErrorIs(t, err, ErrNetClosed)
}
