package transport

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// TestCloseLeavesNoGoroutines runs a busy three-member mesh, with a hung
// peer, a Receiver stuck in Process, a snapshot whose body blocks and an
// inbound stream paused, then closes everything and checks that the
// goroutine count returns to where it started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Warm up: gRPC starts a few process-wide goroutines on first use.
	func() {
		w1, w2 := startNode(t, 1, testCluster, nil), startNode(t, 2, testCluster, nil)
		mesh(t, w1, w2)
		waitActive(t, w1, w2)
		w1.stop()
		w2.stop()
	}()
	baseline := runtime.NumGoroutine()

	nodes := []*node{startNode(t, 1, testCluster, nil), startNode(t, 2, testCluster, nil), startNode(t, 3, testCluster, nil)}
	a, b, c := nodes[0], nodes[1], nodes[2]
	mesh(t, nodes...)
	hole, closeHole := blackHole(t)
	if err := a.tr.AddPeer(9, []string{hole}); err != nil {
		t.Fatal(err)
	}
	// c's raft loop is stuck: Process returns only when told to stop.
	c.rec.process = func(ctx context.Context, m *raftpb.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}
	b.faults.Pause(Inbound, 3)
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				x.tr.Send(traffic(x.id, y.id, 0, 50))
			}
		}
		x.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, x.id, 9, 0)})
	}
	a.tr.SendSnapshot(snapMsg(1, 2, 1), io.NopCloser(bytes.NewReader(make([]byte, 2<<20))))
	stuck := newGatedBody(64<<20, 1<<20) // nobody consumes it: Read blocks
	a.tr.SendSnapshot(snapMsg(1, 3, 1), stuck)
	waitFor(t, "traffic", func() bool { return b.rec.count(1) == 50 && len(a.rec.statuses(2)) == 1 })
	waitFor(t, "stuck snapshot in flight", func() bool { return a.peer(3).snapInflight.Load() })

	start := time.Now()
	for _, n := range nodes {
		n.tr.Close()
		n.tr.Close() // idempotent
	}
	t.Logf("closed three transports in %v", time.Since(start))
	if !stuck.closed {
		t.Error("Close did not close a snapshot body blocked in Read")
	}
	for _, n := range nodes {
		n.tr.Send(traffic(n.id, 1, 0, 1)) // after Close: a no-op, no panic
		if err := n.tr.AddPeer(7, []string{"http://127.0.0.1:1"}); err != ErrClosed {
			t.Errorf("AddPeer after Close: %v", err)
		}
		n.stopServer()
	}
	closeHole()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines remain, %d before:\n%s", runtime.NumGoroutine(), baseline, goroutineDump())
		}
		<-tick.C
	}
}
