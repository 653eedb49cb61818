package faultnet

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Named bounds of the proxy.
const (
	// readChunkBytesMax is the largest chunk read from the socket at once;
	// delays and faults apply per chunk.
	readChunkBytesMax = 32 << 10
	// queueChunksMax bounds each direction's queue of chunks in flight; a
	// full queue blocks the writer (backpressure, like a full socket buffer).
	queueChunksMax = 256
)

// chunk is one write (outbound) or one socket read (inbound) in flight.
type chunk struct {
	data []byte
	at   time.Time // delivery time
	err  error     // inbound only: the socket's terminal read error
}

// deadline is a settable deadline whose changes wake blocked operations.
type deadline struct {
	mu      sync.Mutex
	t       time.Time
	changed chan struct{}
}

func newDeadline() *deadline { return &deadline{changed: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	d.t = t
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

func (d *deadline) get() (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t, d.changed
}

// wait returns a timer channel for the deadline (nil if none) and whether the
// deadline has already passed. stop must be called.
func (d *deadline) wait() (timer <-chan time.Time, changed <-chan struct{}, expired bool, stop func()) {
	t, ch := d.get()
	if t.IsZero() {
		return nil, ch, false, func() {}
	}
	until := time.Until(t)
	if until <= 0 {
		return nil, ch, true, func() {}
	}
	tm := time.NewTimer(until)
	return tm.C, ch, false, func() { tm.Stop() }
}

// conn is the dialling side of a proxied connection. It applies the faults
// of both directions: outbound (from -> to) on writes, inbound (to -> from)
// on reads. The accepting side holds a plain TCP connection.
type conn struct {
	n        *Net
	sock     *net.TCPConn
	from, to string
	out, in  *link
	tainted  atomic.Bool // bytes were dropped: reset on heal

	outq   chan chunk  // Write -> writer goroutine
	delayq chan chunk  // socket reader -> delivery goroutine
	inq    chan []byte // delivery goroutine -> Read

	closed    chan struct{} // Close was called
	closeOnce sync.Once
	done      chan struct{} // reset or broken: everything stops
	doneOnce  sync.Once
	doneErr   error

	wmu     sync.Mutex
	lastOut time.Time

	rmu  sync.Mutex
	rbuf []byte
	rerr error // set before inq is closed

	rdl, wdl *deadline
}

func newConn(n *Net, sock *net.TCPConn, from, to string, out, in *link) *conn {
	return &conn{
		n: n, sock: sock, from: from, to: to, out: out, in: in,
		outq:   make(chan chunk, queueChunksMax),
		delayq: make(chan chunk, queueChunksMax),
		inq:    make(chan []byte, queueChunksMax),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
		rdl:    newDeadline(),
		wdl:    newDeadline(),
	}
}

func (c *conn) start() {
	go c.writer()
	go c.socketReader()
	go c.deliverer()
}

// finish stops the connection with err (reset or broken socket).
func (c *conn) finish(err error, rst bool) {
	c.doneOnce.Do(func() {
		c.doneErr = err
		close(c.done)
		if rst {
			_ = c.sock.SetLinger(0)
		}
		_ = c.sock.Close()
		c.n.forget(c)
	})
}

func (c *conn) reset() {
	c.finish(fmt.Errorf("%w: %s <-> %s", ErrReset, c.from, c.to), true)
}

// Write queues p for delivery after the outbound link's delay. It returns
// once queued (like a write into a kernel buffer) and blocks only when the
// queue is full.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return 0, c.opErr("write", net.ErrClosed)
	case <-c.done:
		return 0, c.opErr("write", c.doneErr)
	default:
	}
	if len(p) == 0 {
		return 0, nil
	}
	at := time.Now().Add(c.out.delay(c.n.currentProfile()))
	if at.Before(c.lastOut) {
		at = c.lastOut // never overtake the previous chunk
	}
	ch := chunk{data: append([]byte(nil), p...), at: at}
	for {
		timer, changed, expired, stop := c.wdl.wait()
		if expired {
			return 0, c.opErr("write", os.ErrDeadlineExceeded)
		}
		select {
		case c.outq <- ch:
			stop()
			c.lastOut = at
			return len(p), nil
		case <-c.closed:
			stop()
			return 0, c.opErr("write", net.ErrClosed)
		case <-c.done:
			stop()
			return 0, c.opErr("write", c.doneErr)
		case <-timer:
			return 0, c.opErr("write", os.ErrDeadlineExceeded)
		case <-changed:
			stop()
		}
	}
}

// sleepUntil waits until t; false if the connection stopped meanwhile.
func (c *conn) sleepUntil(t time.Time, alsoClosed bool) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	var closed <-chan struct{}
	if alsoClosed {
		closed = c.closed
	}
	select {
	case <-tm.C:
		return true
	case <-c.done:
		return false
	case <-closed:
		return false
	}
}

