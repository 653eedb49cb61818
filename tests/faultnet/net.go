package faultnet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// loopbackHost is the only IP the harness ever listens on or dials.
const loopbackHost = "127.0.0.1"

// Net is an in-process fault network. Create per-host views with Host; all
// faults are set on directed links between host names. Safe for concurrent
// use.
type Net struct {
	seed int64

	mu        sync.Mutex
	closed    bool
	hosts     map[string]*Host
	owners    map[string]string // "127.0.0.1:port" -> host that last listened there
	links     map[[2]string]*link
	conns     map[*conn]struct{}
	listeners map[*listener]struct{}
	profile   Profile
}

// New returns a network whose random choices (jitter, dial loss, chunk
// resets) are drawn from per-link generators derived from seed, so one link's
// sequence of draws is reproducible. (Concurrent goroutines may still take
// draws in a different order from run to run.)
func New(seed int64) *Net {
	return &Net{
		seed:      seed,
		hosts:     map[string]*Host{},
		owners:    map[string]string{},
		links:     map[[2]string]*link{},
		conns:     map[*conn]struct{}{},
		listeners: map[*listener]struct{}{},
	}
}

// Seed returns the seed the network was created with.
func (n *Net) Seed() int64 { return n.seed }

// Host returns the view of the network from host name (created on first
// use). It implements region.Network.
func (n *Net) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	if !ok {
		h = &Host{n: n, name: name}
		n.hosts[name] = h
	}
	return h
}

// OwnerOf returns the host that listens (or last listened) on addr.
func (n *Net) OwnerOf(addr string) (string, bool) {
	a, err := normalize(addr)
	if err != nil {
		return "", false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.owners[a]
	return h, ok
}

// link is the fault state of one directed link from -> to.
type link struct {
	from, to string

	mu         sync.Mutex
	rng        *rand.Rand
	latency    time.Duration
	jitter     time.Duration
	latencySet bool // explicit SetLatency; otherwise the profile decides
	blocked    bool // black hole: dials fail, bytes dropped
	stalled    bool // bytes held until the stall ends; dials still succeed
	dialLoss   float64
	chunkReset float64
	wake       chan struct{} // closed and replaced on every change
}

// linkLocked returns the directed link, creating it. n.mu must be held.
func (n *Net) linkLocked(from, to string) *link {
	k := [2]string{from, to}
	l, ok := n.links[k]
	if !ok {
		h := fnv.New64a()
		h.Write([]byte(from))
		h.Write([]byte{0})
		h.Write([]byte(to))
		l = &link{from: from, to: to, rng: rand.New(rand.NewPCG(uint64(n.seed), h.Sum64())), wake: make(chan struct{})}
		n.links[k] = l
	}
	return l
}

func (n *Net) link(from, to string) *link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkLocked(from, to)
}

// changeLocked signals waiters that the link changed. l.mu must be held.
func (l *link) changeLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// delay draws the one-way delay for one chunk on this link.
func (l *link) delay(p *Profile) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	base, jit := l.latency, l.jitter
	if !l.latencySet && p != nil {
		base, jit = p.delay(l.from, l.to)
	}
	if jit > 0 {
		base += time.Duration(l.rng.Int64N(int64(jit)))
	}
	return base
}

// draw returns true with probability p from the link's generator.
func (l *link) draw(p float64) bool {
	if p <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64() < p
}

func (n *Net) update(from, to string, f func(l *link)) {
	if from == to {
		return // a host always reaches itself
	}
	l := n.link(from, to)
	l.mu.Lock()
	f(l)
	l.changeLocked()
	l.mu.Unlock()
}

// SetLatency sets the one-way delay from -> to: base plus a uniform jitter in
// [0, jitter), drawn per write chunk. Ordering of bytes is always kept (a
// chunk is never delivered before the one written before it). Overrides the
// profile for this link.
func (n *Net) SetLatency(from, to string, base, jitter time.Duration) {
	n.update(from, to, func(l *link) { l.latency, l.jitter, l.latencySet = base, jitter, true })
}

// SetProfile sets the latency profile for every link without an explicit
// SetLatency.
func (n *Net) SetProfile(p Profile) {
	n.mu.Lock()
	n.profile = p
	n.mu.Unlock()
}

// Profile returns the current profile.
func (n *Net) Profile() Profile {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.profile
}

// SetLoss makes new dials from -> to fail with probability dialLoss
// (ErrDialLost) and resets a connection carrying a chunk from -> to with
// probability chunkReset per chunk.
func (n *Net) SetLoss(from, to string, dialLoss, chunkReset float64) {
	n.update(from, to, func(l *link) { l.dialLoss, l.chunkReset = dialLoss, chunkReset })
}

