package region

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/causal"
)

// The Badger key schema of the region state machine, in one place.
// Integers are big-endian so that keys sort by number. Entity ids and region
// names never contain 0x00 (ValidateEntity, validateRegionName), so 0x00
// terminates them unambiguously and "e/<entity>\x00" is a prefix of exactly
// one stream's events.
//
//	e/<entity>\x00<version u64>   Event (proto)                 events of a stream
//	m/<entity>                    StreamHead (proto)            stream head
//	o/<origin>\x00<seq u64>       ref (entity, version)         per-origin log
//	i/<event id: 16 bytes>        IdempotencyRecord (proto)     TTL'd idempotency key
//	x/<position u64>              ref (entity, version)         region apply log
//	u/<origin>\x00<seq u64>       Event (proto)                 an event a failover superseded
//	q/<origin>\x00<seq u64>       empty                         superseded, not yet re-appended
//	r/<origin>\x00<seq u64>       ref (entity, version)         where a superseded event was re-appended
//	a/<entity>\x00<hlc 12><origin>\x00<seq u64>
//	                              Event (proto)                 a merged stream's events, in merged order
//	c/<entity>                    EntityState (proto)           an active-active entity's merged state
//	k/<entity>\x00<target>\x00<key>\x00<origin>\x00<seq u64>
//	                              StateWrite (proto)            a register's write history (state.go)
//	f/<entity>\x00<loser place><winner place>
//	                              Conflict (proto)              the conflict feed (state.go)
//	g/<group>                     ConsumerGroup (proto)         a consumer group (groups.go)
//	p/<group>\x00<origin>\x00<seq u64>
//	                              ParkedEvent (proto)           a group's parked event (groupack.go)
//	l/<entity>\x00<version u64>   empty                         a lifecycle event of the stream (lifecycle.go)
//	s/apply                       ApplyState (proto)            applied index, vector, positions
//
// An o/ ref whose version is 0 says that the event was superseded: it is
// at u/ under the same origin and seq. A ref whose version is refMerged
// points at an a/ key, which follows it in full.
//
// a/ keys sort a merged (active-active) stream in its merged order: HLC
// (wall nanos as u64 with the sign bit flipped, then logical u32), then
// origin region, then seq. That is crdt.Order's tiebreak, and because
// every stored event's HLC is above the HLC of everything it depends on
// (apply stamps above last_hlc, which covers every applied event), sorting
// by it extends causal order: it is crdt.Order of the stream's events
// (TestMergedKeysSortInCrdtOrder, TestMergedStreamsConvergeInEveryDeliveryOrder).
const (
	prefixEvent       = "e/"
	prefixHead        = "m/"
	prefixOrigin      = "o/"
	prefixIdempotency = "i/"
	prefixLog         = "x/"
	prefixSuperseded  = "u/"
	prefixRecovery    = "q/"
	prefixRecovered   = "r/"
	prefixMerged      = "a/"
	prefixState       = "c/"
	prefixHistory     = "k/"
	prefixConflict    = "f/"
	prefixGroup       = "g/"
	prefixParked      = "p/"
	prefixLifecycle   = "l/"
	keyApplyStateText = "s/apply"
)

var keyApplyState = []byte(keyApplyStateText)

// KeyKind names a key family.
type KeyKind uint8

// Key families.
const (
	KeyUnknown KeyKind = iota
	KeyEvent
	KeyHead
	KeyOrigin
	KeyIdempotency
	KeyLog
	KeyApplyState
	KeySuperseded
	KeyRecovery
	KeyRecovered
	KeyMerged
	KeyState
	KeyHistory
	KeyConflict
	KeyGroup
	KeyParked
	KeyLifecycle
)

