package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/lease"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// startLeaseMember starts a member whose lessor runs on a test clock and
// checks for expired leases every millisecond, and waits until its lessor
// is primary (TimeToLive answers only then).
func startLeaseMember(t *testing.T, edit ...func(*server.Config)) (*framework.Member, *clientv3.Client, *lease.ManualClock) {
	t.Helper()
	clk := lease.NewManualClock(time.Unix(1_700_000_000, 0))
	m := framework.StartMember(t, append([]func(*server.Config){func(c *server.Config) {
		c.LeaseClock = clk
		c.LeaseTickInterval = time.Millisecond
	}}, edit...)...)
	c := m.Client()
	waitPrimary(t, c)
	return m, c, clk
}

func waitPrimary(t *testing.T, c *clientv3.Client) {
	t.Helper()
	ctx := framework.Context(t, 30*time.Second)
	if r, err := c.TimeToLive(ctx, 0x7fff); err != nil || r.TTL != -1 {
		t.Fatalf("TimeToLive of an unknown lease: %+v, %v", r, err)
	}
}

func timeToLive(t *testing.T, c *clientv3.Client, id clientv3.LeaseID, keys bool) *clientv3.LeaseTimeToLiveResponse {
	t.Helper()
	var opts []clientv3.LeaseOption
	if keys {
		opts = append(opts, clientv3.WithAttachedKeys())
	}
	r, err := c.TimeToLive(framework.Context(t, 10*time.Second), id, opts...)
	if err != nil {
		t.Fatalf("TimeToLive(%x): %v", id, err)
	}
	return r
}

func TestLeaseExpiryDeletesKeysInOneRevision(t *testing.T) {
	_, c, clk := startLeaseMember(t)
	ctx := framework.Context(t, 30*time.Second)
	l, err := c.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"svc/a", "svc/b", "svc/c"} {
		if _, err := c.Put(ctx, k, "up", clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "svc/unleased", "stays"); err != nil {
		t.Fatal(err)
	}
	wc := c.Watch(ctx, "svc/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc
	clk.Advance(4 * time.Second)
	if r := timeToLive(t, c, l.ID, false); r.TTL != 1 {
		t.Fatalf("TTL after 4 of 5 s: %d", r.TTL)
	}
	clk.Advance(time.Second)
	r := nextEvents(t, ctx, wc)
	if len(r.Events) != 3 {
		t.Fatalf("expiry: %d events in the first response, want all 3: %v", len(r.Events), r.Events)
	}
	for i, ev := range r.Events {
		if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != r.Header.Revision || string(ev.Kv.Key) != []string{"svc/a", "svc/b", "svc/c"}[i] {
			t.Fatalf("event %d: %v at header revision %d", i, ev, r.Header.Revision)
		}
	}
	if r := timeToLive(t, c, l.ID, true); r.TTL != -1 || len(r.Keys) != 0 {
		t.Fatalf("TimeToLive after expiry: %+v", r)
	}
	g, err := c.Get(ctx, "svc/", clientv3.WithPrefix())
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Key) != "svc/unleased" {
		t.Fatalf("after expiry: %v, %v", g, err)
	}
	if _, err := c.KeepAliveOnce(ctx, l.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("KeepAliveOnce of an expired lease: %v", err)
	}
}

