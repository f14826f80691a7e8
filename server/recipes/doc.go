// Package recipes serves etcd's Lock and Election gRPC services
// (v3lockpb.Lock, v3electionpb.Election), which jetcd's lock and election
// clients and the JSON gateway's /v3/lock and /v3/election paths use.
//
// # Mental model
//
// Neither service has state of its own. Each request runs the
// concurrency recipes of etcd's Go client (go.etcd.io/etcd/client/v3/
// concurrency: Mutex, Election) against the member's own KV, Lease and
// Watch services, through a client connection to the member itself, as
// etcd runs them through its in-process client. A lock is a key under
// the lock's name, attached to the caller's lease, that waits for every
// older key under the name to go; an election is the same queue, whose
// head is the leader and whose value is the leader's proclamation. So a
// caller holding a lock or leading an election through these services
// and another through the client-side recipes (etcdctl lock, etcdctl
// elect, clientv3/concurrency) exclude each other, and both services
// behave on every member as they do on etcd.
//
// # Contract
//
//   - The caller's lease carries ownership: the services never grant,
//     renew or revoke a lease. Keep the lease alive while holding a lock
//     or leading; when it ends, its keys go and the next waiter gets the
//     lock or leadership.
//   - A Lock or Campaign that waits ends with the caller's context
//     (cancellation or deadline), and deletes the key it wrote, as in
//     etcd: the recipes clean up after themselves. The delete happens
//     on the member's time, after the caller has seen its error.
//   - Errors are etcd's: the KV and lease errors of the recipes' requests
//     (a lease that does not exist: "etcdserver: requested lease not
//     found"), the recipes' "election: not leader" and "election: no
//     leader", and `"leader" field must be provided` for a Proclaim or
//     Resign without a leader key.
package recipes
