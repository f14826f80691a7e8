// Package lease is the lessor: etcd's TTL leases, with their expiry driven
// by the raft leader and their remaining TTLs checkpointed through raft.
//
// # Mental model
//
// A lease is an ID, a granted TTL in seconds and a remaining TTL recorded
// by the last checkpoint (0: none since the grant or the last renewal, so
// the whole TTL remains). Those three numbers are replicated state: they
// change only when the apply loop applies a grant, revoke or checkpoint
// (Grant, Revoke, Checkpoint), every member computes the same ones, and
// they are written with PutRaw/DeleteRaw into the apply group, so they
// commit atomically with the applied index and survive restarts. Which keys
// are attached to a lease is not the lessor's business: the MVCC store
// keeps that index (mvcc.Store.LeaseKeys).
//
// Time exists only on the primary lessor, the one on the raft leader.
// Promote gives every lease a deadline of now + extend + its remaining TTL;
// Renew (keep-alive) moves a deadline to now + TTL; Demote forgets all
// deadlines. No other member expires anything, and with no leader nothing
// expires at all. The primary's loop wakes every TickInterval and, through
// the Proposer:
//
//   - proposes a revoke for each lease past its deadline, at most
//     RevokeRate per second, retrying after RetryInterval if the revoke did
//     not apply (a leader change in between, say); an expired lease can no
//     longer be renewed;
//   - proposes checkpoints: each lease whose remaining TTL exceeds
//     CheckpointInterval has it recorded every CheckpointInterval, and a
//     renewal clears a recorded value, batched up to 1000 per proposal.
//
// A new leader therefore resumes each lease at most CheckpointInterval
// later than it would have expired (plus extend), instead of at a full TTL
// as etcd does by default; leases shorter than the interval restart at
// their TTL, which is within their TTL of the truth.
//
// # Concurrency
//
// One mutex guards the state; it is never held across a proposal. The
// apply-side methods must be called from the apply goroutine only, the
// others from anywhere. The loop's proposals run on goroutines tracked by
// the lessor and end when Stop cancels them.
//
// # On-disk layout
//
//	'l' ID (8 B BE) → uvarint TTL, uvarint remaining TTL
package lease
