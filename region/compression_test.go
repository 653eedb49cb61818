package region

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// compressionTestEvents is how many 1 KiB events each round appends: about
// 2 MiB, flushed into tables when the FSM closes.
const compressionTestEvents = 2000

// appendCompressible appends n 1 KiB JSON-like events to entity, starting at
// event id first.
func appendCompressible(t *testing.T, f *FSM, entity string, first, n int) {
	t.Helper()
	d := newFSMDriver(t, f)
	data := strings.Repeat(`{"sku":"A-1001","qty":1,"note":"compressible"}`, 23)[:1024]
	for i := 0; i < n; i += 100 {
		evs := make([]*meridianv1.ProposedEvent, 0, 100)
		for j := i; j < min(i+100, n); j++ {
			evs = append(evs, pev(first+j, "ItemAdded", data))
		}
		d.mustAppend(aop(entity, expAny(), evs...))
	}
}

// tableBytes sums the sizes of the Badger tables under an FSM's directory.
func tableBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	paths, err := filepath.Glob(filepath.Join(dir, dbDirPrefix+"*", "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no tables under %s: the memtable was not flushed", dir)
	for _, p := range paths {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		n += fi.Size()
	}
	return n
}

func openCompressedFSM(t testing.TB, dir string, c Compression) *FSM {
	t.Helper()
	f, err := OpenFSM(StoreConfig{Dir: dir, Region: testRegion, Compression: c, Logger: fsmTestLogger()})
	require.NoError(t, err)
	return f
}

// TestStateCompressionShapesNewTablesAndKeepsOldOnesReadable: the setting
// decides how the tables written from now on are compressed (snappy and
// zstd tables of compressible events are a fraction of uncompressed ones),
// and a node reopened with another setting reads every table written before
// (Badger keeps each table's compression in its manifest).
func TestStateCompressionShapesNewTablesAndKeepsOldOnesReadable(t *testing.T) {
	sizes := map[Compression]int64{}
	for _, c := range Compressions {
		dir := t.TempDir()
		f := openCompressedFSM(t, dir, c)
		appendCompressible(t, f, "cart-1", 1, compressionTestEvents)
		require.NoError(t, f.Close())
		sizes[c] = tableBytes(t, dir)
	}
	t.Logf("table bytes for %d events of 1 KiB: %v", compressionTestEvents, sizes)
	assert.Greater(t, sizes[CompressionNone], int64(compressionTestEvents)*1024, "uncompressed tables hold every event's data")
	assert.Less(t, sizes[CompressionSnappy]*3, sizes[CompressionNone], "snappy tables are under a third of uncompressed ones")
	assert.Less(t, sizes[CompressionZSTD]*3, sizes[CompressionNone], "zstd tables are under a third of uncompressed ones")

	// One directory through every setting: each reopening appends under a
	// new setting and reads back everything written under the earlier ones.
	dir := t.TempDir()
	order := []Compression{CompressionSnappy, CompressionNone, CompressionZSTD, CompressionSnappy}
	for round, c := range order {
		f := openCompressedFSM(t, dir, c)
		want := uint64(round * compressionTestEvents)
		next := uint64(1)
		for next <= want {
			evs, head, err := f.ReadStream("cart-1", next, ReadCountMax, false)
			require.NoError(t, err)
			require.Equal(t, want, head, "reopened with %s", c)
			require.NotEmpty(t, evs, "reopened with %s: nothing from version %d", c, next)
			for _, ev := range evs {
				if ev.GetVersion() != next || ev.GetId() != eid(int(next)) || len(ev.GetData()) != 1024 {
					t.Fatalf("reopened with %s: want version %d (id %s, 1024 bytes), read version %d (id %s, %d bytes)",
						c, next, eid(int(next)), ev.GetVersion(), ev.GetId(), len(ev.GetData()))
				}
				next++
			}
		}
		appendCompressible(t, f, "cart-1", round*compressionTestEvents+1, compressionTestEvents)
		require.NoError(t, f.Close())
	}
}

func TestStateCompressionRejectsUnknownNames(t *testing.T) {
	for _, s := range []string{"lz4", "Snappy", "gzip "} {
		_, err := ParseCompression(s)
		require.ErrorIs(t, err, ErrInvalidConfig, s)
		assert.Contains(t, err.Error(), "must be one of none, snappy, zstd")

		_, err = OpenFSM(StoreConfig{Dir: t.TempDir(), Region: testRegion, Compression: Compression(s), Logger: fsmTestLogger()})
		require.ErrorIs(t, err, ErrInvalidConfig, s)

		cfg := DefaultConfig()
		cfg.Region, cfg.NodeID, cfg.DataDir, cfg.RaftAddr = "eu-west", "n1", t.TempDir(), "127.0.0.1:0"
		cfg.StateCompression = Compression(s)
		require.ErrorIs(t, cfg.Validate(), ErrInvalidConfig, s)
	}
	c, err := ParseCompression("")
	require.NoError(t, err)
	assert.Equal(t, CompressionNone, c, "empty means none")
	assert.Equal(t, CompressionNone, DefaultConfig().StateCompression)
}
