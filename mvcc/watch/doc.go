// Package watch delivers MVCC changes to watchers with etcd's guarantees
// (ordered, no duplicates, no gaps, atomic per revision, resumable) in
// bounded memory.
//
// # Model
//
// A Hub serves every watch stream of one member. The apply loop calls
// Notify once per committed group with its events; the hub remembers the
// last notified revision. Each watcher wants the events of its key range
// from its next revision (minRev) on, and is in one of two states:
//
//   - synced: minRev is past the last notified revision, so Notify hands it
//     new events directly, one response per revision, as etcd does;
//   - unsynced: it is behind (it started at a past revision, or its stream
//     could not take a response). A catch-up goroutine reads its events from
//     storage (mvcc.Store.Events) in batches of at most maxCatchUpRevs
//     revisions and moves it to synced once it reaches the last notified
//     revision.
//
// # Memory bound: the slow-watcher policy
//
// Each Stream has one bounded queue (Config.QueueSize entries). An entry
// is one revision's responses to every synced watcher of the stream it
// reaches, which share that revision's events, or one other response; so
// the bound is in revisions, however many watchers a stream carries, and
// a reader that takes a backlog at once (Stream.Take) can merge each
// watcher's revisions into one message. Notify never blocks on it: when a synced watcher's queue is full, the watcher becomes unsynced
// at the first revision it did not receive and will read that history from
// storage later, so a client that stops reading costs at most its queue,
// never a growing buffer. The revisions it still needs stay readable until
// a compaction passes them; then it is canceled with compact_revision, as
// etcd cancels watchers whose start revision is compacted. Either the
// watcher gets every event or it is told about the compaction; it never
// sees a silent gap.
//
// # Concurrency
//
// One mutex guards the watcher sets and the notified revision; nothing
// blocks while holding it (queue sends are non-blocking, storage reads
// happen outside it). Control responses (created, canceled) are the
// caller's business: the Stream only carries event, compaction and
// progress responses.
package watch