// Block cuts the directed link from -> to (a one-way partition):
//   - new dials from `from` to `to` fail with ErrPartitioned;
//   - every byte travelling from -> to, on any connection between the two
//     (whichever side dialled), is silently dropped, including bytes in flight;
//     writes still succeed, as they would into a kernel buffer;
//   - bytes to -> from still flow, and `to` can still dial `from`;
//   - a connection that dropped bytes is reset when the link heals, because
//     TCP never delivers a stream with a hole in it.
//
// This is a message-level model: in real TCP a one-way loss also stops
// handshakes in the other direction; here it does not, so that "b hears a
// but a does not hear b" can be tested on its own.
func (n *Net) Block(from, to string) {
	n.update(from, to, func(l *link) { l.blocked = true })
}

// Partition cuts both directions between a and b.
func (n *Net) Partition(a, b string) {
	n.Block(a, b)
	n.Block(b, a)
}

// PartitionGroups cuts every link between hosts of different groups, both
// directions. Hosts inside a group still reach each other.
func (n *Net) PartitionGroups(groups ...[]string) {
	for i, g := range groups {
		for j, o := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range o {
					n.Block(a, b)
				}
			}
		}
	}
}

// Isolate cuts host from every other known host, both directions. Hosts
// first used after the call are not cut (the same holds for Pause).
func (n *Net) Isolate(host string) {
	for _, o := range n.hostNames() {
		if o != host {
			n.Partition(host, o)
		}
	}
}

// Stall holds every byte from -> to until the stall is healed, then delivers
// it in order (a paused process or a congested link: nothing is lost, the
// connection survives). Dials still succeed.
func (n *Net) Stall(from, to string) {
	n.update(from, to, func(l *link) { l.stalled = true })
}

// Pause stalls every link to and from host (the network view of SIGSTOP).
func (n *Net) Pause(host string) {
	for _, o := range n.hostNames() {
		if o != host {
			n.Stall(host, o)
			n.Stall(o, host)
		}
	}
}

// Resume heals the stalls of Pause(host).
func (n *Net) Resume(host string) {
	for _, o := range n.hostNames() {
		if o != host {
			n.update(host, o, func(l *link) { l.stalled = false })
			n.update(o, host, func(l *link) { l.stalled = false })
		}
	}
}

// HealOneWay removes the partition, stall and loss of the directed link
// from -> to (latency stays). Connections that dropped bytes are reset.
func (n *Net) HealOneWay(from, to string) {
	n.update(from, to, func(l *link) {
		l.blocked, l.stalled, l.dialLoss, l.chunkReset = false, false, 0, 0
	})
	n.resetTainted(from, to)
}

// Heal removes partitions, stalls and loss between a and b, both directions.
func (n *Net) Heal(a, b string) {
	n.HealOneWay(a, b)
	n.HealOneWay(b, a)
}

// HealAll removes every partition, stall and loss. Latency (explicit and
// profile) stays: it is topology, not a fault.
func (n *Net) HealAll() {
	n.mu.Lock()
	keys := make([][2]string, 0, len(n.links))
	for k := range n.links {
		keys = append(keys, k)
	}
	n.mu.Unlock()
	for _, k := range keys {
		n.HealOneWay(k[0], k[1])
	}
}

// Blocked reports whether from -> to is cut.
func (n *Net) Blocked(from, to string) bool {
	l := n.link(from, to)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocked
}

// ResetConns resets (RST) every open connection between a and b, whichever
// side dialled, and returns how many.
func (n *Net) ResetConns(a, b string) int {
	return n.resetWhere(func(c *conn) bool {
		return (c.from == a && c.to == b) || (c.from == b && c.to == a)
	})
}

// ResetHost resets every open connection to or from host (what peers see
// when a process crashes and its kernel answers with RST).
func (n *Net) ResetHost(host string) int {
	return n.resetWhere(func(c *conn) bool { return c.from == host || c.to == host })
}

func (n *Net) resetTainted(from, to string) {
	n.resetWhere(func(c *conn) bool {
		return ((c.from == from && c.to == to) || (c.from == to && c.to == from)) && c.tainted.Load()
	})
}

func (n *Net) resetWhere(pred func(c *conn) bool) int {
	n.mu.Lock()
	var victims []*conn
	for c := range n.conns {
		if pred(c) {
			victims = append(victims, c)
		}
	}
	n.mu.Unlock()
	for _, c := range victims {
		c.reset()
	}
	return len(victims)
}

// Conns returns the number of open connections the harness proxies.
func (n *Net) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}

