package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/internal/faultfs"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/transport"
)

// sameState checks that every running member has applied the same history:
// after a linearizable read through each (so each applied everything
// committed before it), their HashKV at the current revision agree.
//
// When that revision is a compaction's, a member answers with the hash its
// compactor took before compacting (compact revision: the previous
// compaction's) once it has taken it, and with a fresh one (compact
// revision: this one) until then, as etcd does; the two cover different
// versions. Hashes are compared only between answers with the same compact
// revision, and the check asks again until every member's compactor has
// caught up.
func sameState(t *testing.T, ctx context.Context, c *framework.Cluster) {
	t.Helper()
	var rev int64
	var members []*framework.Member
	for _, m := range c.Members {
		if m.Server == nil {
			continue
		}
		g, err := m.Client().Get(ctx, "sameState-barrier")
		if err != nil {
			t.Fatalf("%s: linearizable read: %v", m.Config.Name, err)
		}
		if rev == 0 {
			rev = g.Header.Revision
		}
		members = append(members, m)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		hashes := make([]*clientv3.HashKVResponse, len(members))
		agreed := true
		for i, m := range members {
			h, err := m.Client().HashKV(ctx, m.Endpoint, rev)
			if err != nil {
				t.Fatalf("%s: HashKV: %v", m.Config.Name, err)
			}
			hashes[i] = h
			first := hashes[0]
			if h.CompactRevision != first.CompactRevision {
				agreed = false
				continue
			}
			if h.Hash != first.Hash {
				t.Fatalf("%s: HashKV at revision %d is %x, %s's is %x (compact revision %d)",
					m.Config.Name, rev, h.Hash, members[0].Config.Name, first.Hash, h.CompactRevision)
			}
		}
		if agreed {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("HashKV at revision %d: the members' compact revisions never agreed: %v", rev, ctx.Err())
		}
	}
}

// counters returns the values of the counter series named name among m's
// metrics, as a scrape of /metrics would show them.
func counters(t *testing.T, m *framework.Member, name string) []float64 {
	t.Helper()
	var out []float64
	for _, s := range gather(t, m, name) {
		out = append(out, s.GetCounter().GetValue())
	}
	return out
}

// gauge returns the value of m's unlabeled gauge name.
func gauge(t *testing.T, m *framework.Member, name string) float64 {
	t.Helper()
	ms := gather(t, m, name)
	if len(ms) != 1 {
		t.Fatalf("%s: %d series", name, len(ms))
	}
	return ms[0].GetGauge().GetValue()
}

func gather(t *testing.T, m *framework.Member, name string) []*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Server.MetricsCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

// wantSnapshotReceived fails the test unless m has received a snapshot
// from its leader: a test of catching up by snapshot that did not get one
// did not exercise what it is about.
func wantSnapshotReceived(t *testing.T, m *framework.Member) {
	t.Helper()
	received := 0.0
	for _, v := range counters(t, m, "etcd_network_snapshot_receive_success") {
		received += v
	}
	if received < 1 {
		t.Fatalf("%s caught up without receiving a snapshot: the test did not exercise it", m.Config.Name)
	}
	if h := gather(t, m, "etcd_snap_db_save_total_duration_seconds"); len(h) != 1 || h[0].GetHistogram().GetSampleCount() < 1 {
		t.Fatalf("%s received a snapshot that etcd_snap_db_save_total_duration_seconds did not time: %v", m.Config.Name, h)
	}
}

// TestClusterWritesAndReadsThroughEveryMember: a 3-member cluster accepts
// writes sent to followers, serves linearizable reads on every member,
// lists its members with their names and client URLs, and every member
// ends with the same state.
func TestClusterWritesAndReadsThroughEveryMember(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 60*time.Second)
	for i, m := range c.Members {
		if _, err := m.Client().Put(ctx, fmt.Sprintf("k%d", i), m.Config.Name); err != nil {
			t.Fatalf("put through %s: %v", m.Config.Name, err)
		}
	}
	for _, m := range c.Members {
		g, err := m.Client().Get(ctx, "k", clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("get through %s: %v", m.Config.Name, err)
		}
		if len(g.Kvs) != 3 {
			t.Fatalf("%s: linearizable read sees %d of 3 keys", m.Config.Name, len(g.Kvs))
		}
	}
	ml, err := c.Client().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ml.Members {
		names = append(names, m.Name)
		if len(m.ClientURLs) != 1 || len(m.PeerURLs) != 1 || m.IsLearner {
			t.Fatalf("member %+v", m)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"m0", "m1", "m2"}) {
		t.Fatalf("members %v", names)
	}
	// The peer transport's metrics are exported with the member's. The
	// leader has sent to both followers (a follower may have sent to the
	// leader alone).
	peersSent := 0
	for _, v := range counters(t, c.Leader(ctx), "etcd_network_peer_sent_bytes_total") {
		if v > 0 {
			peersSent++
		}
	}
	if peersSent != 2 {
		t.Fatalf("etcd_network_peer_sent_bytes_total is positive for %d of 2 peers", peersSent)
	}
	sameState(t, ctx, c)
}

