package integration

import (
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestWatchThousandsOfWatchers: 1000 watchers on one stream and 1000 spread
// over 10 streams, each on one of 20 keys; every watcher gets exactly the
// events of its key, in order.
func TestWatchThousandsOfWatchers(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 120*time.Second)
	const keys, rounds = 20, 5
	one := m.Client()
	many := make([]*clientv3.Client, 10)
	for i := range many {
		many[i] = m.Client()
	}
	type w struct {
		key string
		ch  clientv3.WatchChan
	}
	var ws []w
	for i := 0; i < 2000; i++ {
		c := one
		if i >= 1000 {
			c = many[i%10]
		}
		key := fmt.Sprintf("key-%02d", i%keys)
		ws = append(ws, w{key, c.Watch(ctx, key, clientv3.WithCreatedNotify())})
	}
	for _, x := range ws {
		if r := <-x.ch; !r.Created {
			t.Fatalf("watch on %s not created: %+v", x.key, r)
		}
	}
	writer := m.Client()
	for r := 0; r < rounds; r++ {
		for k := 0; k < keys; k++ {
			if _, err := writer.Put(ctx, fmt.Sprintf("key-%02d", k), fmt.Sprint(r)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, x := range ws {
		for r := 0; r < rounds; {
			resp := nextEvents(t, ctx, x.ch)
			for _, ev := range resp.Events {
				if string(ev.Kv.Key) != x.key || string(ev.Kv.Value) != fmt.Sprint(r) {
					t.Fatalf("watcher %d on %s: got %s=%s, want value %d", i, x.key, ev.Kv.Key, ev.Kv.Value, r)
				}
				r++
			}
		}
	}
}

// TestWatchResumeAfterRestart: a client that saw revisions up to R resumes
// with a new watch from R+1 after the member restarted, and continues
// seamlessly: no event missing, none repeated.
func TestWatchResumeAfterRestart(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 60*time.Second)
	c := m.Client()
	wc := c.Watch(ctx, "r", clientv3.WithPrefix())
	for i := 0; i < 10; i++ {
		c.Put(ctx, fmt.Sprintf("r%d", i), "before")
	}
	seen := int64(1)
	for seen < 6 {
		for _, ev := range nextEvents(t, ctx, wc).Events {
			seen = ev.Kv.ModRevision
		}
	}
	m.Restart()
	c = m.Client()
	for i := 0; i < 5; i++ {
		c.Put(ctx, fmt.Sprintf("r%d", i), "after")
	}
	wc = c.Watch(ctx, "r", clientv3.WithPrefix(), clientv3.WithRev(seen+1))
	next := seen + 1
	for next <= 16 {
		for _, ev := range nextEvents(t, ctx, wc).Events {
			if ev.Kv.ModRevision != next {
				t.Fatalf("resumed watch: revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next++
		}
	}
}
