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
//     about CacheSize + 3*MemTableSize, never by the number of keys; Pebble
//     charges memtables against its block cache, so the engine sizes that
//     cache to leave CacheSize for blocks);
//   - the filesystem seam (Options.FS: vfs.Default in production, an
//     in-memory crashable FS in tests);
//   - the key-space map (the Prefix* constants) and the order-preserving
//     encodings other packages build their keys with.
//
// Packages above (mvcc, lease, auth, membership) use DB() directly and own
// the layout inside their prefix.
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
