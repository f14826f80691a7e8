// Package raftnode drives one go.etcd.io/raft/v3 RawNode from a single
// goroutine and owns everything raft needs from the outside: the WAL, the
// snapshot files and the peer transport (Config.Transport; the Node is the
// transport's Receiver).
//
// The loop follows raft's Ready contract: hand the committed entries that an
// earlier Ready made durable to the apply loop over Node.Apply (so applying
// them overlaps with this Ready's fsync), append the hard state and new
// entries to the WAL (fsynced when raft.MustSync says so) and to the
// in-memory raft log, send messages, hand over any remaining committed
// entries, resolve ReadIndex requests, then Advance. Nothing is handed to
// apply, and so nothing is acknowledged, before the WAL holds it durably.
//
// Callers talk to the loop over channels: Propose, ReadIndex (concurrent
// calls share one raft ReadIndex round), ApplyConfChange and RequestSnapshot.
// Every call selects on its context and on the node stopping. Proposals
// wait while no leader is known, as in etcd's raft.Node, and one whose
// caller gave up meanwhile is not made.
//
// Restart: the newest snapshot that the WAL also recorded is loaded, the WAL
// is replayed from it, and raft re-delivers every committed entry after the
// snapshot index. The state machine skips entries it already applied (it
// stores its applied index in the same batch as its state), so the raft
// snapshot index never has to equal the state machine's applied index; it
// only must not exceed the state machine's durable applied index, which is
// why RequestSnapshot is called only after the state machine synced.
//
// Snapshots: the files record where the state machine stood (for
// restarts); the snapshot raft sends a member behind the log is made when
// raft asks for it, at the state machine's applied index with the
// configuration there (SetApplied), and travels with the state machine's
// own snapshot (Config.SnapshotBody). A received one is stored by
// Config.StoreSnapshot before raft sees it, made durable here, and handed
// to the apply loop as Apply.Snapshot. The in-memory log keeps
// SnapshotCatchUpEntries applied entries, none while the member is alone.
//
// A failed WAL write stops the node: the error is reported on Done and every
// pending call fails with ErrStopped.
package raftnode
