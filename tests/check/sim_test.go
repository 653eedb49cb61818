package check

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/tests/history"
)

// simBug is a deliberate defect of the simulated store.
type simBug string

const (
	bugNone        simBug = ""
	bugLostWrite   simBug = "lost-write"   // one replica misses an acknowledged event
	bugStaleStrong simBug = "stale-strong" // STRONG reads served from an old snapshot
	bugDuplicate   simBug = "duplicate"    // retries are appended again
	bugStaleSess   simBug = "stale-session"
)

// simStore is an in-memory event store: correct unless given a bug.
type simStore struct {
	mu      sync.Mutex
	bug     simBug
	streams map[string][]string
	ids     map[string][2]uint64 // first id of an append -> first, last
}

var errConflict = errors.New("wrong expected version")

func (s *simStore) append(entity string, ids []string, exp history.Expected) (first, last uint64, dup bool, head uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.ids[ids[0]]; ok && s.bug != bugDuplicate {
		return v[0], v[1], true, 0, nil
	}
	head = uint64(len(s.streams[entity]))
	if !exp.Matches(head) {
		return 0, 0, false, head, errConflict
	}
	s.streams[entity] = append(s.streams[entity], ids...)
	first, last = head+1, head+uint64(len(ids))
	s.ids[ids[0]] = [2]uint64{first, last}
	return first, last, false, 0, nil
}

func (s *simStore) read(entity string, stale bool) []history.EventRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.streams[entity]
	if stale && len(ids) > 10 {
		ids = ids[:len(ids)-10]
	}
	return mkStream(ids...)
}

func simSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHECK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
		seed = s
	}
	t.Logf("seed %d (replay with CHECK_SEED=%d)", seed, seed)
	return seed
}

// simulate runs concurrent clients against a simStore and returns the
// recorded history and the final streams of three replicas.
func simulate(t *testing.T, seed uint64, bug simBug) (history.History, Replicas) {
	const (
		clients   = 6
		opsEach   = 80
		entities  = 3
		unknownP  = 0.1
		strongP   = 0.5
		exactP    = 0.3
		applyOnUn = 0.5
	)
	store := &simStore{bug: bug, streams: map[string][]string{}, ids: map[string][2]uint64{}}
	rec := history.NewRecorder()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			lastHead := map[string]uint64{}
			for i := range opsEach {
				entity := fmt.Sprintf("e%d", rng.IntN(entities))
				if rng.IntN(2) == 0 {
					cons := history.Session
					if rng.Float64() < strongP {
						cons = history.Strong
					}
					id := rec.Invoke(c, "", history.Read, entity, history.Input{Consistency: cons})
					evs := store.read(entity, (bug == bugStaleStrong && cons == history.Strong && rng.IntN(5) == 0) ||
						(bug == bugStaleSess && cons == history.Session))
					rec.OK(id, history.Result{Head: uint64(len(evs)), Events: evs})
					lastHead[entity] = uint64(len(evs))
					continue
				}
				ids := []string{fmt.Sprintf("c%d-%d-a", c, i)}
				if rng.IntN(3) == 0 {
					ids = append(ids, fmt.Sprintf("c%d-%d-b", c, i))
				}
				exp := history.Expected{}
				if rng.Float64() < exactP {
					exp = exact(lastHead[entity])
				}
				for attempt := 1; ; attempt++ {
					id := rec.Invoke(c, "", history.Append, entity, history.Input{EventIDs: ids, Expected: exp, Attempt: attempt})
					if attempt < 3 && rng.Float64() < unknownP {
						if rng.Float64() < applyOnUn {
							_, _, _, _, _ = store.append(entity, ids, exp)
						}
						rec.Unknown(id, errors.New("timeout"))
						continue // retry with the same ids
					}
					first, last, dup, head, err := store.append(entity, ids, exp)
					if err != nil {
						rec.Fail(id, err, history.Result{Conflict: true, Head: head})
					} else {
						rec.OK(id, history.Result{FirstVersion: first, LastVersion: last, Duplicate: dup})
						lastHead[entity] = last
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	final := Streams{}
	for e, ids := range store.streams {
		final[e] = mkStream(ids...)
	}
	replicas := threeReplicas(final)
	if bug == bugLostWrite {
		lossy := Streams{}
		for e, evs := range final {
			lossy[e] = evs
		}
		if n := len(final["e0"]); n > 0 {
			lossy["e0"] = final["e0"][:n-1]
		}
		replicas["n2"] = lossy
	}
	return rec.History(), replicas
}

// TestSimulatedRuns checks the checkers end to end on concurrent histories
// of an in-memory store: the correct store must pass every checker, each
// deliberately broken store must fail the checker meant to catch it.
func TestSimulatedRuns(t *testing.T) {
	seed := simSeed(t)
	for _, tc := range []struct {
		bug  simBug
		want []string // checks that must fail
	}{
		{bugNone, nil},
		{bugLostWrite, []string{NameLostWrites, NameConvergence}},
		{bugStaleStrong, []string{NameLinearizability}},
		{bugDuplicate, []string{NameIdempotency}},
		{bugStaleSess, []string{NameSession}},
	} {
		name := string(tc.bug)
		if name == "" {
			name = "correct"
		}
		t.Run(name, func(t *testing.T) {
			h, replicas := simulate(t, seed, tc.bug)
			_, reports := All(h, replicas, LinOptions{VisualizationDir: t.TempDir()})
			var failedChecks []string
			for _, r := range Failed(reports) {
				failedChecks = append(failedChecks, r.Check)
			}
			if tc.want == nil {
				for _, r := range reports {
					require.True(t, r.OK(), "seed %d: %s", seed, r.String())
				}
				assert.Positive(t, reports[1].Checked)
				return
			}
			for _, w := range tc.want {
				assert.Contains(t, failedChecks, w, "seed %d: bug %s not caught", seed, tc.bug)
			}
		})
	}
}
