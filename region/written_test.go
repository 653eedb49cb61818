package region

import (
	"testing"

	"github.com/stretchr/testify/assert"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

func TestWrittenHoldsOnlyItsOwnDotsAtItsVersions(t *testing.T) {
	w := Written{Entity: "eu/m", First: 4, Last: 5, Origin: "eu-west", Seq: 17}
	ev := func(version uint64, region string, seq uint64) *meridianv1.Event {
		return &meridianv1.Event{Version: version, Origin: &meridianv1.Dot{Region: region, Seq: seq}}
	}
	for _, tc := range []struct {
		name   string
		events []*meridianv1.Event
		holds  bool
	}{
		{"both events, in place", []*meridianv1.Event{ev(4, "eu-west", 17), ev(5, "eu-west", 18)}, true},
		{"more after them", []*meridianv1.Event{ev(4, "eu-west", 17), ev(5, "eu-west", 18), ev(6, "us-east", 3)}, true},
		{"not applied yet", nil, false},
		{"only the first", []*meridianv1.Event{ev(4, "eu-west", 17)}, false},
		{"the new home's event at the version (superseded)", []*meridianv1.Event{ev(4, "us-east", 9), ev(5, "eu-west", 17)}, false},
		{"another dot of the origin", []*meridianv1.Event{ev(4, "eu-west", 16), ev(5, "eu-west", 17)}, false},
		{"shifted versions", []*meridianv1.Event{ev(5, "eu-west", 17), ev(6, "eu-west", 18)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.holds, w.Holds(tc.events))
		})
	}
}
