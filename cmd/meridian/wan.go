package main

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	"github.com/meridiandb/meridian/region"
)

// Bounds of the emulated WAN of `meridian dev --wan-latency`.
const (
	// wanLatencyMax bounds --wan-latency: past a second one way the
	// placement group's timers (scaled by devPlacementConfig) stop making
	// sense for a laptop demo.
	wanLatencyMax = time.Second
	// wanBufferBytesMax bounds the bytes in flight in one direction of one
	// delayed connection (what the emulated link holds). A writer past it
	// blocks, and a reader past it stops reading the socket, so TCP's own
	// flow control pushes back on the sender.
	wanBufferBytesMax = 4 << 20
	// wanChunkBytesMax bounds one timestamped chunk (one socket read, one
	// slice of a large Write).
	wanChunkBytesMax = 32 << 10
	// wanCloseFlushMax bounds how long Close keeps trying to deliver the
	// bytes written before it, on top of the latency itself.
	wanCloseFlushMax = time.Second
)

// wanNetwork is the region.Network of one `meridian dev` node when
// --wan-latency is set: it listens and dials like TCP, but a connection it
// dials to an address of another region delays the bytes in both
// directions by latency (so a round trip costs twice that). Connections
// within the node's region, and to addresses not in the layout, are plain.
type wanNetwork struct {
	base    region.Network
	region  string
	regions map[string]string // host:port -> region, every address of the dev layout
	latency time.Duration
	// cutter, when set, can cut regions off from each other (devcut.go).
	cutter *devCutter
}

// newWANNetwork returns the network of a node of region self.
func newWANNetwork(base region.Network, self string, regions map[string]string, latency time.Duration) *wanNetwork {
	return &wanNetwork{base: base, region: self, regions: regions, latency: latency}
}

func (w *wanNetwork) Listen(addr string) (net.Listener, error) { return w.base.Listen(addr) }

func (w *wanNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	far := w.far(addr)
	if far && w.latency > 0 {
		// Connection setup crosses the WAN too: SYN, SYN-ACK.
		t := time.NewTimer(2 * w.latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	dial := func() (net.Conn, error) { return w.base.Dial(ctx, addr) }
	var c net.Conn
	var err error
	if far && w.cutter != nil {
		c, err = w.cutter.dial(w.region, w.regions[addr], dial)
	} else {
		c, err = dial()
	}
	if err != nil || !far || w.latency <= 0 {
		return c, err
	}
	return newDelayedConn(c, w.latency), nil
}

// far reports whether addr belongs to another region of the layout.
func (w *wanNetwork) far(addr string) bool {
	r, ok := w.regions[addr]
	return ok && r != w.region
}

// wanChunk is bytes (or the end of a stream, err) due for delivery at due.
type wanChunk struct {
	data []byte
	err  error
	due  time.Time
}

// wanPipe is one direction of a delayed connection: a FIFO of timestamped
// chunks holding at most wanBufferBytesMax bytes.
type wanPipe struct {
	chunks []wanChunk
	bytes  int
}

// delayedConn delays both directions of a connection by latency while
// keeping byte order. Write enqueues and returns (like a socket buffer); a
// goroutine writes each chunk to the socket once it is due. A second
// goroutine reads the socket and timestamps what arrives; Read hands it out
// once it is due.
type delayedConn struct {
	net.Conn
	latency time.Duration

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	out     wanPipe       // to the socket
	in      wanPipe       // from the socket
	closed  bool
	// writeErr is the socket's write error: later Writes fail with it.
	writeErr               error
	readDL, writeDL        time.Time
	writerDone, readerDone chan struct{}
}

func newDelayedConn(c net.Conn, latency time.Duration) *delayedConn {
	d := &delayedConn{Conn: c, latency: latency, changed: make(chan struct{}),
		writerDone: make(chan struct{}), readerDone: make(chan struct{})}
	go d.writeLoop()
	go d.readLoop()
	return d
}

// broadcastLocked wakes every waiter; d.mu is held.
func (d *delayedConn) broadcastLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// waitLocked releases d.mu until the state changes or the earlier of until
// and deadline (each ignored when zero) passes; it reports whether the
// deadline passed. d.mu is held on entry and on return.
func (d *delayedConn) waitLocked(until, deadline time.Time) (deadlinePassed bool) {
	ch := d.changed
	d.mu.Unlock()
	defer d.mu.Lock()
	var timer <-chan time.Time
	next := until
	if !deadline.IsZero() && (next.IsZero() || deadline.Before(next)) {
		next = deadline
	}
	if !next.IsZero() {
		t := time.NewTimer(time.Until(next))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
	case <-timer:
	}
	return !deadline.IsZero() && !time.Now().Before(deadline)
}

// Write enqueues p for delivery after the latency; it blocks only while the
// link holds wanBufferBytesMax bytes, up to the write deadline.
func (d *delayedConn) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for n < len(p) {
		switch {
		case d.closed:
			return n, net.ErrClosed
		case d.writeErr != nil:
			return n, d.writeErr
		case !d.writeDL.IsZero() && !time.Now().Before(d.writeDL):
			return n, os.ErrDeadlineExceeded
		}
		room := wanBufferBytesMax - d.out.bytes
		if room <= 0 {
			d.waitLocked(time.Time{}, d.writeDL)
			continue
		}
		k := min(len(p)-n, room, wanChunkBytesMax)
		d.out.chunks = append(d.out.chunks, wanChunk{data: append([]byte(nil), p[n:n+k]...), due: time.Now().Add(d.latency)})
		d.out.bytes += k
		n += k
		d.broadcastLocked()
	}
	return n, nil
}

// writeLoop writes each chunk to the socket once it is due, in order. After
// Close it delivers what was written before, then closes the socket.
func (d *delayedConn) writeLoop() {
	defer close(d.writerDone)
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if len(d.out.chunks) == 0 {
			if d.closed || d.writeErr != nil {
				return
			}
			d.waitLocked(time.Time{}, time.Time{})
			continue
		}
		c := d.out.chunks[0]
		if time.Now().Before(c.due) {
			d.waitLocked(c.due, time.Time{})
			continue
		}
		d.mu.Unlock()
		_, err := d.Conn.Write(c.data)
		d.mu.Lock()
		d.out.chunks[0] = wanChunk{}
		d.out.chunks = d.out.chunks[1:]
		d.out.bytes -= len(c.data)
		if err != nil && d.writeErr == nil {
			d.writeErr = err
			d.out = wanPipe{}
		}
		d.broadcastLocked()
	}
}

