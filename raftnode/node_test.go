package raftnode

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/wal"
)

func startNode(t *testing.T, fs vfs.FS, snapCount uint64) *Node {
	t.Helper()
	return startLone(t, Config{FS: fs, SnapshotCount: snapCount, SnapshotCatchUpEntries: 5})
}

// startLone starts cfg as member 1 alone in its cluster, in /m with 10 ms
// ticks and 64 KiB WAL segments (an in-memory disk unless cfg has one),
// and returns once it leads. It stops at the end of the test.
func startLone(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.ID, cfg.Peers, cfg.Dir, cfg.Metadata = 1, []uint64{1}, "/m", []byte("md")
	cfg.TickInterval, cfg.WALSegmentSize = 10*time.Millisecond, 64<<10
	if cfg.FS == nil {
		cfg.FS = vfs.NewMem()
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	for {
		changed := n.LeaderChanged()
		if n.Status().Lead != 0 {
			break
		}
		select {
		case <-changed:
		case <-ctx(t).Done():
			t.Fatal("no leader elected")
		}
	}
	return n
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// collect reads committed entries until it has seen want data entries.
func collect(t *testing.T, n *Node, want int) []*raftpb.Entry {
	t.Helper()
	var out []*raftpb.Entry
	for len(out) < want {
		select {
		case a := <-n.Apply():
			for _, e := range a.Entries {
				if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
					out = append(out, e)
				}
			}
		case <-ctx(t).Done():
			t.Fatalf("only %d of %d entries committed", len(out), want)
		}
	}
	return out
}

func TestProposeCommitRestart(t *testing.T) {
	fs := vfs.NewMem()
	n := startNode(t, fs, 1000)
	if string(n.Metadata()) != "md" {
		t.Fatalf("metadata %q", n.Metadata())
	}
	for i := 0; i < 50; i++ {
		if err := n.Propose(ctx(t), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ents := collect(t, n, 50)
	for i, e := range ents {
		if string(e.GetData()) != fmt.Sprint(i) {
			t.Fatalf("entry %d holds %q: order lost", i, e.GetData())
		}
	}
	n.Stop()
	// Restart: every committed entry after the snapshot comes back, in
	// order, for a state machine that skips what it already applied.
	n2 := startNode(t, fs, 1000)
	again := collect(t, n2, 50)
	for i := range again {
		if string(again[i].GetData()) != string(ents[i].GetData()) || again[i].GetIndex() != ents[i].GetIndex() {
			t.Fatalf("replayed entry %d differs", i)
		}
	}
}

func TestSnapshotCompactsAndRestarts(t *testing.T) {
	fs := vfs.NewMem()
	n := startNode(t, fs, 20)
	cs := n.ConfState()
	var last uint64
	for i := 0; i < 100; i++ {
		if err := n.Propose(ctx(t), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		for _, e := range collect(t, n, 1) {
			last = e.GetIndex()
		}
		n.RequestSnapshot(last, 2, cs)
	}
	n.Stop()
	n2 := startNode(t, fs, 20)
	if n2.SnapshotIndex() < 20 {
		t.Fatalf("restart from snapshot index %d: no snapshot was taken", n2.SnapshotIndex())
	}
	// Entries after the snapshot replay; those before are covered by it.
	// (The snapshot may have been taken at the very last entry: nothing
	// replays then.)
	want := int(last - n2.SnapshotIndex())
	if want == 0 {
		return
	}
	got := collect(t, n2, want)
	if got[len(got)-1].GetIndex() != last {
		t.Fatalf("replay ends at %d, want %d", got[len(got)-1].GetIndex(), last)
	}
}

func TestReadIndexConcurrent(t *testing.T) {
	n := startNode(t, vfs.NewMem(), 1000)
	if err := n.Propose(ctx(t), []byte("x")); err != nil {
		t.Fatal(err)
	}
	committed := collect(t, n, 1)[0].GetIndex()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx, err := n.ReadIndex(ctx(t))
			if err == nil && idx < committed {
				err = fmt.Errorf("read index %d below committed %d", idx, committed)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestStoppedNodeRefusesCalls(t *testing.T) {
	n := startNode(t, vfs.NewMem(), 1000)
	n.Stop()
	if err := n.Propose(context.Background(), []byte("x")); err != ErrStopped {
		t.Fatalf("propose after stop: %v", err)
	}
	if _, err := n.ReadIndex(context.Background()); err != ErrStopped {
		t.Fatalf("read index after stop: %v", err)
	}
}

// TestLogTrimmedWhenAlone: a lone member keeps no applied entries in its
// in-memory log, so memory does not grow with --snapshot-count × entry size.
func TestLogTrimmedWhenAlone(t *testing.T) {
	n := startNode(t, vfs.NewMem(), 1_000_000)
	var last uint64
	for i := 0; i < 3*trimStep; i++ {
		if err := n.Propose(ctx(t), []byte("entry")); err != nil {
			t.Fatal(err)
		}
		last = collect(t, n, 1)[0].GetIndex()
		n.SetApplied(last, n.ConfState())
	}
	first, err := n.ms.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last-first > trimStep {
		t.Fatalf("in-memory log holds %d applied entries (first %d, applied %d), want at most %d", last-first, first, last, trimStep)
	}
}

func TestSplitPersisted(t *testing.T) {
	ents := func(idx ...uint64) []*raftpb.Entry {
		var out []*raftpb.Entry
		for _, i := range idx {
			out = append(out, &raftpb.Entry{Index: proto.Uint64(i)})
		}
		return out
	}
	for _, tc := range []struct {
		committed, unsaved []*raftpb.Entry
		durable, rest      int
	}{
		{ents(1, 2, 3), nil, 3, 0},
		{ents(1, 2, 3), ents(4, 5), 3, 0},
		{ents(3, 4, 5), ents(4, 5, 6), 1, 2},
		{ents(4, 5), ents(4), 0, 2},
		{nil, ents(4), 0, 0},
	} {
		d, r := splitPersisted(tc.committed, tc.unsaved)
		if len(d) != tc.durable || len(r) != tc.rest {
			t.Errorf("split(%d committed, %d unsaved) = %d durable, %d rest; want %d, %d",
				len(tc.committed), len(tc.unsaved), len(d), len(r), tc.durable, tc.rest)
		}
	}
}

// TestSnapshotOfTrimmedIndex: a snapshot requested for an index the
// in-memory log already dropped is still written, with the term the apply
// loop reported (found by the benchmark: the member used to stop).
func TestSnapshotOfTrimmedIndex(t *testing.T) {
	fs := vfs.NewMem()
	n := startNode(t, fs, 100)
	var ents []*raftpb.Entry
	for i := 0; i < 2*trimStep+10; i++ {
		if err := n.Propose(ctx(t), []byte("e")); err != nil {
			t.Fatal(err)
		}
		ents = append(ents, collect(t, n, 1)...)
		n.SetApplied(ents[len(ents)-1].GetIndex(), n.ConfState())
	}
	old := ents[200]
	if first, _ := n.ms.FirstIndex(); old.GetIndex() >= first {
		t.Fatalf("entry %d not trimmed (first %d): test premise broken", old.GetIndex(), first)
	}
	n.RequestSnapshot(old.GetIndex(), old.GetTerm(), n.ConfState())
	if err := n.Propose(ctx(t), []byte("after")); err != nil { // the loop has handled the request once this commits
		t.Fatal(err)
	}
	collect(t, n, 1)
	if err := n.Err(); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	n2 := startNode(t, fs, 100)
	if n2.SnapshotIndex() != old.GetIndex() {
		t.Fatalf("restarted from snapshot %d, want %d", n2.SnapshotIndex(), old.GetIndex())
	}
}

// TestUnfinishedBootstrapRefused: a WAL created by a first start that
// crashed before recording the initial configuration must not start a raft
// node with no voters (it would never elect a leader).
func TestUnfinishedBootstrapRefused(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/m", 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(fs, "/m/wal", []byte("md"), wal.WithSegmentSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, err = Start(Config{ID: 1, Peers: []uint64{1}, Dir: "/m", FS: fs, WALSegmentSize: 64 << 10})
	if err == nil || !strings.Contains(err.Error(), "unfinished first start") {
		t.Fatalf("start on an unfinished bootstrap: %v", err)
	}
}

// TestCommitPublishedBeforeApply: whenever the apply loop receives an
// entry, Status already reports a commit index at least that high, so a
// member never shows applied past committed.
func TestCommitPublishedBeforeApply(t *testing.T) {
	n := startNode(t, vfs.NewMem(), 1000)
	const total = 300
	go func() {
		for i := range total {
			n.Propose(ctx(t), []byte(fmt.Sprint(i)))
		}
	}()
	seen := 0
	for seen < total {
		select {
		case a := <-n.Apply():
			last := a.Entries[len(a.Entries)-1].GetIndex()
			if c := n.Status().Commit; c < last {
				t.Fatalf("entry %d handed to apply while Status shows commit %d", last, c)
			}
			for _, e := range a.Entries {
				if len(e.GetData()) > 0 {
					seen++
				}
			}
		case <-ctx(t).Done():
			t.Fatalf("only %d of %d entries applied", seen, total)
		}
	}
}