// TestClusterLeaderKilled: when the leader stops, the others elect a new one
// within a few election timeouts and lose no acknowledged write; the old
// leader restarts from its data dir and catches up.
func TestClusterLeaderKilled(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 60*time.Second)
	cl := c.Client()
	for i := 0; i < 50; i++ {
		if _, err := cl.Put(ctx, fmt.Sprintf("before/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	old := c.Leader(ctx)
	old.Stop()
	start := time.Now()
	lead := c.Leader(ctx)
	t.Logf("new leader %s after %v", lead.Config.Name, time.Since(start))
	for i := 0; i < 50; i++ {
		if _, err := lead.Client().Put(ctx, fmt.Sprintf("after/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	g, err := lead.Client().Get(ctx, "before/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if g.Count != 50 {
		t.Fatalf("%d of 50 acknowledged writes survived the leader's loss", g.Count)
	}
	old.Start()
	g, err = old.Client().Get(ctx, "after/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if g.Count != 50 {
		t.Fatalf("restarted member sees %d of the 50 writes made while it was down", g.Count)
	}
	sameState(t, ctx, c)
}

// pendingPut puts k=v through m and returns once m counts the put as a
// pending proposal (etcd_server_proposals_pending); it fails t if the put
// returns first. The channel gives the put's outcome.
func pendingPut(t *testing.T, ctx context.Context, m *framework.Member, v string) <-chan error {
	t.Helper()
	put := make(chan error, 1)
	go func() {
		_, err := m.Client().Put(ctx, "k", v)
		put <- err
	}()
	framework.WaitUntil(ctx, t, "the put pending on "+m.Config.Name, func() bool {
		select {
		case err := <-put:
			t.Fatalf("the put returned instead of waiting: %v", err)
		default:
		}
		return gauge(t, m, "etcd_server_proposals_pending") == 1
	})
	return put
}

// TestClusterWriteWaitsForLeader: a write made while its member knows no
// leader waits for one, as in etcd, instead of failing: a follower cut
// off from the others loses its leader; a put through it stays pending
// (etcd_server_proposals_pending) until the partition heals, then
// succeeds. It failed at once with "etcdserver: no leader" before. A put
// whose client gave up meanwhile is not made once a leader is known.
func TestClusterWriteWaitsForLeader(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 30*time.Second)
	f := c.Follower(ctx)
	c.Isolate(f)
	framework.WaitUntil(ctx, t, "the cut-off follower to lose its leader", func() bool { return f.Server.Status().Leader == 0 })
	gaveUp, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := f.Client().Put(gaveUp, "abandoned", "v")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a put given 200 ms without a leader: %v, want %v", err, context.DeadlineExceeded)
	}
	put := pendingPut(t, ctx, f, "during the election")
	c.Heal()
	if err := <-put; err != nil {
		t.Fatalf("the put, once the partition healed: %v", err)
	}
	r, err := c.Leader(ctx).Client().Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "during the election" {
		t.Fatalf("get: %v %v", r, err)
	}
	if r, err := c.Leader(ctx).Client().Get(ctx, "abandoned"); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("the abandoned put was made: %v %v", r, err)
	}
}

// TestClusterWriteWaitsOutLeaderTransfer: a write made on a leader while
// it hands leadership over waits and goes to the new leader, where raft
// would drop it (and etcd fail it). The transferee's WAL fsync is held, so
// it cannot take over yet: a put through the leader stays pending until
// the fsync is released, then succeeds. It failed at once with
// "etcdserver: no leader" before.
func TestClusterWriteWaitsOutLeaderTransfer(t *testing.T) {
	walSyncs := map[string]*faultfs.Hold{}
	c := framework.StartCluster(t, 3, func(cfg *server.Config) {
		walSyncs[cfg.Name] = faultfs.NewHold(t, errorfs.OpFileSyncData, func(path string) bool { return strings.Contains(path, ".wal") })
		cfg.FS = walSyncs[cfg.Name].Wrap(vfs.Default)
		// Raft abandons a transfer after an election timeout: long enough
		// for the steps below on a loaded machine.
		cfg.ElectionTimeout = 2 * time.Second
	})
	ctx := framework.Context(t, 30*time.Second)
	lead, target := c.Leader(ctx), c.Follower(ctx)
	hold := walSyncs[target.Config.Name]
	hold.Arm() // the transferee's campaign cannot persist its vote
	moved := make(chan error, 1)
	go func() { moved <- lead.Server.MoveLeader(ctx, target.Server.ID()) }()
	select {
	case <-hold.Held():
	case err := <-moved:
		t.Fatalf("the transfer ended before the transferee campaigned: %v", err)
	case <-ctx.Done():
		t.Fatal("the transferee never campaigned")
	}
	put := pendingPut(t, ctx, lead, "during the transfer")
	hold.Release()
	if err := <-moved; err != nil {
		t.Fatalf("MoveLeader: %v", err)
	}
	if err := <-put; err != nil {
		t.Fatalf("the put, once the transfer ended: %v", err)
	}
	r, err := target.Client().Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "during the transfer" {
		t.Fatalf("get: %v %v", r, err)
	}
}

// TestClusterPartitionedLeader: a leader cut off from both followers can
// neither write nor serve linearizable reads; the majority elects a new
// leader and goes on; after healing, the old leader catches up.
func TestClusterPartitionedLeader(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 60*time.Second)
	if _, err := c.Client().Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	old := c.Leader(ctx)
	c.Isolate(old)
	minority := old.Client()
	// A partitioned leader never gets a quorum: a second is as good as
	// any deadline to show it does not answer.
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := minority.Put(wctx, "k", "minority")
	cancel()
	if err == nil {
		t.Fatal("the partitioned leader acknowledged a write")
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = minority.Get(rctx, "k")
	cancel()
	if err == nil {
		t.Fatal("the partitioned leader served a linearizable read")
	}
	var lead *framework.Member
	framework.WaitUntil(ctx, t, "a leader of the majority", func() bool {
		for _, m := range c.Members {
			if m != old && m.Server.Status().Leader == m.Server.ID() {
				lead = m
			}
		}
		return lead != nil
	})
	if _, err := lead.Client().Put(ctx, "k", "majority"); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	c.Heal()
	g, err := old.Client().Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Kvs[0].Value) != "majority" {
		t.Fatalf("healed member reads %q", g.Kvs[0].Value)
	}
	sameState(t, ctx, c)
}

// TestClusterMemberErrors: reconfiguration requests that etcd refuses get
// etcd's errors.
func TestClusterMemberErrors(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 30*time.Second)
	cl := c.Client()
	ml, err := cl.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	taken := ml.Members[0].PeerURLs
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"add existing peer URL", func() error {
			return framework.Reconfigure(ctx, func() error { _, err := cl.MemberAdd(ctx, taken); return err })
		}, rpctypes.ErrGRPCPeerURLExist},
		// clientv3 checks URLs itself; the raw service must too.
		{"add bad URL", func() error {
			_, err := pb.NewClusterClient(cl.ActiveConnection()).MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"ftp://x:1"}})
			return err
		}, rpctypes.ErrGRPCMemberBadURLs},
		{"remove unknown", func() error { _, err := cl.MemberRemove(ctx, 12345); return err }, rpctypes.ErrGRPCMemberNotFound},
		{"update unknown", func() error { _, err := cl.MemberUpdate(ctx, 12345, []string{"http://127.0.0.1:1"}); return err }, rpctypes.ErrGRPCMemberNotFound},
		{"promote voter", func() error { _, err := cl.MemberPromote(ctx, ml.Members[1].ID); return err }, rpctypes.ErrGRPCMemberNotLearner},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(rpctypes.Error(err), rpctypes.Error(tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestClusterStrictReconfigCheck: --strict-reconfig-check refuses, as
// etcd does, a change while the serving member has not been connected to
// its peers for the health interval (unhealthy cluster), and a voter added
// while too few voters have started (not enough started members).
func TestClusterStrictReconfigCheck(t *testing.T) {
	ctx := framework.Context(t, 30*time.Second)
	c := framework.StartCluster(t, 3, func(cfg *server.Config) { cfg.HealthInterval = time.Hour })
	lead, follower := c.Leader(ctx), c.Follower(ctx)
	if _, err := lead.Client().MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"}); !errors.Is(rpctypes.Error(err), rpctypes.ErrUnhealthy) {
		t.Errorf("add learner: got %v, want %v", err, rpctypes.ErrUnhealthy)
	}
	if _, err := lead.Client().MemberRemove(ctx, follower.Server.ID()); !errors.Is(rpctypes.Error(err), rpctypes.ErrUnhealthy) {
		t.Errorf("remove running follower: got %v, want %v", err, rpctypes.ErrUnhealthy)
	}

	// A one-member cluster may grow to two; a third voter needs the second
	// to have started first.
	one := framework.StartCluster(t, 1)
	cl := one.Client()
	if _, err := cl.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); err != nil {
		t.Fatalf("second voter: %v", err)
	}
	if _, err := cl.MemberAdd(ctx, []string{"http://127.0.0.1:2"}); !errors.Is(rpctypes.Error(err), rpctypes.ErrMemberNotEnoughStarted) {
		t.Errorf("third voter: got %v, want %v", err, rpctypes.ErrMemberNotEnoughStarted)
	}
}

