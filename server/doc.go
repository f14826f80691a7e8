// Package server is one Cairn member: it wires storage, the MVCC store and
// the raft node together, runs the apply loop, and implements the KV
// operations in etcd's semantics on top of them.
//
// Write path: a request is validated by server/v3rpc, wrapped in an
// etcdserverpb.InternalRaftRequest with a member-unique ID, checked against
// --max-request-bytes and the space quota, and proposed to raft. The caller
// registers a waiter under the ID. The apply loop (one goroutine) receives
// committed entries in index order, applies each request to the MVCC store
// inside one storage batch per hand-off, commits that batch together with the
// applied index, and only then wakes the waiters, so an acknowledged write is
// both durable in the WAL and visible to reads.
//
// Read path: serializable reads read the committed MVCC state at once;
// linearizable reads first obtain a raft ReadIndex (concurrent reads share
// one round) and wait until the apply loop has passed it.
//
// Apply is deterministic: it depends only on the log and the state, never on
// the clock or on which member runs it. Requests that fail their checks fail
// as a whole before anything is written (etcd's behaviour: a txn's compares
// and checks run on a read view first, then its writes).
package server
