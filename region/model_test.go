package region

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// testSeed returns the seed of a randomized test: MERIDIAN_SEED if set, else
// a fresh one. It is logged so a failure can be replayed.
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

// model is the specification of apply, in memory.
type model struct {
	streams map[string][]string // entity -> content per version (index = version-1)
	ids     map[string]modelRec // event id -> record
}

type modelRec struct {
	entity      string
	content     string
	version     uint64
	first, last uint64
}

func content(e *meridianv1.ProposedEvent) string { return e.GetType() + "|" + string(e.GetData()) }

// apply returns the expected outcome of op: "ok", "dup", or an error sentinel.
func (m *model) apply(op *meridianv1.AppendOp) (string, uint64, error) {
	evs := op.GetEvents()
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.GetId()] {
			return "", 0, ErrInvalidArgument
		}
		seen[e.GetId()] = true
	}
	known := 0
	for _, e := range evs {
		if _, ok := m.ids[e.GetId()]; ok {
			known++
		}
	}
	if known > 0 {
		if known < len(evs) {
			return "", 0, ErrIdempotencyConflict
		}
		r0 := m.ids[evs[0].GetId()]
		for i, e := range evs {
			r := m.ids[e.GetId()]
			if r.entity != op.GetEntity() || r.content != content(e) || r.first != r0.first || r.last != r0.last || r.version != r0.first+uint64(i) {
				return "", 0, ErrIdempotencyConflict
			}
		}
		if r0.last-r0.first+1 != uint64(len(evs)) {
			return "", 0, ErrIdempotencyConflict
		}
		return "dup", r0.first, nil
	}
	head := uint64(len(m.streams[op.GetEntity()]))
	if checkExpected(op.GetEntity(), op.GetExpected(), head) != nil {
		return "", 0, ErrWrongExpectedVersion
	}
	first := head + 1
	for i, e := range evs {
		m.streams[op.GetEntity()] = append(m.streams[op.GetEntity()], content(e))
		m.ids[e.GetId()] = modelRec{entity: op.GetEntity(), content: content(e), version: first + uint64(i), first: first, last: first + uint64(len(evs)) - 1}
	}
	return "ok", first, nil
}

// genLog generates a random log of append batches: fresh appends, exact
// retries, retries with other content or other ids, and expected-version
// guesses right and wrong.
func genLog(r *rand.Rand, batches int) []*meridianv1.AppendBatch {
	var past []*meridianv1.AppendOp
	heads := map[string]uint64{}
	nextID := 1
	var out []*meridianv1.AppendBatch
	for b := 0; b < batches; b++ {
		batch := &meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: testBase + int64(b)*1000}}
		for o := 0; o < 1+r.IntN(4); o++ {
			var op *meridianv1.AppendOp
			switch p := r.IntN(10); {
			case p < 2 && len(past) > 0: // exact retry
				op = proto.Clone(past[r.IntN(len(past))]).(*meridianv1.AppendOp)
			case p < 3 && len(past) > 0: // retry with a change
				op = proto.Clone(past[r.IntN(len(past))]).(*meridianv1.AppendOp)
				switch r.IntN(4) {
				case 0:
					op.Events[0].Data = []byte("changed")
				case 1:
					op.Entity = fmt.Sprintf("e%d", r.IntN(4))
				case 2:
					op.Events = append(op.Events, pev(nextID, "T", "extra"))
					nextID++
				case 3:
					op.Events = op.Events[:len(op.Events)-1]
					if len(op.Events) == 0 {
						op.Events = []*meridianv1.ProposedEvent{pev(nextID, "T", "x")}
						nextID++
					}
				}
			default:
				op = &meridianv1.AppendOp{Entity: fmt.Sprintf("e%d", r.IntN(4))}
				for i := 0; i < 1+r.IntN(3); i++ {
					op.Events = append(op.Events, pev(nextID, fmt.Sprintf("T%d", r.IntN(3)), fmt.Sprint(r.IntN(100))))
					nextID++
				}
				if r.IntN(20) == 0 {
					op.Events = append(op.Events, proto.Clone(op.Events[0]).(*meridianv1.ProposedEvent))
				}
			}
			h := heads[op.GetEntity()]
			switch r.IntN(5) {
			case 0:
				op.Expected = nil
			case 1:
				op.Expected = expNoStream()
			case 2:
				op.Expected = expStreamExists()
			default:
				op.Expected = expExact(max(0, h+uint64(r.IntN(3))-1))
			}
			heads[op.GetEntity()] = h + uint64(r.IntN(2)) // a rough guess of the head
			past = append(past, op)
			batch.Ops = append(batch.Ops, op)
		}
		out = append(out, batch)
	}
	return out
}

// TestApplyMatchesModel applies a random log and checks every op's outcome
// and the final streams against the model; then applies the same log to a
// second state machine that is closed, reopened and fed already-applied
// entries again at random points (Raft replay), which must end identical.
func TestApplyMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 1))
	log := genLog(r, 150)
	m := &model{streams: map[string][]string{}, ids: map[string]modelRec{}}

	f := newTestFSM(t)
	var entries []*raft.Log
	outcomes := map[string]int{}
	for i, b := range log {
		data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, b)
		require.NoError(t, err)
		l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data}
		entries = append(entries, l)
		res := f.Apply(l).(*BatchResult)
		for j, op := range b.GetOps() {
			kind, first, wantErr := m.apply(op)
			got := res.Ops[j]
			if wantErr != nil {
				outcomes[wantErr.Error()]++
			} else {
				outcomes[kind]++
			}
			if wantErr != nil {
				require.ErrorIs(t, got.Err, wantErr, "entry %d op %d: %v", i+1, j, op)
				continue
			}
			require.NoError(t, got.Err, "entry %d op %d: %v", i+1, j, op)
			require.Equal(t, kind == "dup", got.Resp.GetDuplicate(), "entry %d op %d", i+1, j)
			require.Equal(t, first, got.Resp.GetFirstVersion(), "entry %d op %d", i+1, j)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	require.Len(t, outcomes, 5, "the log exercises every outcome")
	for entity, want := range m.streams {
		evs, head := fsmReadAll(t, f, entity)
		require.Equal(t, uint64(len(want)), head, entity)
		for i, e := range evs {
			require.Equal(t, want[i], e.GetType()+"|"+string(e.GetData()), "%s@%d", entity, i+1)
		}
	}

	dir := t.TempDir()
	g := openTestFSM(t, dir)
	for i := 0; i < len(entries); {
		if r.IntN(15) == 0 {
			require.NoError(t, g.Close())
			g = openTestFSM(t, dir)
			i = max(0, i-r.IntN(5)) // Raft replays from an earlier index
		}
		g.Apply(entries[i])
		i++
	}
	defer g.Close()
	require.True(t, proto.Equal(f.ApplyState(), g.ApplyState()))
	for entity := range m.streams {
		a, _ := fsmReadAll(t, f, entity)
		b, _ := fsmReadAll(t, g, entity)
		require.Equal(t, len(a), len(b))
		for i := range a {
			require.True(t, proto.Equal(a[i], b[i]), "%s@%d", entity, i+1)
		}
	}
	la, lb := fsmReadLog(t, f), fsmReadLog(t, g)
	require.Equal(t, len(la), len(lb))
	for i := range la {
		require.True(t, proto.Equal(la[i], lb[i]))
	}
}
