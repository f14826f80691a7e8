package integration

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestQuotaRefusesWritesOnly: past --quota-backend-bytes, puts and txns
// that put fail with etcd's "database space exceeded", while reads,
// deletes and compaction keep working and nothing is partially applied.
func TestQuotaRefusesWritesOnly(t *testing.T) {
	m := framework.StartMember(t, func(c *server.Config) { c.QuotaBackendBytes = 1 })
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	if _, err := c.Put(ctx, "k", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put over quota: %v", err)
	}
	_, err := c.Txn(ctx).Then(clientv3.OpDelete("x"), clientv3.OpPut("k", "v")).Commit()
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("txn with a put over quota: %v", err)
	}
	g, err := c.Get(ctx, "k")
	if err != nil || g.Header.Revision != 1 || len(g.Kvs) != 0 {
		t.Fatalf("read over quota: %+v %v", g, err)
	}
	if _, err := c.Delete(ctx, "k"); err != nil {
		t.Fatalf("delete over quota: %v", err)
	}
	if _, err := c.Txn(ctx).Then(clientv3.OpDelete("k"), clientv3.OpGet("k")).Commit(); err != nil {
		t.Fatalf("txn without puts over quota: %v", err)
	}
	if _, err := c.Compact(ctx, 1); err != nil {
		t.Fatalf("compaction over quota: %v", err)
	}
}
