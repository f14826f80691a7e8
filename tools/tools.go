//go:build tools

// Package tools pins the reference etcd server and etcdctl that the
// differential, e2e and benchmark runs compare Cairn against. Build them with
// `go build -o ../bin/ go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3`
// from this directory; see scripts/reference-etcd.sh.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
