package auth

import (
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
)

// need is what a procedure requires of its caller.
type need int

const (
	needRead need = iota + 1
	needWrite
	needAdmin
	// needNode: only nodes of the deployment, by certificate.
	needNode
)

// rule is one procedure's requirement. entity marks procedures whose
// request names an entity (GetEntity), so that a token limited to
// prefixes can be checked against it; a limited token may call the others
// only when they need no more than read.
type rule struct {
	need   need
	entity bool
}

// rules has one entry per procedure of every service a node serves; a
// procedure missing here is refused to everyone but nodes (and a test
// fails on it).
var rules = map[string]rule{
	meridianv1connect.EventStoreAppendProcedure:        {needWrite, true},
	meridianv1connect.EventStoreReadProcedure:          {needRead, true},
	meridianv1connect.EventStoreSubscribeProcedure:     {needRead, true},
	meridianv1connect.EventStoreReadLogProcedure:       {needRead, true},
	meridianv1connect.EventStoreReadStateProcedure:     {needRead, true},
	meridianv1connect.EventStoreReadConflictsProcedure: {needRead, true},
	meridianv1connect.EventStoreStatusProcedure:        {needRead, false},

	// Groups act on the region, not on an entity: a token limited to
	// prefixes may read them but not create, delete, commit or consume
	// (a group's deliveries and parked events are of any entity).
	meridianv1connect.ConsumerGroupsGetGroupProcedure:         {needRead, false},
	meridianv1connect.ConsumerGroupsListGroupsProcedure:       {needRead, false},
	meridianv1connect.ConsumerGroupsCreateGroupProcedure:      {needWrite, false},
	meridianv1connect.ConsumerGroupsDeleteGroupProcedure:      {needWrite, false},
	meridianv1connect.ConsumerGroupsCommitCheckpointProcedure: {needWrite, false},
	meridianv1connect.ConsumerGroupsFetchProcedure:            {needWrite, false},
	meridianv1connect.ConsumerGroupsAckProcedure:              {needWrite, false},
	meridianv1connect.ConsumerGroupsNackProcedure:             {needWrite, false},
	meridianv1connect.ConsumerGroupsDropParkedProcedure:       {needWrite, false},
	// ListParked returns events: it names no entity, so a token limited
	// to prefixes is refused.
	meridianv1connect.ConsumerGroupsListParkedProcedure: {needRead, true},

	meridianv1connect.MembershipListMembersProcedure: {needRead, false},
	meridianv1connect.MembershipLeaveProcedure:       {needAdmin, false},

	meridianv1connect.PlacementGetPlacementProcedure:  {needRead, true},
	meridianv1connect.PlacementListRulesProcedure:     {needRead, false},
	meridianv1connect.PlacementListRegionsProcedure:   {needRead, false},
	meridianv1connect.PlacementSetRulesProcedure:      {needAdmin, false},
	meridianv1connect.PlacementPinProcedure:           {needAdmin, true},
	meridianv1connect.PlacementUnpinProcedure:         {needAdmin, true},
	meridianv1connect.PlacementMoveProcedure:          {needAdmin, true},
	meridianv1connect.PlacementJoinProcedure:          {needNode, false},
	meridianv1connect.PlacementMemberStatsProcedure:   {needNode, false},
	meridianv1connect.PlacementAckTransitionProcedure: {needNode, false},
	meridianv1connect.PlacementRenewLeaseProcedure:    {needNode, false},

	meridianv1connect.ReplicationPullProcedure: {needNode, false},
}

func (n need) String() string {
	switch n {
	case needRead:
		return "read"
	case needWrite:
		return "write"
	case needAdmin:
		return "admin"
	case needNode:
		return "a node certificate"
	}
	return "nothing"
}
