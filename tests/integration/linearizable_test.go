package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/lincheck"
	"github.com/cairn-kv/cairn/transport"
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
	// caught by a fault may time out; only successes count.
	writes := func(cl *clientv3.Client, n int) {
		for ok := 0; ok < n; {
			if _, err := cl.Put(ctx, "lincheck-pace", "x"); err == nil {
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

	lead = c.Leader(ctx)
	for _, m := range c.Members {
		if m != lead {
			m.Faults.Cut(transport.Both, lead.Server.ID())
			lead.Faults.Cut(transport.Both, m.Server.ID())
		}
	}
	for _, m := range c.Members {
		if m != lead {
			// The majority elects a leader and writes.
			writes(m.Client(), 10)
			break
		}
	}
	for _, m := range c.Members {
		m.Faults.Heal()
	}
	settle()
	stop()
	wg.Wait()
	t.Logf("history: %s", h.Summary())
	lincheck.Check(t, h, time.Minute)
	sameState(t, ctx, c)
}