// TestClusterLearnerJoinsByStreamedSnapshot: a member added as a learner
// to a cluster with history receives the leader's engine as a snapshot,
// serves the data, is refused promotion only until caught up, and after
// promotion counts toward the quorum.
func TestClusterLearnerJoinsByStreamedSnapshot(t *testing.T) {
	c := framework.StartCluster(t, 3, func(cfg *server.Config) { cfg.SnapshotCount = 100 })
	ctx := framework.Context(t, 60*time.Second)
	cl := c.Client()
	for i := 0; i < 300; i++ {
		if _, err := cl.Put(ctx, fmt.Sprintf("k/%03d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Compact(ctx, 100); err != nil {
		t.Fatal(err)
	}
	m := c.AddMember(ctx, true)
	g, err := m.Client().Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if g.Count != 300 {
		t.Fatalf("the learner holds %d of 300 keys", g.Count)
	}
	// A learner serves Status and serializable reads only, as etcd's.
	st, err := m.Client().Status(ctx, m.Endpoint)
	if err != nil || !st.IsLearner {
		t.Fatalf("learner's status: %+v, %v", st, err)
	}
	for what, call := range map[string]func() error{
		"linearizable get": func() error { _, err := m.Client().Get(ctx, "k/000"); return err },
		"put":              func() error { _, err := m.Client().Put(ctx, "k", "v"); return err },
		"lease grant":      func() error { _, err := m.Client().Grant(ctx, 60); return err },
	} {
		if err := call(); !errors.Is(rpctypes.Error(err), rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)) {
			t.Errorf("%s on a learner: %v, want %v", what, err, rpctypes.ErrGRPCNotSupportedForLearner)
		}
	}
	// Promotion sent to a follower is forwarded to the leader, and the
	// answer lists the member as promoted.
	lead, follower := c.Leader(ctx), c.Follower(ctx)
	var resp *clientv3.MemberPromoteResponse
	if err := framework.Reconfigure(ctx, func() (err error) {
		resp, err = follower.Client().MemberPromote(ctx, m.Server.ID())
		return err
	}); err != nil {
		t.Fatalf("promote (refused until the learner caught up): %v", err)
	}
	for _, pm := range resp.Members {
		if pm.ID == m.Server.ID() && pm.IsLearner {
			t.Fatal("the promote answer still lists the member as a learner")
		}
	}
	// Four voters: with a follower stopped, a write needs the promoted
	// member's acknowledgement.
	follower.Stop()
	if _, err := lead.Client().Put(ctx, "after-promote", "v"); err != nil {
		t.Fatal(err)
	}
	sameState(t, ctx, c)
}

// TestClusterReconfigureUnderLoad: while clients write, a learner joins,
// is promoted once caught up, and a voter is removed. Every acknowledged
// write is on every remaining member at its revision, with the same
// HashKV.
func TestClusterReconfigureUnderLoad(t *testing.T) {
	c := framework.StartCluster(t, 3, func(cfg *server.Config) { cfg.SnapshotCount = 200 })
	ctx := framework.Context(t, 60*time.Second)
	lead, gone := c.Leader(ctx), c.Follower(ctx)
	cl := lead.Client()
	w := framework.StartWriters(ctx, t, cl, 4, "w/")
	w.WaitCount(ctx, 300)
	learner := c.AddMember(ctx, true)
	if err := framework.Reconfigure(ctx, func() error { _, err := cl.MemberPromote(ctx, learner.Server.ID()); return err }); err != nil {
		t.Fatalf("promote under load (refused until the learner caught up): %v", err)
	}
	w.WaitCount(ctx, w.Count()+300)
	if err := framework.Reconfigure(ctx, func() error { _, err := cl.MemberRemove(ctx, gone.Server.ID()); return err }); err != nil {
		t.Fatalf("remove under load: %v", err)
	}
	<-gone.Server.StopNotify()
	gone.Stop()
	w.WaitCount(ctx, w.Count()+300)
	w.Stop()

	for _, m := range c.Members {
		if m.Server != nil {
			w.Verify(ctx, m.Client(), m.Config.Name, math.MaxInt64)
		}
	}
	sameState(t, ctx, c)
	t.Logf("%d writes acknowledged during the reconfiguration", w.Count())
}

// TestClusterMoveLeader: the leader hands leadership to a chosen follower;
// a follower asked to move leadership, or a transfer to a non-member, get
// etcd's errors.
func TestClusterMoveLeader(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 30*time.Second)
	lead, target := c.Leader(ctx), c.Follower(ctx)
	if _, err := target.Client().MoveLeader(ctx, lead.Server.ID()); !errors.Is(rpctypes.Error(err), rpctypes.Error(rpctypes.ErrGRPCNotLeader)) {
		t.Fatalf("move-leader sent to a follower: %v", err)
	}
	if _, err := lead.Client().MoveLeader(ctx, 12345); !errors.Is(rpctypes.Error(err), rpctypes.ErrBadLeaderTransferee) {
		t.Fatalf("move-leader to a non-member: %v", err)
	}
	resp, err := lead.Client().MoveLeader(ctx, target.Server.ID())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header != nil {
		t.Fatalf("MoveLeader answered with a header, etcd's has none: %v", resp.Header)
	}
	if now := c.Leader(ctx); now != target {
		t.Fatalf("leader is %s, want %s", now.Config.Name, target.Config.Name)
	}
	// The cluster takes writes under its new leader. On a loaded machine
	// a 100 ms election timeout may elect again and lose the first try
	// (a timeout, as with etcd); a later try must succeed.
	for {
		_, err := c.Client().Put(ctx, "after-move", "v")
		if err == nil {
			break
		}
		if !errors.Is(rpctypes.Error(err), rpctypes.ErrTimeout) || ctx.Err() != nil {
			t.Fatal(err)
		}
		t.Logf("put after the move: %v; trying again", err)
	}
}

