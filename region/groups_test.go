package region

import (
	"bytes"
	"io"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

func (d *fsmDriver) group(c *meridianv1.GroupCommand) *GroupResult {
	d.t.Helper()
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_GROUP, c)
	require.NoError(d.t, err)
	d.index++
	r, ok := d.f.Apply(&raft.Log{Index: d.index, Term: 1, Type: raft.LogCommand, Data: data}).(*GroupResult)
	require.True(d.t, ok)
	return r
}

func createCmd(name string, start map[string]uint64) *meridianv1.GroupCommand {
	return &meridianv1.GroupCommand{UnixNanos: 100, Op: &meridianv1.GroupCommand_Create{Create: &meridianv1.ConsumerGroup{
		Name: name, Filter: &meridianv1.EventFilter{EntityPrefixes: []string{"orders/"}}, Checkpoint: start,
	}}}
}

func commitCmd(name string, rev uint64, cp map[string]uint64) *meridianv1.GroupCommand {
	return &meridianv1.GroupCommand{UnixNanos: 200, Op: &meridianv1.GroupCommand_Commit{Commit: &meridianv1.CommitCheckpointRequest{
		Name: name, ExpectedRevision: rev, Checkpoint: cp,
	}}}
}

// TestApplyGroupCommands walks one group through the state machine's
// commands, each refusal leaving the group as it was.
func TestApplyGroupCommands(t *testing.T) {
	f := newTestFSM(t)
	d := newFSMDriver(t, f)
	steps := []struct {
		name    string
		cmd     *meridianv1.GroupCommand
		err     error
		rev     uint64
		cp      map[string]uint64
		updated int64
	}{
		{"create", createCmd("billing", map[string]uint64{"us-east": 3}), nil, 1, map[string]uint64{"us-east": 3}, 100},
		{"create again", createCmd("billing", nil), ErrGroupExists, 1, map[string]uint64{"us-east": 3}, 100},
		{"commit", commitCmd("billing", 1, map[string]uint64{"us-east": 5, "eu-west": 1}), nil, 2, map[string]uint64{"us-east": 5, "eu-west": 1}, 200},
		{"commit at an old revision", commitCmd("billing", 1, map[string]uint64{"us-east": 9, "eu-west": 1}), ErrGroupConflict, 2, map[string]uint64{"us-east": 5, "eu-west": 1}, 200},
		{"commit backwards", commitCmd("billing", 2, map[string]uint64{"us-east": 9}), ErrGroupConflict, 2, map[string]uint64{"us-east": 5, "eu-west": 1}, 200},
		{"commit to a missing group", commitCmd("nobody", 1, nil), ErrGroupNotFound, 2, map[string]uint64{"us-east": 5, "eu-west": 1}, 200},
		{"bad name", createCmd("bad name", nil), ErrInvalidArgument, 2, map[string]uint64{"us-east": 5, "eu-west": 1}, 200},
	}
	for _, s := range steps {
		r := d.group(s.cmd)
		if s.err != nil {
			require.ErrorIs(t, r.Err, s.err, s.name)
		} else {
			require.NoError(t, r.Err, s.name)
		}
		g, err := f.Group("billing")
		require.NoError(t, err, s.name)
		assert.Equal(t, s.rev, g.GetRevision(), s.name)
		assert.Equal(t, s.cp, g.GetCheckpoint(), s.name)
		assert.Equal(t, int64(100), g.GetCreatedUnixNanos(), s.name)
		assert.Equal(t, s.updated, g.GetUpdatedUnixNanos(), s.name)
		assert.Equal(t, []string{"orders/"}, g.GetFilter().GetEntityPrefixes(), s.name)
	}
	// An operation this build does not know (a newer node proposed it)
	// stops apply instead of being skipped.
	assert.PanicsWithError(t, "region: unknown command: a GroupCommand whose operation this build does not know: upgrade this node", func() {
		d.group(&meridianv1.GroupCommand{})
	})
	require.NoError(t, d.group(createCmd("audit", nil)).Err)
	gs, err := f.Groups()
	require.NoError(t, err)
	require.Len(t, gs, 2)
	assert.Equal(t, "audit", gs[0].GetName())

	require.NoError(t, d.group(&meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Delete{Delete: "billing"}}).Err)
	_, err = f.Group("billing")
	require.ErrorIs(t, err, ErrGroupNotFound)
	require.ErrorIs(t, d.group(&meridianv1.GroupCommand{Op: &meridianv1.GroupCommand_Delete{Delete: "billing"}}).Err, ErrGroupNotFound)
	// Deleted, the name is free again; the group starts over.
	require.NoError(t, d.group(createCmd("billing", nil)).Err)
	g, err := f.Group("billing")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), g.GetRevision())
	assert.Empty(t, g.GetCheckpoint())

	// Groups travel in snapshots and survive a restart (they are keys of
	// the state machine like any other).
	dst := newTestFSM(t)
	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))))
	gs, err = dst.Groups()
	require.NoError(t, err)
	assert.Len(t, gs, 2)
	dir := f.cfg.Dir
	require.NoError(t, f.Close())
	f2 := openTestFSM(t, dir)
	gs, err = f2.Groups()
	require.NoError(t, err)
	assert.Len(t, gs, 2)
}

