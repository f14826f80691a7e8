// Package snap stores raft snapshots (raftpb.Snapshot: metadata plus the
// state machine's data) as files, one per snapshot, in one directory.
//
// # Mental model
//
// A snapshot file is immutable and appears atomically: SaveSnap writes a
// temporary file, fsyncs it, renames it into place and fsyncs the directory.
// Readers trust a file only if its checksum matches and its contents are the
// snapshot its name says. Load returns the newest valid snapshot; a corrupt
// file is renamed to "*.broken" (kept for an operator, never deleted) and the
// next older one is tried. At restart a member uses LoadNewestAvailable with
// the markers from wal.ValidSnapshotEntries, so that the snapshot it starts
// from is one its WAL can continue after. Purge bounds the directory.
//
// All file access goes through the vfs.FS given to New.
//
// # File format
//
// Files are named "%016x-%016x.snap" (term, index). "*.snap.tmp" files are
// unfinished saves and are ignored; "*.snap.broken" files failed to load.
//
//	offset 0   8 bytes    magic "cairnsnp"
//	offset 8   uint32 LE  format version (1)
//	offset 12  uint32 LE  CRC-32C (Castagnoli) over the whole file except
//	                      these 4 bytes
//	offset 16  uint64 LE  payload length; the file is exactly 24 + length
//	offset 24  payload    proto.Marshal of raftpb.Snapshot
package snap
