package perf

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// Bare hashicorp/raft behind the same Connect hop as the region: the leader
// is its own process serving meridian.v1.EventStore/Append over h2c (the
// node's handler options), each append is proposed as one Raft entry (the
// request's bytes) and answered once committed and applied by the no-op FSM.
// It differs from BenchmarkBareRaft only by the API hop, and from the region
// only by everything the region does behind the hop: validation, group
// commit, the Badger state machine on every replica, tokens.

const roleRaftAPILeader = "bare-raft-api-leader"

// bareAPIHandler proposes each append as one Raft entry.
type bareAPIHandler struct {
	meridianv1connect.UnimplementedEventStoreHandler
	raft *raft.Raft
}

func (h bareAPIHandler) Append(_ context.Context, req *connect.Request[meridianv1.AppendRequest]) (*connect.Response[meridianv1.AppendResponse], error) {
	data, err := proto.Marshal(req.Msg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	if err := h.raft.Apply(data, applyTimeout).Error(); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&meridianv1.AppendResponse{}), nil
}

// runBareRaftAPILeader is the body of the API leader process: a bare node
// that bootstraps, two follower processes of its own, and the Connect
// server. It prints "ADDR <api address>" once the group commits, and stops
// (with its followers) when standard input closes.
func runBareRaftAPILeader() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	dir, err := os.MkdirTemp("", "meridian-perf-raftapi-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	c, err := startBareClusterIn(dir, storeRaftLog)
	if err != nil {
		return fail(err)
	}
	defer c.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewEventStoreHandler(bareAPIHandler{raft: c.leader.raft},
		// The same handler options as node.Start.
		connect.WithReadMaxBytes(64<<20), connect.WithCompressMinBytes(1<<20)))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // parent gone or done
	_ = srv.Close()
	return 0
}

// bareAPICluster is the API leader process (which owns its followers) and
// connsMax clients to it.
type bareAPICluster struct {
	leader  *child
	clients []meridianv1connect.EventStoreClient
}

var (
	bareAPIOnce sync.Once
	bareAPI     *bareAPICluster
	bareAPIErr  error
)

func sharedBareAPICluster(tb testing.TB) *bareAPICluster {
	bareAPIOnce.Do(func() {
		ch, addr, err := startSelfChild(roleRaftAPILeader)
		if err != nil {
			bareAPIErr = err
			return
		}
		c := &bareAPICluster{leader: ch}
		for range connsMax {
			c.clients = append(c.clients, meridianv1connect.NewEventStoreClient(apiClient(nil), "http://"+addr))
		}
		bareAPI = c
		cleanups = append(cleanups, ch.stop)
	})
	require.NoError(tb, bareAPIErr)
	return bareAPI
}

// BenchmarkBareRaftAPI: the same load as BenchmarkRegionAppend (1 KiB
// events, one per append, the same clients) against bare raft
// behind a Connect handler in its own process.
func BenchmarkBareRaftAPI(b *testing.B) {
	for _, clients := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := sharedBareAPICluster(b)
			runLoad(b, clients, func(ctx context.Context, client, _ int) error {
				cl := c.clients[client%len(c.clients)]
				_, err := cl.Append(ctx, connect.NewRequest(appendReq(fmt.Sprintf("bench-%d", client), 1)))
				return err
			})
		})
	}
}
