// Package snap stores raft snapshots (raftpb.Snapshot: metadata plus the
// state machine's data) as files, one per snapshot, in one directory, and
// streams the state machine itself (the whole storage engine) as an engine
// snapshot body.
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
//
// # Engine snapshots
//
// A raft leader sends a lagging follower the whole storage engine; the
// same body serves etcd's Maintenance.Snapshot RPC and is what cairnutl
// saves, checks and restores. The body is an archive of the files of a
// Pebble checkpoint, streamed with bounded memory (1 MiB chunks), never
// loaded whole.
//
// Sender: OpenEngineSnapshot takes a point-in-time checkpoint of the engine
// (storage.Engine.Checkpoint: every write committed before the call, none
// committed after it returns) into a fresh
// "engine-snapshot-*" directory under a scratch directory on the engine's
// filesystem, and returns an EngineSnapshot, an io.ReadCloser whose Size is
// the exact body length, known before the first Read. Sstables are hard
// links, so the checkpoint is cheap and stays valid while the engine
// compacts, deletes files or closes; the WAL and MANIFEST are copied.
// Close removes the checkpoint, also halfway through the body, and may run
// concurrently with a Read (the transport interrupts a send that way).
//
// Receiver: ReceiveEngineSnapshot writes one body into a directory that
// must not exist yet. It fills dir+".partial" (removing a crashed
// receive's leftover first), fsyncs every file, checks the format, the
// names, the sizes and the trailer, then syncs the directory, renames it to
// dir and syncs the parent: after a crash dir is complete or absent. On
// error nothing is left and the error wraps ErrBodyTruncated,
// ErrBodyCorrupt, ErrBodyChecksum or the reader's own error. The body is
// read to io.EOF, so a transport body's own length and CRC check runs too.
// storage.Open(dir, …) then opens exactly the checkpointed engine.
// VerifyEngineSnapshot runs the same checks on a saved body without
// writing anything.
//
// # Snapshot files
//
// Backups (Maintenance.Snapshot, "snapshot save", cairnutl) frame an
// engine snapshot body the way etcd frames its bbolt files: a 24-byte
// header ("cairnbak", version, body length), the body, zero padding to a
// multiple of 512 bytes, then the SHA-256 of everything before it.
// OpenBackup streams one; VerifyBackup and ReceiveBackup check (and
// unpack) one with ReceiveEngineSnapshot's guarantees; CheckTrailer checks
// the trailer of any such file, etcd's included. Layout in backup.go.
//
// # Engine snapshot body format
//
// Integers are little-endian.
//
//	header    8 bytes    magic "cairneng"
//	          uint32     format version (1)
//	file      1 byte     record type 1
//	          uint16     name length n, 1..255
//	          n bytes    name
//	          uint64     size s
//	          s bytes    contents
//	...                  one file record per file, names strictly
//	                     increasing (bytewise)
//	end       1 byte     record type 2
//	          uint64     number of file records, at least 1
//	trailer   32 bytes   SHA-256 of every byte before the trailer
//
// Nothing follows the trailer. A name is a plain file name from
// [A-Za-z0-9._-] that is not "." and contains no "..", so it can never
// leave the directory it is written to; the strict order rules out
// duplicates with no memory per file. The body length is 12 + 9 + 32 plus,
// per file, 11 + n + s. Pebble's zero-length marker files
// ("marker.manifest.000001.MANIFEST-000001") carry their meaning in their
// names, so empty files and exact names matter.
package snap
