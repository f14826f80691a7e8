// Package wal is the write-ahead log of a raft member: the durable record of
// raft's hard state, log entries and snapshot markers, from which a member
// rebuilds its raft state after a restart.
//
// # Mental model
//
// The log is one chain of records cut into segment files. Every record's
// CRC is chained from the previous record's, across segment boundaries, so
// the log verifies only in the order it was written: a record or segment
// copied from elsewhere, reordered, or left over from an older write does
// not verify. Appends go to the last segment (the tail); when it passes the
// segment size a new segment is started. Only the tail can end in a torn
// record, because a segment is synced before its successor is created.
//
// Lifecycle: Create (new, ready to append) or Open + ReadAll (ready to append
// after the last valid record); then Save / SaveSnapshot / ReleaseTo; Close.
// A WAL belongs to one goroutine. All file access goes through the vfs.FS
// given to Create or Open.
//
// # Contract
//
//   - Save writes entries, then the hard state, in one write, and fsyncs
//     before returning whenever raft.MustSync says so (entries present, or
//     term or vote changed). A commit-only hard state is written unsynced.
//   - Entries given to Save are contiguous and start at most one past the
//     last entry written. Starting lower rewrites the tail: ReadAll drops the
//     earlier entries at and after that index. A snapshot received from the
//     leader must be recorded with SaveSnapshot before the entries after it.
//   - A failed write or fsync is sticky: every later Save, SaveSnapshot and
//     ReleaseTo returns the same error, since what reached the disk is
//     unknown. The member must stop; restarting runs recovery.
//   - ReadAll returns ErrSnapshotNotFound if the snapshot given to Open
//     (other than {0,0}) has no marker, ErrSnapshotMismatch if its marker has
//     another term, and an error wrapping ErrCorrupt, naming the file and
//     byte offset, for damage other than a torn tail.
//   - Torn tail: the last segment may end in a record that fails its CRC or
//     runs past the file, left by a crash during a write that was never
//     acknowledged as synced. ReadAll drops it and zeroes the rest of the
//     tail segment before appending. A bad record followed by a record that
//     verifies when chained from the bad record's stored CRC is damage to
//     written data, not a tear, and is reported as corruption. Limits: damage
//     to the length field of the last record, or a length turned to zero,
//     reads as a torn or clean end; and a crash that persists a later
//     unsynced record but not an earlier one reads as corruption.
//   - ReleaseTo(i) deletes the segments before the one where reading for the
//     latest marker at or below i starts, so Open at that marker keeps
//     working. Each segment repeats the metadata and the current hard state
//     so that no released segment is ever needed for them.
//   - WithSyncObserver reports the duration of every fsync of the tail
//     (Save, SaveSnapshot, cut, Close), on the owning goroutine; the member
//     exports them as etcd_disk_wal_fsync_duration_seconds.
//   - WithWriteObserver reports the size and duration of every write of
//     records to the tail (Save, SaveSnapshot), for
//     etcd_disk_wal_write_bytes_total and _write_duration_seconds.
//   - ValidSnapshotEntries lists the markers at or below the last saved
//     commit index without changing any file; snap.LoadNewestAvailable uses
//     it to pick a snapshot the WAL can continue from.
//
// Where reading starts: segment names carry the index of the first entry the
// segment may hold (one past the last entry written, or the highest marker
// recorded, when it was cut). Every entry in a segment is below the first
// index of the next one, and raft never rewrites committed entries, so for a
// snapshot at index i all entries above i and i's marker lie in the last
// segment whose first index is at most i, or later.
//
// # File format
//
// A WAL directory holds segments named "%016x-%016x.wal" (sequence number,
// first index), consecutive sequence numbers from the oldest kept segment to
// the tail, and a LOCK file held while a WAL is open. "*.wal.tmp" files are
// segments not yet renamed into place: a cut interrupted by a crash, or
// "spare.wal.tmp", the next segment being zeroed in the background once the
// tail is half full (the one goroutine a WAL runs; Close waits for it). They
// are ignored, and removed by ReadAll. Every segment is filled with zeros to
// the segment size before use, so appends change no file size or extent
// metadata (fdatasync stays cheap) and unwritten space reads as zeros.
//
// A segment is a sequence of records, each starting at a multiple of 8:
//
//	offset 0   uint32 LE  length: 12 + payload size (0 means end of log)
//	offset 4   uint8      type
//	offset 5   3 bytes    zero
//	offset 8   uint32 LE  CRC-32C over bytes 0..7 and the payload, seeded
//	                      with the CRC of the previous record in the log
//	offset 12  payload, then zero padding to a multiple of 8
//
// Record types and payloads:
//
//	1 crc-carry   first record of every segment: "cairnwal", format version
//	              (uint32 LE, 1), sequence (uint64 LE), first index
//	              (uint64 LE), CRC of the previous record (uint32 LE, 0 in
//	              the first segment), which also seeds this record's CRC
//	2 metadata    the caller's bytes; second record of every segment
//	3 entry       proto.Marshal of raftpb.Entry
//	4 hard state  proto.Marshal of raftpb.HardState; repeated at the start
//	              of every segment after the first once one was saved
//	5 snapshot    index (uint64 LE), term (uint64 LE); Create writes {0,0}
//
// The carry record lets a reader start at any segment and lets it check that
// the segment is the one its name says and follows the previous segment.
package wal
