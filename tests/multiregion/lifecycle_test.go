package multiregion

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/region"
)

// TestStreamLifecycleInEveryRegion sets a stream's metadata, soft-deletes
// it and then hard-deletes it through nodes of other regions than its
// home (eu-west): once the regions converge, every region returns the
// same versions and lifecycle, and an append through any region is
// refused with FailedPrecondition naming the tombstone. A read with the
// delete's session token sees the delete in every region at once.
func TestStreamLifecycleInEveryRegion(t *testing.T) {
	c := startCluster(t, 1)
	setExampleRules(t, c)
	const entity = "eu/life-1"
	appendTyped := func(host, typ, data string) (*meridianv1.AppendResponse, error) {
		ev := &meridianv1.ProposedEvent{Id: newID(), Type: typ, Data: []byte(data)}
		resp, err := c.EventStore(host).Append(ctxFor(t, 30*time.Second), connect.NewRequest(&meridianv1.AppendRequest{
			Entity: entity, Events: []*meridianv1.ProposedEvent{ev},
		}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	read := func(host string) *meridianv1.ReadResponse {
		resp, err := c.EventStore(host).Read(ctxFor(t, 30*time.Second), connect.NewRequest(&meridianv1.ReadRequest{Entity: entity}))
		require.NoError(t, err)
		return resp.Msg
	}
	versions := func(r *meridianv1.ReadResponse) []uint64 {
		out := []uint64{}
		for _, e := range r.GetEvents() {
			out = append(out, e.GetVersion())
		}
		return out
	}
	same := func(want []uint64, truncate, tomb uint64) {
		t.Helper()
		waitConverged(t, c, []string{entity}, 30*time.Second)
		for _, h := range c.Hosts() {
			r := read(h)
			assert.Equal(t, want, versions(r), "read in %s", h)
			assert.Equal(t, truncate, r.GetTruncateBefore(), "in %s", h)
			assert.Equal(t, tomb, r.GetTombstone(), "in %s", h)
		}
	}

	for range 4 {
		_, err := appendTyped("us-east-1", "Placed", `{}`)
		require.NoError(t, err)
	}
	_, err := appendTyped("ap-south-1", region.TypeStreamMetadata, `{"maxCount": 2, "custom": {"owner": "billing"}}`)
	require.NoError(t, err)
	same([]uint64{4, 5}, 0, 0)
	assert.Equal(t, map[string]string{"owner": "billing"}, read("us-east-1").GetMetadata().GetCustom())

	del, err := appendTyped("us-east-1", region.TypeStreamDeleted, "")
	require.NoError(t, err)
	// Read your delete: with the delete's session token, a read in any
	// region waits for it and hides the stream at once.
	for _, h := range c.Hosts() {
		resp, err := c.EventStore(h).Read(ctxFor(t, 30*time.Second), connect.NewRequest(&meridianv1.ReadRequest{Entity: entity, SessionToken: del.GetSessionToken()}))
		require.NoError(t, err)
		assert.Empty(t, resp.Msg.GetEvents(), "read with the delete's token in %s", h)
		assert.Equal(t, uint64(7), resp.Msg.GetTruncateBefore(), "in %s", h)
	}
	same([]uint64{}, 7, 0)
	// A soft-deleted stream takes appends; versions go on.
	resp, err := appendTyped("ap-south-1", "Placed", `{}`)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), resp.GetFirstVersion())
	same([]uint64{7}, 7, 0)

	_, err = appendTyped("ap-south-1", region.TypeStreamTombstone, "")
	require.NoError(t, err)
	same([]uint64{}, 9, 8)
	for _, h := range c.Hosts() {
		_, err := appendTyped(h, "Placed", `{}`)
		assert.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(err), "append via %s: %v", h, err)
		assert.ErrorContains(t, err, "deleted by its $tombstone at version 8")
	}
	_, err = appendTyped("us-east-1", region.TypeStreamMetadata, `{"maxCount": "many"}`)
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
}
