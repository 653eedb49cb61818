package placement

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSeed returns the seed of a randomized test: MERIDIAN_SEED if set, else
// a random one; it is logged either way.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("MERIDIAN_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "MERIDIAN_SEED")
		seed = v
	}
	t.Logf("seed %d (replay with MERIDIAN_SEED=%d)", seed, seed)
	return seed
}

// randomName draws a short string over a tiny alphabet, so that prefixes
// nest and collide often.
func randomName(r *rand.Rand, maxLen int) string {
	const alphabet = "ab/"
	n := 1 + r.IntN(maxLen)
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// firstMatch is the rule semantics, by definition.
func firstMatch(prefixes []string, entity string) int {
	for i, p := range prefixes {
		if strings.HasPrefix(entity, p) {
			return i
		}
	}
	return -1
}

// orderUnshadowed puts longer prefixes first, which never shadows, after
// dropping duplicates.
func orderUnshadowed(r *rand.Rand, n, maxLen int) []string {
	seen := map[string]bool{}
	var out []string
	for range n {
		p := randomName(r, maxLen)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	// Stable by length descending keeps the shuffled order among equals.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestPrefixIndexIsFirstMatch: for rules that pass validation, the
// longest-prefix index answers what first-match order defines.
func TestPrefixIndexIsFirstMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 1))
	for round := range 300 {
		prefixes := orderUnshadowed(r, r.IntN(40), 6)
		rules := make([]*meridianv1.PlacementRule, len(prefixes))
		for i, p := range prefixes {
			rules[i] = rl(p, "a")
		}
		require.NoError(t, checkShadowing(rules), "round %d: %q", round, prefixes)
		ix := newPrefixIndex(prefixes)
		for range 50 {
			e := randomName(r, 9)
			require.Equal(t, firstMatch(prefixes, e), ix.longest(e), "round %d: %q in %q", round, e, prefixes)
		}
	}
}

// TestCheckShadowingMatchesDefinition compares the O(n log n) check with
// the quadratic definition on random, often shadowing, rule lists.
func TestCheckShadowingMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 2))
	for round := range 500 {
		n := r.IntN(12)
		prefixes := make([]string, n)
		rules := make([]*meridianv1.PlacementRule, n)
		for i := range prefixes {
			prefixes[i] = randomName(r, 4)
			rules[i] = rl(prefixes[i], "a")
		}
		wantJ, wantI := -1, -1
	outer:
		for j := range prefixes {
			for i := range j {
				if strings.HasPrefix(prefixes[j], prefixes[i]) {
					wantJ, wantI = j, i
					break outer
				}
			}
		}
		err := checkShadowing(rules)
		if wantJ < 0 {
			require.NoError(t, err, "round %d: %q", round, prefixes)
			continue
		}
		require.Error(t, err, "round %d: %q", round, prefixes)
		var ia *InvalidArgumentError
		require.ErrorAs(t, err, &ia)
		assert.Equal(t, "rules["+strconv.Itoa(wantJ)+"].prefix", ia.Field, "round %d: %q: %v", round, prefixes, err)
		assert.Contains(t, ia.Reason, "shadowed by rules["+strconv.Itoa(wantI)+"]", "round %d: %q", round, prefixes)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	f := newTestFSM(t)
	d := newDriver(t, f)
	d.joinRegions("eu", "us")
	d.mustSetRules("us", rl("eu/acct/", "eu"), rl("eu/", "us", "eu"))
	require.NoError(t, d.pin("pinned/1", "eu").Err)
	for _, e := range []string{"pinned/1", "eu/acct/1", "eu/x", "zzz"} {
		allocs := testing.AllocsPerRun(100, func() { _ = f.Lookup(e) })
		assert.Zero(t, allocs, "%s", e)
	}
}
