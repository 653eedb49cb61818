package region

import (
	"fmt"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// CommandVersion is the envelope version this code writes and reads.
const CommandVersion = 1

// commandPayloads names, per command type, the payload message it carries.
// A type missing here is unknown: DecodeCommand rejects it.
var commandPayloads = map[meridianv1.CommandType]func() proto.Message{
	meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH:    func() proto.Message { return &meridianv1.AppendBatch{} },
	meridianv1.CommandType_COMMAND_TYPE_REPLICATE_BATCH: func() proto.Message { return &meridianv1.ReplicateBatch{} },
	meridianv1.CommandType_COMMAND_TYPE_PLACEMENT_FENCE: func() proto.Message { return &meridianv1.PlacementFence{} },
	meridianv1.CommandType_COMMAND_TYPE_ORIGIN_FENCE:    func() proto.Message { return &meridianv1.OriginFence{} },
	meridianv1.CommandType_COMMAND_TYPE_CLOCK_TICK:      func() proto.Message { return &meridianv1.ClockTick{} },
	meridianv1.CommandType_COMMAND_TYPE_GROUP:           func() proto.Message { return &meridianv1.GroupCommand{} },
	meridianv1.CommandType_COMMAND_TYPE_RECLAIM:         func() proto.Message { return &meridianv1.Reclaim{} },
}

var marshalDeterministic = proto.MarshalOptions{Deterministic: true}

// EncodeCommand wraps m in a version-1 envelope of type t. m must be the
// payload message t names (an *AppendBatch for COMMAND_TYPE_APPEND_BATCH).
func EncodeCommand(t meridianv1.CommandType, m proto.Message) ([]byte, error) {
	newPayload, ok := commandPayloads[t]
	if !ok {
		return nil, fmt.Errorf("%w: type %v", ErrUnknownCommand, t)
	}
	if m == nil || m.ProtoReflect().Descriptor() != newPayload().ProtoReflect().Descriptor() {
		return nil, fmt.Errorf("%w: type %v needs payload %s", ErrUnknownCommand, t,
			newPayload().ProtoReflect().Descriptor().FullName())
	}
	payload, err := marshalDeterministic.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("region: encode %v payload: %w", t, err)
	}
	return marshalDeterministic.Marshal(&meridianv1.Command{Version: CommandVersion, Type: t, Payload: payload})
}

// DecodeCommand decodes an envelope. An unknown version or type, or bytes
// that are not an envelope, give an error wrapping ErrUnknownCommand or
// ErrCorruptState. The payload is left encoded: see DecodePayload.
func DecodeCommand(b []byte) (*meridianv1.Command, error) {
	var c meridianv1.Command
	if err := proto.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: command envelope: %v", ErrCorruptState, err)
	}
	if c.GetVersion() != CommandVersion {
		return nil, fmt.Errorf("%w: envelope version %d (this build reads %d)", ErrUnknownCommand, c.GetVersion(), CommandVersion)
	}
	if _, ok := commandPayloads[c.GetType()]; !ok {
		return nil, fmt.Errorf("%w: type %v", ErrUnknownCommand, c.GetType())
	}
	return &c, nil
}

// DecodePayload decodes the payload of a decoded envelope into the message
// its type names.
func DecodePayload(c *meridianv1.Command) (proto.Message, error) {
	newPayload, ok := commandPayloads[c.GetType()]
	if !ok {
		return nil, fmt.Errorf("%w: type %v", ErrUnknownCommand, c.GetType())
	}
	m := newPayload()
	if err := proto.Unmarshal(c.GetPayload(), m); err != nil {
		return nil, fmt.Errorf("%w: %v payload: %v", ErrCorruptState, c.GetType(), err)
	}
	return m, nil
}
