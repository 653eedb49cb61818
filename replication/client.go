package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/h2c"
)

// pullClient opens Pull streams to other regions' nodes: Connect over h2c,
// every connection dialled through the Shipper's Network.
type pullClient struct {
	httpClient  *http.Client
	callTimeout time.Duration
	stubs       *h2c.Stubs[meridianv1connect.ReplicationClient]
}

func newPullClient(network Network, callTimeout time.Duration) *pullClient {
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return network.Dial(ctx, addr)
	}
	// A partition black-holes a connection rather than closing it; the
	// pings close it, which ends the stream on it.
	httpClient := h2c.NewClient(dial, h2c.Options{IdleConnsPerHost: pullIdleConnsMax, PingInterval: pullPingInterval, PingTimeout: pullPingTimeout})
	return &pullClient{
		httpClient:  httpClient,
		callTimeout: callTimeout,
		stubs: h2c.NewStubs(func(url string) meridianv1connect.ReplicationClient {
			return meridianv1connect.NewReplicationClient(httpClient, url, connect.WithReadMaxBytes(pullReadBytesMax))
		}),
	}
}

func (p *pullClient) client(addr string) meridianv1connect.ReplicationClient {
	return p.stubs.For(addr)
}

func (p *pullClient) close() { p.httpClient.CloseIdleConnections() }

// pullStream is one open Pull stream. A goroutine reads it into msgs, one
// message at a time: while the puller does not take from msgs, nothing more
// is read, and HTTP/2 flow control stops the source.
type pullStream struct {
	endpoint string
	msgs     chan *meridianv1.PullResponse
	// done is closed when the reader stops; err then says why (io.EOF when
	// the source ended the stream).
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// close ends the stream and waits for its reader.
func (s *pullStream) close() {
	s.cancel()
	<-s.done
}

// open opens Pull on the first of endpoints that sends its first message
// within callTimeout (a source answers at once). The first message is
// returned apart; the stream delivers the rest.
func (p *pullClient) open(ctx context.Context, endpoints []string, req *meridianv1.PullRequest) (*pullStream, *meridianv1.PullResponse, error) {
	if len(endpoints) == 0 {
		return nil, nil, fmt.Errorf("%w: the directory lists none", ErrNoEndpoint)
	}
	var errs []error
	for _, ep := range endpoints {
		s, first, err := p.openOne(ctx, ep, req)
		if err == nil {
			return s, first, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return nil, nil, fmt.Errorf("%w: %w", ErrNoEndpoint, errors.Join(errs...))
}

func (p *pullClient) openOne(ctx context.Context, endpoint string, req *meridianv1.PullRequest) (*pullStream, *meridianv1.PullResponse, error) {
	sctx, cancel := context.WithCancel(ctx)
	timedOut := time.AfterFunc(p.callTimeout, cancel)
	st, err := p.client(endpoint).Pull(sctx, connect.NewRequest(req))
	if err != nil {
		timedOut.Stop()
		cancel()
		return nil, nil, err
	}
	ok := st.Receive()
	if !timedOut.Stop() || !ok {
		err := st.Err()
		if err == nil {
			err = io.EOF
		}
		if sctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no first message within %s: %w", p.callTimeout, err)
		}
		_ = st.Close()
		cancel()
		return nil, nil, err
	}
	first := st.Msg()
	s := &pullStream{
		endpoint: endpoint,
		msgs:     make(chan *meridianv1.PullResponse),
		done:     make(chan struct{}),
		cancel:   cancel,
	}
	go func() {
		defer close(s.done)
		defer func() { _ = st.Close() }()
		for st.Receive() {
			select {
			case s.msgs <- st.Msg():
			case <-sctx.Done():
				s.err = sctx.Err()
				return
			}
		}
		s.err = st.Err()
		if s.err == nil {
			s.err = io.EOF
		}
	}()
	return s, first, nil
}
