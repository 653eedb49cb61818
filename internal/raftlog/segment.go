package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

const (
	segMagic     = "MRLGSEG1"
	segHeaderLen = 8 + 8 + 8 // magic, seq, first index
	recHeaderLen = 4 + 4     // body length, CRC-32C of the body
	// bodyFixedLen: index, term, type, appended-at, extensions length.
	bodyFixedLen = 8 + 8 + 1 + 8 + 4
	segSuffix    = ".seg"
	tmpSuffix    = ".tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a record that fails its checks where a crash cannot
// have left it (not the unsynced tail of the newest segment).
var ErrCorrupt = errors.New("raftlog: corrupt log")

// segment is one file of the log.
type segment struct {
	seq   uint64
	first uint64 // index of the first record (also when it has none yet)
	path  string
	f     *os.File
	// offsets[i] is the file offset of the record of index first+i.
	offsets []int64
	// size is where the valid records end: the next write's offset.
	size int64
	// alloc is the file's allocated length (records, then zeros).
	alloc int64
}

// count is how many records the segment holds.
func (s *segment) count() uint64 { return uint64(len(s.offsets)) }

// end is the index after the segment's last record.
func (s *segment) end() uint64 { return s.first + s.count() }

// recordEnd is the file offset where the record at position i ends.
func (s *segment) recordEnd(i int) int64 {
	if i+1 < len(s.offsets) {
		return s.offsets[i+1]
	}
	return s.size
}

func segmentName(seq, first uint64) string {
	return fmt.Sprintf("%016x-%020d%s", seq, first, segSuffix)
}

// parseSegmentName returns the seq and first index a segment's name carries.
func parseSegmentName(name string) (seq, first uint64, ok bool) {
	base, found := strings.CutSuffix(name, segSuffix)
	if !found {
		return 0, 0, false
	}
	seqStr, firstStr, found := strings.Cut(base, "-")
	if !found || len(seqStr) != 16 || len(firstStr) != 20 {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(seqStr, 16, 64)
	first, err2 := strconv.ParseUint(firstStr, 10, 64)
	return seq, first, err1 == nil && err2 == nil
}

func segmentHeader(seq, first uint64) []byte {
	h := make([]byte, segHeaderLen)
	copy(h, segMagic)
	binary.BigEndian.PutUint64(h[8:], seq)
	binary.BigEndian.PutUint64(h[16:], first)
	return h
}

// appendRecord encodes l as one record at the end of buf.
func appendRecord(buf []byte, l *raft.Log) []byte {
	bodyLen := bodyFixedLen + len(l.Extensions) + len(l.Data)
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(bodyLen))
	buf = binary.BigEndian.AppendUint32(buf, 0) // CRC, filled below
	body := len(buf)
	buf = binary.BigEndian.AppendUint64(buf, l.Index)
	buf = binary.BigEndian.AppendUint64(buf, l.Term)
	buf = append(buf, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(at))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(l.Extensions)))
	buf = append(buf, l.Extensions...)
	buf = append(buf, l.Data...)
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[body:], castagnoli))
	return buf
}

// errTorn is a record that is short, empty or fails its checksum: what a
// crash leaves in an unsynced tail.
var errTorn = errors.New("torn record")

// decodeRecord decodes the record at the start of b into l (which then
// aliases b) and returns the record's length.
func decodeRecord(b []byte, l *raft.Log) (int, error) {
	if len(b) < recHeaderLen {
		return 0, errTorn
	}
	bodyLen := int(binary.BigEndian.Uint32(b))
	if bodyLen < bodyFixedLen || bodyLen > len(b)-recHeaderLen {
		return 0, errTorn
	}
	body := b[recHeaderLen : recHeaderLen+bodyLen]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return 0, errTorn
	}
	extLen := int(binary.BigEndian.Uint32(body[25:]))
	if extLen > bodyLen-bodyFixedLen {
		return 0, fmt.Errorf("%w: extensions length %d exceeds the record", ErrCorrupt, extLen)
	}
	l.Index = binary.BigEndian.Uint64(body)
	l.Term = binary.BigEndian.Uint64(body[8:])
	l.Type = raft.LogType(body[16])
	if at := int64(binary.BigEndian.Uint64(body[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	} else {
		l.AppendedAt = time.Time{}
	}
	rest := body[bodyFixedLen:]
	l.Extensions = nilIfEmpty(rest[:extLen])
	l.Data = nilIfEmpty(rest[extLen:])
	return recHeaderLen + bodyLen, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// scanSegment opens the segment at path and indexes its records. A bad
// record ends the scan: its offset is returned as tornAt (-1 when every
// byte after the header is a good record), and the caller decides whether
// it is a torn tail or corruption.
func scanSegment(path string, seq, first uint64) (s *segment, tornAt int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	data, err := readAll(f)
	if err != nil {
		return nil, 0, err
	}
	name := filepath.Base(path)
	if len(data) < segHeaderLen || string(data[:8]) != segMagic {
		return nil, 0, fmt.Errorf("%w: %s: bad segment header", ErrCorrupt, name)
	}
	if hs, hf := binary.BigEndian.Uint64(data[8:]), binary.BigEndian.Uint64(data[16:]); hs != seq || hf != first {
		return nil, 0, fmt.Errorf("%w: %s: header says seq %d, first index %d", ErrCorrupt, name, hs, hf)
	}
	s = &segment{seq: seq, first: first, path: path, f: f}
	off := int64(segHeaderLen)
	tornAt = -1
	var l raft.Log
	for off < int64(len(data)) {
		n, err := decodeRecord(data[off:], &l)
		if errors.Is(err, errTorn) {
			if !allZero(data[off:]) {
				tornAt = off
			} // else the preallocated, never written rest of the segment
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s at offset %d: %w", name, off, err)
		}
		if want := s.end(); l.Index != want {
			return nil, 0, fmt.Errorf("%w: %s at offset %d: index %d where %d belongs", ErrCorrupt, name, off, l.Index, want)
		}
		s.offsets = append(s.offsets, off)
		off += int64(n)
	}
	s.size = off
	s.alloc = int64(len(data))
	return s, tornAt, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func readAll(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	return data, nil
}
