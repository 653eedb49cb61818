package placement

import (
	"bytes"
	"fmt"
)

// The Badger key schema of the placement state machine, in one place. Entity
// ids and member ids are validated text (ValidateEntity, ValidateMember), so
// the rest of a key after its family prefix is the name, unambiguously.
//
//	t/rules          PlacementRuleSet (proto)     rules, default region, rules_index
//	p/<entity>       PlacementPin (proto)         one explicit pin
//	n/<member id>    Member (proto)               one member of the directory
//	l/<region>       RegionLease (proto)          a region's home lease
//	t/transition     PlacementTransition (proto)  the last change that moved homes
//	s/apply          PlacementApplyState (proto)  applied index and term
//	s/restoring      empty                        a Restore is in progress
//
// Every data key sorts before the s/ family, and n/ before p/ before t/: a
// snapshot streams members, then pins, in key order.
const (
	prefixPin          = "p/"
	prefixMember       = "n/"
	prefixLease        = "l/"
	keyRulesText       = "t/rules"
	keyTransitionText  = "t/transition"
	keyApplyStateText  = "s/apply"
	keyRestoringText   = "s/restoring"
	keyFamilyPrefixLen = 2
)

var (
	keyRules      = []byte(keyRulesText)
	keyTransition = []byte(keyTransitionText)
	keyApplyState = []byte(keyApplyStateText)
	keyRestoring  = []byte(keyRestoringText)
)

// dataPrefixes are the key families Restore drops: everything but the
// s/restoring marker.
var dataPrefixes = [][]byte{[]byte(prefixPin), []byte(prefixMember), []byte(prefixLease), keyRules, keyTransition, keyApplyState}

// keyKind names a key family.
type keyKind uint8

const (
	keyUnknown keyKind = iota
	keyKindRules
	keyKindPin
	keyKindMember
	keyKindApplyState
	keyKindRestoring
	keyKindTransition
	keyKindLease
)

// pinKey is p/<entity>.
func pinKey(entity string) []byte { return append([]byte(prefixPin), entity...) }

// leaseKey is l/<region>.
func leaseKey(region string) []byte { return append([]byte(prefixLease), region...) }

// memberKey is n/<member id>.
func memberKey(id string) []byte { return append([]byte(prefixMember), id...) }

// parseKey returns a key's family and, for p/ and n/, its name. It accepts
// exactly what the constructors above produce for a non-empty name
// (FuzzParseKey).
func parseKey(b []byte) (keyKind, string, error) {
	switch {
	case bytes.Equal(b, keyRules):
		return keyKindRules, "", nil
	case bytes.Equal(b, keyTransition):
		return keyKindTransition, "", nil
	case bytes.Equal(b, keyApplyState):
		return keyKindApplyState, "", nil
	case bytes.Equal(b, keyRestoring):
		return keyKindRestoring, "", nil
	case len(b) > keyFamilyPrefixLen && string(b[:keyFamilyPrefixLen]) == prefixPin:
		return keyKindPin, string(b[keyFamilyPrefixLen:]), nil
	case len(b) > keyFamilyPrefixLen && string(b[:keyFamilyPrefixLen]) == prefixMember:
		return keyKindMember, string(b[keyFamilyPrefixLen:]), nil
	case len(b) > keyFamilyPrefixLen && string(b[:keyFamilyPrefixLen]) == prefixLease:
		return keyKindLease, string(b[keyFamilyPrefixLen:]), nil
	}
	return keyUnknown, "", fmt.Errorf("%w: key %q: unknown family", ErrCorruptState, truncate(string(b), 64))
}