// Close resets every connection and closes every listener.
func (n *Net) Close() error {
	n.mu.Lock()
	n.closed = true
	ls := make([]*listener, 0, len(n.listeners))
	for l := range n.listeners {
		ls = append(ls, l)
	}
	n.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	n.resetWhere(func(*conn) bool { return true })
	return nil
}

func (n *Net) hostNames() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for h := range n.hosts {
		add(h)
	}
	for _, h := range n.owners {
		add(h)
	}
	return out
}

// normalize checks that addr is a loopback address and returns it as
// "127.0.0.1:port".
func normalize(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("faultnet: address %q: %w", addr, err)
	}
	switch host {
	case "", "localhost", loopbackHost:
	default:
		return "", fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return net.JoinHostPort(loopbackHost, port), nil
}

// Host is one host's view of the Net. It implements the region.Network
// method set: Listen and Dial.
type Host struct {
	n    *Net
	name string
}

// Name returns the host name.
func (h *Host) Name() string { return h.name }

// Net returns the network the host belongs to.
func (h *Host) Net() *Net { return h.n }

// Listen listens on addr (127.0.0.1 or localhost, port 0 for an ephemeral
// port) and records that h owns the resulting address.
func (h *Host) Listen(addr string) (net.Listener, error) {
	a, err := normalize(addr)
	if err != nil {
		return nil, err
	}
	h.n.mu.Lock()
	closed := h.n.closed
	h.n.mu.Unlock()
	if closed {
		return nil, ErrNetClosed
	}
	inner, err := net.Listen("tcp", a)
	if err != nil {
		return nil, err
	}
	l := &listener{Listener: inner, n: h.n}
	h.n.mu.Lock()
	h.n.owners[inner.Addr().String()] = h.name
	h.n.listeners[l] = struct{}{}
	h.n.mu.Unlock()
	return l, nil
}

// Dial connects h to addr through the harness. It fails with ErrPartitioned
// when h -> owner is cut, with ErrDialLost by the link's loss probability,
// and otherwise takes one round trip of the links' delays before returning.
func (h *Host) Dial(ctx context.Context, addr string) (net.Conn, error) {
	a, err := normalize(addr)
	if err != nil {
		return nil, err
	}
	h.n.mu.Lock()
	if h.n.closed {
		h.n.mu.Unlock()
		return nil, ErrNetClosed
	}
	owner, known := h.n.owners[a]
	prof := h.n.profile
	h.n.mu.Unlock()

	if !known {
		// Nothing listens through faultnet here: let the kernel answer
		// (connection refused), but never proxy an unmanaged listener.
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return nil, err
		}
		_ = raw.Close()
		return nil, fmt.Errorf("%w: %s", ErrUnknownAddress, a)
	}

	out, in := h.n.link(h.name, owner), h.n.link(owner, h.name)
	if owner != h.name {
		out.mu.Lock()
		blocked, loss := out.blocked, out.dialLoss
		out.mu.Unlock()
		if blocked {
			return nil, fmt.Errorf("%w: dial %s -> %s (%s)", ErrPartitioned, h.name, owner, a)
		}
		if out.draw(loss) {
			return nil, fmt.Errorf("%w: dial %s -> %s (%s)", ErrDialLost, h.name, owner, a)
		}
		// The handshake costs one round trip.
		rtt := out.delay(&prof) + in.delay(&prof)
		if rtt > 0 {
			t := time.NewTimer(rtt)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", a)
	if err != nil {
		return nil, err
	}
	tcp, ok := raw.(*net.TCPConn)
	if !ok {
		_ = raw.Close()
		return nil, errors.New("faultnet: dial did not return a TCP connection")
	}
	if owner == h.name {
		// A host's connections to itself never cross a link.
		return tcp, nil
	}
	c := newConn(h.n, tcp, h.name, owner, out, in)
	h.n.mu.Lock()
	if h.n.closed {
		h.n.mu.Unlock()
		c.reset()
		return nil, ErrNetClosed
	}
	h.n.conns[c] = struct{}{}
	h.n.mu.Unlock()
	c.start()
	return c, nil
}

func (n *Net) forget(c *conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
}

func (n *Net) currentProfile() *Profile {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.profile
	return &p
}

// listener wraps a real loopback listener so that Net.Close closes it.
// Accepted connections are plain TCP: every fault is applied by the
// dialling side's proxy, which sees both directions of the stream.
type listener struct {
	net.Listener
	n    *Net
	once sync.Once
}

func (l *listener) Close() error {
	l.once.Do(func() {
		l.n.mu.Lock()
		delete(l.n.listeners, l)
		l.n.mu.Unlock()
	})
	return l.Listener.Close()
}
