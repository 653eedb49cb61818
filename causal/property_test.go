package causal

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Property tests. Each runs propertyChecks cases (see main_test.go); rapid
// prints the seed of a failing case, and -rapid.seed replays it.

var propRegions = []string{"a", "b", "c", "d"}

func genVector() *rapid.Generator[Vector] {
	return rapid.Custom(func(t *rapid.T) Vector {
		v := Vector{}
		for _, r := range propRegions {
			if s := rapid.Uint64Range(0, 4).Draw(t, r); s > 0 {
				v[r] = s
			}
		}
		return v
	})
}

func genWideVector() *rapid.Generator[Vector] {
	return rapid.Custom(func(t *rapid.T) Vector {
		n := rapid.IntRange(0, 6).Draw(t, "n")
		v := Vector{}
		for range n {
			r := rapid.StringMatching(`[a-z0-9-]{1,12}`).Draw(t, "region")
			v[r] = rapid.Uint64().Draw(t, "seq")
		}
		return v
	})
}

func TestPropVectorPartialOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genVector().Draw(t, "a"), genVector().Draw(t, "b"), genVector().Draw(t, "c")
		if a.Compare(a) != Equal {
			t.Fatalf("not reflexive: %v", a)
		}
		inverse := map[Ordering]Ordering{Equal: Equal, Before: After, After: Before, Concurrent: Concurrent}
		if got, want := b.Compare(a), inverse[a.Compare(b)]; got != want {
			t.Fatalf("not antisymmetric: %v vs %v: %v, reverse %v", a, b, a.Compare(b), got)
		}
		if a.Covers(b) && b.Covers(a) && !a.Equal(b) {
			t.Fatalf("mutual cover but not equal: %v %v", a, b)
		}
		if c.Covers(b) && b.Covers(a) && !c.Covers(a) {
			t.Fatalf("not transitive: %v <= %v <= %v", a, b, c)
		}
	})
}

func TestPropVectorMergeIsLeastUpperBound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genVector().Draw(t, "a"), genVector().Draw(t, "b"), genVector().Draw(t, "c")
		m := a.Merge(b)
		if !m.Covers(a) || !m.Covers(b) {
			t.Fatalf("merge %v not an upper bound of %v, %v", m, a, b)
		}
		if c.Covers(a) && c.Covers(b) && !c.Covers(m) {
			t.Fatalf("merge %v not least: %v also bounds %v, %v", m, c, a, b)
		}
		if !m.Equal(b.Merge(a)) {
			t.Fatal("merge not commutative")
		}
		if !a.Merge(b).Merge(c).Equal(a.Merge(b.Merge(c))) {
			t.Fatal("merge not associative")
		}
		if !a.Merge(a).Equal(a) {
			t.Fatal("merge not idempotent")
		}
	})
}

func TestPropVectorBinaryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genWideVector().Draw(t, "v")
		b, err := v.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalVector(b)
		if err != nil {
			t.Fatalf("decode of own encoding %x: %v", b, err)
		}
		if !got.Equal(v) {
			t.Fatalf("round trip %v -> %v", v, got)
		}
		b2, _ := got.Clone().MarshalBinary()
		if string(b2) != string(b) {
			t.Fatalf("encoding not deterministic: %x vs %x", b, b2)
		}
		tok := FormatToken(v)
		tv, err := ParseToken(tok)
		if err != nil || !tv.Equal(v) {
			t.Fatalf("token round trip %v -> %v, %v", v, tv, err)
		}
	})
}

// genHistory generates a causal history: events at random regions, each
// depending on a random prefix of what exists already.
func genHistory(t *rapid.T, n int) []Event[int] {
	count := map[string]uint64{}
	var out []Event[int]
	for i := range n {
		r := rapid.SampledFrom(propRegions[:3]).Draw(t, "origin")
		seq := count[r] + 1
		deps := Vector{}
		for _, x := range propRegions[:3] {
			hi := count[x]
			if x == r {
				hi = seq - 1
			}
			if d := rapid.Uint64Range(0, hi).Draw(t, "dep"); d > 0 {
				deps[x] = d
			}
		}
		count[r] = seq
		out = append(out, Event[int]{Dot: Dot{r, seq}, Deps: deps, Payload: i})
	}
	return out
}

