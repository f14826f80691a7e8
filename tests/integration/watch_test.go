package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// nextEvents reads the next response that carries events.
func nextEvents(t *testing.T, ctx context.Context, wc clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	for {
		select {
		case r, ok := <-wc:
			if !ok {
				t.Fatal("watch channel closed")
			}
			if err := r.Err(); err != nil {
				t.Fatalf("watch error: %v", err)
			}
			if len(r.Events) > 0 {
				return r
			}
		case <-ctx.Done():
			t.Fatal("no watch response before the deadline")
		}
	}
}

func TestWatchBasics(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)

	wc := c.Watch(ctx, "k", clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	created := <-wc
	if !created.Created || created.Header.Revision != 1 {
		t.Fatalf("created response: %+v", created)
	}
	c.Put(ctx, "k", "v1")
	c.Put(ctx, "other", "x")
	c.Put(ctx, "k", "v2")
	c.Delete(ctx, "k")
	var got []string
	for len(got) < 3 {
		r := nextEvents(t, ctx, wc)
		for _, ev := range r.Events {
			prev := "-"
			if ev.PrevKv != nil {
				prev = string(ev.PrevKv.Value)
			}
			got = append(got, fmt.Sprintf("%s %s=%s@%d prev=%s create=%v", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, prev, ev.IsCreate()))
		}
	}
	want := []string{"PUT k=v1@2 prev=- create=true", "PUT k=v2@4 prev=v1 create=false", "DELETE k=@5 prev=v2 create=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}

	// Replaying history from a past revision, over a prefix.
	hist := c.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(3))
	r := nextEvents(t, ctx, hist)
	if r.Events[0].Kv.ModRevision != 3 || string(r.Events[0].Kv.Key) != "other" {
		t.Fatalf("history starts with %+v", r.Events[0])
	}
}

func TestWatchTxnAtomicAndFilters(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	wc := c.Watch(ctx, "t/", clientv3.WithPrefix())
	noDel := c.Watch(ctx, "t/", clientv3.WithPrefix(), clientv3.WithFilterDelete())
	// Make sure both watchers exist before writing.
	c.Put(ctx, "t/sync", "0")
	nextEvents(t, ctx, wc)
	nextEvents(t, ctx, noDel)
	if _, err := c.Txn(ctx).Then(clientv3.OpPut("t/a", "1"), clientv3.OpPut("t/b", "2"), clientv3.OpDelete("t/sync")).Commit(); err != nil {
		t.Fatal(err)
	}
	r := nextEvents(t, ctx, wc)
	if len(r.Events) != 3 {
		t.Fatalf("a txn's events must arrive in one response: got %d", len(r.Events))
	}
	r = nextEvents(t, ctx, noDel)
	if len(r.Events) != 2 || r.Events[0].Type != mvccpb.PUT || r.Events[1].Type != mvccpb.PUT {
		t.Fatalf("NODELETE filter: %+v", r.Events)
	}
}

func TestWatchCompactedStart(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	for i := 0; i < 5; i++ {
		c.Put(ctx, "k", fmt.Sprint(i))
	}
	if _, err := c.Compact(ctx, 4, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	wc := c.Watch(ctx, "k", clientv3.WithRev(2))
	select {
	case r := <-wc:
		if r.CompactRevision != 4 || !r.Canceled || r.Err() != rpctypes.ErrCompacted {
			t.Fatalf("watch from a compacted revision: %+v err %v", r, r.Err())
		}
	case <-ctx.Done():
		t.Fatal("no cancel for a compacted start revision")
	}
}

func TestWatchProgressRequest(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	wctx := clientv3.WithRequireLeader(ctx)
	wc := c.Watch(wctx, "p")
	c.Put(ctx, "other", "1")
	c.Put(ctx, "other", "2")
	if err := c.RequestProgress(wctx); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case r := <-wc:
			if r.IsProgressNotify() {
				if r.Header.Revision != 3 {
					t.Fatalf("progress at revision %d, want 3", r.Header.Revision)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("no progress notification")
		}
	}
}

func TestWatchPeriodicProgress(t *testing.T) {
	m := framework.StartMember(t, func(c *server.Config) { c.WatchProgressNotifyInterval = 50 * time.Millisecond })
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	wc := c.Watch(ctx, "quiet", clientv3.WithProgressNotify())
	c.Put(ctx, "elsewhere", "1")
	for {
		select {
		case r := <-wc:
			if r.IsProgressNotify() && r.Header.Revision == 2 {
				return
			}
		case <-ctx.Done():
			t.Fatal("no periodic progress notification at revision 2")
		}
	}
}

// TestWatchManyWritersNoGaps: concurrent writers on several keys; each of
// many watchers (on two streams) must see every revision of its prefix
// exactly once, in order.
func TestWatchManyWritersNoGaps(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 60*time.Second)
	writer := m.Client()
	const watchers, writes = 50, 400
	clients := []*clientv3.Client{m.Client(), m.Client()}
	chans := make([]clientv3.WatchChan, watchers)
	for i := range chans {
		chans[i] = clients[i%2].Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		<-chans[i]
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < writes/4; i++ {
				if _, err := writer.Put(ctx, fmt.Sprintf("w/%d", w), fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for i, wc := range chans {
		next := int64(2)
		for next < 2+writes {
			r := nextEvents(t, ctx, wc)
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("watcher %d: got revision %d, want %d", i, ev.Kv.ModRevision, next)
				}
				next++
			}
		}
	}
}