// TestClusterLeaseThroughFollower: keep-alive and time-to-live sent to a
// follower are answered by the leader's lessor.
func TestClusterLeaseThroughFollower(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 30*time.Second)
	cl := c.Follower(ctx).Client()
	g, err := cl.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := cl.KeepAliveOnce(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ka.TTL != 60 {
		t.Fatalf("keep-alive through a follower: TTL %d", ka.TTL)
	}
	ttl, err := cl.TimeToLive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 60 || ttl.TTL <= 0 || ttl.TTL > 60 {
		t.Fatalf("time-to-live through a follower: %+v", ttl)
	}
	if _, err := cl.KeepAliveOnce(ctx, 999); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of an unknown lease through a follower: %v", err)
	}
}

// TestClusterLeaseRenewedBeforeLeaderApplied: a lease granted through a
// follower is acknowledged once the follower applied it, which can be
// before the leader has; a keep-alive forwarded to the leader then must
// not find the lease missing (etcd waits for its apply loop too). The
// leader's apply loop is slowed with a fault seam to open that window.
func TestClusterLeaseRenewedBeforeLeaderApplied(t *testing.T) {
	var slow atomic.Value // name of the member whose apply is slow
	slow.Store("")
	c := framework.StartCluster(t, 3, func(cfg *server.Config) {
		name := cfg.Name
		cfg.BeforeApply = func() {
			if slow.Load() == name {
				time.Sleep(300 * time.Millisecond) // the fault: a slow disk under the leader's apply loop
			}
		}
	})
	ctx := framework.Context(t, 30*time.Second)
	lead, follower := c.Leader(ctx), c.Follower(ctx)
	cl := follower.Client()
	slow.Store(lead.Config.Name)
	for i := range 5 {
		g, err := cl.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.KeepAliveOnce(ctx, g.ID); err != nil {
			t.Fatalf("keep-alive %d right after the grant, through the follower: %v", i, err)
		}
	}
	slow.Store("")
}

