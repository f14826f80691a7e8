package integration

import (
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestWatchStalledReader: a client stops reading its watch stream while
// writes continue. The server must not buffer without bound: the watcher
// falls behind (counted as a victim) and, once the client reads again, it
// catches up from storage with every event, in order, no gaps. A second
// stalled watcher whose history gets compacted meanwhile is canceled with
// the compact revision instead of silently skipping.
func TestWatchStalledReader(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 120*time.Second)
	stalled, err := pb.NewWatchClient(m.Client().ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stalled.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("s/"), RangeEnd: []byte("s0"),
	}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stalled.Recv(); err != nil || !r.Created {
		t.Fatalf("create: %+v %v", r, err)
	}
	// Writes continue while the client reads nothing.
	const n = 1500
	val := strings.Repeat("x", 32<<10)
	for i := 0; i < n; i++ {
		if _, err := c.Put(ctx, "s/k", val); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.Server.Watchable().Stats(); st.Victims == 0 {
		t.Fatalf("a watcher whose client stopped reading %d MiB of events was never moved off the fast path: %+v", n*32>>10, st)
	}
	// Reading again: every revision 2..n+1 exactly once, in order.
	next := int64(2)
	for next <= n+1 {
		r, err := stalled.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next {
				t.Fatalf("after the stall: revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next++
		}
	}
}

func TestWatchStalledThenCompacted(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 120*time.Second)
	stalled, err := pb.NewWatchClient(m.Client().ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stalled.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("c")}}})
	if r, err := stalled.Recv(); err != nil || !r.Created {
		t.Fatalf("create: %+v %v", r, err)
	}
	val := strings.Repeat("y", 32<<10)
	var last int64
	for i := 0; i < 1500; i++ {
		p, err := c.Put(ctx, "c", val)
		if err != nil {
			t.Fatal(err)
		}
		last = p.Header.Revision
	}
	if _, err := c.Compact(ctx, last, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// The watcher either received a revision (before it fell behind) or
	// is canceled with the compaction; never a jump over missing ones.
	next := int64(2)
	for {
		r, err := stalled.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.CompactRevision != 0 {
			if !r.Canceled || r.CompactRevision != last {
				t.Fatalf("compaction cancel: %+v", r)
			}
			return
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next {
				t.Fatalf("revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next++
		}
		if next > last {
			t.Fatal("the watcher kept up the whole time: the test did not stall it")
		}
	}
}
