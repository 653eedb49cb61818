package region

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/stretchr/testify/require"
)

const testRegion = "eu-west"

// testBase is the wall time of the first test batch: real time, because
// Badger judges idempotency TTLs by the wall clock.
var testBase = time.Now().UnixNano()

func fsmTestLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTestFSM(t testing.TB, dir string) *FSM {
	t.Helper()
	f, err := OpenFSM(StoreConfig{Dir: dir, Region: testRegion, Logger: fsmTestLogger()})
	require.NoError(t, err)
	return f
}

func newTestFSM(t testing.TB) *FSM {
	t.Helper()
	f := openTestFSM(t, t.TempDir())
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// id returns a deterministic canonical UUID (version 4 layout) for n.
func eid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

func pev(n int, typ, data string) *meridianv1.ProposedEvent {
	return &meridianv1.ProposedEvent{Id: eid(n), Type: typ, Data: []byte(data)}
}

func expUnset() *meridianv1.ExpectedVersion { return nil }
func expNoStream() *meridianv1.ExpectedVersion {
	return &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_NoStream_{NoStream: &meridianv1.ExpectedVersion_NoStream{}}}
}
func expStreamExists() *meridianv1.ExpectedVersion {
	return &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_StreamExists_{StreamExists: &meridianv1.ExpectedVersion_StreamExists{}}}
}
func expExact(n uint64) *meridianv1.ExpectedVersion {
	return &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_Exact{Exact: n}}
}
func expAny() *meridianv1.ExpectedVersion {
	return &meridianv1.ExpectedVersion{Kind: &meridianv1.ExpectedVersion_Any_{Any: &meridianv1.ExpectedVersion_Any{}}}
}

func aop(entity string, ex *meridianv1.ExpectedVersion, evs ...*meridianv1.ProposedEvent) *meridianv1.AppendOp {
	return &meridianv1.AppendOp{Entity: entity, Expected: ex, Events: evs}
}

// applier state of a test: the next Raft index to use.
type fsmDriver struct {
	t     testing.TB
	f     *FSM
	index uint64
	wall  int64
}

func newFSMDriver(t testing.TB, f *FSM) *fsmDriver {
	return &fsmDriver{t: t, f: f, index: f.AppliedIndex(), wall: testBase}
}

func (d *fsmDriver) entry(b *meridianv1.AppendBatch) *raft.Log {
	d.t.Helper()
	data, err := EncodeCommand(meridianv1.CommandType_COMMAND_TYPE_APPEND_BATCH, b)
	require.NoError(d.t, err)
	d.index++
	return &raft.Log{Index: d.index, Term: 1, Type: raft.LogCommand, Data: data}
}

// batch applies ops as one entry, stamped 1 ms after the previous one.
func (d *fsmDriver) batch(ops ...*meridianv1.AppendOp) []OpResult {
	d.t.Helper()
	d.wall += int64(time.Millisecond)
	return d.batchAt(d.wall, ops...)
}

func (d *fsmDriver) batchAt(wall int64, ops ...*meridianv1.AppendOp) []OpResult {
	d.t.Helper()
	r := d.f.Apply(d.entry(&meridianv1.AppendBatch{Hlc: &meridianv1.Hlc{WallNanos: wall}, Ops: ops}))
	res, ok := r.(*BatchResult)
	require.True(d.t, ok, "Apply returned %T (%v)", r, r)
	require.Len(d.t, res.Ops, len(ops))
	return res.Ops
}

// one applies a single op and returns its result.
func (d *fsmDriver) one(o *meridianv1.AppendOp) OpResult {
	d.t.Helper()
	return d.batch(o)[0]
}

func (d *fsmDriver) mustAppend(o *meridianv1.AppendOp) *meridianv1.AppendResponse {
	d.t.Helper()
	r := d.one(o)
	require.NoError(d.t, r.Err)
	return r.Resp
}

func fsmReadAll(t testing.TB, f *FSM, entity string) ([]*meridianv1.Event, uint64) {
	t.Helper()
	evs, head, err := f.ReadStream(entity, 0, ReadCountMax, false)
	require.NoError(t, err)
	return evs, head
}

func fsmReadLog(t testing.TB, f *FSM) []*meridianv1.Event {
	t.Helper()
	evs, err := f.ReadLog(0, ReadCountMax)
	require.NoError(t, err)
	return evs
}

// exact is shared with the Raft node tests (cluster_test.go, node_test.go).
func exact(v uint64) *meridianv1.ExpectedVersion { return expExact(v) }

// entry0 wraps encoded command data as the entry at d.index (already
// advanced by the caller).
func (d *fsmDriver) entry0(data []byte) *raft.Log {
	return &raft.Log{Index: d.index, Term: 1, Type: raft.LogCommand, Data: data}
}
