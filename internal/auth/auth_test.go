package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// procedures lists every procedure of every service in the API, from the
// descriptors, so that a procedure added later is checked too.
func procedures(t *testing.T) map[string]protoreflect.MethodDescriptor {
	t.Helper()
	out := map[string]protoreflect.MethodDescriptor{}
	for _, f := range []protoreflect.FileDescriptor{
		meridianv1.File_meridian_v1_eventstore_proto,
		meridianv1.File_meridian_v1_placement_proto,
		meridianv1.File_meridian_v1_replication_proto,
		meridianv1.File_meridian_v1_membership_proto,
		meridianv1.File_meridian_v1_groups_proto,
	} {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				out[fmt.Sprintf("/%s/%s", svc.FullName(), m.Name())] = m
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

func TestEveryProcedureHasARule(t *testing.T) {
	for proc := range procedures(t) {
		_, ok := rules[proc]
		assert.True(t, ok, "%s has no rule in rules.go", proc)
	}
	assert.Len(t, rules, len(procedures(t)), "rules.go names a procedure the API does not have")
}

func callerCtx(c Caller) context.Context {
	return context.WithValue(context.Background(), callerKey{}, c)
}

// TestRoleTable: every caller against every procedure. A node may call
// anything; no caller without a token gets past anything; a token may call
// what its role covers except the node-only procedures.
func TestRoleTable(t *testing.T) {
	a := &Authorizer{}
	callers := map[string]Caller{
		"node":          {Node: "eu/n1"},
		"anonymous":     {},
		"unknown token": {presented: true},
		"read":          {Token: &Token{Name: "r", Role: RoleRead}, presented: true},
		"write":         {Token: &Token{Name: "w", Role: RoleWrite}, presented: true},
		"admin":         {Token: &Token{Name: "a", Role: RoleAdmin}, presented: true},
	}
	level := map[string]need{"read": needRead, "write": needWrite, "admin": needAdmin}
	for proc, md := range procedures(t) {
		ru := rules[proc]
		msg := dynamicpb.NewMessage(md.Input())
		for name, c := range callers {
			t.Run(name+" "+proc, func(t *testing.T) {
				err := a.Authorize(callerCtx(c), proc, msg)
				switch {
				case name == "node":
					require.NoError(t, err)
				case name == "anonymous" && ru.need == needNode:
					assert.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
				case name == "anonymous", name == "unknown token":
					assert.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "%v", err)
					assert.ErrorIs(t, err, ErrUnauthenticated)
				case ru.need == needNode || level[name] < ru.need:
					assert.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
					assert.ErrorIs(t, err, ErrPermissionDenied)
				default:
					require.NoError(t, err)
				}
			})
		}
	}
}

// TestPrefixLimits: a token limited to eu/orders/ reaches entities under
// it in appends, reads, subscriptions and state reads, nothing else.
func TestPrefixLimits(t *testing.T) {
	a := &Authorizer{}
	ctx := callerCtx(Caller{Token: &Token{Name: "eu", Role: RoleAdmin, Prefixes: []string{"eu/orders/"}}, presented: true})
	type tc struct {
		proc string
		msg  any
		ok   bool
	}
	var cases []tc
	for _, e := range []struct {
		entity string
		ok     bool
	}{{"eu/orders/1", true}, {"eu/ordersX", false}, {"us/orders/1", false}, {"", false}} {
		cases = append(cases,
			tc{"/meridian.v1.EventStore/Append", &meridianv1.AppendRequest{Entity: e.entity}, e.ok},
			tc{"/meridian.v1.EventStore/Read", &meridianv1.ReadRequest{Entity: e.entity}, e.ok},
			tc{"/meridian.v1.EventStore/Subscribe", &meridianv1.SubscribeRequest{Target: &meridianv1.SubscribeRequest_Entity{Entity: e.entity}}, e.ok},
			tc{"/meridian.v1.EventStore/ReadState", &meridianv1.ReadStateRequest{Entity: e.entity}, e.ok},
			tc{"/meridian.v1.EventStore/ReadConflicts", &meridianv1.ReadConflictsRequest{Entity: e.entity}, e.ok},
			tc{"/meridian.v1.Placement/GetPlacement", &meridianv1.GetPlacementRequest{Entity: e.entity}, e.ok},
			tc{"/meridian.v1.Placement/Pin", &meridianv1.PinRequest{Entity: e.entity}, e.ok},
		)
	}
	cases = append(cases,
		tc{"/meridian.v1.EventStore/Subscribe", &meridianv1.SubscribeRequest{Target: &meridianv1.SubscribeRequest_All{All: true}}, false},
		tc{"/meridian.v1.EventStore/ReadLog", &meridianv1.ReadLogRequest{}, false},
		tc{"/meridian.v1.EventStore/ReadLog", &meridianv1.ReadLogRequest{Filter: &meridianv1.EventFilter{EventTypes: []string{"Placed"}}}, false},
	)
	// The region log with a filter whose prefixes all lie under the
	// token's: allowed; one prefix outside (or wider): refused.
	for _, f := range []struct {
		prefixes []string
		ok       bool
	}{{[]string{"eu/orders/"}, true}, {[]string{"eu/orders/1", "eu/orders/2"}, true}, {[]string{"eu/orders/1", "us/"}, false}, {[]string{"eu/"}, false}} {
		filter := &meridianv1.EventFilter{EntityPrefixes: f.prefixes}
		cases = append(cases,
			tc{"/meridian.v1.EventStore/ReadLog", &meridianv1.ReadLogRequest{Filter: filter}, f.ok},
			tc{"/meridian.v1.EventStore/Subscribe", &meridianv1.SubscribeRequest{Target: &meridianv1.SubscribeRequest_All{All: true}, Filter: filter}, f.ok},
		)
	}
	cases = append(cases,
		tc{"/meridian.v1.EventStore/Status", &meridianv1.StatusRequest{}, true},
		tc{"/meridian.v1.Placement/ListRules", &meridianv1.ListRulesRequest{}, true},
		tc{"/meridian.v1.Placement/SetRules", &meridianv1.SetRulesRequest{}, false},
		tc{"/meridian.v1.Membership/Leave", &meridianv1.LeaveRequest{}, false},
		// Consumer groups act on the whole region: readable, not writable.
		tc{"/meridian.v1.ConsumerGroups/GetGroup", &meridianv1.GetGroupRequest{Name: "g"}, true},
		tc{"/meridian.v1.ConsumerGroups/ListGroups", &meridianv1.ListGroupsRequest{}, true},
		tc{"/meridian.v1.ConsumerGroups/CreateGroup", &meridianv1.CreateGroupRequest{Name: "g", Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"eu/orders/"}}}, false},
		tc{"/meridian.v1.ConsumerGroups/CommitCheckpoint", &meridianv1.CommitCheckpointRequest{Name: "g"}, false},
		tc{"/meridian.v1.ConsumerGroups/DeleteGroup", &meridianv1.DeleteGroupRequest{Name: "g"}, false},
		tc{"/meridian.v1.ConsumerGroups/Fetch", &meridianv1.FetchRequest{Name: "g", Consumer: "c"}, false},
		tc{"/meridian.v1.ConsumerGroups/Ack", &meridianv1.AckRequest{Name: "g", Consumer: "c"}, false},
		tc{"/meridian.v1.ConsumerGroups/Nack", &meridianv1.NackRequest{Name: "g", Consumer: "c"}, false},
		tc{"/meridian.v1.ConsumerGroups/ListParked", &meridianv1.ListParkedRequest{Name: "g"}, false},
		tc{"/meridian.v1.ConsumerGroups/DropParked", &meridianv1.DropParkedRequest{Name: "g"}, false},
	)
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %v", c.proc, c.msg), func(t *testing.T) {
			err := a.Authorize(ctx, c.proc, c.msg)
			if c.ok {
				require.NoError(t, err)
				return
			}
			assert.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
		})
	}
}

