package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/testserver"
)

// fakeNode is one node for `meridian regions`: its Status, and (when
// regions is set) the ListRegions answer of its copy of the table.
type fakeNode struct {
	meridianv1connect.UnimplementedEventStoreHandler
	meridianv1connect.UnimplementedPlacementHandler
	status  *meridianv1.StatusResponse
	regions func() *meridianv1.ListRegionsResponse
}

func (f *fakeNode) Status(context.Context, *connect.Request[meridianv1.StatusRequest]) (*connect.Response[meridianv1.StatusResponse], error) {
	return connect.NewResponse(f.status), nil
}

func (f *fakeNode) ListRegions(context.Context, *connect.Request[meridianv1.ListRegionsRequest]) (*connect.Response[meridianv1.ListRegionsResponse], error) {
	if f.regions == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no table"))
	}
	return connect.NewResponse(f.regions()), nil
}

// startFakeNode serves f on 127.0.0.1 and returns its host:port.
func startFakeNode(t *testing.T, f *fakeNode) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewEventStoreHandler(f))
	mux.Handle(meridianv1connect.NewPlacementHandler(f))
	srv := testserver.Start(t, mux)
	return srv.Listener.Addr().String()
}

// deadAddr returns a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestCLIRegionsShowsReplication: the contacted node is a follower of
// us-east, so its leader is asked for the replication lag; every region's
// leader is asked for its applied vector; a region that does not answer is
// shown as unknown, and the listing still completes.
func TestCLIRegionsShowsReplication(t *testing.T) {
	usLeader := startFakeNode(t, &fakeNode{status: &meridianv1.StatusResponse{
		Region: "us-east", Node: "n2", Leader: "n2", IsLeader: true,
		Applied: map[string]uint64{"us-east": 7, "eu-west": 3},
		Replication: []*meridianv1.OriginLag{
			{Origin: "ap-south", Applied: 0, Known: 0, Lag: durationpb.New(0)},
			{Origin: "eu-west", Applied: 3, Known: 5, LagEvents: 2, Lag: durationpb.New(1500 * time.Millisecond), Source: "eu-west"},
		},
	}})
	euLeader := startFakeNode(t, &fakeNode{status: &meridianv1.StatusResponse{
		Region: "eu-west", Node: "n1", Leader: "n1", IsLeader: true, Applied: map[string]uint64{"eu-west": 5, "us-east": 7},
		Replication: []*meridianv1.OriginLag{{Origin: "us-east", Applied: 7, Known: 7, Lag: durationpb.New(0), Source: "us-east"}},
	}})
	// eu-west is listed by its follower, which points at its leader.
	euFollower := startFakeNode(t, &fakeNode{status: &meridianv1.StatusResponse{
		Region: "eu-west", Node: "n2", Leader: "n1", LeaderAddress: euLeader, Applied: map[string]uint64{"eu-west": 4},
	}})
	ap := deadAddr(t)
	var usFollower string
	usFollower = startFakeNode(t, &fakeNode{
		status: &meridianv1.StatusResponse{Region: "us-east", Node: "n1", Leader: "n2", LeaderAddress: usLeader, Applied: map[string]uint64{"us-east": 6}},
		regions: func() *meridianv1.ListRegionsResponse {
			return &meridianv1.ListRegionsResponse{Regions: []*meridianv1.RegionInfo{
				{Name: "ap-south", Endpoints: []string{ap}, Reachable: false, Voters: []string{"ap-south/n1"}},
				{Name: "eu-west", Endpoints: []string{euFollower}, Reachable: true, LastReached: timestamppb.Now(), Voters: []string{"eu-west/n1"}},
				{Name: "us-east", Endpoints: []string{usFollower, usLeader}, Reachable: true, LastReached: timestamppb.Now(), Voters: []string{"us-east/n1"}},
			}, Table: &meridianv1.TableInfo{Index: 15, Leader: "us-east/n1", AnsweredBy: "us-east/n1", Staleness: durationpb.New(0)}}
		},
	})

	tests := []struct {
		name string
		args []string
		want []string // fragments of stdout, in order
	}{
		{"table", []string{"regions"}, []string{
			"NAME", "APPLIED\n",
			"ap-south  no", "never", "unknown (connection refused)\n",
			"eu-west   yes", "eu-west=5,us-east=7\n", // from eu-west's leader, not the follower listed
			"us-east   yes", "eu-west=3,us-east=7\n",
			"(table index 15 on us-east/n1; placement leader us-east/n1; staleness 0s)\n",
			"replication into us-east (from its leader us-east/n2):\n",
			"ORIGIN    APPLIED  KNOWN  LAG EVENTS  LAG   SOURCE\n",
			"ap-south  0        0      0           0s    -\n",
			"eu-west   3        5      2           1.5s  eu-west\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, t.Context(), append(tt.args, "--endpoint", usFollower)...)
			require.Equal(t, 0, code, errOut)
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				require.GreaterOrEqual(t, i, 0, "want %q in order in:\n%s", w, out)
				rest = rest[i+len(w):]
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI(t, t.Context(), "regions", "--json", "--endpoint", usFollower)
		require.Equal(t, 0, code, errOut)
		require.Equal(t, 1, strings.Count(out, "\n"), "one line")
		var doc struct {
			Regions      []json.RawMessage          `json:"regions"`
			Status       map[string]json.RawMessage `json:"status"`
			StatusErrors map[string]string          `json:"status_errors"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
		assert.Len(t, doc.Regions, 3)
		require.Contains(t, doc.Status, "us-east")
		var us meridianv1.StatusResponse
		require.NoError(t, protojson.Unmarshal(doc.Status["us-east"], &us))
		assert.Equal(t, "n2", us.GetNode(), "the region leader's status")
		require.Len(t, us.GetReplication(), 2)
		assert.Equal(t, uint64(2), us.GetReplication()[1].GetLagEvents())
		var eu meridianv1.StatusResponse
		require.NoError(t, protojson.Unmarshal(doc.Status["eu-west"], &eu))
		assert.Equal(t, map[string]uint64{"eu-west": 5, "us-east": 7}, eu.GetApplied())
		assert.Contains(t, doc.StatusErrors["ap-south"], "connection refused")
	})

	t.Run("status shows the applied vector", func(t *testing.T) {
		code, out, errOut := runCLI(t, t.Context(), "status", "--endpoint", usFollower+","+usLeader)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "APPLIED VECTOR")
		assert.Regexp(t, `(?m)us-east\s+n1\s+\s+n2\s+0\s+0\s+us-east=6\s+-$`, out)
		assert.Regexp(t, `(?m)us-east\s+n2\s+\s+n2\s+0\s+0\s+eu-west=3,us-east=7\s+-$`, out)
	})
}

func TestFormatVector(t *testing.T) {
	tests := []struct {
		name string
		v    map[string]uint64
		want string
	}{
		{"empty", nil, "-"},
		{"one", map[string]uint64{"us-east": 1}, "us-east=1"},
		{"sorted", map[string]uint64{"us-east": 1, "ap-south": 0, "eu-west": 12}, "ap-south=0,eu-west=12,us-east=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, formatVector(tt.v)) })
	}
}
