// Package integration tests in-process Cairn members through the real etcd
// client, go.etcd.io/etcd/client/v3, exactly as an application would.
package integration