// TestPropBufferReleasesCausalOrderExactlyOnce: random arrival orders with
// duplicates and a small bound (full buffer = re-offer later, like a puller
// backing off); the output is every event exactly once, in an order where
// each event follows its origin predecessor and its deps.
func TestPropBufferReleasesCausalOrderExactlyOnce(t *testing.T) {
	rapid.Check(t, propBufferCausalExactlyOnce)
}

// FuzzBufferCausalExactlyOnce runs the same property under the fuzzer.
func FuzzBufferCausalExactlyOnce(f *testing.F) {
	f.Fuzz(rapid.MakeFuzz(propBufferCausalExactlyOnce))
}

func propBufferCausalExactlyOnce(t *rapid.T) {
	hist := genHistory(t, rapid.IntRange(0, 12).Draw(t, "n"))
	arrivals := make([]Event[int], 0, 2*len(hist))
	arrivals = append(arrivals, hist...)
	for range rapid.IntRange(0, 4).Draw(t, "dups") {
		if len(hist) > 0 {
			arrivals = append(arrivals, hist[rapid.IntRange(0, len(hist)-1).Draw(t, "dup")])
		}
	}
	arrivals = rapid.Permutation(arrivals).Draw(t, "arrivals")
	b, err := NewBuffer[int](BufferConfig{EventsMax: rapid.IntRange(1, 6).Draw(t, "max")})
	if err != nil {
		t.Fatal(err)
	}
	var out []Event[int]
	released := Vector{}
	seen := map[int]bool{}
	for guard := 0; len(arrivals) > 0; guard++ {
		if guard > 10_000 {
			t.Fatal("no progress")
		}
		e := arrivals[0]
		arrivals = arrivals[1:]
		out, err = b.Add(out[:0], e)
		if errors.Is(err, ErrBufferFull) {
			arrivals = append(arrivals, e)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out {
			if seen[r.Payload] {
				t.Fatalf("%s released twice", r.Dot)
			}
			seen[r.Payload] = true
			if !Deliverable(released, r.Dot, r.Deps) {
				t.Fatalf("%s released before its deps %v (released %v)", r.Dot, r.Deps, released)
			}
			released.AddDot(r.Dot)
		}
		if b.Len() > b.eventsMax {
			t.Fatalf("holding %d > max %d", b.Len(), b.eventsMax)
		}
	}
	if len(seen) != len(hist) || b.Len() != 0 {
		t.Fatalf("released %d of %d, %d held", len(seen), len(hist), b.Len())
	}
}

// TestPropHLCMonotonic: under any sequence of wall-clock moves (both ways),
// local readings and remote updates, every reading is strictly greater than
// the previous one and than the remote timestamp it merged, never below the
// wall clock, and a rejected update changes nothing.
func TestPropHLCMonotonic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clk := newManualClock(rapid.Int64Range(0, 1000).Draw(t, "start"))
		maxOffset := time.Duration(rapid.Int64Range(0, 50).Draw(t, "maxOffset"))
		c := NewHLC(clk, maxOffset)
		var last Timestamp
		for range rapid.IntRange(1, 20).Draw(t, "steps") {
			clk.Add(time.Duration(rapid.Int64Range(-100, 100).Draw(t, "jump")))
			var ts Timestamp
			if rapid.Bool().Draw(t, "update") {
				remote := Timestamp{
					WallNanos: clk.nanos.Load() + rapid.Int64Range(-100, 100).Draw(t, "skew"),
					Logical:   rapid.Uint32Range(0, 3).Draw(t, "logical"),
				}
				var err error
				ts, err = c.Update(remote)
				if err != nil {
					if maxOffset == 0 || remote.WallNanos-clk.nanos.Load() <= int64(maxOffset) {
						t.Fatalf("rejected %s within offset %s: %v", remote, maxOffset, err)
					}
					if c.Last() != last {
						t.Fatalf("rejected update moved the clock from %s to %s", last, c.Last())
					}
					continue
				}
				if ts.Compare(remote) <= 0 {
					t.Fatalf("update returned %s, not after remote %s", ts, remote)
				}
			} else {
				ts = c.Now()
			}
			if ts.Compare(last) <= 0 {
				t.Fatalf("reading %s not after previous %s", ts, last)
			}
			if ts.WallNanos < clk.nanos.Load() {
				t.Fatalf("reading %s behind wall clock %d", ts, clk.nanos.Load())
			}
			last = ts
		}
	})
}