// Key is a decoded state-machine key. Name is the entity (KeyEvent, KeyHead,
// KeyMerged) or the origin region (KeyOrigin); N is the version, seq or
// position. A KeyMerged key also has the event's HLC and origin region; a
// KeyParked key has the group as Name and the event's dot as Origin and N.
type Key struct {
	Kind    KeyKind
	Name    string
	N       uint64
	ID      uuid.UUID
	Wall    int64
	Logical uint32
	Origin  string
	// Rest is what follows the entity and its 0x00 in a KeyHistory or
	// KeyConflict key (not decoded further).
	Rest string
}

// Encode returns the key's bytes.
func (k Key) Encode() []byte {
	switch k.Kind {
	case KeyEvent:
		return nameNumKey(prefixEvent, k.Name, k.N)
	case KeyHead:
		return headKey(k.Name)
	case KeyOrigin:
		return nameNumKey(prefixOrigin, k.Name, k.N)
	case KeyIdempotency:
		return idempotencyKey(k.ID)
	case KeyLog:
		return logKey(k.N)
	case KeyApplyState:
		return append([]byte(nil), keyApplyState...)
	case KeySuperseded:
		return nameNumKey(prefixSuperseded, k.Name, k.N)
	case KeyRecovery:
		return nameNumKey(prefixRecovery, k.Name, k.N)
	case KeyRecovered:
		return nameNumKey(prefixRecovered, k.Name, k.N)
	case KeyMerged:
		return mergedKey(k.Name, hlc{wall: k.Wall, logical: k.Logical}, k.Origin, k.N)
	case KeyState:
		return stateKey(k.Name)
	case KeyGroup:
		return groupKey(k.Name)
	case KeyLifecycle:
		return lifecycleKey(k.Name, k.N)
	case KeyParked:
		return parkedKey(k.Name, causal.Dot{Region: k.Origin, Seq: k.N})
	case KeyHistory, KeyConflict:
		p := prefixHistory
		if k.Kind == KeyConflict {
			p = prefixConflict
		}
		return append(append(append([]byte(p), k.Name...), 0), k.Rest...)
	}
	return nil
}

// ParseKey decodes a key. ParseKey(b) succeeding implies k.Encode() equals b
// (checked by FuzzParseKey).
func ParseKey(b []byte) (Key, error) {
	if len(b) < 2 {
		return Key{}, fmt.Errorf("%w: key %q too short", ErrCorruptState, b)
	}
	p, rest := string(b[:2]), b[2:]
	switch p {
	case prefixEvent, prefixOrigin, prefixSuperseded, prefixRecovery, prefixRecovered, prefixLifecycle:
		name, n, err := parseNameNum(rest)
		if err != nil {
			return Key{}, fmt.Errorf("%w: key %q: %v", ErrCorruptState, b, err)
		}
		kind := map[string]KeyKind{prefixEvent: KeyEvent, prefixOrigin: KeyOrigin, prefixSuperseded: KeySuperseded,
			prefixRecovery: KeyRecovery, prefixRecovered: KeyRecovered, prefixLifecycle: KeyLifecycle}[p]
		return Key{Kind: kind, Name: name, N: n}, nil
	case prefixHead:
		if len(rest) == 0 || bytes.IndexByte(rest, 0) >= 0 {
			return Key{}, fmt.Errorf("%w: head key %q: empty entity or 0x00 in it", ErrCorruptState, b)
		}
		return Key{Kind: KeyHead, Name: string(rest)}, nil
	case prefixIdempotency:
		if len(rest) != 16 {
			return Key{}, fmt.Errorf("%w: idempotency key %q: want 16 id bytes", ErrCorruptState, b)
		}
		var id uuid.UUID
		copy(id[:], rest)
		return Key{Kind: KeyIdempotency, ID: id}, nil
	case prefixMerged:
		return parseMergedKey(b, rest)
	case prefixState:
		if len(rest) == 0 || bytes.IndexByte(rest, 0) >= 0 {
			return Key{}, fmt.Errorf("%w: state key %q: empty entity or 0x00 in it", ErrCorruptState, b)
		}
		return Key{Kind: KeyState, Name: string(rest)}, nil
	case prefixHistory, prefixConflict:
		i := bytes.IndexByte(rest, 0)
		if i <= 0 || i == len(rest)-1 {
			return Key{}, fmt.Errorf("%w: key %q: want entity, 0x00 and more", ErrCorruptState, b)
		}
		kind := KeyHistory
		if p == prefixConflict {
			kind = KeyConflict
		}
		return Key{Kind: kind, Name: string(rest[:i]), Rest: string(rest[i+1:])}, nil
	case prefixGroup:
		if err := ValidateGroupName(string(rest)); err != nil {
			return Key{}, fmt.Errorf("%w: group key %q: %v", ErrCorruptState, b, err)
		}
		return Key{Kind: KeyGroup, Name: string(rest)}, nil
	case prefixParked:
		i := bytes.IndexByte(rest, 0)
		if i < 0 || ValidateGroupName(string(rest[:i])) != nil {
			return Key{}, fmt.Errorf("%w: parked key %q: want a group name and 0x00", ErrCorruptState, b)
		}
		origin, seq, err := parseNameNum(rest[i+1:])
		if err != nil {
			return Key{}, fmt.Errorf("%w: parked key %q: %v", ErrCorruptState, b, err)
		}
		return Key{Kind: KeyParked, Name: string(rest[:i]), Origin: origin, N: seq}, nil
	case prefixLog:
		if len(rest) != 8 {
			return Key{}, fmt.Errorf("%w: log key %q: want 8 position bytes", ErrCorruptState, b)
		}
		return Key{Kind: KeyLog, N: binary.BigEndian.Uint64(rest)}, nil
	}
	if bytes.Equal(b, keyApplyState) {
		return Key{Kind: KeyApplyState}, nil
	}
	return Key{}, fmt.Errorf("%w: key %q: unknown family", ErrCorruptState, b)
}