// TestClusterRemovedMemberStops: a removed member stops itself with
// etcd's message, and the rest go on without it.
func TestClusterRemovedMemberStops(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 30*time.Second)
	lead, gone := c.Leader(ctx), c.Follower(ctx)
	goneID := gone.Server.ID()
	if err := framework.Reconfigure(ctx, func() error { _, err := lead.Client().MemberRemove(ctx, goneID); return err }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone.Server.StopNotify():
	case <-ctx.Done():
		t.Fatal("the removed member did not stop")
	}
	if err := gone.Server.Err(); !errors.Is(err, server.ErrRemoved) {
		t.Fatalf("removed member stopped with %v", err)
	}
	// Its data dir cannot bring it back.
	gone.Stop()
	if srv, err := server.New(gone.Config); err == nil {
		srv.Stop()
		t.Fatal("a removed member restarted from its data dir")
	} else if !strings.Contains(err.Error(), "was removed from the cluster") {
		t.Fatalf("restarting a removed member: %v", err)
	}
	ml, err := lead.Client().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 2 {
		t.Fatalf("%d members after removal", len(ml.Members))
	}
	// etcd_network_known_peers: 1 for each member, 0 for the removed one.
	known := map[string]float64{}
	for _, s := range gather(t, lead, "etcd_network_known_peers") {
		known[metricLabels(s)] = s.GetGauge().GetValue()
	}
	want := map[string]float64{}
	for _, m := range c.Members {
		if m != gone {
			want[fmt.Sprintf("Local=%x,Remote=%x", lead.Server.ID(), m.Server.ID())] = 1
		}
	}
	want[fmt.Sprintf("Local=%x,Remote=%x", lead.Server.ID(), goneID)] = 0
	if !maps.Equal(known, want) {
		t.Errorf("etcd_network_known_peers %v, want %v", known, want)
	}
	if _, err := lead.Client().Put(ctx, "after-remove", "v"); err != nil {
		t.Fatal(err)
	}
}

