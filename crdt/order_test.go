package crdt

import (
	"testing"

	"github.com/meridiandb/meridian/causal"
	"github.com/stretchr/testify/require"
)

func oev(region string, seq uint64, wall int64, deps causal.Vector) Event[string] {
	d := causal.Dot{Region: region, Seq: seq}
	return Event[string]{Dot: d, Deps: deps, HLC: causal.Timestamp{WallNanos: wall}, Payload: d.String()}
}

func orderPayloads(t *testing.T, in []Event[string]) []string {
	t.Helper()
	out, err := Order(in)
	require.NoError(t, err)
	var ps []string
	for _, e := range out {
		ps = append(ps, e.Payload)
	}
	return ps
}

func TestOrder(t *testing.T) {
	cases := []struct {
		name string
		in   []Event[string]
		want []string
	}{
		{"empty", nil, nil},
		{"concurrent by hlc", []Event[string]{oev("us", 1, 5, nil), oev("eu", 1, 9, nil)}, []string{"us:1", "eu:1"}},
		{"concurrent equal hlc by region", []Event[string]{oev("us", 1, 5, nil), oev("eu", 1, 5, nil)}, []string{"eu:1", "us:1"}},
		{"causal beats hlc", []Event[string]{oev("us", 1, 1, causal.Vector{"eu": 1}), oev("eu", 1, 9, nil)}, []string{"eu:1", "us:1"}},
		{"origin fifo beats hlc", []Event[string]{oev("eu", 2, 1, nil), oev("eu", 1, 9, nil)}, []string{"eu:1", "eu:2"}},
		{"gap in origin seqs", []Event[string]{oev("eu", 7, 1, nil), oev("eu", 3, 9, nil), oev("us", 1, 0, causal.Vector{"eu": 5})},
			[]string{"eu:3", "us:1", "eu:7"}},
		{"duplicates kept once", []Event[string]{oev("eu", 1, 1, nil), oev("eu", 1, 1, nil)}, []string{"eu:1"}},
		{"transitive", []Event[string]{
			oev("ap", 1, 1, causal.Vector{"us": 1}), oev("us", 1, 2, causal.Vector{"eu": 1}), oev("eu", 1, 3, nil), oev("sa", 1, 0, nil)},
			[]string{"sa:1", "eu:1", "us:1", "ap:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, orderPayloads(t, tc.in))
		})
	}
}

func TestOrderRejectsCycles(t *testing.T) {
	_, err := Order([]Event[string]{oev("eu", 1, 1, causal.Vector{"us": 1}), oev("us", 1, 1, causal.Vector{"eu": 1})})
	require.ErrorIs(t, err, ErrCausalCycle)
	_, err = Order([]Event[string]{oev("eu", 1, 1, causal.Vector{"eu": 1})})
	require.ErrorIs(t, err, ErrCausalCycle)
}
