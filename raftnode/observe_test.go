package raftnode

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLeaderChangesAndWALSyncs: a lone member counts the one leader it
// sees, and the WAL fsyncs of its bootstrap and proposals reach the
// configured observer.
func TestLeaderChangesAndWALSyncs(t *testing.T) {
	var syncs atomic.Int64
	n := startLone(t, Config{WALSyncObserver: func(time.Duration) { syncs.Add(1) }})
	if c := n.Status().LeaderChanges; c != 1 {
		t.Fatalf("LeaderChanges %d, want 1", c)
	}
	before := syncs.Load()
	if err := n.Propose(ctx(t), []byte("x")); err != nil {
		t.Fatal(err)
	}
	collect(t, n, 1)
	if syncs.Load() <= before {
		t.Fatalf("no WAL fsync observed for a proposal (%d before, %d after)", before, syncs.Load())
	}
}

// TestPreVote: a member campaigns through raft's pre-vote unless NoPreVote
// (etcd's --pre-vote=false) turns it off.
func TestPreVote(t *testing.T) {
	for _, off := range []bool{false, true} {
		core, logs := observer.New(zapcore.InfoLevel)
		startLone(t, Config{NoPreVote: off, Logger: zap.New(core)}).Stop()
		pre := 0
		for _, e := range logs.All() {
			if strings.Contains(e.Message, "became pre-candidate") {
				pre++
			}
		}
		if (pre > 0) == off {
			t.Errorf("NoPreVote %t: %d pre-candidate steps logged", off, pre)
		}
	}
}
