package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestKill9KeepsAcknowledgedWrites kills cairn with SIGKILL in the middle
// of a concurrent write load, several times, and checks after each restart
// that every acknowledged put is present with the revision it was
// acknowledged at, and that the revisions of all keys form a gapless
// sequence (each put of a fresh key is exactly one revision).
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	// A small snapshot count makes raft snapshots and WAL releases happen
	// during the load too.
	p := startCairn(t, "", "--snapshot-count", "300")
	acked := map[string]int64{} // key -> revision acknowledged
	var mu sync.Mutex
	for round := 0; round < 3; round++ {
		c := newClient(t, p.Endpoint)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		n := 0
		// Kill after a random number of acknowledgements, while writes
		// are in flight.
		target := 300 + rng.Intn(700)
		reached := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					key := fmt.Sprintf("r%d-w%d-%06d", round, w, i)
					resp, err := c.Put(ctx, key, key)
					if err != nil {
						return // killed, or canceled below
					}
					mu.Lock()
					acked[key] = resp.Header.Revision
					n++
					if n == target {
						close(reached)
					}
					mu.Unlock()
				}
			}(w)
		}
		select {
		case <-reached:
		case <-time.After(60 * time.Second):
			mu.Lock()
			got := n
			mu.Unlock()
			t.Fatalf("round %d: only %d puts acknowledged in 60s", round, got)
		}
		p.Kill()
		cancel()
		wg.Wait()
		c.Close()

		p.Restart()
		c = newClient(t, p.Endpoint)
		vctx, vcancel := context.WithTimeout(context.Background(), 30*time.Second)
		g, err := c.Get(vctx, "r", clientv3.WithPrefix())
		vcancel()
		if err != nil {
			t.Fatal(err)
		}
		present := map[string]int64{}
		for _, kv := range g.Kvs {
			present[string(kv.Key)] = kv.ModRevision
		}
		mu.Lock()
		for k, rev := range acked {
			got, ok := present[k]
			if !ok {
				t.Fatalf("round %d: acknowledged put %s (rev %d) lost after kill -9", round, k, rev)
			}
			if got != rev {
				t.Fatalf("round %d: %s acknowledged at rev %d but stored at %d", round, k, rev, got)
			}
		}
		mu.Unlock()
		seen := make([]bool, g.Header.Revision+1)
		for _, rev := range present {
			if rev < 2 || rev > g.Header.Revision || seen[rev] {
				t.Fatalf("round %d: revision %d out of place (current %d)", round, rev, g.Header.Revision)
			}
			seen[rev] = true
		}
		for rev := int64(2); rev <= g.Header.Revision; rev++ {
			if !seen[rev] {
				t.Fatalf("round %d: revision %d missing: revisions have a gap", round, rev)
			}
		}
		t.Logf("round %d: %d acknowledged, %d present, revision %d", round, len(acked), len(present), g.Header.Revision)
		c.Close()
	}
}

func newClient(t testing.TB, eps ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
