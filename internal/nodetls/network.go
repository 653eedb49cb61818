package nodetls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/meridiandb/meridian/internal/network"
)

// ALPN protocols. Nodes call each other's API over HTTP/2 only; clients
// may use either. Raft listeners negotiate none.
var (
	nodeProtos = []string{"h2"}
	apiProtos  = []string{"h2", "http/1.1"}
)

// Network returns inner with mutual TLS on every connection: listeners
// require a node of this deployment (Raft ports), dials present the node's
// certificate and accept only a node of this deployment, offering ALPN h2
// (so that an API listener speaks HTTP/2 to them; Raft listeners ignore
// it). Connections come out of Accept and Dial with their handshake done.
func (c *Credentials) Network(inner network.Network) network.Network {
	return &tlsNetwork{inner: inner, c: c}
}

// ListenAPI opens the API listener on inner: TLS for anyone (clients
// verify the node as usual; a client certificate is optional and must
// verify if given), ALPN h2 or http/1.1. The http.Server serving it must
// enable HTTP/2 (http.Protocols.SetHTTP2).
func (c *Credentials) ListenAPI(inner network.Network, addr string) (net.Listener, error) {
	ln, err := inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	return newListener(ln, c.ServerConfig(PeerAny, apiProtos)), nil
}

type tlsNetwork struct {
	inner network.Network
	c     *Credentials
}

func (n *tlsNetwork) Listen(addr string) (net.Listener, error) {
	ln, err := n.inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	return newListener(ln, n.c.ServerConfig(PeerNode, nil)), nil
}

func (n *tlsNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	raw, err := n.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, n.c.ClientConfig(nodeProtos))
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return conn, nil
}

// handshakesMax bounds the handshakes a listener runs at once; connections
// beyond wait in the kernel's accept queue.
const handshakesMax = 64

// listener accepts from an inner listener and hands out connections whose
// TLS handshake has completed, each handshake in its own goroutine under a
// deadline, so that a peer that connects and stays silent neither blocks
// Accept nor holds a goroutine for long.
type listener struct {
	net.Listener
	cfg   *tls.Config
	ready chan net.Conn
	done  chan struct{}
	slots chan struct{}
	once  sync.Once
	err   error // why the accept loop ended; read after done closes
	// ctx ends when Close is called: it interrupts handshakes in progress.
	ctx    context.Context
	cancel context.CancelFunc
}

// Backoff of the accept loop after an error that is not the listener's
// end (too many open files, a connection reset before it was accepted).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func newListener(inner net.Listener, cfg *tls.Config) *listener {
	l := &listener{Listener: inner, cfg: cfg, ready: make(chan net.Conn), done: make(chan struct{}), slots: make(chan struct{}, handshakesMax)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.acceptLoop()
	return l
}

func (l *listener) acceptLoop() {
	defer close(l.done)
	backoff := time.Duration(0)
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.ctx.Done():
			l.err = net.ErrClosed
			return
		}
		raw, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
				l.err = err
				return
			}
			// As http.Server does: wait and go on, or one burst of
			// EMFILE would end the node's listener for good.
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			select {
			case <-time.After(backoff):
			case <-l.ctx.Done():
			}
			continue
		}
		backoff = 0
		go l.handshake(raw)
	}
}

func (l *listener) handshake(raw net.Conn) {
	conn := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	<-l.slots
	if err != nil {
		_ = raw.Close()
		return
	}
	select {
	case l.ready <- conn:
	case <-l.ctx.Done():
		_ = conn.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		// Connections already handshaken are still handed out first.
		select {
		case c := <-l.ready:
			return c, nil
		default:
		}
		return nil, l.err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting, interrupts handshakes in progress and closes
// connections not yet handed out.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.Listener.Close()
	})
	return err
}