func parseNameNum(rest []byte) (string, uint64, error) {
	i := bytes.IndexByte(rest, 0)
	if i <= 0 {
		return "", 0, fmt.Errorf("missing or empty name before 0x00")
	}
	if len(rest)-i-1 != 8 {
		return "", 0, fmt.Errorf("want 8 number bytes after the name, got %d", len(rest)-i-1)
	}
	return string(rest[:i]), binary.BigEndian.Uint64(rest[i+1:]), nil
}

// parseMergedKey decodes the rest of an a/ key: entity, 0x00, 12 HLC
// bytes, origin, 0x00, 8 seq bytes.
func parseMergedKey(b, rest []byte) (Key, error) {
	i := bytes.IndexByte(rest, 0)
	if i <= 0 || len(rest) < i+1+12+2+8 {
		return Key{}, fmt.Errorf("%w: merged key %q: want entity, 0x00, 12 HLC bytes, origin, 0x00, 8 seq bytes", ErrCorruptState, b)
	}
	entity, tail := string(rest[:i]), rest[i+1:]
	wall := int64(binary.BigEndian.Uint64(tail) ^ 1<<63)
	logical := binary.BigEndian.Uint32(tail[8:])
	origin, seq, err := parseNameNum(tail[12:])
	if err != nil {
		return Key{}, fmt.Errorf("%w: merged key %q: %v", ErrCorruptState, b, err)
	}
	return Key{Kind: KeyMerged, Name: entity, N: seq, Wall: wall, Logical: logical, Origin: origin}, nil
}

// mergedKey is a/<entity>\x00<hlc><origin>\x00<seq>: the event's place in
// its merged stream.
func mergedKey(entity string, h hlc, origin string, seq uint64) []byte {
	b := make([]byte, 0, 2+len(entity)+1+12+len(origin)+1+8)
	b = append(b, prefixMerged...)
	b = append(b, entity...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(h.wall)^1<<63)
	b = binary.BigEndian.AppendUint32(b, h.logical)
	b = append(b, origin...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, seq)
}

// mergedKeyOf is ev's a/ key.
func mergedKeyOf(ev *meridianv1.Event) []byte {
	return mergedKey(ev.GetEntity(), hlcOf(ev.GetHlc()), ev.GetOrigin().GetRegion(), ev.GetOrigin().GetSeq())
}

