package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/transport"
)

// TestRequireLeader: with clientv3.WithRequireLeader (Kubernetes' watches),
// a member cut off from its cluster refuses requests with "etcdserver: no
// leader" once it has none, and ends the client's watch and keep-alive
// streams with that error after three election timeouts, so the client
// moves to a member that has a leader; requests without the flag are
// served as before.
func TestRequireLeader(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 60*time.Second)
	f := c.Follower(ctx)
	cli := f.Client()
	rctx := clientv3.WithRequireLeader(ctx)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(rctx, "k"); err != nil {
		t.Fatalf("a read requiring the leader, with one: %v", err)
	}
	wc := cli.Watch(rctx, "k", clientv3.WithCreatedNotify())
	if wr := <-wc; !wr.Created {
		t.Fatalf("watch: %+v", wr)
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(
		metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
	if err != nil {
		t.Fatal(err)
	}
	if err := ka.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease.ID)}); err != nil {
		t.Fatal(err)
	}
	if r, err := ka.Recv(); err != nil || r.TTL <= 0 {
		t.Fatalf("keep-alive with a leader: %v %v", r, err)
	}

	for _, m := range c.Members {
		if m != f {
			f.Faults.Cut(transport.Both, m.Server.ID())
		}
	}
	framework.WaitUntil(ctx, t, "the cut-off member losing its leader", func() bool { return !f.Server.HasLeader() })
	if _, err := cli.Get(rctx, "k", clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("a read requiring the leader, without one: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	if g, err := cli.Get(ctx, "k", clientv3.WithSerializable()); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("a serializable read not requiring the leader: %v %v", g, err)
	}
	// The streams end with the same error: no sleep, the member's monitor
	// looks once per election timeout.
	select {
	case wr, ok := <-wc:
		if !ok || !errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
			t.Fatalf("the watch requiring the leader got %+v (open %v, err %v), want %v", wr, ok, wr.Err(), rpctypes.ErrNoLeader)
		}
	case <-ctx.Done():
		t.Fatal("the watch requiring the leader did not end")
	}
	if _, err := ka.Recv(); rpctypes.Error(err) != rpctypes.ErrNoLeader {
		t.Fatalf("the keep-alive stream requiring the leader ended with %v, want %v", err, rpctypes.ErrNoLeader)
	}
	// A new stream requiring the leader is refused at once.
	if wr := <-cli.Watch(rctx, "k"); !errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
		t.Fatalf("a new watch requiring the leader, without one: %+v err %v", wr, wr.Err())
	}

	// Healed, the member serves the flag again.
	f.Faults.Heal()
	framework.WaitUntil(ctx, t, "the member finding its leader again", f.Server.HasLeader)
	if _, err := cli.Get(rctx, "k"); err != nil {
		t.Fatalf("a read requiring the leader after healing: %v", err)
	}
}

// TestMaxConcurrentStreams: with --max-concurrent-streams 1, a client
// connection holds one stream at a time: a second waits until the first
// ends.
func TestMaxConcurrentStreams(t *testing.T) {
	m := framework.StartMember(t, func(c *server.Config) { c.MaxConcurrentStreams = 1 })
	ctx := framework.Context(t, 30*time.Second)
	wc := pb.NewWatchClient(m.Client().ActiveConnection())
	firstCtx, endFirst := context.WithCancel(ctx)
	if err := openWatch(firstCtx, wc); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	// The limit is the server's, so the second stream is refused room:
	// a short wait shows it does not open.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := openWatch(short, wc); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a second stream over a limit of 1: %v, want it held until its deadline", err)
	}
	endFirst() // the client goes away: its stream is reset
	if err := openWatch(ctx, wc); err != nil {
		t.Fatalf("a stream after the first ended: %v", err)
	}
}

// openWatch opens a watch stream on ctx and creates a watcher on it.
func openWatch(ctx context.Context, wc pb.WatchClient) error {
	ws, err := wc.Watch(ctx)
	if err != nil {
		return err
	}
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}}); err != nil {
		return err
	}
	r, err := ws.Recv()
	if err == nil && !r.Created {
		err = fmt.Errorf("the stream answered %v, not created", r)
	}
	return err
}
