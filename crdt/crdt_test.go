package crdt

import (
	"math"
	"testing"

	"github.com/meridiandb/meridian/causal"
	"github.com/stretchr/testify/require"
)

func meta(region string, seq uint64, wall int64) Meta {
	return Meta{Dot: causal.Dot{Region: region, Seq: seq}, HLC: causal.Timestamp{WallNanos: wall}}
}

func TestMetaCompare(t *testing.T) {
	cases := []struct {
		name string
		a, b Meta
		want int
	}{
		{"hlc first", meta("us", 1, 10), meta("eu", 9, 20), -1},
		{"then region", meta("eu", 9, 10), meta("us", 1, 10), -1},
		{"then seq", meta("eu", 2, 10), meta("eu", 1, 10), 1},
		{"equal", meta("eu", 2, 10), meta("eu", 2, 10), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.a.Compare(tc.b))
			require.Equal(t, -tc.want, tc.b.Compare(tc.a))
		})
	}
}

func TestPNCounter(t *testing.T) {
	c := NewPNCounter()
	require.True(t, c.Apply(c.Add(meta("eu", 1, 1), 5)))
	require.True(t, c.Apply(c.Add(meta("us", 1, 1), -7)))
	require.False(t, c.Apply(c.Add(meta("eu", 1, 1), 5)), "duplicate")
	require.Equal(t, int64(-2), c.Value())

	d := NewPNCounter()
	d.Apply(CounterOp{Meta: meta("eu", 1, 1), Delta: 5})
	d.Apply(CounterOp{Meta: meta("eu", 2, 1), Delta: 10})
	c.Merge(d)
	require.Equal(t, int64(8), c.Value())
	require.Equal(t, causal.Vector{"eu": 2, "us": 1}, c.Context())

	e := NewPNCounter()
	e.Apply(CounterOp{Meta: meta("eu", 1, 1), Delta: math.MinInt64})
	e.Apply(CounterOp{Meta: meta("eu", 2, 1), Delta: math.MaxInt64})
	require.Equal(t, int64(-1), e.Value())
	require.Equal(t, int64(-1), e.Clone().Value())
}

func TestORSetAddWins(t *testing.T) {
	eu, us := NewORSet[string](), NewORSet[string]()
	add := eu.Add(meta("eu", 1, 1), "x")
	eu.Apply(add)
	us.Apply(add)
	// Concurrently: us removes x (having seen the add), eu adds x again.
	rm := us.Remove(meta("us", 1, 2), "x")
	re := eu.Add(meta("eu", 2, 2), "x")
	us.Apply(rm)
	require.False(t, us.Has("x"))
	eu.Apply(re)
	eu.Apply(rm)
	us.Apply(re)
	require.True(t, eu.Has("x"), "add concurrent with remove wins")
	require.True(t, us.Has("x"))
	require.Equal(t, []string{"x"}, eu.Elements())

	// A remove that saw every add removes it everywhere.
	rm2 := eu.Remove(meta("eu", 3, 3), "x")
	eu.Apply(rm2)
	us.Apply(rm2)
	require.Zero(t, eu.Len())
	require.Zero(t, us.Len())
	require.False(t, us.Apply(rm2), "duplicate")
}

func TestMVRegisterKeepsConcurrentValues(t *testing.T) {
	a, b := NewMVRegister[string](), NewMVRegister[string]()
	wa := a.Write(meta("eu", 1, 20), "A")
	wb := b.Write(meta("us", 1, 10), "B")
	a.Apply(wa)
	a.Apply(wb)
	b.Apply(wb)
	b.Apply(wa)
	require.Equal(t, []string{"B", "A"}, a.Values(), "ordered by HLC")
	require.Equal(t, a.Values(), b.Values())
	w := b.Write(meta("us", 2, 5), "C") // saw both: replaces both
	a.Apply(w)
	require.Equal(t, []string{"C"}, a.Values())
	require.Len(t, a.Entries(), 1)
}

func TestLWWRegisterExposesLosers(t *testing.T) {
	cases := []struct {
		name      string
		ops       []RegisterOp[string]
		want      string
		wantLoser []string
	}{
		{"later hlc wins", []RegisterOp[string]{
			{Meta: meta("eu", 1, 10), Value: "old"}, {Meta: meta("us", 1, 20), Value: "new"}},
			"new", []string{"old"}},
		{"equal hlc: region breaks the tie", []RegisterOp[string]{
			{Meta: meta("us", 1, 10), Value: "us"}, {Meta: meta("eu", 1, 10), Value: "eu"}},
			"us", []string{"eu"}},
		{"causal overwrite is no conflict, even with an older hlc", []RegisterOp[string]{
			{Meta: meta("eu", 1, 50), Value: "first"},
			{Meta: meta("us", 1, 10), Context: causal.Vector{"eu": 1}, Value: "second"}},
			"second", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, perm := range [][]int{{0, 1}, {1, 0}} {
				if tc.ops[1].Context != nil && perm[0] == 1 {
					continue // not a causal order
				}
				r := NewLWWRegister[string]()
				for _, i := range perm {
					r.Apply(tc.ops[i])
				}
				require.Equal(t, tc.want, r.Value())
				var losers []string
				for _, l := range r.Losers() {
					losers = append(losers, l.Value)
				}
				require.Equal(t, tc.wantLoser, losers)
			}
		})
	}
	r := NewLWWRegister[int]()
	_, ok := r.Get()
	require.False(t, ok)
	require.Nil(t, r.Losers())
}

func TestORMapOfRegisters(t *testing.T) {
	m := NewORMap[string, int]()
	p1 := m.Put(meta("eu", 1, 1), "a", 1)
	m.Apply(p1)
	p2 := m.Put(meta("eu", 2, 2), "b", 2)
	m.Apply(p2)
	v, ok := m.Get("a")
	require.True(t, ok)
	require.Equal(t, 1, v)
	require.Equal(t, []string{"a", "b"}, m.Keys())

	other := NewORMap[string, int]()
	other.Apply(p1)
	del := other.Delete(meta("us", 1, 3), "a")  // saw p1
	put := other.Put(meta("us", 2, 4), "b", 20) // concurrent with p2
	other.Apply(del)
	other.Apply(put)
	m.Apply(del)
	m.Apply(put)
	other.Apply(p2)
	require.False(t, m.Has("a"))
	require.Equal(t, 1, m.Len())
	require.Len(t, m.Values("b"), 2, "concurrent puts are both kept")
	v, _ = m.Get("b")
	require.Equal(t, 20, v, "higher HLC wins the read")

	c := m.Clone()
	c.Merge(other)
	require.Equal(t, m.Keys(), c.Keys())
	require.Equal(t, m.Values("b"), other.Values("b"))
}
