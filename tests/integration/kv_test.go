package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

func TestPutGetDeleteRevisions(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)

	g, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if g.Header.Revision != 1 || len(g.Kvs) != 0 || g.Count != 0 {
		t.Fatalf("fresh member: rev %d kvs %d count %d, want rev 1 and nothing", g.Header.Revision, len(g.Kvs), g.Count)
	}
	if g.Header.ClusterId == 0 || g.Header.MemberId == 0 || g.Header.RaftTerm == 0 {
		t.Fatalf("header lacks ids or term: %+v", g.Header)
	}
	p, err := c.Put(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Header.Revision != 2 {
		t.Fatalf("first put at revision %d, want 2", p.Header.Revision)
	}
	p, err = c.Put(ctx, "a", "2", clientv3.WithPrevKV())
	if err != nil {
		t.Fatal(err)
	}
	if p.PrevKv == nil || string(p.PrevKv.Value) != "1" || p.PrevKv.ModRevision != 2 {
		t.Fatalf("prev kv %+v", p.PrevKv)
	}
	g, err = c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	kv := g.Kvs[0]
	if string(kv.Value) != "2" || kv.CreateRevision != 2 || kv.ModRevision != 3 || kv.Version != 2 {
		t.Fatalf("after two puts: %+v", kv)
	}
	old, err := c.Get(ctx, "a", clientv3.WithRev(2))
	if err != nil {
		t.Fatal(err)
	}
	if string(old.Kvs[0].Value) != "1" || old.Header.Revision != 3 {
		t.Fatalf("read at rev 2: %+v header rev %d", old.Kvs, old.Header.Revision)
	}
	d, err := c.Delete(ctx, "a", clientv3.WithPrevKV())
	if err != nil {
		t.Fatal(err)
	}
	if d.Deleted != 1 || len(d.PrevKvs) != 1 || d.Header.Revision != 4 {
		t.Fatalf("delete: %+v", d)
	}
	d, err = c.Delete(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if d.Deleted != 0 || d.Header.Revision != 4 {
		t.Fatalf("deleting nothing must not bump the revision: %+v", d)
	}
	p, err = c.Put(ctx, "a", "3")
	if err != nil || p.Header.Revision != 5 {
		t.Fatalf("re-create: revision %d, err %v; want 5", p.Header.Revision, err)
	}
	g, _ = c.Get(ctx, "a")
	if kv := g.Kvs[0]; kv.CreateRevision != 5 || kv.Version != 1 {
		t.Fatalf("re-created key: %+v", kv)
	}
}

func TestRangeOptions(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	for i, k := range []string{"k3", "k1", "k2", "k4", "l"} {
		if _, err := c.Put(ctx, k, fmt.Sprintf("v%d", 9-i)); err != nil {
			t.Fatal(err)
		}
	}
	g, err := c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Kvs) != 2 || !g.More || g.Count != 4 || string(g.Kvs[0].Key) != "k1" {
		t.Fatalf("prefix limit 2: kvs %d more %v count %d", len(g.Kvs), g.More, g.Count)
	}
	g, err = c.Get(ctx, "k2", clientv3.WithFromKey())
	if err != nil || g.Count != 4 {
		t.Fatalf("from key k2: count %d err %v", g.Count, err)
	}
	g, err = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range g.Kvs {
		got = append(got, string(kv.Key))
	}
	if strings.Join(got, ",") != "k4,k2,k1,k3" {
		t.Fatalf("sort by value: %v", got)
	}
	g, err = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 4 || len(g.Kvs) != 0 {
		t.Fatalf("count only: %+v %v", g, err)
	}
	g, err = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || len(g.Kvs) != 4 || g.Kvs[0].Value != nil {
		t.Fatalf("keys only: %+v %v", g.Kvs, err)
	}
	g, err = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithMinModRev(4), clientv3.WithSerializable())
	if err != nil || len(g.Kvs) != 2 || g.Count != 4 {
		t.Fatalf("min mod rev 4: kvs %d count %d err %v", len(g.Kvs), g.Count, err)
	}
}