// pass decides a chunk's fate on link l at delivery time: deliver (true),
// drop (false, ok), or the connection stopped (false, !ok). It waits out
// stalls.
func (c *conn) pass(l *link) (deliver, ok bool) {
	for {
		l.mu.Lock()
		blocked, stalled, wake, resetP := l.blocked, l.stalled, l.wake, l.chunkReset
		l.mu.Unlock()
		if blocked {
			c.tainted.Store(true)
			return false, true
		}
		if stalled {
			select {
			case <-wake:
				continue
			case <-c.done:
				return false, false
			case <-c.closed:
				return false, false
			}
		}
		if l.draw(resetP) {
			c.reset()
			return false, false
		}
		return true, true
	}
}

// writer delivers queued outbound chunks to the socket in order. After Close
// it drains what was queued (TCP sends buffered data before FIN), then
// closes the socket.
func (c *conn) writer() {
	defer c.sock.Close()
	deliver := func(ch chunk) bool {
		if !c.sleepUntil(ch.at, false) {
			return false
		}
		send, ok := c.pass(c.out)
		if !ok {
			return false
		}
		if !send {
			return true
		}
		if _, err := c.sock.Write(ch.data); err != nil {
			c.finish(err, false)
			return false
		}
		return true
	}
	for {
		select {
		case ch := <-c.outq:
			if !deliver(ch) {
				return
			}
		case <-c.closed:
			for {
				select {
				case ch := <-c.outq:
					if !deliver(ch) {
						return
					}
				default:
					return
				}
			}
		case <-c.done:
			return
		}
	}
}

// socketReader reads inbound bytes and stamps their delivery time.
func (c *conn) socketReader() {
	buf := make([]byte, readChunkBytesMax)
	var last time.Time
	for {
		n, err := c.sock.Read(buf)
		if n > 0 {
			at := time.Now().Add(c.in.delay(c.n.currentProfile()))
			if at.Before(last) {
				at = last
			}
			last = at
			select {
			case c.delayq <- chunk{data: append([]byte(nil), buf[:n]...), at: at}:
			case <-c.done:
				return
			case <-c.closed:
				return
			}
		}
		if err != nil {
			select {
			case c.delayq <- chunk{err: err, at: last}:
			case <-c.done:
			case <-c.closed:
			}
			return
		}
	}
}

// deliverer hands inbound chunks to Read at their delivery time.
func (c *conn) deliverer() {
	for {
		var ch chunk
		select {
		case ch = <-c.delayq:
		case <-c.done:
			return
		case <-c.closed:
			return
		}
		if !c.sleepUntil(ch.at, true) {
			return
		}
		if ch.err != nil {
			c.rerr = ch.err
			close(c.inq)
			return
		}
		send, ok := c.pass(c.in)
		if !ok {
			return
		}
		if !send {
			continue
		}
		select {
		case c.inq <- ch.data:
		case <-c.done:
			return
		case <-c.closed:
			return
		}
	}
}

// Read returns inbound bytes once their delay has passed.
func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if len(c.rbuf) > 0 {
			n := copy(p, c.rbuf)
			c.rbuf = c.rbuf[n:]
			return n, nil
		}
		select {
		case <-c.closed:
			return 0, c.opErr("read", net.ErrClosed)
		case <-c.done:
			return 0, c.opErr("read", c.doneErr)
		default:
		}
		if len(p) == 0 {
			return 0, nil
		}
		timer, changed, expired, stop := c.rdl.wait()
		if expired {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		select {
		case data, ok := <-c.inq:
			stop()
			if !ok {
				if c.rerr == io.EOF {
					return 0, io.EOF
				}
				return 0, c.opErr("read", c.rerr)
			}
			c.rbuf = data
		case <-c.closed:
			stop()
			return 0, c.opErr("read", net.ErrClosed)
		case <-c.done:
			stop()
			return 0, c.opErr("read", c.doneErr)
		case <-timer:
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		case <-changed:
			stop()
		}
	}
}

func (c *conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.sock.LocalAddr(), Addr: c.sock.RemoteAddr(), Err: err}
}

// Close closes the connection: bytes already written are still delivered
// (after their delay), then the socket closes.
func (c *conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		c.n.forget(c)
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.sock.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.sock.RemoteAddr() }

func (c *conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error  { c.rdl.set(t); return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// String names the connection for logs.
func (c *conn) String() string {
	return fmt.Sprintf("faultnet conn %s -> %s (%s -> %s)", c.from, c.to, c.sock.LocalAddr(), c.sock.RemoteAddr())
}
