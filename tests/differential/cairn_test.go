package differential

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

func init() { startCairn = startCairnMember }

// startCairnMember starts an in-process Cairn member with o.
func startCairnMember(t *testing.T, o options) *clientv3.Client {
	t.Helper()
	if o.watchProgressNotifyInterval != 0 && !setWatchProgressNotifyInterval(nil, 0) {
		t.Skip("cairn differs: server.Config has no WatchProgressNotifyInterval yet, so periodic progress notifications cannot be made short; wire setWatchProgressNotifyInterval in cairn_test.go")
	}
	m := framework.StartMember(t, func(c *server.Config) {
		c.MaxRequestBytes = o.maxRequestBytes
		if o.watchProgressNotifyInterval != 0 {
			setWatchProgressNotifyInterval(c, o.watchProgressNotifyInterval)
		}
	})
	return m.Client()
}

// setWatchProgressNotifyInterval sets c's periodic watch progress
// notification interval to d and reports whether Cairn has that setting
// (c may be nil to ask only).
func setWatchProgressNotifyInterval(c *server.Config, d time.Duration) bool {
	if c != nil {
		c.WatchProgressNotifyInterval = d
	}
	return true
}