func TestTxn(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	if _, err := c.Put(ctx, "x", "1"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("x"), "=", "1"), clientv3.Compare(clientv3.Version("y"), "=", 0)).
		Then(clientv3.OpPut("y", "new"), clientv3.OpGet("y"), clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision("y"), "=", 0)},
			[]clientv3.Op{clientv3.OpPut("z", "nested-then")},
			[]clientv3.Op{clientv3.OpPut("z", "nested-else")})).
		Else(clientv3.OpPut("x", "failed")).
		Commit()
	if err != nil {
		t.Fatal(err)
	}
	if !r.Succeeded || r.Header.Revision != 3 {
		t.Fatalf("txn: succeeded %v rev %d", r.Succeeded, r.Header.Revision)
	}
	if got := r.Responses[1].GetResponseRange(); len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "new" {
		t.Fatalf("range inside txn must see the txn's own put: %+v", got)
	}
	// Nested compares see the state before the txn: y did not exist.
	if nested := r.Responses[2].GetResponseTxn(); !nested.Succeeded {
		t.Fatal("nested compare must be evaluated before the outer txn's writes")
	}
	g, _ := c.Get(ctx, "z")
	if string(g.Kvs[0].Value) != "nested-then" || g.Kvs[0].ModRevision != 3 {
		t.Fatalf("z: %+v", g.Kvs[0])
	}
	// Read-only txn does not bump the revision.
	r, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Value("x"), ">", "5")).Then(clientv3.OpGet("x")).Else(clientv3.OpGet("y")).Commit()
	if err != nil || r.Succeeded || r.Header.Revision != 3 {
		t.Fatalf("read-only txn: %+v %v", r, err)
	}
	// Duplicate keys and too many ops are refused before raft.
	_, err = c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
	if !errors.Is(err, rpctypes.ErrDuplicateKey) {
		t.Fatalf("duplicate key: %v", err)
	}
	_, err = c.Txn(ctx).Then(clientv3.OpDelete("a", clientv3.WithPrefix()), clientv3.OpPut("ab", "2")).Commit()
	if !errors.Is(err, rpctypes.ErrDuplicateKey) {
		t.Fatalf("put inside deleted range: %v", err)
	}
	ops := make([]clientv3.Op, server.DefaultMaxTxnOps+1)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprintf("o%d", i), "v")
	}
	if _, err = c.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("too many ops: %v", err)
	}
}

func TestErrors(t *testing.T) {
	m := framework.StartMember(t, func(c *server.Config) { c.MaxRequestBytes = 64 * 1024 })
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	for i := 0; i < 5; i++ {
		if _, err := c.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"empty key put", func() error { _, err := c.Put(ctx, "", "v"); return err }, rpctypes.ErrEmptyKey},
		{"empty key get", func() error { _, err := c.Get(ctx, ""); return err }, rpctypes.ErrEmptyKey},
		{"future rev", func() error { _, err := c.Get(ctx, "k", clientv3.WithRev(100)); return err }, rpctypes.ErrFutureRev},
		{"lease not found", func() error { _, err := c.Put(ctx, "k", "v", clientv3.WithLease(12345)); return err }, rpctypes.ErrLeaseNotFound},
		{"ignore value missing key", func() error { _, err := c.Put(ctx, "nope", "", clientv3.WithIgnoreValue()); return err }, rpctypes.ErrKeyNotFound},
		{"value with ignore value", func() error { _, err := c.Put(ctx, "k", "v", clientv3.WithIgnoreValue()); return err }, rpctypes.ErrValueProvided},
		{"request too large", func() error { _, err := c.Put(ctx, "big", strings.Repeat("x", 100*1024)); return err }, rpctypes.ErrRequestTooLarge},
		{"compact future", func() error { _, err := c.Compact(ctx, 100); return err }, rpctypes.ErrFutureRev},
	}
	for _, tc := range cases {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := c.Compact(ctx, 4, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k", clientv3.WithRev(3)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below compaction: %v", err)
	}
	if _, err := c.Compact(ctx, 4); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compact again: %v", err)
	}
	g, err := c.Get(ctx, "k", clientv3.WithRev(4))
	if err != nil || string(g.Kvs[0].Value) != "2" {
		t.Fatalf("read at compaction revision: %+v %v", g, err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	m := framework.StartMember(t, func(c *server.Config) { c.SnapshotCount = 50 })
	ctx := framework.Context(t, 60*time.Second)
	c := m.Client()
	const n = 230 // several raft snapshots and log compactions
	for i := 0; i < n; i++ {
		if _, err := c.Put(ctx, fmt.Sprintf("key-%03d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 2; round++ {
		m.Restart()
		c = m.Client()
		g, err := c.Get(ctx, "key-", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Kvs) != n || g.Header.Revision != int64(n+1+round) {
			t.Fatalf("after restart %d: %d keys at revision %d, want %d at %d", round, len(g.Kvs), g.Header.Revision, n, n+1+round)
		}
		p, err := c.Put(ctx, "after-restart", "x")
		if err != nil || p.Header.Revision != int64(n+2+round) {
			t.Fatalf("put after restart: rev %d err %v", p.Header.Revision, err)
		}
	}
}

func TestMemberListAndStatus(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	ml, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 1 || ml.Members[0].Name != "m0" || ml.Members[0].ClientURLs[0] != "http://"+m.Endpoint || ml.Members[0].ID != ml.Header.MemberId {
		t.Fatalf("member list: %+v", ml.Members)
	}
	st, err := c.Status(ctx, m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != ml.Header.MemberId || st.RaftAppliedIndex == 0 || st.Version != server.EtcdAPIVersion || st.DbSizeQuota != server.DefaultQuotaBackendBytes {
		t.Fatalf("status: %+v", st)
	}
}
