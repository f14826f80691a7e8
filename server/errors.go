package server

import "errors"

// Sentinel errors of the server layer. server/v3rpc maps them, and the
// mvcc and raftnode sentinels, to etcd's gRPC codes and messages.
var (
	ErrKeyNotFound      = errors.New("server: key not found")
	ErrLeaseNotFound    = errors.New("server: lease not found")
	ErrLeaseExists      = errors.New("server: lease already exists")
	ErrLeaseTTLTooLarge = errors.New("server: lease TTL too large")
	ErrRequestTooLarge  = errors.New("server: request is too large")
	ErrNoSpace          = errors.New("server: database space exceeded")
	ErrCorrupt          = errors.New("server: corrupt cluster")
	ErrStopped          = errors.New("server: stopped")
	ErrTimeout          = errors.New("server: request timed out")
	ErrCanceled         = errors.New("server: request canceled")
	ErrNoLeader         = errors.New("server: no leader")
	ErrLeaderChanged    = errors.New("server: leader changed")
)
