package placement

import (
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		typ meridianv1.PlacementCommandType
		m   proto.Message
	}{
		{meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, &meridianv1.SetRulesCommand{Rules: []*meridianv1.PlacementRule{rl("eu/", "eu", "us")}, DefaultRegion: "us", ExpectedIndex: 7}},
		{meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, &meridianv1.PinCommand{Entity: "e", Region: "eu"}},
		{meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNPIN, &meridianv1.UnpinCommand{Entity: "e"}},
		{meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_JOIN, &meridianv1.JoinCommand{Member: member("eu", "n1")}},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			b, err := EncodeCommand(tc.typ, tc.m)
			require.NoError(t, err)
			typ, m, err := DecodeCommand(b)
			require.NoError(t, err)
			assert.Equal(t, tc.typ, typ)
			assert.True(t, proto.Equal(tc.m, m))
		})
	}
}

func TestCommandRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, ErrCorruptState},
		{"version 0", mustMarshal(t, &meridianv1.PlacementCommand{Type: meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN}), ErrUnknownCommand},
		{"version 2", mustMarshal(t, &meridianv1.PlacementCommand{Version: 2, Type: meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN}), ErrUnknownCommand},
		{"unspecified type", mustMarshal(t, &meridianv1.PlacementCommand{Version: 1}), ErrUnknownCommand},
		{"unknown type", mustMarshal(t, &meridianv1.PlacementCommand{Version: 1, Type: 99}), ErrUnknownCommand},
		{"bad payload", mustMarshal(t, &meridianv1.PlacementCommand{Version: 1, Type: meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, Payload: []byte{0xff}}), ErrCorruptState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeCommand(tc.data)
			require.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("encode unknown type", func(t *testing.T) {
		_, err := EncodeCommand(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNSPECIFIED, &meridianv1.PinCommand{})
		require.ErrorIs(t, err, ErrUnknownCommand)
	})
	t.Run("encode wrong payload", func(t *testing.T) {
		_, err := EncodeCommand(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, &meridianv1.UnpinCommand{})
		require.ErrorIs(t, err, ErrUnknownCommand)
	})
	t.Run("encode nil payload", func(t *testing.T) {
		_, err := EncodeCommand(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, nil)
		require.ErrorIs(t, err, ErrUnknownCommand)
	})
}

// FuzzDecodeCommand: the seed corpus is testdata/fuzz/FuzzDecodeCommand.
func FuzzDecodeCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, m, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// A decodable command re-encodes and decodes to the same payload.
		again, err := EncodeCommand(typ, m)
		require.NoError(t, err)
		typ2, m2, err := DecodeCommand(again)
		require.NoError(t, err)
		require.Equal(t, typ, typ2)
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
	for v := range meridianv1.PlacementCommandType_name {
		typ := meridianv1.PlacementCommandType(v)
		if typ != meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNSPECIFIED {
			assert.Contains(t, commandPayloads, typ, "every type the proto declares is decodable")
		}
	}
}