func TestLeaseKeepAliveHoldsForManyTTLs(t *testing.T) {
	_, c, clk := startLeaseMember(t)
	ctx := framework.Context(t, 30*time.Second)
	l, err := c.Grant(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "lock", "me", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	// 30 renewals 2.5 s apart: 25 s, more than 8 TTLs.
	for i := range 30 {
		clk.Advance(2500 * time.Millisecond)
		ka, err := c.KeepAliveOnce(ctx, l.ID)
		if err != nil || ka.TTL != 3 {
			t.Fatalf("renewal %d: %+v, %v", i, ka, err)
		}
	}
	if g, _ := c.Get(ctx, "lock"); len(g.Kvs) != 1 {
		t.Fatal("renewed lease lost its key")
	}
	if r := timeToLive(t, c, l.ID, true); r.TTL != 3 || r.GrantedTTL != 3 || len(r.Keys) != 1 {
		t.Fatalf("TimeToLive just after a renewal: %+v", r)
	}
	clk.Advance(2 * time.Second)
	if r := timeToLive(t, c, l.ID, false); r.TTL != 1 {
		t.Fatalf("TimeToLive counts down: TTL %d after 2 of 3 s", r.TTL)
	}
}

func TestLeaseRevokeManyKeysIsOneRevision(t *testing.T) {
	_, c, _ := startLeaseMember(t)
	ctx := framework.Context(t, 60*time.Second)
	l, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		if _, err := c.Put(ctx, fmt.Sprintf("many/%04d", i), "v", clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if r := timeToLive(t, c, l.ID, true); len(r.Keys) != n || string(r.Keys[0]) != "many/0000" {
		t.Fatalf("TimeToLive lists %d keys", len(r.Keys))
	}
	wc := c.Watch(ctx, "many/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc
	rv, err := c.Revoke(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < n {
		r := nextEvents(t, ctx, wc)
		for _, ev := range r.Events {
			if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != rv.Header.Revision {
				t.Fatalf("event %v, want a DELETE at the revoke's revision %d", ev, rv.Header.Revision)
			}
		}
		got += len(r.Events)
	}
	if _, err := c.Revoke(ctx, l.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestLeaseAttachments(t *testing.T) {
	_, c, _ := startLeaseMember(t)
	ctx := framework.Context(t, 30*time.Second)
	a, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "k", "v", clientv3.WithLease(0x123456)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with an unknown lease: %v", err)
	}
	txn, err := c.Txn(ctx).Then(clientv3.OpPut("k", "v"), clientv3.OpPut("k2", "v", clientv3.WithLease(0x123456))).Commit()
	if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("txn with a put under an unknown lease: %v, %v", txn, err)
	}
	if g, _ := c.Get(ctx, "k"); len(g.Kvs) != 0 {
		t.Fatal("failed txn wrote a key")
	}
	c.Put(ctx, "moved", "1", clientv3.WithLease(a.ID))
	c.Put(ctx, "moved", "2", clientv3.WithLease(b.ID)) // moves to b
	c.Put(ctx, "kept", "1", clientv3.WithLease(a.ID))
	c.Put(ctx, "kept", "2", clientv3.WithIgnoreLease()) // stays on a
	c.Put(ctx, "dropped", "1", clientv3.WithLease(a.ID))
	c.Put(ctx, "dropped", "2") // no lease any more
	c.Put(ctx, "deleted", "1", clientv3.WithLease(a.ID))
	c.Delete(ctx, "deleted")
	c.Put(ctx, "deleted", "2") // recreated without a lease
	keys := func(id clientv3.LeaseID) string { return fmt.Sprintf("%q", timeToLive(t, c, id, true).Keys) }
	if got := keys(a.ID); got != `["kept"]` {
		t.Fatalf("keys of a: %s", got)
	}
	if got := keys(b.ID); got != `["moved"]` {
		t.Fatalf("keys of b: %s", got)
	}
	if _, err := c.Revoke(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	g, _ := c.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	var left []string
	for _, kv := range g.Kvs {
		left = append(left, string(kv.Key))
	}
	if got := fmt.Sprint(left); got != "[deleted dropped moved]" {
		t.Fatalf("after revoking a: %s", got)
	}
	ls, err := c.Leases(ctx)
	if err != nil || len(ls.Leases) != 1 || ls.Leases[0].ID != b.ID {
		t.Fatalf("Leases: %+v, %v", ls, err)
	}
}

func TestLeaseSurvivesRestartWithRemainingTTL(t *testing.T) {
	m, c, clk := startLeaseMember(t)
	ctx := framework.Context(t, 30*time.Second)
	l, err := c.Grant(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	c.Put(ctx, "svc/x", "1", clientv3.WithLease(l.ID))
	clk.Advance(40 * time.Second)
	// A graceful stop records the exact remaining TTL; the new term's
	// lessor adds one election timeout (100 ms here), as etcd's does.
	m.Restart()
	c = m.Client()
	waitPrimary(t, c)
	r := timeToLive(t, c, l.ID, true)
	if r.TTL != 60 || r.GrantedTTL != 100 || len(r.Keys) != 1 {
		t.Fatalf("after restart: %+v, want TTL 60 of 100 with its key", r)
	}
	clk.Advance(60*time.Second + 100*time.Millisecond)
	wc := c.Watch(ctx, "svc/", clientv3.WithPrefix(), clientv3.WithRev(1))
	for {
		r := nextEvents(t, ctx, wc)
		if ev := r.Events[len(r.Events)-1]; ev.Type == mvccpb.DELETE {
			break
		}
	}
}

func TestLeaseGrantLimits(t *testing.T) {
	_, c, _ := startLeaseMember(t)
	ctx := framework.Context(t, 30*time.Second)
	// The framework's election timeout is 100 ms: the minimum TTL is 1 s.
	if l, err := c.Grant(ctx, 0); err != nil || l.TTL != 1 {
		t.Fatalf("Grant(0): %+v, %v", l, err)
	}
	if _, err := c.Grant(ctx, 9_000_000_001); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("Grant above the maximum TTL: %v", err)
	}
	l, err := c.Lease.Grant(ctx, 9_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if r := timeToLive(t, c, l.ID, false); r.GrantedTTL != 9_000_000_000 {
		t.Fatalf("largest TTL: %+v", r)
	}
	// A client-chosen ID, and the same ID again.
	raw := pb.NewLeaseClient(c.ActiveConnection())
	if _, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x77, TTL: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x77, TTL: 60}); !errors.Is(err, rpctypes.ErrGRPCLeaseExist) {
		t.Fatalf("duplicate ID: %v", err)
	}
}
