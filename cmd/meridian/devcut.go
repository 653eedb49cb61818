package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// devCutter cuts one region of `meridian dev` off from the others on
// demand (SIGUSR1 toggles it): dials between that region's nodes and the
// other regions' nodes fail, and the connections between them are closed.
// Clients still reach every node directly, so the cut-off region keeps
// serving whatever it can serve alone: active-active writes, reads of what
// it holds (a demonstration of a partition between regions, not a tool
// for tests, which use tests/faultnet).
type devCutter struct {
	mu    sync.Mutex
	cut   string // the region cut off; "" when none
	conns map[*cutConn]struct{}
}

// errCut is the dial error across the cut.
var errCut = errors.New("dev: regions partitioned (kill -USR1 the dev process to heal)")

func newDevCutter() *devCutter { return &devCutter{conns: map[*cutConn]struct{}{}} }

// blockedLocked reports whether traffic between regions a and b is cut.
func (c *devCutter) blockedLocked(a, b string) bool {
	return c.cut != "" && a != b && (a == c.cut || b == c.cut)
}

// dial wraps a connection from region a to region b, or fails across the cut.
func (c *devCutter) dial(a, b string, dial func() (net.Conn, error)) (net.Conn, error) {
	c.mu.Lock()
	blocked := c.blockedLocked(a, b)
	c.mu.Unlock()
	if blocked {
		return nil, errCut
	}
	conn, err := dial()
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: conn, c: c, a: a, b: b}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blockedLocked(a, b) { // cut while dialling
		_ = conn.Close()
		return nil, errCut
	}
	c.conns[cc] = struct{}{}
	return cc, nil
}

// set cuts region off ("" heals) and closes the connections across the cut.
func (c *devCutter) set(region string) {
	c.mu.Lock()
	c.cut = region
	var drop []*cutConn
	for cc := range c.conns {
		if c.blockedLocked(cc.a, cc.b) {
			drop = append(drop, cc)
		}
	}
	c.mu.Unlock()
	for _, cc := range drop {
		_ = cc.Close()
	}
}

// cutConn is a connection between two regions that a cut closes.
type cutConn struct {
	net.Conn
	c    *devCutter
	a, b string
	once sync.Once
}

func (cc *cutConn) Close() error {
	cc.once.Do(func() {
		cc.c.mu.Lock()
		delete(cc.c.conns, cc)
		cc.c.mu.Unlock()
	})
	return cc.Conn.Close()
}

// toggleOnSignal cuts region off at the first SIGUSR1, heals at the next,
// and so on, saying so on w, until stop is closed.
func (c *devCutter) toggleOnSignal(region string, w io.Writer, stop <-chan struct{}) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	for {
		select {
		case <-stop:
			return
		case <-sig:
		}
		c.mu.Lock()
		cut := c.cut
		c.mu.Unlock()
		if cut == "" {
			c.set(region)
			fmt.Fprintf(w, "partition: %s is cut off from the other regions (its clients still reach it); kill -USR1 %d heals\n", region, os.Getpid())
		} else {
			c.set("")
			fmt.Fprintf(w, "healed: %s reaches the other regions again\n", cut)
		}
	}
}
