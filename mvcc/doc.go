// Package mvcc is Cairn's multi-version key-value store: etcd's revision,
// version and compaction semantics on top of a storage.Engine (Pebble).
//
// # Mental model
//
// The store is a log of revisions. Every write transaction that changes
// something takes the next main revision; its changes get sub revisions
// 0, 1, 2, … in order. A put writes a version of its key (create_revision
// and version carried over from the key's live generation, or starting a
// new generation with version 1); a delete writes a tombstone that ends the
// generation. A read at revision R sees, for each key, its newest version
// with mod_revision ≤ R unless that is a tombstone. A fresh store is at
// revision 1.
//
// Compaction at C hides every revision below C: reads at R < C fail with
// ErrCompacted, reads at R ≥ C are unchanged, and the versions no such read
// can reach (everything older than each key's newest version ≤ C, and that
// one too when it is a tombstone) are deleted physically in the background.
//
// # Writers and readers
//
// Exactly one goroutine, the apply loop, writes. Its writes are grouped:
// Write/End delimit etcd transactions, many transactions share one open
// group (one indexed Pebble batch, so a transaction reads the group's
// earlier writes), and Commit writes the group with the applied raft
// position (Meta) in one atomic batch, then publishes the group's revision.
// Compact and PutMeta also go into the open group. A read inside a
// transaction that fails for any reason but the requested revision
// (ErrCompacted, ErrFutureRev) fails the group too: apply must not answer
// from a read that may have succeeded on the other members.
//
// Readers (Range, Rev, CompactRev, Keys, HashKV, GetMeta, Meta) run on any
// goroutine without locks. They see committed groups only: a Pebble
// iterator is created after loading the published revision, so it holds
// every version up to it; later commits only add versions above it.
// The published compact revision moves at Commit, after the revision, so
// readers never see CompactRev > Rev; the apply loop's transactions see a
// Compact at once. A reader loads the compact revision after creating its
// iterator, and physical deletion for a compaction starts only after that
// compaction was published, so a read accepted at R ≥ CompactRev never
// misses a version it needs.
//
// # On-disk layout (inside storage.Engine)
//
//	key index     'k' escaped(key) ^main(8 B BE) ^sub(8 B BE) → header
//	revision log  'r' main(8 B BE) sub(8 B BE)                → header, key, value
//	lease index   'i' lease(8 B BE) user key                  → empty
//	meta          'm' "i/state"             → applied index, applied term, revision (3×8 B BE)
//	              'm' "i/scheduled_compact" → compact revision (8 B BE)
//	              'm' "i/finished_compact"  → physically finished compact revision
//	              'm' "i/layout"            → layout of the records above (8 B BE, 2)
//	              'm' "i/keys"              → live keys, revision counted at (2×8 B BE)
//	              'm' "u/" name             → opaque value from PutMeta
//
// escaped(key) is storage.AppendEscaped: order-preserving, self-delimiting.
// The inverted revisions put a key's newest version first, so "newest
// version ≤ R" is one SeekGE to escaped(key) ^R, and a Range walks keys in
// order with one seek (or a few Next steps) per key. The engine's comparer
// makes escaped(key) the Pebble prefix of every version of key (see
// storage.Comparer), so the lookups of one key (a single-key Range, Put's
// read of the previous version, the hash pass's version lookups) use
// SeekPrefixGE and skip the tables whose bloom filter rules the key out.
//
// A header is one flag byte, 2 for a put and 3 for a tombstone; a put's
// header continues with uvarint create_revision, uvarint version and zigzag
// varint lease. mod_revision is the key's main revision. The revision-log
// entry repeats the header and adds uvarint key length, the key and the
// value: it is the whole version, so watch catch-up and the hash pass read
// the revision log alone, while the key index stays small (no values) and
// a Put's read of the previous version, a count-only or keys-only Range,
// touch only it. A Range that returns values reads each value from the
// revision log through a clone of its key-index iterator (one point in
// time). Values are written once in revision order, as etcd's bbolt keeps
// them, and do not travel through Pebble's levels with the index.
//
// Layout 1, written before the revision log held values (flags 0 and 1,
// the value in the key index, the user key alone in the revision log), is
// rewritten at Open (upgradeLayout), resumably.
//
// The lease index lists, per lease, the keys whose newest version is
// attached to it; Put and delete keep it in step in the same group, so a
// revoke finds its keys without scanning the key space and no lease
// attachment lives in memory.
//
// The live key count (Keys, etcd's etcd_debugging_mvcc_keys_total) is
// kept by the writes from what they know anyway: a Put of a key with no
// live version adds one (Put reads the previous version in any case), a
// delete takes one per key it tombstones. Commit records it with the
// group, stamped with the group's revision, and publishes it with the
// revision; compaction never changes it. A store whose record is missing
// (written by an older build) or stamped with another revision than the
// state's (written to by an older build since) is counted once at Open or
// Restore, one walk of the key index with constant memory, and the count
// recorded.
//
// PutRaw and DeleteRaw let other packages (lease, later membership and auth)
// write their own key spaces in the open group, so their state commits
// atomically with the applied position too.
//
// The revision log lets a compaction visit only the keys changed since the
// previous one and lets watch catch-up scan events by revision; each entry
// is removed together with the version it names. Memory never grows with
// the number of keys: there is no in-memory index, only Pebble's caches and
// the open group.
//
// # Compaction and crashes
//
// Compact validates against the apply loop's view and writes the scheduled
// compact revision into the open group. After Commit the compactor
// goroutine first hashes the history at C (etcd's compact hash, see
// HashKV), then scans the revision log over [previous finished revision,
// C], at most 1,000 entries per batch, drops the hidden versions of those
// keys (a tombstone last, after the versions it hides, so no intermediate
// state resurrects a key) in commits of at most 1,000 deletes, and writes
// the finished revision with the last batch.
//
// Both passes read the whole history, so the compactor is paced: after
// every 10 ms of work it rests as long as it worked (at most 100 ms; a
// rest that a loaded machine stretches is credited to the next ones). It
// thus uses at most about half of one core, feeds the engine its deletes
// at about half the rate it could, which keeps memtable flushes and the
// compactions of their tombstones from crowding out the apply loop's
// commits, and a compaction takes about twice its work time. A rest ends
// at once when the store closes; the compaction then resumes at the next
// Open, and a hash pass it cut short is not recorded. Compaction batches are not synced: if they are lost, Open sees
// scheduled > finished and runs the (idempotent) compaction again. As etcd
// does, a tombstone exactly at C is kept until the next compaction so a
// watch starting at C still sees it; reads cannot tell.
//
// Because the applied position is in the same batch as the state, the
// state after a crash is always exactly some committed group boundary and
// Meta says which one.
package mvcc
