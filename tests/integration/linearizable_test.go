package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/lincheck"
)

// TestClusterLinearizableUnderFaults records puts, gets, compare-and-swaps
// and deletes on a few keys from clients of every member while the leader
// is killed and restarted, then partitioned away and healed, and checks
// the history is linearizable; then that every member holds the same state.
func TestClusterLinearizableUnderFaults(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 90*time.Second)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var clients []*clientv3.Client
	for _, m := range c.Members {
		clients = append(clients, m.Client(), m.Client())
	}
	wctx, stop := context.WithCancel(ctx)
	var h lincheck.History
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h = lincheck.Workload(wctx, clients, 4, lincheck.WorkloadConfig{Seed: seed, OpTimeout: 500 * time.Millisecond})
	}()
	// writes waits for n writes through cl to succeed, so that faults land
	// in the middle of traffic and the cluster has made progress. A write
	// caught by a fault may time out; only successes count. A write
	// forwarded to a leader that just died would wait for the server's
	// request timeout (over 5 s): pacing gives up on it sooner.
	writes := func(cl *clientv3.Client, n int) {
		for ok := 0; ok < n; {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := cl.Put(pctx, "lincheck-pace", "x")
			cancel()
			if err == nil {
				ok++
			} else if ctx.Err() != nil {
				t.Fatalf("pacing write: %v", err)
			}
		}
	}
	pacer := c.Client()
	settle := func() { writes(pacer, 20) }

	settle()
	lead := c.Leader(ctx)
	lead.Stop()
	settle()
	lead.Start()
	settle()

	lead, f := c.Leader(ctx), c.Follower(ctx)
	c.Isolate(lead)
	// The majority elects a leader and writes while the old one, cut off,
	// still has clients.
	writes(f.Client(), 100)
	c.Heal()
	settle()
	stop()
	wg.Wait()
	t.Logf("history: %s", h.Summary())
	// A workload that got nothing done would check trivially.
	for _, k := range []lincheck.OpKind{lincheck.OpGet, lincheck.OpPut} {
		if n := h.Count(k, lincheck.Applied); n < 10 {
			t.Errorf("only %d applied %v operations: the history checks too little", n, k)
		}
	}
	lincheck.Check(t, h, time.Minute)
	sameState(t, ctx, c)
}
