package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// startCluster launches n cairn processes as one new cluster (members
// e0, e1, …) and waits until each is ready.
func startCluster(t *testing.T, n int, extra ...string) []*proc {
	t.Helper()
	type addr struct{ client, peer string }
	addrs := make([]addr, n)
	var initial []string
	for i := range addrs {
		addrs[i] = addr{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i, addrs[i].peer))
	}
	var ps []*proc
	for i, a := range addrs {
		dir := filepath.Join(t.TempDir(), "data")
		args := append([]string{
			"--name", fmt.Sprintf("e%d", i), "--data-dir", dir,
			"--listen-client-urls", "http://" + a.client, "--advertise-client-urls", "http://" + a.client,
			"--listen-peer-urls", "http://" + a.peer, "--initial-advertise-peer-urls", "http://" + a.peer,
			"--initial-cluster", strings.Join(initial, ","),
			// Elections as etcd's defaults would make them, but faster.
			"--heartbeat-interval", "20", "--election-timeout", "200",
		}, extra...)
		p := &proc{t: t, Endpoint: a.client, DataDir: dir, args: args}
		p.launch()
		t.Cleanup(p.Kill)
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.waitReady()
	}
	return ps
}

// TestClusterKill9Leader: three real processes under write load; the leader
// gets SIGKILL. The others elect a new leader and keep accepting writes;
// the killed member restarts from its data dir and catches up. Every write
// acknowledged at any point is on every member at the revision it was
// acknowledged at, and the members' HashKV agree.
func TestClusterKill9Leader(t *testing.T) {
	ps := startCluster(t, 3, "--snapshot-count", "500")
	var eps []string
	for _, p := range ps {
		eps = append(eps, p.Endpoint)
	}
	c := newClient(t, eps...)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var mu sync.Mutex
	acked := map[string]int64{}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; wctx.Err() == nil; i++ {
				k := fmt.Sprintf("w%d-%06d", w, i)
				pctx, pcancel := context.WithTimeout(wctx, 2*time.Second)
				r, err := c.Put(pctx, k, k)
				pcancel()
				if err != nil {
					continue // indeterminate: the leader may have died under it
				}
				mu.Lock()
				acked[k] = r.Header.Revision
				mu.Unlock()
			}
		}(w)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				stopWriters()
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(20 * time.Millisecond): // polling pace
			}
		}
	}
	waitFor("1000 acknowledged writes", func() bool { return count() >= 1000 })

	leader := func(ep string) uint64 {
		st, err := c.Status(ctx, ep)
		if err != nil {
			return 0
		}
		return st.Leader
	}
	var dead *proc
	for _, p := range ps {
		st, err := c.Status(ctx, p.Endpoint)
		if err == nil && st.Leader == st.Header.MemberId {
			dead = p
		}
	}
	if dead == nil {
		t.Fatal("no member reports itself leader")
	}
	old := leader(dead.Endpoint)
	dead.Kill()
	killedAt := count()
	var alive []*proc
	for _, p := range ps {
		if p != dead {
			alive = append(alive, p)
		}
	}
	waitFor("a new leader", func() bool {
		l := leader(alive[0].Endpoint)
		return l != 0 && l != old && l == leader(alive[1].Endpoint)
	})
	waitFor("1000 more acknowledged writes", func() bool { return count() >= killedAt+1000 })
	dead.Restart()
	waitFor("500 more acknowledged writes", func() bool { return count() >= killedAt+1500 })
	stopWriters()
	wg.Wait()

	// Every member, after a linearizable read has brought it up to date,
	// holds every acknowledged write at its revision.
	var rev int64
	for _, p := range ps {
		pc := newClient(t, p.Endpoint)
		g, err := pc.Get(ctx, "w", clientv3.WithPrefix())
		pc.Close()
		if err != nil {
			t.Fatalf("%s: %v", p.Endpoint, err)
		}
		present := map[string]int64{}
		for _, kv := range g.Kvs {
			present[string(kv.Key)] = kv.ModRevision
		}
		for k, r := range acked {
			if present[k] != r {
				t.Fatalf("%s: acknowledged %s at revision %d, member has revision %d", p.Endpoint, k, r, present[k])
			}
		}
		if rev == 0 {
			rev = g.Header.Revision
		}
	}
	var hashes []uint32
	for _, p := range ps {
		h, err := c.HashKV(ctx, p.Endpoint, rev)
		if err != nil {
			t.Fatalf("%s: %v", p.Endpoint, err)
		}
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("HashKV at revision %d differs: %x", rev, hashes)
	}
	t.Logf("%d writes acknowledged (%d before the kill); hash %x at revision %d", len(acked), killedAt, hashes[0], rev)
}
