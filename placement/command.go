package placement

import (
	"fmt"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// CommandVersion is the envelope version this code writes and reads.
const CommandVersion = 1

// commandPayloads names, per command type, the payload message it carries.
// A type missing here is unknown: DecodeCommand rejects it. Every type here
// has a handler in commandHandlers (apply.go).
var commandPayloads = map[meridianv1.PlacementCommandType]func() proto.Message{
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES: func() proto.Message { return &meridianv1.SetRulesCommand{} },
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN:       func() proto.Message { return &meridianv1.PinCommand{} },
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_UNPIN:     func() proto.Message { return &meridianv1.UnpinCommand{} },
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_JOIN:      func() proto.Message { return &meridianv1.JoinCommand{} },
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ACK_TRANSITION: func() proto.Message {
		return &meridianv1.AckTransitionCommand{}
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_ABORT_TRANSITION: func() proto.Message {
		return &meridianv1.AbortTransitionCommand{}
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_RENEW_LEASE: func() proto.Message {
		return &meridianv1.RenewLeaseCommand{}
	},
	meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_FAILOVER: func() proto.Message {
		return &meridianv1.FailoverCommand{}
	},
}

// decodePayload decodes a payload of type t (a staged transition's command).
func decodePayload(t meridianv1.PlacementCommandType, b []byte) (proto.Message, error) {
	newPayload, ok := commandPayloads[t]
	if !ok {
		return nil, fmt.Errorf("%w: type %v", ErrUnknownCommand, t)
	}
	m := newPayload()
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %v payload: %v", ErrCorruptState, t, err)
	}
	return m, nil
}

// marshalDeterministic: replicas and snapshots write the same bytes for the
// same message.
var marshalDeterministic = proto.MarshalOptions{Deterministic: true}

// EncodeCommand wraps m in a version-1 envelope of type t. m must be the
// payload message t names (a *SetRulesCommand for
// PLACEMENT_COMMAND_TYPE_SET_RULES, and so on); otherwise the error wraps
// ErrUnknownCommand.
func EncodeCommand(t meridianv1.PlacementCommandType, m proto.Message) ([]byte, error) {
	newPayload, ok := commandPayloads[t]
	if !ok {
		return nil, fmt.Errorf("%w: type %v", ErrUnknownCommand, t)
	}
	want := newPayload().ProtoReflect().Descriptor()
	if m == nil || m.ProtoReflect().Descriptor() != want {
		return nil, fmt.Errorf("%w: type %v needs payload %s", ErrUnknownCommand, t, want.FullName())
	}
	payload, err := marshalDeterministic.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("placement: encode %v payload: %w", t, err)
	}
	return marshalDeterministic.Marshal(&meridianv1.PlacementCommand{Version: CommandVersion, Type: t, Payload: payload})
}

// DecodeCommand decodes an envelope and its payload. An unknown version or
// type gives an error wrapping ErrUnknownCommand; bytes that are not an
// envelope, or a payload that does not decode, one wrapping ErrCorruptState.
func DecodeCommand(b []byte) (meridianv1.PlacementCommandType, proto.Message, error) {
	var c meridianv1.PlacementCommand
	if err := proto.Unmarshal(b, &c); err != nil {
		return 0, nil, fmt.Errorf("%w: command envelope: %v", ErrCorruptState, err)
	}
	if c.GetVersion() != CommandVersion {
		return 0, nil, fmt.Errorf("%w: envelope version %d (this build reads %d)", ErrUnknownCommand, c.GetVersion(), CommandVersion)
	}
	newPayload, ok := commandPayloads[c.GetType()]
	if !ok {
		return 0, nil, fmt.Errorf("%w: type %v", ErrUnknownCommand, c.GetType())
	}
	m := newPayload()
	if err := proto.Unmarshal(c.GetPayload(), m); err != nil {
		return 0, nil, fmt.Errorf("%w: %v payload: %v", ErrCorruptState, c.GetType(), err)
	}
	return c.GetType(), m, nil
}
