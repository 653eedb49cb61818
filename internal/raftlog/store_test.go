package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// payload is the deterministic content of the entry at index in term: the
// crash tests check every byte against it.
func payload(index, term uint64) []byte {
	n := 8 + int((index*7919+term*104729)%900)
	unit := []byte(fmt.Sprintf("%d/%d;", index, term))
	return bytes.Repeat(unit, n/len(unit)+1)[:n]
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func entry(index, term uint64) *raft.Log {
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: payload(index, term),
		AppendedAt: time.Unix(0, int64(index)*1000+7)}
}

func batch(from, to, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(i, term))
	}
	return logs
}

func open(t *testing.T, dir string, segBytes int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{SegmentBytes: segBytes, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	require.NoError(t, s.Close())
	return open(t, s.dir, s.opts.SegmentBytes)
}

// requireLog checks the store holds exactly first..last, each entry with
// the term terms gives it and its payload.
func requireLog(t *testing.T, s *Store, first, last uint64, termOf func(uint64) uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	require.NoError(t, err)
	l, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, [2]uint64{first, last}, [2]uint64{f, l}, "first and last index")
	if first == 0 {
		return
	}
	var got raft.Log
	for i := first; i <= last; i++ {
		require.NoError(t, s.GetLog(i, &got), "index %d", i)
		want := entry(i, termOf(i))
		require.Equal(t, want.Index, got.Index)
		require.Equal(t, want.Term, got.Term, "term of %d", i)
		require.Equal(t, want.Data, got.Data, "data of %d", i)
		require.True(t, want.AppendedAt.Equal(got.AppendedAt))
	}
	require.ErrorIs(t, s.GetLog(first-1, &got), raft.ErrLogNotFound)
	require.ErrorIs(t, s.GetLog(last+1, &got), raft.ErrLogNotFound)
}

// storeInBatches stores from..to in batches of up to 9 entries, so that
// small segments roll between batches.
func storeInBatches(t *testing.T, s *Store, from, to, term uint64) {
	t.Helper()
	for ; from <= to; from += 9 {
		require.NoError(t, s.StoreLogs(batch(from, min(from+8, to), term)))
	}
}

func term(t uint64) func(uint64) uint64 { return func(uint64) uint64 { return t } }

func TestStoreReadBackAndRestart(t *testing.T) {
	s := open(t, t.TempDir(), 4<<10) // small segments: many rolls
	require.NoError(t, s.StoreLog(entry(1, 1)))
	storeInBatches(t, s, 2, 199, 1)
	requireLog(t, s, 1, 199, term(1))
	s = reopen(t, s)
	requireLog(t, s, 1, 199, term(1))
	segs, err := filepath.Glob(filepath.Join(s.dir, "*.seg"))
	require.NoError(t, err)
	assert.Greater(t, len(segs), 10, "4 KiB segments should have rolled")

	// Every field round-trips, including empty and nil ones.
	l := &raft.Log{Index: 200, Term: 2, Type: raft.LogConfiguration, Extensions: []byte("ext")}
	require.NoError(t, s.StoreLog(l))
	var got raft.Log
	require.NoError(t, s.GetLog(200, &got))
	assert.Equal(t, raft.LogConfiguration, got.Type)
	assert.Equal(t, []byte("ext"), got.Extensions)
	assert.Nil(t, got.Data)
	assert.True(t, got.AppendedAt.IsZero())
}

func TestStoreRefusesGapsAndOverwrites(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	require.NoError(t, s.StoreLogs(batch(5, 7, 1)), "an empty log starts anywhere")
	assert.ErrorContains(t, s.StoreLog(entry(9, 1)), "no gaps")
	assert.ErrorContains(t, s.StoreLog(entry(7, 2)), "no gaps")
	assert.ErrorContains(t, s.StoreLogs([]*raft.Log{entry(8, 1), entry(10, 1)}), "not contiguous")
	requireLog(t, s, 5, 7, term(1))
	assert.ErrorContains(t, s.DeleteRange(6, 6), "middle")
	requireLog(t, s, 5, 7, term(1))
}

// TestTailTruncationSurvivesRestart is the raft-wal v0.4.0 failure (ADR
// 0001): a follower whose uncommitted suffix a new leader cut must reopen.
func TestTailTruncationSurvivesRestart(t *testing.T) {
	for _, segBytes := range []int64{0, 2 << 10} {
		t.Run(fmt.Sprintf("segment-bytes=%d", segBytes), func(t *testing.T) {
			s := open(t, t.TempDir(), segBytes)
			storeInBatches(t, s, 1, 40, 1)
			require.NoError(t, s.DeleteRange(17, 40))
			require.NoError(t, s.StoreLogs(batch(17, 20, 2)))
			termOf := func(i uint64) uint64 { return map[bool]uint64{true: 1, false: 2}[i < 17] }
			requireLog(t, s, 1, 20, termOf)
			s = reopen(t, s)
			requireLog(t, s, 1, 20, termOf)
		})
	}
}

