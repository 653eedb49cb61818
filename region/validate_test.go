package region

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateAppend(t *testing.T) {
	lim := DefaultLimits()
	many := func(n int) []*meridianv1.ProposedEvent {
		evs := make([]*meridianv1.ProposedEvent, n)
		for i := range evs {
			evs[i] = pev(i+1, "T", "")
		}
		return evs
	}
	withMeta := func(n int) *meridianv1.ProposedEvent {
		e := pev(1, "T", "")
		e.Metadata = map[string]string{}
		for i := 0; i < n; i++ {
			e.Metadata[fmt.Sprint(i)] = "v"
		}
		return e
	}
	big := func(n int) *meridianv1.ProposedEvent {
		e := pev(1, "T", "")
		e.Data = make([]byte, n)
		return e
	}
	for _, tc := range []struct {
		name      string
		op        *meridianv1.AppendOp
		wantField string // "" means valid
		wantIn    string // substring of the reason
	}{
		{"valid", aop("order/1", nil, pev(1, "T", "x")), "", ""},
		{"valid charset", aop("Aa0._:/-z", nil, pev(1, "T", "x")), "", ""},
		{"valid at limits", &meridianv1.AppendOp{Entity: strings.Repeat("a", 256), Events: []*meridianv1.ProposedEvent{{Id: eid(1), Type: strings.Repeat("t", 256), Data: make([]byte, 1<<20-256)}}}, "", ""},
		{"nil op", nil, "append", "must be set"},
		{"empty entity", aop("", nil, pev(1, "T", "")), "entity", "1 to 256 bytes"},
		{"entity too long", aop(strings.Repeat("a", 257), nil, pev(1, "T", "")), "entity", "got 257"},
		{"entity leading slash", aop("/a", nil, pev(1, "T", "")), "entity", "must not start with '/'"},
		{"entity space", aop("a b", nil, pev(1, "T", "")), "entity", "[A-Za-z0-9._:/-]"},
		{"entity nul", aop("a\x00b", nil, pev(1, "T", "")), "entity", "[A-Za-z0-9._:/-]"},
		{"entity unicode", aop("é", nil, pev(1, "T", "")), "entity", "[A-Za-z0-9._:/-]"},
		{"empty append", aop("a", nil), "events", "1 to 1000 events, got 0"},
		{"too many events", aop("a", nil, many(1001)...), "events", "1 to 1000 events, got 1001"},
		{"nil event", aop("a", nil, pev(1, "T", ""), nil), "events[1]", "must be set"},
		{"id empty", aop("a", nil, &meridianv1.ProposedEvent{Type: "T"}), "events[0].id", "canonical form"},
		{"id garbage", aop("a", nil, &meridianv1.ProposedEvent{Id: "not-a-uuid", Type: "T"}), "events[0].id", "canonical form"},
		{"id uppercase", aop("a", nil, &meridianv1.ProposedEvent{Id: strings.ToUpper("0000000a-0000-4000-8000-00000000000b"), Type: "T"}), "events[0].id", "lowercase"},
		{"id without hyphens", aop("a", nil, &meridianv1.ProposedEvent{Id: "0000000a000040008000000000000000", Type: "T"}), "events[0].id", "8-4-4-4-12"},
		{"id urn", aop("a", nil, &meridianv1.ProposedEvent{Id: "urn:uuid:" + eid(1), Type: "T"}), "events[0].id", "canonical form"},
		{"id braces", aop("a", nil, &meridianv1.ProposedEvent{Id: "{" + eid(1) + "}", Type: "T"}), "events[0].id", "canonical form"},
		{"id nil uuid", aop("a", nil, &meridianv1.ProposedEvent{Id: "00000000-0000-0000-0000-000000000000", Type: "T"}), "events[0].id", "nil UUID"},
		{"duplicate ids", aop("a", nil, pev(1, "T", ""), pev(2, "T", ""), pev(1, "T", "")), "events[2].id", "duplicates events[0].id"},
		{"empty type", aop("a", nil, pev(1, "", "")), "events[0].type", "1 to 256 bytes, got 0"},
		{"type too long", aop("a", nil, pev(1, strings.Repeat("t", 257), "")), "events[0].type", "got 257"},
		{"content type too long", aop("a", nil, &meridianv1.ProposedEvent{Id: eid(1), Type: "T", ContentType: strings.Repeat("c", 257)}), "events[0].content_type", "at most 256"},
		{"too much metadata", aop("a", nil, withMeta(65)), "events[0].metadata", "at most 64 entries, got 65"},
		{"event over 1 MiB", aop("a", nil, pev(2, "T", ""), big(1<<20)), "events[1]", "at most 1048576 bytes"},
		{"append over 4 MiB", aop("a", nil, func() []*meridianv1.ProposedEvent {
			evs := many(5)
			for _, e := range evs {
				e.Data = make([]byte, 1<<20-10)
			}
			return evs
		}()...), "events", "total at most 4194304 bytes"},
		{"bad deps region", &meridianv1.AppendOp{Entity: "a", Events: many(1), Deps: map[string]uint64{"a/b": 1}}, "deps", "[A-Za-z0-9._-]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateAppend(tc.op, lim)
			if tc.wantField == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidArgument)
			var ia *InvalidArgumentError
			require.True(t, errors.As(err, &ia))
			assert.Equal(t, tc.wantField, ia.Field)
			assert.Contains(t, ia.Reason, tc.wantIn)
			assert.Contains(t, err.Error(), tc.wantField)
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	require.NoError(t, DefaultLimits().Validate())
	require.NoError(t, HardLimits().Validate())
	l := DefaultLimits()
	l.EventBytesMax = 0
	require.ErrorIs(t, l.Validate(), ErrInvalidConfig)
	l = DefaultLimits()
	l.AppendBytesMax = HardLimits().AppendBytesMax + 1
	require.ErrorIs(t, l.Validate(), ErrInvalidConfig)
}
