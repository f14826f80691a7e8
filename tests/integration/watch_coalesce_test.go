package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestWatchCoalescesBacklog: a watcher whose client stops reading falls
// behind by many revisions; when it reads again, the backlog comes in a
// few responses of several whole revisions each, in order, none missing,
// none twice, no response's header before its last event. It fails if the
// server sends one response per revision. Raw gRPC, so the test controls
// when the client reads: it stops reading at once, and gRPC's flow control
// (64 KiB windows) holds the server's sends after the first few 32 KiB
// events, so the rest queue up in the hub.
func TestWatchCoalescesBacklog(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 30*time.Second)
	ws, err := pb.NewWatchClient(m.Client().ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
		CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")},
	}}); err != nil {
		t.Fatal(err)
	}
	if r, err := ws.Recv(); err != nil || !r.Created {
		t.Fatalf("created response: %v, %v", r, err)
	}

	const puts = 60
	c := m.Client() // a connection of its own, outside the watch's window
	var first int64
	for i := range puts {
		r, err := c.Put(ctx, "k", fmt.Sprintf("%03d%s", i, strings.Repeat("x", 32<<10)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.Header.Revision
		}
	}

	responses, got := 0, 0
	for got < puts {
		r, err := ws.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		responses++
		if len(r.Events) == 0 {
			t.Fatalf("response without events: %+v", r.Header)
		}
		for _, ev := range r.Events {
			if want := first + int64(got); ev.Kv.ModRevision != want || string(ev.Kv.Value[:3]) != fmt.Sprintf("%03d", got) {
				t.Fatalf("event %d at revision %d with value %.3q, want revision %d", got, ev.Kv.ModRevision, ev.Kv.Value, want)
			}
			got++
		}
		if last := r.Events[len(r.Events)-1].Kv.ModRevision; r.Header.Revision < last {
			t.Fatalf("response header at revision %d, before its last event at %d", r.Header.Revision, last)
		}
	}
	t.Logf("%d events in %d responses", got, responses)
	if responses > puts/3 {
		t.Fatalf("%d events came in %d responses: the backlog was not merged", got, responses)
	}
}