func TestTokenFile(t *testing.T) {
	secret, err := NewSecret()
	require.NoError(t, err)
	line := Line(Token{Name: "ci", Role: RoleWrite, Prefixes: []string{"eu/", "us/"}}, secret)
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(path, []byte("# comment\n\n"+line+"\n"), 0o600))
	toks, err := LoadTokens(path)
	require.NoError(t, err)
	tok, ok := toks.Lookup(secret)
	require.True(t, ok)
	assert.Equal(t, Token{Name: "ci", Role: RoleWrite, Prefixes: []string{"eu/", "us/"}}, *tok)
	_, ok = toks.Lookup(secret + "x")
	assert.False(t, ok)

	hash := line[len("ci write "):][:len("sha256:")+64]
	for name, bad := range map[string]string{
		"too few fields":  "ci write",
		"unknown role":    "ci owner " + hash,
		"not a hash":      "ci write " + secret,
		"short hash":      "ci write sha256:abcd",
		"empty prefix":    "ci write " + hash + " eu/,,us/",
		"duplicate name":  "ci write " + hash + "\nci read sha256:" + fmt.Sprintf("%064d", 0),
		"duplicate token": "ci write " + hash + "\nother read " + hash,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte(bad+"\n"), 0o600))
			err := toks.Reload()
			require.ErrorIs(t, err, ErrTokenFile)
			_, ok := toks.Lookup(secret)
			assert.True(t, ok, "a bad file keeps the tokens loaded before it")
		})
	}
	_, err = LoadTokens(filepath.Join(dir, "missing"))
	require.True(t, errors.Is(err, ErrTokenFile))
}

func TestWriteTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	secret, err := WriteTokenFile(path, Token{Name: "first", Role: RoleAdmin})
	require.NoError(t, err)
	toks, err := LoadTokens(path)
	require.NoError(t, err)
	tok, ok := toks.Lookup(secret)
	require.True(t, ok)
	assert.Equal(t, Token{Name: "first", Role: RoleAdmin}, *tok)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
