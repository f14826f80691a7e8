// Package membership names the members of a Cairn cluster.
//
// A member is identified by a 64-bit ID derived deterministically from its
// peer URLs and the cluster token, so every member bootstrapping from the same
// --initial-cluster computes the same IDs; the cluster ID is derived from the
// sorted member IDs. Zero is never a valid ID (raft reserves it for "none").
//
// The package also parses etcd's --initial-cluster syntax
// ("name=url[,url…],name=url…"). It holds no state of its own yet: the
// runtime member list and conf-change checks arrive with clustering.
package membership
