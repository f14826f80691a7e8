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
// Durability: the raft WAL is the member's only log. The engine runs
// without Pebble's WAL (storage.Options.DisableWAL), so its state survives
// a crash only as of its last memtable flush, and the raft WAL replays
// every entry after the applied index found there. The WAL may lose
// entries only below an index the engine holds durably: at every
// --snapshot-count entries the apply loop starts a memtable flush and asks
// raft for the snapshot (which releases the WAL before it) only once that
// flush is done, without waiting for it. Snapshot installs (Engine.Restore),
// engine checkpoints and shutdown flush too.
//
// Read path: serializable reads read the committed MVCC state at once;
// linearizable reads first obtain a raft ReadIndex (concurrent reads share
// one round) and wait until the apply loop has passed it.
//
// Space quota and alarms (alarm.go): the cluster's alarms (etcd's
// AlarmMember: a member ID and NOSPACE or CORRUPT) change only through
// raft (InternalRaftRequest.Alarm), are persisted in the apply group under
// storage.PrefixAlarm and reloaded at start and after a snapshot install,
// so every member holds the same set. A member that finds, when proposing
// a put, a txn with a put or a lease grant, that the bytes its engine has
// in use (storage.Engine.Sizes: on disk, less what Pebble frees or reuses
// by itself) exceed --quota-backend-bytes, raises NOSPACE for itself unless
// it is active, waits for that to apply, and refuses the request with
// ErrNoSpace. While NOSPACE is active for any member, every member refuses
// those same requests at apply; while CORRUPT is, every write through raft
// (put, delete, txn, compaction, lease grant and revoke). Only an Alarm
// DEACTIVATE clears an alarm; a member still over its quota raises NOSPACE
// again at its next such request.
//
// Corruption checks (corrupt.go): a member restarting with data compares
// its HashKV with its peers' (over the peer port, PathHashKV) before its
// transport starts, and refuses to start on a mismatch; the leader
// compares the current hashes and the hashes compactions recorded
// periodically, and raises CORRUPT for the members that disagree by
// proposing it, like any other alarm.
//
// Apply is deterministic: it depends only on the log and the state, never on
// the clock or on which member runs it. Requests that fail their checks fail
// as a whole before anything is written (etcd's behaviour: a txn's compares
// and checks run on a read view first, then its writes). What apply returns
// is the one exception: the ranges inside a txn run only on the member whose
// proposer waits for the answer (as in etcd), since they change nothing.
//
// Metrics (metrics.go, histograms.go, slowreq.go): etcd's names, types, help and labels,
// most read from the member's state at scrape time, the rest counted as
// they happen with single atomic adds or Prometheus histograms. The
// request counters (etcd_mvcc_*_total) count the store calls of each
// request as etcd's mvcc layer does (opCounter), checked against etcd
// request by request in tests/integration. An applied request, range or
// read-only txn slower than --warning-apply-duration is logged as etcd
// logs it.
package server
