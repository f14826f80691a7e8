package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestDefragmentReclaimsSpace: after the data is deleted and compacted,
// Defragment returns its disk space, with the remaining data intact.
func TestDefragmentReclaimsSpace(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 60*time.Second)
	val := strings.Repeat("x", 16<<10)
	for i := range 1000 {
		if _, err := c.Put(ctx, fmt.Sprintf("big/%04d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	c.Put(ctx, "keep", "1")
	d, err := c.Delete(ctx, "big/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, d.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	before, err := c.Status(ctx, m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Defragment(ctx, m.Endpoint); err != nil {
		t.Fatal(err)
	}
	after, err := c.Status(ctx, m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("db size %d before defragment, %d after", before.DbSize, after.DbSize)
	// 16 MiB of values were written and deleted (without defragment the
	// engine stays at about 16 MiB; Pebble may have started on it before).
	if after.DbSize > 6<<20 {
		t.Fatalf("defragment left %d bytes (%d before); the deleted values should be gone", after.DbSize, before.DbSize)
	}
	if g, err := c.Get(ctx, "keep"); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("data after defragment: %v, %v", g, err)
	}
}

// TestHash: the whole-engine hash is stable while nothing changes and
// changes with a write.
func TestHash(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	mc := pb.NewMaintenanceClient(c.ActiveConnection())
	c.Put(ctx, "a", "1")
	h1, err := mc.Hash(ctx, &pb.HashRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := mc.Hash(ctx, &pb.HashRequest{})
	if err != nil || h2.Hash != h1.Hash || h1.Header.Revision != 2 {
		t.Fatalf("hash without writes: %v then %v, %v", h1, h2, err)
	}
	c.Put(ctx, "a", "2")
	if h3, err := mc.Hash(ctx, &pb.HashRequest{}); err != nil || h3.Hash == h1.Hash {
		t.Fatalf("hash after a write: %v (before %v), %v", h3, h1, err)
	}
}