func TestHeadTruncation(t *testing.T) {
	s := open(t, t.TempDir(), 2<<10)
	storeInBatches(t, s, 1, 100, 1)
	before, _ := filepath.Glob(filepath.Join(s.dir, "*.seg"))
	require.NoError(t, s.DeleteRange(1, 61))
	requireLog(t, s, 62, 100, term(1))
	after, _ := filepath.Glob(filepath.Join(s.dir, "*.seg"))
	assert.Less(t, len(after), len(before), "segments wholly below the new first index are removed")
	s = reopen(t, s)
	requireLog(t, s, 62, 100, term(1))
	require.NoError(t, s.StoreLogs(batch(101, 110, 2)))
	s = reopen(t, s)
	requireLog(t, s, 62, 110, func(i uint64) uint64 { return map[bool]uint64{true: 1, false: 2}[i <= 100] })
}

// TestDeleteAllThenLowerIndex: raft empties a monotonic store before the
// entries that follow an installed snapshot, which may start below the old
// last index (a follower with a long uncommitted tail). The old head floor
// must not hide them after a restart.
func TestDeleteAllThenLowerIndex(t *testing.T) {
	s := open(t, t.TempDir(), 2<<10)
	storeInBatches(t, s, 1, 100, 1)
	require.NoError(t, s.DeleteRange(1, 30))
	require.NoError(t, s.DeleteRange(31, 100))
	requireLog(t, s, 0, 0, nil)
	s = reopen(t, s)
	requireLog(t, s, 0, 0, nil)
	require.NoError(t, s.StoreLogs(batch(60, 70, 3)))
	s = reopen(t, s)
	requireLog(t, s, 60, 70, term(3))
}

func TestStableStore(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	v, err := s.Get([]byte("missing"))
	require.NoError(t, err)
	assert.Equal(t, []byte{}, v)
	n, err := s.GetUint64([]byte("missing"))
	require.NoError(t, err)
	assert.Zero(t, n)
	require.NoError(t, s.Set([]byte("LastVoteCand"), []byte("node-2")))
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 42))
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 43))
	s = reopen(t, s)
	v, _ = s.Get([]byte("LastVoteCand"))
	assert.Equal(t, []byte("node-2"), v)
	n, _ = s.GetUint64([]byte("CurrentTerm"))
	assert.Equal(t, uint64(43), n)

	// A stable file that fails its checksum is corruption, not "no vote".
	path := filepath.Join(s.dir, "stable")
	require.NoError(t, s.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(path, data, 0o600))
	_, err = Open(s.dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
}

// newestSegment is the path of the segment with the highest seq.
func newestSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	return segs[len(segs)-1] // names sort by seq (fixed-width hex)
}

// TestTornTail: what a power loss can leave after the last synced batch
// (a partial record, zeros from a grown file, garbage) is cut at open, the
// entries before it stay, and the log continues from there.
func TestTornTail(t *testing.T) {
	cases := map[string]func(t *testing.T, path string, lastRecord, end int64){
		"short record": func(t *testing.T, path string, lastRecord, end int64) {
			require.NoError(t, os.Truncate(path, lastRecord+(end-lastRecord)/2))
		},
		"short header": func(t *testing.T, path string, lastRecord, _ int64) {
			require.NoError(t, os.Truncate(path, lastRecord+3))
		},
		"half written": func(t *testing.T, path string, lastRecord, end int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			mid := lastRecord + (end-lastRecord)/2
			_, err = f.WriteAt(make([]byte, end-mid), mid) // the rest of the preallocated zeros
			require.NoError(t, err)
		},
		"garbage body": func(t *testing.T, path string, lastRecord, _ int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			_, err = f.WriteAt([]byte("garbage!"), lastRecord+30)
			require.NoError(t, err)
		},
		"zeros": func(t *testing.T, path string, lastRecord, end int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			_, err = f.WriteAt(make([]byte, end-lastRecord+4096), lastRecord)
			require.NoError(t, err)
		},
	}
	for name, tear := range cases {
		t.Run(name, func(t *testing.T) {
			s := open(t, t.TempDir(), 64<<10)
			storeInBatches(t, s, 1, 30, 1)
			seg := s.segs[len(s.segs)-1]
			lastRecord, end := seg.offsets[len(seg.offsets)-1], seg.size
			require.NoError(t, s.Close())
			tear(t, newestSegment(t, s.dir), lastRecord, end)

			s = open(t, s.dir, 64<<10)
			requireLog(t, s, 1, 29, term(1))
			require.NoError(t, s.StoreLogs(batch(30, 35, 2)))
			s = reopen(t, s)
			requireLog(t, s, 1, 35, func(i uint64) uint64 { return map[bool]uint64{true: 1, false: 2}[i < 30] })
		})
	}
}

