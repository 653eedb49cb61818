package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/internal/testserver"
)

// fakePlacement answers the Placement calls with canned data and records
// the last SetRules request.
type fakePlacement struct {
	meridianv1connect.UnimplementedPlacementHandler
	mu      sync.Mutex
	lastSet *meridianv1.SetRulesRequest
}

var fakeTable = &meridianv1.TableInfo{Index: 15, Leader: "us-east/n1", AnsweredBy: "ap-south/n1", Staleness: durationpb.New(12 * time.Millisecond)}

func (f *fakePlacement) GetPlacement(_ context.Context, req *connect.Request[meridianv1.GetPlacementRequest]) (*connect.Response[meridianv1.GetPlacementResponse], error) {
	return connect.NewResponse(&meridianv1.GetPlacementResponse{
		Entity: req.Msg.GetEntity(), HomeRegion: "eu-west", Epoch: 12, Failover: []string{"us-east"},
		Source: meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE, RulePrefix: "eu/",
		HomeEndpoints: []string{"127.0.0.1:7002"}, Table: fakeTable,
	}), nil
}

func (f *fakePlacement) ListRules(context.Context, *connect.Request[meridianv1.ListRulesRequest]) (*connect.Response[meridianv1.ListRulesResponse], error) {
	return connect.NewResponse(&meridianv1.ListRulesResponse{
		Rules: []*meridianv1.PlacementRule{
			{Prefix: "us/", HomeRegion: "us-east", Epoch: 12},
			{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east", "ap-south"}, Epoch: 12},
		},
		DefaultRegion: "us-east", DefaultEpoch: 4, Pins: 2, RulesIndex: 12, Table: fakeTable,
	}), nil
}

func (f *fakePlacement) SetRules(_ context.Context, req *connect.Request[meridianv1.SetRulesRequest]) (*connect.Response[meridianv1.SetRulesResponse], error) {
	f.mu.Lock()
	f.lastSet = req.Msg
	f.mu.Unlock()
	if e := req.Msg.GetExpectedIndex(); e != 0 && e != 12 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("placement: conflict: expected rules index 99, current 12"))
	}
	return connect.NewResponse(&meridianv1.SetRulesResponse{Index: 16, Rules: req.Msg.GetRules(), DefaultEpoch: 16}), nil
}

func (f *fakePlacement) Pin(_ context.Context, req *connect.Request[meridianv1.PinRequest]) (*connect.Response[meridianv1.PinResponse], error) {
	if req.Msg.GetEntity() == "eu/already" {
		return connect.NewResponse(&meridianv1.PinResponse{Epoch: 9, Index: 17}), nil
	}
	return connect.NewResponse(&meridianv1.PinResponse{Epoch: 17, Index: 17}), nil
}

func (f *fakePlacement) Unpin(_ context.Context, req *connect.Request[meridianv1.UnpinRequest]) (*connect.Response[meridianv1.UnpinResponse], error) {
	return connect.NewResponse(&meridianv1.UnpinResponse{Index: 18, Existed: req.Msg.GetEntity() != "eu/none"}), nil
}

func startFakePlacement(t *testing.T) (*fakePlacement, string) {
	t.Helper()
	f := &fakePlacement{}
	mux := http.NewServeMux()
	mux.Handle(meridianv1connect.NewPlacementHandler(f))
	srv := testserver.Start(t, mux)
	return f, srv.URL
}