// TestGroupsOverConnect creates, reads, commits and deletes a group
// through a follower's API (writes forwarded to the leader), with the
// codes a client sees for each refusal.
func TestGroupsOverConnect(t *testing.T) {
	r := newTestRegion(t, 3, nil)
	leader := r.waitLeader()
	f := r.follower(leader)
	c := meridianv1connect.NewConsumerGroupsClient(newHTTPClient(TCP, 2*time.Second), "http://"+r.peers[f].APIAddr)
	ctx := testContext(t, 30*time.Second)

	created, err := c.CreateGroup(ctx, connect.NewRequest(&meridianv1.CreateGroupRequest{
		Name: "billing", Filter: &meridianv1.EventFilter{EventTypes: []string{"Paid"}}, Start: map[string]uint64{"r1": 2},
	}))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), created.Msg.GetGroup().GetRevision())
	_, err = c.CreateGroup(ctx, connect.NewRequest(&meridianv1.CreateGroupRequest{Name: "billing"}))
	assert.Equal(t, connect.CodeAlreadyExists, connect.CodeOf(err), "%v", err)

	committed, err := c.CommitCheckpoint(ctx, connect.NewRequest(&meridianv1.CommitCheckpointRequest{
		Name: "billing", ExpectedRevision: 1, Checkpoint: map[string]uint64{"r1": 7},
	}))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), committed.Msg.GetGroup().GetRevision())
	_, err = c.CommitCheckpoint(ctx, connect.NewRequest(&meridianv1.CommitCheckpointRequest{
		Name: "billing", ExpectedRevision: 1, Checkpoint: map[string]uint64{"r1": 8},
	}))
	assert.Equal(t, connect.CodeAborted, connect.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "at revision 2, the commit expected 1")

	// Reads through the follower see the commit at once: the leader
	// answers them.
	got, err := c.GetGroup(ctx, connect.NewRequest(&meridianv1.GetGroupRequest{Name: "billing"}))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), got.Msg.GetGroup().GetRevision())
	assert.Equal(t, r.nodes[leader].id, got.Msg.GetNode())
	list, err := c.ListGroups(ctx, connect.NewRequest(&meridianv1.ListGroupsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetGroups(), 1)
	assert.Equal(t, map[string]uint64{"r1": 7}, list.Msg.GetGroups()[0].GetCheckpoint())
	_, err = c.GetGroup(ctx, connect.NewRequest(&meridianv1.GetGroupRequest{Name: "nobody"}))
	assert.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "%v", err)

	_, err = c.DeleteGroup(ctx, connect.NewRequest(&meridianv1.DeleteGroupRequest{Name: "billing"}))
	require.NoError(t, err)
	_, err = c.DeleteGroup(ctx, connect.NewRequest(&meridianv1.DeleteGroupRequest{Name: "billing"}))
	assert.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "%v", err)
	_, err = c.CreateGroup(ctx, connect.NewRequest(&meridianv1.CreateGroupRequest{Name: "no spaces"}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "name")
	_, err = c.CreateGroup(ctx, connect.NewRequest(&meridianv1.CreateGroupRequest{Name: "x", Filter: &meridianv1.EventFilter{EventTypes: []string{""}}}))
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "filter.event_types[0]")
}
