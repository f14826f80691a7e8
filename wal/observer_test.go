package wal

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// TestSyncObserver: the observer sees exactly the tail fsyncs that writes
// wait for: entries, a term change, a snapshot marker, a segment cut and
// Close; a commit-only hard state is written unsynced and is not seen.
func TestSyncObserver(t *testing.T) {
	var got []time.Duration
	observe := func(d time.Duration) {
		if d < 0 {
			t.Errorf("negative fsync duration %v", d)
		}
		got = append(got, d)
	}
	fs := vfs.NewMem()
	w := create(t, fs, WithSyncObserver(observe))
	steps := []struct {
		name  string
		do    func() error
		syncs int
	}{
		{"entries", func() error { return w.Save(hs(1, 1, 0), ents(1, 3, 1)) }, 1},
		{"commit only", func() error { return w.Save(hs(1, 1, 3), nil) }, 0},
		{"term change", func() error { return w.Save(hs(2, 0, 3), nil) }, 1},
		{"marker", func() error { return w.SaveSnapshot(Snapshot{Index: 3, Term: 1}) }, 1},
		// 4 KiB segments: a large entry fills the tail, so Save syncs it
		// and then the cut syncs it again before starting the next one.
		{"cut", func() error {
			e := ent(4, 2)
			e.Data = make([]byte, 5000)
			return w.Save(nil, []*raftpb.Entry{e})
		}, 2},
		{"close", w.Close, 1},
	}
	for _, s := range steps {
		before := len(got)
		must(t, s.do())
		if n := len(got) - before; n != s.syncs {
			t.Fatalf("%s: observed %d fsyncs, want %d", s.name, n, s.syncs)
		}
	}
	if n := len(segmentPaths(t, fs)); n < 2 {
		t.Fatalf("the cut step left %d segments, want at least 2", n)
	}
}

// TestWriteObserver: the observer sees every write of records to the
// tail, with its size: what Save and SaveSnapshot append, byte for byte.
func TestWriteObserver(t *testing.T) {
	var writes, bytes int
	w := create(t, vfs.NewMem(), WithWriteObserver(func(n int, d time.Duration) {
		if d < 0 {
			t.Errorf("negative write duration %v", d)
		}
		writes++
		bytes += n
	}))
	for _, s := range []struct {
		name string
		do   func() error
	}{
		{"entries", func() error { return w.Save(hs(1, 1, 0), ents(1, 3, 1)) }},
		{"commit only", func() error { return w.Save(hs(1, 1, 3), nil) }},
		{"marker", func() error { return w.SaveSnapshot(Snapshot{Index: 3, Term: 1}) }},
	} {
		writes, bytes = 0, 0
		off := w.off
		must(t, s.do())
		if writes != 1 || int64(bytes) != w.off-off || bytes == 0 {
			t.Fatalf("%s: observed %d writes of %d bytes, want one of the %d appended", s.name, writes, bytes, w.off-off)
		}
	}
	must(t, w.Close())
}