func TestCLIPlacementCommands(t *testing.T) {
	_, url := startFakePlacement(t)
	ep := "--endpoint=" + url
	tests := []struct {
		name string
		args []string
		want []string // lines or fragments of stdout, in order
	}{
		{"get", []string{"placement", "get", "eu/order-1"}, []string{
			`eu/order-1  home eu-west  (rule "eu/")`,
			"  epoch 12  mode single_home  failover us-east",
			"  home endpoints 127.0.0.1:7002",
			"(table index 15 on ap-south/n1; placement leader us-east/n1; staleness 12ms)",
		}},
		{"get json", []string{"placement", "get", "eu/order-1", "--json"}, []string{`"home_region":"eu-west"`, `"rule_prefix":"eu/"`}},
		{"rules", []string{"placement", "rules"}, []string{
			"#  PREFIX  HOME     MODE         FAILOVER          EPOCH",
			"1  us/     us-east  single_home  -                 12",
			"2  eu/     eu-west  single_home  us-east,ap-south  12",
			"default region us-east (epoch 4); 2 pins; rules index 12 (for set-rules --expect-index)",
		}},
		{"pin", []string{"placement", "pin", "eu/order-7", "ap-south"}, []string{"pinned eu/order-7 to ap-south at epoch 17"}},
		{"pin again", []string{"placement", "pin", "eu/already", "ap-south"}, []string{"eu/already was already pinned to ap-south (epoch 9); nothing changed"}},
		{"unpin", []string{"placement", "unpin", "eu/order-7"}, []string{"unpinned eu/order-7 at placement index 18"}},
		{"unpin nothing", []string{"placement", "unpin", "eu/none"}, []string{"eu/none had no pin; nothing changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, t.Context(), append(tt.args, ep)...)
			require.Equal(t, 0, code, errOut)
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				require.GreaterOrEqual(t, i, 0, "want %q in order in:\n%s", w, out)
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestCLISetRules(t *testing.T) {
	f, url := startFakePlacement(t)
	ep := "--endpoint=" + url
	file := filepath.Join(t.TempDir(), "rules.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"rules":[{"prefix":"eu/","home_region":"eu-west","failover":["us-east"]}],"default_region":"us-east","expected_index":"12"}`), 0o600))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
		wantReq  *meridianv1.SetRulesRequest
	}{
		{name: "rules and default", args: []string{"--rule", "us/=us-east", "--rule", "eu/=eu-west,failover=us-east:ap-south", "--rule", "ap/=ap-south,mode=active-active", "--default", "us-east"},
			wantOut: "rules set at placement index 16: 3 rules, default region us-east (epoch 16)",
			wantReq: &meridianv1.SetRulesRequest{DefaultRegion: "us-east", Rules: []*meridianv1.PlacementRule{
				{Prefix: "us/", HomeRegion: "us-east"},
				{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east", "ap-south"}},
				{Prefix: "ap/", HomeRegion: "ap-south", Mode: meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE},
			}}},
		{name: "only a default", args: []string{"--default", "eu-west", "--expect-index", "12"},
			wantReq: &meridianv1.SetRulesRequest{DefaultRegion: "eu-west", ExpectedIndex: 12}},
		{name: "file", args: []string{"--file", file},
			wantReq: &meridianv1.SetRulesRequest{DefaultRegion: "us-east", ExpectedIndex: 12, Rules: []*meridianv1.PlacementRule{
				{Prefix: "eu/", HomeRegion: "eu-west", Failover: []string{"us-east"}}}}},
		{name: "stale expected index", args: []string{"--default", "us-east", "--expect-index", "99"}, wantCode: 1,
			wantErr: "error: failed_precondition: placement: conflict"},
		{name: "no default", args: []string{"--rule", "us/=us-east"}, wantCode: 2, wantErr: "--default REGION is required"},
		{name: "rule without region", args: []string{"--rule", "us/", "--default", "us-east"}, wantCode: 2, wantErr: `--rule "us/": want PREFIX=REGION`},
		{name: "merge rules", args: []string{"--rule", "cart/=us-east,mode=active_active,merge=ItemAdded:set_add:items+Paid:lww-write:paid", "--default", "us-east"},
			wantOut: "rules set at placement index 16: 1 rules",
			wantReq: &meridianv1.SetRulesRequest{DefaultRegion: "us-east", Rules: []*meridianv1.PlacementRule{
				{Prefix: "cart/", HomeRegion: "us-east", Mode: meridianv1.PlacementMode_PLACEMENT_MODE_ACTIVE_ACTIVE, Merge: []*meridianv1.MergeRule{
					{EventType: "ItemAdded", Op: meridianv1.MergeOp_MERGE_OP_SET_ADD, Target: "items"},
					{EventType: "Paid", Op: meridianv1.MergeOp_MERGE_OP_LWW_WRITE, Target: "paid"},
				}},
			}}},
		{name: "bad merge op", args: []string{"--rule", "cart/=us-east,mode=active_active,merge=ItemAdded:append:items", "--default", "us-east"}, wantCode: 2, wantErr: `op "append": want counter_add, set_add`},
		{name: "bad merge shape", args: []string{"--rule", "cart/=us-east,merge=ItemAdded", "--default", "us-east"}, wantCode: 2, wantErr: `want TYPE:OP:TARGET`},
		{name: "bad mode", args: []string{"--rule", "us/=us-east,mode=fast", "--default", "us-east"}, wantCode: 2, wantErr: `mode "fast"`},
		{name: "unknown option", args: []string{"--rule", "us/=us-east,color=red", "--default", "us-east"}, wantCode: 2, wantErr: `unknown option "color=red"`},
		{name: "file and rule", args: []string{"--file", file, "--rule", "us/=us-east"}, wantCode: 2, wantErr: "--file excludes --rule and --default"},
		{name: "bad file", args: []string{"--file", "-"}, wantCode: 2, wantErr: "not a SetRulesRequest in JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.lastSet = nil
			f.mu.Unlock()
			code, out, errOut := runCLI(t, t.Context(), append(append([]string{"placement", "set-rules"}, tt.args...), ep)...)
			assert.Equal(t, tt.wantCode, code, errOut)
			assert.Contains(t, out, tt.wantOut)
			assert.Contains(t, errOut, tt.wantErr)
			if tt.wantReq != nil {
				f.mu.Lock()
				defer f.mu.Unlock()
				assert.True(t, proto.Equal(tt.wantReq, f.lastSet), "sent %v, want %v", f.lastSet, tt.wantReq)
			}
		})
	}
}

func TestCLIPlacementOnSingleRegionNode(t *testing.T) {
	// A node without a placement group serves only the EventStore.
	_, url := startFake(t)
	code, _, errOut := runCLI(t, t.Context(), "regions", "--endpoint", url)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "error: unimplemented:")
	assert.Contains(t, errOut, "hint: the node at "+url+" serves no placement group")
}

func TestExampleRules(t *testing.T) {
	tests := []struct {
		regions []string
		want    []string // prefix=region
	}{
		{devDefaultRegions, []string{"us/=us-east", "eu/=eu-west", "ap/=ap-south"}},
		{[]string{"eu-central", "us-west", "us-east"}, []string{"eu/=eu-central", "us/=us-west", "us-east/=us-east"}},
		{[]string{"mars", "venus-1"}, []string{"mars/=mars", "venus/=venus-1"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.regions, ","), func(t *testing.T) {
			var got []string
			for _, r := range exampleRules(tt.regions) {
				got = append(got, r.GetPrefix()+"="+r.GetHomeRegion())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
