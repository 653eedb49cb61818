package node

import (
	"testing"

	"github.com/stretchr/testify/assert"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func TestLevelOf(t *testing.T) {
	for _, tc := range []struct {
		msg  any
		want string
	}{
		{&meridianv1.ReadRequest{}, "session"},
		{&meridianv1.ReadRequest{Consistency: meridianv1.Consistency_CONSISTENCY_EVENTUAL}, "eventual"},
		{&meridianv1.ReadStateRequest{Consistency: meridianv1.Consistency_CONSISTENCY_STRONG}, "strong"},
		{&meridianv1.AppendRequest{}, "region"},
		{&meridianv1.AppendRequest{Durability: meridianv1.Durability_DURABILITY_MULTI_REGION}, "multi_region"},
		{&meridianv1.StatusRequest{}, ""},
	} {
		assert.Equal(t, tc.want, levelOf(tc.msg), "%T %v", tc.msg, tc.msg)
	}
}
