// Package storage binds Cairn to the Pebble LSM engine.
//
// # Mental model
//
// An Engine is one Pebble database in one directory. Everything Cairn keeps
// on disk outside the raft WAL and snapshot files lives in it, in disjoint
// key spaces told apart by a one-byte prefix. The package owns three things
// and nothing else:
//
//   - opening and closing the database with bounded memory (Options documents
//     every default; memory is capped by the block cache plus the memtables,
//     about CacheSize + 4*MemTableSize, never by the number of keys; Pebble
//     charges memtables against its block cache, so the engine sizes that
//     cache to leave CacheSize for blocks). Open sstables (up to
//     MaxOpenFiles, about 2 MiB of data each) add a little per table,
//     their index and filter blocks being in the block cache: with 3,300
//     open at 3 M keys the member's RSS was no higher than with 1000;
//   - the filesystem seam (Options.FS: vfs.Default in production, an
//     in-memory crashable FS in tests);
//   - the key-space map (the Prefix* constants) and the order-preserving
//     encodings other packages build their keys with.
//
// Packages above (mvcc, lease, auth, membership) use DB() directly and own
// the layout inside their prefix.
//
// # Comparer, bloom filters and upgrades
//
// Keys sort bytewise, but the engine's Pebble comparer (Comparer, recorded
// in the database as ComparerName) splits a key-index key after its
// escaped user key, so all versions of one user key share a Pebble
// "prefix". Every sstable carries a bloom filter over those prefixes (10
// bits each, about 1% false positives), and a lookup of one user key
// through pebble.Iterator.SeekPrefixGE reads blocks only from the tables
// that may hold it, instead of one seek per level of the LSM. Every other
// key is its own prefix. Cairn ingests no table with a synthetic prefix,
// the one Pebble feature whose requirements the split does not meet.
//
// A database written by a build from before Comparer (Pebble's default
// comparer, same order, no filters) is upgraded when Open first meets it:
// its keys are copied, with Restore's bounded-memory streaming, into a new
// database beside it, which then replaces it through two directory renames
// (a crash at any point leaves the old database or the new one, and the
// next Open finishes or restarts the job). Restore reads a source written
// with either comparer, so snapshots from such builds restore as well.
//
// # Write stalls
//
// Pebble holds writes back when rotating the memtable would queue
// memTableStopWritesThreshold full memtables, or when L0 reaches
// l0StopWritesThreshold sublevels; the engine logs each such stall with its
// reason and length, and counts them in Engine.Stats (with the compaction
// backlog, L0's depth and the block cache) for the member's /metrics. The
// memtable threshold is 3 rather than Pebble's 2: with 2, a forced flush (a raft snapshot's, a defragment's) while another
// flush ran stopped every write until that flush ended, and a 10 M-key load
// logged about 20 such stalls of up to 112 ms; with 3 it logged none. The
// L0 threshold is 100 rather than Pebble's 12, and a second compaction may
// run when compaction falls behind: with the default, a bulk load on two
// cores stopped every write of the member for up to 4.4 s while one L0
// compaction finished.
//
// # The base level
//
// L0 compacts into a base level of 4 MiB (lBaseMaxBytes) instead of
// Pebble's 64 MiB. Every memtable flush carries a thin slice of key-index
// entries spread over all keys, and compacting it rewrites the base
// level's share of the key index; the revision log beside it only moves
// down. With the smaller base level a put at 3 M keys costs what it costs
// at 100k instead of 2.7 times as much.
//
// # Restore
//
// Engine.Restore(ctx, srcDir) replaces the entire contents of a live engine
// with those of the Pebble database in srcDir (a checkpoint another member
// sent, see package snap), in one atomic step:
//
//   - Readers of DB() see all of the old contents or all of the new, never
//     a mix; a Snapshot or iterator opened before the switch keeps seeing
//     the old contents for as long as it is open.
//   - A crash at any point leaves the old or the new contents; once Restore
//     returns nil the new contents are durable. On an error the engine is
//     unchanged.
//   - The caller stops writers first: a write racing Restore may be erased
//     or survive. Restore must not race Close; a second concurrent Restore
//     fails with ErrRestoreBusy, a Restore after Close with ErrClosed.
//   - srcDir is opened read-only (its WAL replayed in memory) and left as
//     it was, so a Restore interrupted by a crash can be run again on it;
//     the caller removes it.
//   - Memory is bounded whatever the size of the source.
//
// How: Restore streams the source's keys, in order, into sstables of about
// DefaultRestoreTableSize (64 MiB) in the directory Dir()+".restore" (Open
// and Restore remove a crash's leftover). The tables partition the span
// [nil, 0xff), which holds every key space: each carries a
// range deletion over its own slice of the span beside the source's keys in
// it. One Pebble ingest then links all of them in atomically; each range
// deletion, newer than every existing key, erases the old contents of its
// slice wherever they live (memtables or sstables), while the keys beside
// it share its sequence number and stay visible. Compactions reclaim the
// old contents once no older Snapshot needs them. IngestAndExcise is not
// used: an excise drops the old keys from the LSM at once, so a Snapshot
// taken before it would read an empty database afterwards.
// Restore refuses, with ErrRestoreUnsupported and before writing anything,
// a source or engine holding keys at or above 0xff or range keys (Cairn
// writes neither).
//
// # Key spaces
//
//	'k'  mvcc key index      (package mvcc)
//	'r'  mvcc revision log   (package mvcc)
//	'm'  metadata            MetaKey(name); package mvcc owns the layout
//	'i'  keys by lease       (package mvcc)
//	'l'  leases              reserved for package lease
//	'a'  auth                reserved for package auth
//	'c'  cluster membership  reserved for package membership
//	'w'  alarms              (package server, alarm.go)
//
// A package that needs a new key space adds its prefix here.
//
// # Encodings
//
// AppendEscaped turns an arbitrary byte string into a self-delimiting
// component that sorts exactly like the original: every 0x00 byte becomes
// 0x00 0xFF and the component ends with the terminator 0x00 0x01. Because no
// encoded component is a prefix of another, a fixed-width suffix (such as a
// revision) can follow it without disturbing the order of the strings.
// AppendEscapedBound writes the same bytes without the terminator; it is the
// seek key that sorts before the encodings of the string itself and of every
// string greater than it, and after the encodings of every smaller string, so
// a half-open user range [a, b) maps to [AppendEscapedBound(a),
// AppendEscapedBound(b)).
//
// Integers are 8-byte big-endian (AppendUint64); Invert gives descending
// order when the newest entry must come first.
package storage