// TestCorruptionIsNotATornTail: a bad record in a segment that is not the
// newest was synced and acknowledged; Open refuses to drop it.
func TestCorruptionIsNotATornTail(t *testing.T) {
	s := open(t, t.TempDir(), 2<<10)
	storeInBatches(t, s, 1, 60, 1)
	require.Greater(t, len(s.segs), 2)
	oldest := s.segs[0]
	off := oldest.offsets[1]
	require.NoError(t, s.Close())
	f, err := os.OpenFile(oldest.path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xde, 0xad}, off+20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = Open(s.dir, Options{SegmentBytes: 2 << 10})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "not the newest")
}

// TestRandomOpsAgainstModel runs random appends, tail and head truncations
// (some reaching past the log's ends, which DeleteRange clips), whole-log
// deletions and restarts against a model of the log.
func TestRandomOpsAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	s := open(t, t.TempDir(), 3<<10)
	m := logModel{terms: map[uint64]uint64{}}
	curTerm := uint64(1)
	termOf := func(i uint64) uint64 { return m.terms[i] }
	odds := logOpOdds{appendPct: 60, tailPct: 16, headPct: 16, startMax: 50, batchMax: 12, slackMax: 3}
	for step := range 400 {
		if rng.IntN(100) < 7 {
			s = reopen(t, s)
		} else {
			op := randomLogOp(rng, m.first, m.last, curTerm, odds)
			require.NoError(t, op.run(s, m.first, m.last), "step %d: %v", step, op)
			m.apply(op)
			if op.kind == opTail {
				curTerm++
			}
		}
		if step%25 == 0 {
			requireLog(t, s, m.first, m.last, termOf)
		}
	}
	first, last := m.first, m.last
	requireLog(t, s, first, last, termOf)
	s = reopen(t, s)
	requireLog(t, s, first, last, termOf)
}

// TestPreallocatedTailIsNotATear: the zeros allocated ahead of the write
// position are the segment's unwritten rest; a clean restart cuts nothing
// and warns about nothing.
func TestPreallocatedTailIsNotATear(t *testing.T) {
	var logs bytes.Buffer
	dir := t.TempDir()
	opts := Options{PreallocBytes: 256 << 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s, err := Open(dir, opts)
	require.NoError(t, err)
	require.NoError(t, s.StoreLogs(batch(1, 10, 1)))
	seg := s.segs[0]
	st, err := seg.f.Stat()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, st.Size(), seg.size+200<<10, "the segment is allocated ahead of its data")
	require.NoError(t, s.Close())

	s, err = Open(dir, opts)
	require.NoError(t, err)
	defer s.Close()
	requireLog(t, s, 1, 10, term(1))
	assert.Empty(t, logs.String(), "a clean restart logs nothing")
	require.NoError(t, s.StoreLogs(batch(11, 12, 1)))
	requireLog(t, s, 1, 12, term(1))
}

// TestConcurrentReadsDuringWritesAndCompaction: raft reads entries from
// replication goroutines while its main loop appends and its snapshot
// goroutine compacts; a read returns the entry as written or ErrLogNotFound
// (compacted meanwhile), never another entry or a torn one. Run under the
// race detector by make test-race.
func TestConcurrentReadsDuringWritesAndCompaction(t *testing.T) {
	s := open(t, t.TempDir(), 8<<10)
	require.NoError(t, s.StoreLogs(batch(1, 10, 1)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() { // raft's main loop
		defer wg.Done()
		for next := uint64(11); ; next += 5 {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.StoreLogs(batch(next, next+4, 1)); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // the snapshot goroutine
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if last > first+100 {
				if err := s.DeleteRange(first, last-100); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	var reads atomic.Int64
	for range 3 { // replication goroutines
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				i := first + uint64(time.Now().UnixNano())%(last-first+1)
				err := s.GetLog(i, &l)
				if errors.Is(err, raft.ErrLogNotFound) {
					continue
				}
				if err == nil && (l.Index != i || !bytes.Equal(l.Data, payload(i, 1))) {
					err = fmt.Errorf("read %d, got index %d with other data", i, l.Index)
				}
				if err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Greater(t, reads.Load(), int64(100), "the readers should have read entries")
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	s = reopen(t, s)
	requireLog(t, s, first, last, term(1))
}
