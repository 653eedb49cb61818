package filewatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replace writes data to path in one step (a new file renamed over it), so
// that no poll sees it half written: os.WriteFile truncates first, and a
// poll in between rightly reloads the empty file too (CI caught that as a
// third reload).
func replace(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(data), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// TestPollReloadsOnChangeOnly: a change reloads once; a failed reload is
// not retried until the file changes again.
func TestPollReloadsOnChangeOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("one"), 0o600))
	var mu sync.Mutex
	loaded, _ := Stamp(path)
	reloads, fail := 0, false
	var reports []error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Poll(ctx, 5*time.Millisecond, []string{path},
		func() string { mu.Lock(); defer mu.Unlock(); return loaded },
		func() error {
			mu.Lock()
			defer mu.Unlock()
			reloads++
			if fail {
				return errors.New("bad")
			}
			loaded, _ = Stamp(path)
			return nil
		},
		func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() })
	count := func() int { mu.Lock(); defer mu.Unlock(); return reloads }

	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 0, count(), "no change, no reload")
	replace(t, path, "two!")
	require.Eventually(t, func() bool { return count() == 1 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	fail = true
	mu.Unlock()
	replace(t, path, "three")
	require.Eventually(t, func() bool { return count() == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 2, count(), "a failed reload waits for the next change")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reports, 2)
	assert.NoError(t, reports[0])
	assert.Error(t, reports[1])
}
