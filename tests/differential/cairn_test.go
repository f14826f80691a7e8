package differential

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

func init() { startCairn = startCairnMember }

// startCairnMember starts an in-process Cairn member with o.
func startCairnMember(t *testing.T, o options) *clientv3.Client {
	t.Helper()
	m := framework.StartMember(t, func(c *server.Config) {
		c.MaxRequestBytes = o.maxRequestBytes
	})
	return m.Client()
}
