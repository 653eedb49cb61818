// Package raftlog is Meridian's Raft log and stable store: a segmented,
// checksummed, append-only file log that implements raft.LogStore,
// raft.MonotonicLogStore and raft.StableStore (ADR 0006).
//
// # Why
//
// Every commit waits for the leader's log write and then a follower's, so
// the log store's append+fsync is on the critical path twice. raft-boltdb
// pays a B+tree transaction and two fdatasyncs per batch (its pages, then
// its meta page); this store pays one write and one fdatasync.
//
// # Layout
//
// A directory holds:
//
//	SSSSSSSSSSSSSSSS-IIIIIIIIIIIIIIIIIIII.seg   segments: seq (hex), first index
//	meta     the head floor: entries below it are deleted (atomic file)
//	stable   raft's stable keys: terms and votes (atomic file)
//
// A segment is a 24-byte header (magic, seq, first index) followed by
// records, each a 4-byte body length, a 4-byte CRC-32C of the body, and the
// body: index, term, type, appended-at (Unix ns), extensions length,
// extensions, data. Records of one segment have consecutive indexes and the
// segments of a log are contiguous; a batch is one write() and one
// fdatasync(), and the store is acknowledged only after both. Segments are
// allocated (fallocate, zeros) in chunks ahead of the write position, so
// most syncs need not record a new file size; zeros after the last record
// are the unwritten rest, not a tear. That is Linux (sync_linux.go); on
// macOS the sync is fcntl(F_FULLFSYNC), since fsync there leaves the data in
// the drive's cache, and elsewhere fsync; neither preallocates, so a
// segment grows with each batch.
//
// # Recovery
//
// Open scans every segment and checks every record. The unsynced tail of the
// newest segment is the only place a crash can leave a bad record (writes
// only append, and a truncation is synced before anything is written after
// it), so there the first short, zero or mismatching record ends the log and
// the file is cut back to it; anywhere else a bad record is corruption and
// Open fails rather than drop entries that were acknowledged.
//
// # Truncation
//
//   - Tail (a new leader overwrites an uncommitted suffix): newer segments
//     are removed newest first and the directory synced, then the containing
//     segment is truncated and synced. A crash in between leaves a shorter,
//     still contiguous log.
//   - Head (compaction after a snapshot): the floor (index, seq of the
//     segment it falls in) is written to meta atomically first, then older
//     segments are removed. At open, segments with a lower seq are removed
//     and entries below the floor in the floor's segment are hidden; segments
//     created later (higher seq) are not touched, so a log emptied by a
//     snapshot install may restart at any index.
//
// A failed write or sync poisons the store: every later write returns the
// error, because after a failed fsync what the page cache holds is unknown.
// The node has to be restarted, and Open recovers from what is on disk.
package raftlog
