// Package reference builds and locates the real etcd v3.7 server and etcdctl
// that differential, e2e and benchmark runs compare Cairn against.
//
// The binaries come from the module proxy through the tools module in
// tools/go.mod: `go build` there is cached by the Go build cache, so the first
// call in a fresh checkout takes a minute or two and later ones a few seconds.
// Set CAIRN_ETCD_BIN / CAIRN_ETCDCTL_BIN to use prebuilt binaries instead.
package reference
