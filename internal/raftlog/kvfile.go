package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/meridiandb/meridian/internal/fsutil"
)

const kvMagic = "MRLGKV01"

// kvFile is a small map kept in one file and replaced atomically on every
// change (write a temporary file, sync it, rename it over, sync the
// directory): raft's stable keys, and the log's head floor. Writes are rare
// (an election, a compaction), so rewriting the whole map is the simple
// correct choice.
type kvFile struct {
	path string
	mu   sync.Mutex
	m    map[string][]byte
}

func openKV(path string) (*kvFile, error) {
	kv := &kvFile{path: path, m: map[string][]byte{}}
	// A temporary file is a replacement that never got renamed: the old
	// file (or none) is the state.
	if err := os.Remove(path + ".tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return kv, nil
	}
	if err != nil {
		return nil, err
	}
	if err := decodeKV(data, kv.m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, filepath.Base(path), err)
	}
	return kv, nil
}

func (kv *kvFile) get(key string) []byte {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return slices.Clone(kv.m[key])
}

func (kv *kvFile) getUint64(key string) uint64 {
	v := kv.get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// set stores the pairs durably; on error nothing changed.
func (kv *kvFile) set(pairs map[string][]byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	next := maps.Clone(kv.m)
	for k, v := range pairs {
		next[k] = slices.Clone(v)
	}
	if err := fsutil.WriteFileAtomic(kv.path, encodeKV(next), 0o600); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	kv.m = next
	return nil
}

func uint64Bytes(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func encodeKV(m map[string][]byte) []byte {
	buf := []byte(kvMagic)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(k)))
		buf = append(buf, k...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(m[k])))
		buf = append(buf, m[k]...)
	}
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

func decodeKV(data []byte, m map[string][]byte) error {
	if len(data) < len(kvMagic)+8 || string(data[:len(kvMagic)]) != kvMagic {
		return errors.New("bad header")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return errors.New("checksum mismatch")
	}
	b := body[len(kvMagic):]
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	next := func() ([]byte, error) {
		if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
			return nil, errors.New("truncated entry")
		}
		l := int(binary.BigEndian.Uint32(b))
		v := b[4 : 4+l]
		b = b[4+l:]
		return v, nil
	}
	for range n {
		k, err := next()
		if err != nil {
			return err
		}
		v, err := next()
		if err != nil {
			return err
		}
		m[string(k)] = slices.Clone(v)
	}
	if len(b) != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}
