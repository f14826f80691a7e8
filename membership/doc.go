// Package membership names the members of a Cairn cluster and keeps the
// replicated member list.
//
// A member is identified by a 64-bit ID derived deterministically from its
// peer URLs and the cluster token, so every member bootstrapping from the same
// --initial-cluster computes the same IDs; the cluster ID is derived from the
// sorted member IDs. Zero is never a valid ID (raft reserves it for "none").
// ParseInitialCluster reads etcd's --initial-cluster syntax
// ("name=url[,url…],name=url…").
//
// Cluster is the runtime member list: the members (peer URLs, and the name
// and client URLs each publishes when it starts), which are learners, and
// the IDs removed for good. It changes only when the apply loop applies a
// conf change (Add, Promote, Remove, UpdatePeerURLs) or a member's published
// attributes (SetAttributes), in log order, so all members agree on it at
// every index. Validate decides whether a conf change is allowed with etcd's
// rules — a removed ID never returns, IDs and peer URLs are unique, at most
// --max-learners learners, only a learner is promoted — and is called both
// by the proposer, to answer with the right error, and at apply, where an
// invalid change becomes a no-op on every member alike. Changes are written
// through Store into the apply group, so they commit atomically with the
// applied index:
//
//	'c' 'm' ID (8 B BE) → JSON Member
//	'c' 'r' ID (8 B BE) → empty: a removed ID
//
// A conf change carries a Change (the member, and whether it is a
// promotion) JSON-encoded in its context.
package membership
