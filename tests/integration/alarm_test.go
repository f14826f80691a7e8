package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

const noSpaceText = "etcdserver: mvcc: database space exceeded"

// wantAlarms checks the alarm list that c's member answers.
func wantAlarms(t *testing.T, ctx context.Context, name string, c *clientv3.Client, want ...*pb.AlarmMember) {
	t.Helper()
	resp, err := c.AlarmList(ctx)
	if err != nil {
		t.Fatalf("%s: alarm list: %v", name, err)
	}
	if !sameAlarms(resp.Alarms, want) {
		t.Fatalf("%s: alarms %v, want %v", name, resp.Alarms, want)
	}
}

// sameAlarms reports whether got lists the alarms of want, in order.
func sameAlarms(got, want []*pb.AlarmMember) bool {
	return slices.EqualFunc(got, want, func(g, w *pb.AlarmMember) bool {
		return g.MemberID == w.MemberID && g.Alarm == w.Alarm
	})
}

// wantNoSpace checks that err is etcd's NOSPACE error, message included.
func wantNoSpace(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rpctypes.ErrNoSpace) || err.Error() != noSpaceText {
		t.Fatalf("%s: %v, want %q", what, err, noSpaceText)
	}
}

// TestAlarmNoSpaceLifecycle follows NOSPACE through a 3-member cluster in
// which only m0 has a small quota: m0 raises the alarm for itself once it
// is full; every member then refuses what may grow the database and serves
// the rest; disarming while m0 is still full lets its next put raise the
// alarm again; once the space is reclaimed (delete, compact, defragment),
// disarming restores writes everywhere. No acknowledged write is lost and
// every member ends with the same state.
func TestAlarmNoSpaceLifecycle(t *testing.T) {
	// The engine counts writes once its memtables are flushed, which
	// Pebble does once they hold 32 MiB: the fill goes past that, with an
	// election timeout long enough for the members to keep their leader
	// while they write it.
	const quota = 4 << 20
	c := framework.StartCluster(t, 3, func(cfg *server.Config) {
		cfg.ElectionTimeout = time.Second
		if cfg.Name == "m0" {
			cfg.QuotaBackendBytes = quota
		}
	})
	ctx := framework.Context(t, 90*time.Second)
	m0 := c.Members[0]
	clients := make([]*clientv3.Client, len(c.Members))
	for i, m := range c.Members {
		clients[i] = m.Client()
	}
	cl := clients[0]
	for _, k := range []string{"keep/a", "keep/b"} {
		if _, err := cl.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	revokable, err := cl.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "lease/x", "v", clientv3.WithLease(revokable.ID)); err != nil {
		t.Fatal(err)
	}

	// Fill m0 until it refuses, with values that do not compress: the
	// space they take must stay taken until they are deleted.
	var seed [32]byte
	b := make([]byte, 128<<10)
	rand.NewChaCha8(seed).Read(b)
	value := string(b)
	var acked []string
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatalf("m0 accepted %d puts of %d bytes over a %d-byte quota", i, len(value), quota)
		}
		k := fmt.Sprintf("fill/%04d", i)
		_, err := cl.Put(ctx, k, value)
		if err != nil {
			wantNoSpace(t, "put on a full m0", err)
			break
		}
		acked = append(acked, k)
	}
	noSpace := &pb.AlarmMember{MemberID: m0.Server.ID(), Alarm: pb.AlarmType_NOSPACE}
	for i, m := range c.Members {
		wantAlarms(t, ctx, m.Config.Name, clients[i], noSpace)
	}

	// Every member refuses what may grow the database, m1 and m2 below
	// their own quota included.
	for i, m := range c.Members {
		cli, name := clients[i], m.Config.Name
		_, err := cli.Put(ctx, "refused", "v")
		wantNoSpace(t, name+": put", err)
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("keep/a"), "=", 0)).Then(clientv3.OpGet("keep/a")).Else(clientv3.OpPut("refused", "v")).Commit()
		wantNoSpace(t, name+": txn with a put in its failure branch", err)
		_, err = cli.Grant(ctx, 60)
		wantNoSpace(t, name+": lease grant", err)
	}

	// Reads, deletes, txns without puts, lease revokes, compaction and
	// defragmentation still work.
	for i, m := range c.Members {
		for _, opts := range [][]clientv3.OpOption{nil, {clientv3.WithSerializable()}} {
			g, err := clients[i].Get(ctx, "keep/a", opts...)
			if err != nil || len(g.Kvs) != 1 {
				t.Fatalf("%s: read keep/a: %v %v", m.Config.Name, g, err)
			}
		}
	}
	if _, err := clients[1].Delete(ctx, "keep/b"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := clients[2].Txn(ctx).Then(clientv3.OpDelete("nothing"), clientv3.OpGet("keep/a")).Commit(); err != nil {
		t.Fatalf("txn without puts: %v", err)
	}
	if _, err := clients[1].Revoke(ctx, revokable.ID); err != nil {
		t.Fatalf("lease revoke: %v", err)
	}
	g, err := cl.Get(ctx, "fill/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Compact(ctx, g.Header.Revision); err != nil {
		t.Fatalf("compaction: %v", err)
	}
	for _, m := range c.Members {
		if _, err := cl.Defragment(ctx, m.Endpoint); err != nil {
			t.Fatalf("%s: defragment: %v", m.Config.Name, err)
		}
	}
	// Nothing acknowledged is lost, on any member.
	for i, m := range c.Members {
		g, err := clients[i].Get(ctx, "fill/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range g.Kvs {
			keys = append(keys, string(kv.Key))
		}
		if !slices.Equal(keys, acked) {
			t.Fatalf("%s: %d fill keys, %d acknowledged", m.Config.Name, len(keys), len(acked))
		}
	}
	sameState(t, ctx, c)

	// Disarmed while m0 is still full: its next put raises NOSPACE again.
	d, err := clients[1].AlarmDisarm(ctx, &clientv3.AlarmMember{})
	if err != nil || !sameAlarms(d.Alarms, []*pb.AlarmMember{noSpace}) {
		t.Fatalf("disarm: %v %v", d, err)
	}
	wantAlarms(t, ctx, "m0 after disarm", cl)
	_, err = cl.Put(ctx, "refused", "v")
	wantNoSpace(t, "put on m0, still full, after disarm", err)
	for i, m := range c.Members {
		wantAlarms(t, ctx, m.Config.Name+" after the alarm came back", clients[i], noSpace)
	}

	// Reclaim the space, then disarm: writes work again everywhere.
	del, err := cl.Delete(ctx, "fill/", clientv3.WithPrefix())
	if err != nil || del.Deleted != int64(len(acked)) {
		t.Fatalf("delete the fill: %v %v", del, err)
	}
	if _, err := cl.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if _, err := cl.Defragment(ctx, m.Endpoint); err != nil {
			t.Fatalf("%s: defragment: %v", m.Config.Name, err)
		}
	}
	if st := m0.Server.Status(); st.DbSizeInUse > quota {
		t.Fatalf("m0 uses %d bytes after delete, compact and defragment; quota %d", st.DbSizeInUse, quota)
	}
	if _, err := cl.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	for i, m := range c.Members {
		wantAlarms(t, ctx, m.Config.Name+" after reclaim and disarm", clients[i])
		if _, err := clients[i].Put(ctx, "after/"+m.Config.Name, "v"); err != nil {
			t.Fatalf("%s: put after disarm: %v", m.Config.Name, err)
		}
		if _, err := clients[i].Grant(ctx, 60); err != nil {
			t.Fatalf("%s: lease grant after disarm: %v", m.Config.Name, err)
		}
	}
	g, err = clients[2].Get(ctx, "", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range g.Kvs {
		keys = append(keys, string(kv.Key))
	}
	if want := []string{"after/m0", "after/m1", "after/m2", "keep/a"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	sameState(t, ctx, c)
}

// TestAlarmSurvivesRestart: an alarm is state, not a size check. Raised
// over a 1-byte quota, NOSPACE is still active after a restart with the
// default quota and still refuses puts, until it is disarmed; the disarm
// survives the next restart too.
func TestAlarmSurvivesRestart(t *testing.T) {
	m := framework.StartMember(t, func(c *server.Config) { c.QuotaBackendBytes = 1 })
	ctx := framework.Context(t, 60*time.Second)
	_, err := m.Client().Put(ctx, "k", "v")
	wantNoSpace(t, "put over a 1-byte quota", err)
	noSpace := &pb.AlarmMember{MemberID: m.Server.ID(), Alarm: pb.AlarmType_NOSPACE}

	m.Config.QuotaBackendBytes = 0 // the default, 2 GiB
	m.Restart()
	if got := m.Server.Alarms(); !sameAlarms(got, []*pb.AlarmMember{noSpace}) {
		t.Fatalf("alarms after restart: %v", got)
	}
	cl := m.Client()
	wantAlarms(t, ctx, "after restart", cl, noSpace)
	st, err := cl.Status(ctx, m.Endpoint)
	if want := fmt.Sprintf("memberID:%d alarm:NOSPACE", noSpace.MemberID); err != nil || !slices.Equal(st.Errors, []string{want}) {
		t.Fatalf("status errors %q (%v), want [%q]", st.Errors, err, want)
	}
	_, err = cl.Put(ctx, "k", "v")
	wantNoSpace(t, "put under the quota while NOSPACE is active", err)
	if _, err := cl.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put after disarm: %v", err)
	}

	m.Restart()
	cl = m.Client()
	wantAlarms(t, ctx, "after the second restart", cl)
	if _, err := cl.Put(ctx, "k", "v2"); err != nil {
		t.Fatalf("put after the second restart: %v", err)
	}
}

