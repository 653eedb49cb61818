package region

import (
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestCommandRoundTrip(t *testing.T) {
	b := &meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: 5, Logical: 2}, Ops: []*meridianv1.AppendOp{aop("a", expExact(3), pev(1, "T", "x"))}}
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, b)
	require.NoError(t, err)
	c, err := DecodeCommand(data)
	require.NoError(t, err)
	assert.Equal(t, uint32(CommandVersion), c.GetVersion())
	m, err := DecodePayload(c)
	require.NoError(t, err)
	assert.True(t, proto.Equal(b, m))
}

func TestCommandRejects(t *testing.T) {
	envelope := func(c *meridianv1.Command) []byte {
		b, err := proto.Marshal(c)
		require.NoError(t, err)
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, ErrCorruptState},
		{"version 0", envelope(&meridianv1.Command{Type: meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH}), ErrUnknownCommand},
		{"version 2", envelope(&meridianv1.Command{Version: 2, Type: meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH}), ErrUnknownCommand},
		{"unspecified type", envelope(&meridianv1.Command{Version: 1}), ErrUnknownCommand},
		{"unknown type", envelope(&meridianv1.Command{Version: 1, Type: 99}), ErrUnknownCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCommand(tc.data)
			require.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("bad payload", func(t *testing.T) {
		c, err := DecodeCommand(envelope(&meridianv1.Command{Version: 1, Type: meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, Payload: []byte{0xff}}))
		require.NoError(t, err)
		_, err = DecodePayload(c)
		require.ErrorIs(t, err, ErrCorruptState)
	})
	t.Run("encode unknown type", func(t *testing.T) {
		_, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_UNSPECIFIED, &meridianv1.AppendBatch{})
		require.ErrorIs(t, err, ErrUnknownCommand)
	})
	t.Run("encode wrong payload", func(t *testing.T) {
		_, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, &meridianv1.StreamHead{})
		require.ErrorIs(t, err, ErrUnknownCommand)
	})
}

func FuzzDecodeCommand(f *testing.F) {
	seed, _ := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, &meridianv1.AppendBatch{
		Hlc: &meridianv1.Hlc{WallNanos: 1}, Ops: []*meridianv1.AppendOp{aop("a", expNoStream(), pev(1, "T", "x"))}})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{8, 2, 16, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		m, err := DecodePayload(c)
		if err != nil {
			return
		}
		// A decodable command re-encodes and decodes to the same payload.
		again, err := EncodeCommand(c.GetType(), m)
		require.NoError(t, err)
		c2, err := DecodeCommand(again)
		require.NoError(t, err)
		m2, err := DecodePayload(c2)
		require.NoError(t, err)
		require.True(t, proto.Equal(m, m2))
	})
}

// TestEveryCommandTypeHasAHandler: DecodeCommand accepts exactly the types apply handles.
func TestEveryCommandTypeHasAHandler(t *testing.T) {
	for typ := range commandPayloads {
		_, ok := commandHandlers[typ]
		assert.True(t, ok, "%v", typ)
	}
	assert.Len(t, commandHandlers, len(commandPayloads))
}