// TestClusterForceNewCluster: with two of three members lost for good, the
// survivor restarted with ForceNewCluster forms a one-member cluster with
// all its data, and takes writes.
func TestClusterForceNewCluster(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 30*time.Second)
	for i := 0; i < 100; i++ {
		if _, err := c.Client().Put(ctx, fmt.Sprintf("k/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	survivor := c.Members[2]
	// Everything acknowledged is on the survivor once it has applied it.
	if _, err := survivor.Client().Get(ctx, "barrier"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		m.Stop()
	}
	survivor.Config.ForceNewCluster = true
	survivor.Start()
	cl := survivor.Client()
	g, err := cl.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if g.Count != 100 {
		t.Fatalf("the survivor kept %d of 100 keys", g.Count)
	}
	ml, err := cl.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 1 || ml.Members[0].ID != survivor.Server.ID() {
		t.Fatalf("members after force-new-cluster: %v", ml.Members)
	}
	if _, err := cl.Put(ctx, "after", "v"); err != nil {
		t.Fatal(err)
	}
	// A later restart without the flag keeps the one-member cluster.
	survivor.Config.ForceNewCluster = false
	survivor.Restart()
	if _, err := survivor.Client().Put(ctx, "after-restart", "v"); err != nil {
		t.Fatal(err)
	}
}

// TestClusterForceNewClusterDropsUncommitted: the survivor is a leader
// cut off from its followers with writes in its log that never committed
// (their clients got errors). --force-new-cluster keeps everything
// committed and drops those entries, as etcd does.
func TestClusterForceNewClusterDropsUncommitted(t *testing.T) {
	// A long election timeout keeps the cut-off leader leading (check
	// quorum) while it appends the writes it cannot commit.
	c := framework.StartCluster(t, 3, func(cfg *server.Config) { cfg.ElectionTimeout = 2 * time.Second })
	ctx := framework.Context(t, 60*time.Second)
	lead := c.Leader(ctx)
	for i := 0; i < 20; i++ {
		if _, err := lead.Client().Put(ctx, fmt.Sprintf("k/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Members {
		if m != lead {
			lead.Faults.Cut(transport.Both, m.Server.ID())
		}
	}
	before := lead.Server.Status().RaftIndex
	for i := 0; i < 5; i++ {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := lead.Client().Put(pctx, fmt.Sprintf("lost/%d", i), "v")
		cancel()
		if err == nil {
			t.Fatal("a put committed without a quorum")
		}
	}
	if st := lead.Server.Status(); st.RaftIndex != before || st.Leader != lead.Server.ID() {
		t.Fatalf("the cut-off leader committed (index %d → %d) or lost the lead (%x)", before, st.RaftIndex, st.Leader)
	}
	for _, m := range c.Members {
		m.Stop()
	}
	lead.Faults.Heal()
	lead.Config.ForceNewCluster = true
	// The long election timeout served the cut; alone now, the member
	// would wait 2-4 s with it before electing itself.
	lead.Config.ElectionTimeout = 100 * time.Millisecond
	lead.Start()
	cl := lead.Client()
	if g, err := cl.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || g.Count != 20 {
		t.Fatalf("committed keys after force-new-cluster: %v, %v", g, err)
	}
	if _, err := cl.Put(ctx, "after", "v"); err != nil {
		t.Fatal(err)
	}
	if g, err := cl.Get(ctx, "lost/", clientv3.WithPrefix()); err != nil || len(g.Kvs) != 0 {
		t.Fatalf("uncommitted writes after force-new-cluster: %v, %v", g, err)
	}
}

// TestClusterFollowerCatchesUpBySnapshot: a follower cut off while the
// leader's log moves past it receives the leader's engine as a snapshot,
// and reports etcd_server_snapshot_apply_in_progress_total 1 while it
// installs it. A watch open on it then delivers every event it missed, in
// order; the leases granted meanwhile are known to it (a put with one
// applies alike on every member); and the snapshot really was streamed.
func TestClusterFollowerCatchesUpBySnapshot(t *testing.T) {
	// The install of a snapshot from the leader can be held: its first
	// step is creating the engine's restore directory.
	installs := map[string]*faultfs.Hold{}
	c := framework.StartCluster(t, 3, func(cfg *server.Config) {
		cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = 100, 10
		installs[cfg.Name] = faultfs.NewHold(t, errorfs.OpMkdirAll, func(path string) bool { return strings.HasSuffix(path, ".restore") })
		cfg.FS = installs[cfg.Name].Wrap(vfs.Default)
	})
	ctx := framework.Context(t, 60*time.Second)
	lead, f := c.Leader(ctx), c.Follower(ctx)
	install := installs[f.Config.Name]
	start, err := f.Client().Get(ctx, "w/")
	if err != nil {
		t.Fatal(err)
	}
	wch := f.Client().Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	c.Isolate(f)
	cl := lead.Client()
	for i := 0; i < 300; i++ {
		if _, err := cl.Put(ctx, fmt.Sprintf("w/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	l, err := cl.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	const applying = "etcd_server_snapshot_apply_in_progress_total"
	if v := gauge(t, f, applying); v != 0 {
		t.Fatalf("%s before any snapshot: %v", applying, v)
	}
	install.Arm()
	c.Heal()
	if _, err := cl.Put(ctx, "w/leased", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-install.Held():
	case <-ctx.Done():
		t.Fatal("the follower did not start installing a snapshot")
	}
	if v := gauge(t, f, applying); v != 1 {
		t.Fatalf("%s while installing: %v", applying, v)
	}
	install.Release()
	next := 0
	for next < 301 {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				t.Fatalf("watch on the follower ended after %d events: %v", next, wr.Err())
			}
			for _, ev := range wr.Events {
				want := fmt.Sprintf("w/%03d", next)
				if next == 300 {
					want = "w/leased"
				}
				if string(ev.Kv.Key) != want {
					t.Fatalf("event %d is %s, want %s", next, ev.Kv.Key, want)
				}
				next++
			}
		case <-ctx.Done():
			t.Fatalf("the follower's watch delivered %d of 301 events", next)
		}
	}
	// The follower has installed the snapshot: a put with the lease
	// granted while it was cut off must apply there too.
	if _, err := cl.Put(ctx, "w/leased-after", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-wch:
		if len(wr.Events) != 1 || string(wr.Events[0].Kv.Key) != "w/leased-after" {
			t.Fatalf("after catching up, the follower's watch got %v", wr.Events)
		}
	case <-ctx.Done():
		t.Fatal("the follower did not apply a put with the lease granted while it was cut off")
	}
	wantSnapshotReceived(t, f)
	if v := gauge(t, f, applying); v != 0 {
		t.Fatalf("%s after the install: %v", applying, v)
	}
	sameState(t, ctx, c)
}

// TestClusterStartErrors: start-up refuses, with a message saying what to
// do, advertised peer URLs that --initial-cluster does not list, and a
// member joining a cluster that never added it.
func TestClusterStartErrors(t *testing.T) {
	c := framework.StartCluster(t, 1)
	m := c.Members[0]
	cfg := server.Config{
		Name: "x", DataDir: t.TempDir(), ClientURLs: []string{"http://127.0.0.1:1"},
		PeerURLs:          []string{"http://127.0.0.1:2"},
		InitialCluster:    "x=http://127.0.0.1:3",
		HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
	}
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "--initial-advertise-peer-urls") {
		t.Fatalf("mismatched advertise URLs: %v", err)
	}
	cfg.InitialCluster = "x=http://127.0.0.1:2," + m.Config.Name + "=http://" + m.PeerAddr
	cfg.InitialClusterState = "existing"
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "member add") {
		t.Fatalf("joining without member add: %v", err)
	}
}

// TestClusterLateHeartbeatsCounted: a leader whose raft loop is held up
// by a slow WAL fsync sends its next heartbeats late; it logs etcd's
// warning and counts them in etcd_server_heartbeat_send_failures_total.
func TestClusterLateHeartbeatsCounted(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	walSyncs := map[string]*faultfs.Hold{}
	c := framework.StartCluster(t, 3, func(cfg *server.Config) {
		walSyncs[cfg.Name] = faultfs.NewHold(t, errorfs.OpFileSyncData, func(path string) bool { return strings.Contains(path, ".wal") })
		cfg.FS = walSyncs[cfg.Name].Wrap(vfs.Default)
		cfg.Logger = zap.New(core)
	})
	ctx := framework.Context(t, 30*time.Second)
	hb := c.Members[0].Config.HeartbeatInterval
	// A busy machine sends some heartbeats a little late anyway; the one
	// after the slow fsync is late by the delay less the two intervals
	// allowed, which such lateness rarely reaches.
	delay, minLate := 6*hb, 3*hb
	failures := func() (n float64) {
		for _, m := range c.Members {
			n += counters(t, m, "etcd_server_heartbeat_send_failures_total")[0]
		}
		return n
	}
	logged := func() bool {
		for _, e := range logs.FilterMessage("leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk").All() {
			if late, _ := e.ContextMap()["exceeded-duration"].(time.Duration); late >= minLate {
				return true
			}
		}
		return false
	}
	logs.TakeAll()
	before := failures()
	// The fault: a slow disk under the leader. An overloaded machine can
	// move leadership away before the slow fsync, so each round slows the
	// fsync of the member leading then.
	framework.WaitUntil(ctx, t, "a heartbeat late by the slow fsync, logged", func() bool {
		if logged() {
			return true
		}
		lead := c.Leader(ctx)
		walSyncs[lead.Config.Name].Delay(delay)
		lead.Client().Put(ctx, "k", "v") // fails when leadership moves: the next round tries again
		return logged()
	})
	if n := failures(); n <= before {
		t.Fatalf("a late heartbeat logged but not counted (%v before, %v after)", before, n)
	}
}