// TestAlarmInstalledBySnapshot: a follower that was cut off while an alarm
// was raised learns it from the leader's snapshot.
func TestAlarmInstalledBySnapshot(t *testing.T) {
	c := framework.StartCluster(t, 3, func(cfg *server.Config) {
		cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = 100, 10
	})
	ctx := framework.Context(t, 60*time.Second)
	lead, f := c.Leader(ctx), c.Follower(ctx)
	c.Isolate(f)
	cl := lead.Client()
	for i := 0; i < 300; i++ {
		if _, err := cl.Put(ctx, fmt.Sprintf("w/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 0xc0ffee, Alarm: pb.AlarmType_CORRUPT}
	if _, err := pb.NewMaintenanceClient(cl.ActiveConnection()).Alarm(ctx, corrupt); err != nil {
		t.Fatal(err)
	}
	c.Heal()
	fc := f.Client()
	wantAlarms(t, ctx, "the follower", fc, &pb.AlarmMember{MemberID: 0xc0ffee, Alarm: pb.AlarmType_CORRUPT})
	wantSnapshotReceived(t, f)
	if got := f.Server.Alarms(); len(got) != 1 || got[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("the follower's alarms: %v", got)
	}
	sameState(t, ctx, c)
}

// TestAlarmCorrupt drives CORRUPT through the raw Maintenance.Alarm RPC:
// what each action answers, what an active CORRUPT refuses and serves,
// and what /health, /readyz and Status show.
func TestAlarmCorrupt(t *testing.T) {
	m := startHTTPMember(t)
	ctx := framework.Context(t, 60*time.Second)
	cl := m.client(t)
	mc := pb.NewMaintenanceClient(cl.ActiveConnection())
	base := "http://" + m.Addr
	lease, err := cl.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	alarm := func(action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) []*pb.AlarmMember {
		t.Helper()
		resp, err := mc.Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: member, Alarm: typ})
		if err != nil {
			t.Fatalf("%v %x %v: %v", action, member, typ, err)
		}
		h := resp.GetHeader()
		if h.GetClusterId() != m.Server.ClusterID() || h.GetMemberId() != m.Server.ID() || h.GetRevision() != m.Server.Rev() || h.GetRaftTerm() == 0 {
			t.Fatalf("%v: header %v", action, h)
		}
		return resp.Alarms
	}
	same := func(what string, got []*pb.AlarmMember, want ...*pb.AlarmMember) {
		t.Helper()
		if !sameAlarms(got, want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	other := &pb.AlarmMember{MemberID: 0xbad, Alarm: pb.AlarmType_CORRUPT}
	self := &pb.AlarmMember{MemberID: m.Server.ID(), Alarm: pb.AlarmType_CORRUPT}

	same("get with none active", alarm(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE))
	same("activate NONE", alarm(pb.AlarmRequest_ACTIVATE, 0xbad, pb.AlarmType_NONE))
	same("activate", alarm(pb.AlarmRequest_ACTIVATE, other.MemberID, other.Alarm), other)
	same("activate again", alarm(pb.AlarmRequest_ACTIVATE, other.MemberID, other.Alarm), other)
	same("activate for self", alarm(pb.AlarmRequest_ACTIVATE, self.MemberID, self.Alarm), self)
	// Sorted by type, then member ID.
	same("get all", alarm(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE), other, self)
	same("get NOSPACE", alarm(pb.AlarmRequest_GET, 0, pb.AlarmType_NOSPACE))
	// etcd filters a GET by type, never by member.
	same("get with a member", alarm(pb.AlarmRequest_GET, other.MemberID, pb.AlarmType_NONE), other, self)
	same("get CORRUPT", alarm(pb.AlarmRequest_GET, 1, pb.AlarmType_CORRUPT), other, self)

	expectHTTP(t, base+"/health", 503, `{"health":"false","reason":"ALARM CORRUPT"}`+"\n")
	expectHTTP(t, base+"/health?exclude=CORRUPT", 200, healthOK)
	expectHTTP(t, base+"/readyz/data_corruption", 503, "[-]data_corruption failed: alarm activated: CORRUPT\n\n")
	st, err := cl.Status(ctx, m.Addr)
	want := []string{fmt.Sprintf("memberID:%d alarm:CORRUPT", other.MemberID), fmt.Sprintf("memberID:%d alarm:CORRUPT", self.MemberID)}
	if err != nil || !slices.Equal(st.Errors, want) {
		t.Fatalf("status errors %q (%v), want %q", st.Errors, err, want)
	}

	// Writes through raft are refused; reads, read-only txns and alarm
	// requests are served.
	wantCorrupt := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrCorrupt) || err.Error() != "etcdserver: corrupt cluster" {
			t.Fatalf("%s: %v, want etcdserver: corrupt cluster", what, err)
		}
	}
	_, err = cl.Put(ctx, "k", "v2")
	wantCorrupt("put", err)
	_, err = cl.Delete(ctx, "k")
	wantCorrupt("delete", err)
	_, err = cl.Txn(ctx).Then(clientv3.OpDelete("nothing")).Commit()
	wantCorrupt("txn without puts", err)
	_, err = cl.Compact(ctx, 1)
	wantCorrupt("compaction", err)
	_, err = cl.Grant(ctx, 60)
	wantCorrupt("lease grant", err)
	_, err = cl.Revoke(ctx, lease.ID)
	wantCorrupt("lease revoke", err)
	if g, err := cl.Get(ctx, "k"); err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v" {
		t.Fatalf("read: %v %v", g, err)
	}
	if _, err := cl.Txn(ctx).Then(clientv3.OpGet("k")).Commit(); err != nil {
		t.Fatalf("read-only txn: %v", err)
	}
	if _, err := cl.Defragment(ctx, m.Addr); err != nil {
		t.Fatalf("defragment: %v", err)
	}

	same("deactivate", alarm(pb.AlarmRequest_DEACTIVATE, other.MemberID, other.Alarm), other)
	same("deactivate again", alarm(pb.AlarmRequest_DEACTIVATE, other.MemberID, other.Alarm))
	same("deactivate the wrong type", alarm(pb.AlarmRequest_DEACTIVATE, self.MemberID, pb.AlarmType_NOSPACE))
	same("still active", alarm(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE), self)
	_, err = cl.Put(ctx, "k", "v2")
	wantCorrupt("put while one alarm is left", err)
	same("deactivate the last", alarm(pb.AlarmRequest_DEACTIVATE, self.MemberID, self.Alarm), self)
	same("none left", alarm(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE))
	// An action etcd does not know changes nothing.
	same("unknown action", alarm(pb.AlarmRequest_AlarmAction(7), self.MemberID, self.Alarm))
	same("none after the unknown action", alarm(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE))

	if _, err := cl.Put(ctx, "k", "v2"); err != nil {
		t.Fatalf("put after deactivate: %v", err)
	}
	if _, err := cl.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke after deactivate: %v", err)
	}
	expectHTTP(t, base+"/health", 200, healthOK)
	expectHTTP(t, base+"/readyz/data_corruption", 200, "ok\n")
}
