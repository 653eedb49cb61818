package placement

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/require"
)

// Sizes of the lookup benchmark's table.
const (
	benchRules   = RulesMax  // rules (count)
	benchPins    = 1_000_000 // pins (count)
	benchRegions = 5         // regions (count)
	// benchSample is how many lookups are timed one by one for percentiles.
	benchSample = 200_000
)

var (
	benchOnce  sync.Once
	benchTable *table
	benchPinEs []string
)

func benchPinEntity(i int) string { return fmt.Sprintf("cust/%07d/orders", i) }

// benchLoad builds the benchmark table through apply's handlers and
// table.commit (the same validation, epoch rules and data structures as
// Apply), bypassing only Raft and Badger.
func benchLoad(b *testing.B) *table {
	benchOnce.Do(func() {
		start := time.Now()
		t := &table{s: newTableState()}
		index := uint64(0)
		apply := func(typ meridianv1.PlacementCommandType, m any) *ApplyResult {
			index++
			var (
				u   update
				res *ApplyResult
			)
			switch c := m.(type) {
			case *meridianv1.JoinCommand:
				u, res = commandHandlers[typ](t, c, index)
			case *meridianv1.SetRulesCommand:
				u, res = commandHandlers[typ](t, c, index)
			case *meridianv1.PinCommand:
				u, res = commandHandlers[typ](t, c, index)
			}
			t.commit(&u)
			return res
		}
		regions := make([]string, benchRegions)
		for i := range regions {
			regions[i] = fmt.Sprintf("region-%d", i)
			apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_JOIN, &meridianv1.JoinCommand{Member: member(regions[i], "n1")})
		}
		// Half the rules are tenant prefixes, half more specific VIP
		// prefixes listed first (nested, so lookups walk parent links).
		rules := make([]*meridianv1.PlacementRule, 0, benchRules)
		for i := range benchRules / 2 {
			rules = append(rules, rl(fmt.Sprintf("t%05d/vip/", i), regions[(i+1)%benchRegions]))
		}
		for i := range benchRules / 2 {
			rules = append(rules, rl(fmt.Sprintf("t%05d/", i), regions[i%benchRegions], regions[(i+2)%benchRegions]))
		}
		res := apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_SET_RULES, &meridianv1.SetRulesCommand{Rules: rules, DefaultRegion: regions[0]})
		require.NoError(b, res.Err)
		benchPinEs = make([]string, benchPins)
		pin := &meridianv1.PinCommand{}
		for i := range benchPins {
			benchPinEs[i] = benchPinEntity(i)
			pin.Entity, pin.Region = benchPinEs[i], regions[i%benchRegions]
			require.NoError(b, apply(meridianv1.PlacementCommandType_PLACEMENT_COMMAND_TYPE_PIN, pin).Err)
		}
		benchTable = t
		b.Logf("loaded %d rules and %d pins in %v", len(t.s.rules.rules), len(t.s.pins), time.Since(start))
	})
	return benchTable
}

// BenchmarkLookup: one lookup against 10,000 rules and 1,000,000 pins.
// ns/op is the mean; p50-ns and p99-ns time benchSample lookups one by one
// (each including a clock read of a few tens of ns).
func BenchmarkLookup(b *testing.B) {
	t := benchLoad(b)
	r := rand.New(rand.NewPCG(1, 2))
	const keys = 1 << 16
	for _, tc := range []struct {
		name   string
		entity func(i int) string
		source meridianv1.PlacementSource
	}{
		{"pin-hit", func(int) string { return benchPinEs[r.IntN(benchPins)] }, meridianv1.PlacementSource_PLACEMENT_SOURCE_PIN},
		{"rule-hit", func(int) string {
			if r.IntN(2) == 0 {
				return fmt.Sprintf("t%05d/vip/acct-%d", r.IntN(benchRules/2), r.IntN(1000))
			}
			return fmt.Sprintf("t%05d/acct-%d", r.IntN(benchRules/2), r.IntN(1000))
		}, meridianv1.PlacementSource_PLACEMENT_SOURCE_RULE},
		{"default", func(int) string { return fmt.Sprintf("u%05d/acct-%d", r.IntN(benchRules/2), r.IntN(1000)) }, meridianv1.PlacementSource_PLACEMENT_SOURCE_DEFAULT},
	} {
		entities := make([]string, keys)
		for i := range entities {
			entities[i] = tc.entity(i)
			require.Equal(b, tc.source, t.lookup(entities[i]).Source, entities[i])
		}
		b.Run(tc.name, func(b *testing.B) {
			var sink Placement
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sink = t.lookup(entities[i&(keys-1)])
				i++
			}
			b.StopTimer()
			p50, p99 := lookupPercentiles(t, entities)
			b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
			_ = sink
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(keys)
				for pb.Next() {
					_ = t.lookup(entities[i&(keys-1)])
					i++
				}
			})
		})
	}
}

func lookupPercentiles(t *table, entities []string) (p50, p99 time.Duration) {
	d := make([]time.Duration, benchSample)
	for i := range d {
		e := entities[i%len(entities)]
		start := time.Now()
		_ = t.lookup(e)
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// BenchmarkPinMemory reports the heap bytes one pin costs (entity string,
// map slot, interned region), measured after GC around inserting 1,000,000
// pins with the function apply uses.
func BenchmarkPinMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := newTableState()
		regions := []string{"eu", "us", "ap"}
		for i := range benchPins {
			s.putPin(benchPinEntity(i), regions[i%len(regions)], uint64(i+1))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchPins, "bytes/pin")
		runtime.KeepAlive(s)
	}
}
