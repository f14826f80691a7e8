// Package framework starts Cairn members in-process for integration tests
// and hands out real etcd clients (go.etcd.io/etcd/client/v3) connected to
// them over loopback gRPC. Nothing is mocked: each member has its own data
// dir, WAL, raft loop and Pebble engine.
package framework