// mergedPrefix is the prefix of every a/ key of one stream.
func mergedPrefix(entity string) []byte {
	b := make([]byte, 0, 2+len(entity)+1)
	b = append(b, prefixMerged...)
	b = append(b, entity...)
	return append(b, 0)
}

func nameNumKey(prefix, name string, n uint64) []byte {
	b := make([]byte, 0, 2+len(name)+1+8)
	b = append(b, prefix...)
	b = append(b, name...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, n)
}

// eventKey is e/<entity>\x00<version>.
func eventKey(entity string, version uint64) []byte { return nameNumKey(prefixEvent, entity, version) }

// eventPrefix is the prefix of every event key of one stream.
func eventPrefix(entity string) []byte {
	b := make([]byte, 0, 2+len(entity)+1)
	b = append(b, prefixEvent...)
	b = append(b, entity...)
	return append(b, 0)
}

// headKey is m/<entity>.
func headKey(entity string) []byte { return append([]byte(prefixHead), entity...) }

// originKey is o/<origin region>\x00<seq>.
func originKey(origin string, seq uint64) []byte { return nameNumKey(prefixOrigin, origin, seq) }

// idempotencyKey is i/<16 id bytes>.
func idempotencyKey(id uuid.UUID) []byte { return append([]byte(prefixIdempotency), id[:]...) }

// supersededKey is u/<origin>\x00<seq>.
func supersededKey(origin string, seq uint64) []byte {
	return nameNumKey(prefixSuperseded, origin, seq)
}

// recoveryKey is q/<origin>\x00<seq>.
func recoveryKey(origin string, seq uint64) []byte { return nameNumKey(prefixRecovery, origin, seq) }

// recoveredKey is r/<origin>\x00<seq>.
func recoveredKey(origin string, seq uint64) []byte { return nameNumKey(prefixRecovered, origin, seq) }

// logKey is x/<position>.
func logKey(pos uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixLog), pos)
}

// ref is the value of o/, x/ and r/ keys: it points at
// e/<entity>\x00<version>; version 0 (o/ only) means superseded (see the
// schema); version refMerged points at the a/ key Merged. Encoding:
// version u64 big-endian, then the entity bytes (refMerged: the a/ key).
type ref struct {
	Entity  string
	Version uint64
	Merged  []byte
}

// refMerged is the version of a ref to an event of a merged stream.
const refMerged = ^uint64(0)

func encodeRef(r ref) []byte {
	if r.Version == refMerged {
		b := make([]byte, 8, 8+len(r.Merged))
		binary.BigEndian.PutUint64(b, r.Version)
		return append(b, r.Merged...)
	}
	b := make([]byte, 8, 8+len(r.Entity))
	binary.BigEndian.PutUint64(b, r.Version)
	return append(b, r.Entity...)
}

// mergedRef is the ref to a merged stream's event at a/ key k.
func mergedRef(k []byte) []byte { return encodeRef(ref{Version: refMerged, Merged: k}) }

func decodeRef(b []byte) (ref, error) {
	if len(b) < 9 {
		return ref{}, fmt.Errorf("%w: ref of %d bytes, want at least 9", ErrCorruptState, len(b))
	}
	v := binary.BigEndian.Uint64(b)
	if v == refMerged {
		k, err := ParseKey(b[8:])
		if err != nil || k.Kind != KeyMerged {
			return ref{}, fmt.Errorf("%w: merged ref to %q, not an a/ key", ErrCorruptState, b[8:])
		}
		return ref{Entity: k.Name, Version: v, Merged: append([]byte(nil), b[8:]...)}, nil
	}
	if bytes.IndexByte(b[8:], 0) >= 0 {
		return ref{}, fmt.Errorf("%w: ref entity contains 0x00", ErrCorruptState)
	}
	return ref{Entity: string(b[8:]), Version: v}, nil
}