// readLoop reads the socket and queues what arrives, stamped with when it
// is due; the socket's error (EOF included) is delivered after the bytes.
func (d *delayedConn) readLoop() {
	defer close(d.readerDone)
	buf := make([]byte, wanChunkBytesMax)
	for {
		n, err := d.Conn.Read(buf)
		due := time.Now().Add(d.latency)
		d.mu.Lock()
		if n > 0 {
			d.in.chunks = append(d.in.chunks, wanChunk{data: append([]byte(nil), buf[:n]...), due: due})
			d.in.bytes += n
		}
		if err != nil {
			d.in.chunks = append(d.in.chunks, wanChunk{err: err, due: due})
		}
		d.broadcastLocked()
		for err == nil && d.in.bytes >= wanBufferBytesMax && !d.closed {
			d.waitLocked(time.Time{}, time.Time{})
		}
		stop := err != nil || d.closed
		d.mu.Unlock()
		if stop {
			return
		}
	}
}

// Read returns bytes that arrived at least latency ago, in order, waiting
// up to the read deadline.
func (d *delayedConn) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.closed {
			return 0, net.ErrClosed
		}
		if !d.readDL.IsZero() && !time.Now().Before(d.readDL) {
			return 0, os.ErrDeadlineExceeded
		}
		var until time.Time
		if len(d.in.chunks) > 0 {
			c := &d.in.chunks[0]
			if !time.Now().Before(c.due) {
				if c.data == nil {
					return 0, c.err // not consumed: every later Read says the same
				}
				if len(p) == 0 {
					return 0, nil
				}
				n := copy(p, c.data)
				c.data = c.data[n:]
				d.in.bytes -= n
				if len(c.data) == 0 {
					d.in.chunks[0] = wanChunk{}
					d.in.chunks = d.in.chunks[1:]
				}
				d.broadcastLocked()
				return n, nil
			}
			until = c.due
		}
		d.waitLocked(until, d.readDL)
	}
}

// Close fails pending and later Reads and Writes with net.ErrClosed at
// once, delivers the bytes written before it (within latency plus
// wanCloseFlushMax), then closes the socket.
func (d *delayedConn) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return net.ErrClosed
	}
	d.closed = true
	d.broadcastLocked()
	d.mu.Unlock()
	_ = d.Conn.SetWriteDeadline(time.Now().Add(d.latency + wanCloseFlushMax))
	<-d.writerDone
	err := d.Conn.Close()
	<-d.readerDone
	return err
}

func (d *delayedConn) SetDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readDL, d.writeDL = t, t
	d.broadcastLocked()
	return nil
}

func (d *delayedConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readDL = t
	d.broadcastLocked()
	return nil
}

func (d *delayedConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeDL = t
	d.broadcastLocked()
	return nil
}
