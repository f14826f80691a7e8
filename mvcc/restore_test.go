package mvcc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestPrepareRestoreKeepsHistory(t *testing.T) {
	e := newEnv(t, nil)
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}} {
		w := e.s.Write()
		w.Put([]byte(kv[0]), []byte(kv[1]), 0)
		w.End()
		e.commit(true)
	}
	before, err := e.rangeAll(0)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _, err := e.s.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	e.s.Close()
	e.s = nil

	st, err := PrepareRestore(e.eng, RestoreOptions{Meta: Meta{AppliedIndex: 1, AppliedTerm: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rev != 4 || st.CompactRev != -1 || st.AppliedIndex != 1 || st.AppliedTerm != 1 {
		t.Fatalf("state after restore: %+v", st)
	}
	if got, err := ReadState(e.eng); err != nil || got != st {
		t.Fatalf("ReadState = %+v, %v; want %+v", got, err, st)
	}
	if e.s, err = Open(e.eng, nil); err != nil {
		t.Fatal(err)
	}
	if m := e.s.Meta(); m.AppliedIndex != 1 || m.AppliedTerm != 1 {
		t.Fatalf("meta after restore: %+v", m)
	}
	after, err := e.rangeAll(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("keys after restore: %d, before: %d", len(after), len(before))
	}
	for i := range after {
		if fmtKV(after[i]) != fmtKV(before[i]) {
			t.Errorf("key %d: %s, before %s", i, fmtKV(after[i]), fmtKV(before[i]))
		}
	}
	if h2, _, _, err := e.s.HashKV(0); err != nil || h2 != h {
		t.Fatalf("HashKV after restore = %d, %v; before %d", h2, err, h)
	}
	// Old revisions stay readable without a compaction.
	if kvs, err := e.rangeAll(2); err != nil || len(kvs) != 1 {
		t.Fatalf("range at 2: %v, %v", kvs, err)
	}
}

func TestPrepareRestoreBumpAndCompact(t *testing.T) {
	e := newEnv(t, nil)
	for _, k := range []string{"a", "b", "c"} {
		w := e.s.Write()
		w.Put([]byte(k), []byte("v"), 0)
		w.End()
		e.commit(true)
	}
	w := e.s.Write()
	w.DeleteRange([]byte("c"), nil)
	w.End()
	e.commit(true)
	old := e.s.Rev() // 5
	e.s.Close()
	e.s = nil

	st, err := PrepareRestore(e.eng, RestoreOptions{Meta: Meta{AppliedIndex: 1, AppliedTerm: 1}, BumpRevision: 100, MarkCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rev != old+100 || st.CompactRev != old+100 {
		t.Fatalf("state: %+v, want rev and compact rev %d", st, old+100)
	}
	if e.s, err = Open(e.eng, nil); err != nil {
		t.Fatal(err)
	}
	e.s.waitCompaction(old + 100)
	if e.s.Rev() != old+100 || e.s.CompactRev() != old+100 {
		t.Fatalf("rev %d compact %d, want %d", e.s.Rev(), e.s.CompactRev(), old+100)
	}
	if _, err := e.rangeAll(old); !errors.Is(err, ErrCompacted) {
		t.Fatalf("range at the old revision: %v, want ErrCompacted", err)
	}
	kvs, err := e.rangeAll(0)
	if err != nil || len(kvs) != 2 {
		t.Fatalf("range now: %v, %v", kvs, err)
	}
	// Only the live versions survive physical compaction.
	if idx, revlog := e.physicalCounts(); idx != 2 || revlog != 2 {
		t.Fatalf("after compaction: %d index and %d revision-log entries, want 2 and 2", idx, revlog)
	}
	w = e.s.Write()
	w.Put([]byte("d"), []byte("v"), 0)
	if w.Rev() != old+101 {
		t.Fatalf("next write at %d, want %d", w.Rev(), old+101)
	}
	w.End()
	e.commit(true)
	r, err := e.s.Range(context.Background(), []byte("d"), nil, RangeOptions{})
	if err != nil || len(r.KVs) != 1 || r.KVs[0].ModRevision != old+101 || r.KVs[0].CreateRevision != old+101 {
		t.Fatalf("read back: %+v, %v", r, err)
	}
	// The restored store survives a restart unchanged.
	e.reopen()
	if e.s.Rev() != old+101 || e.s.CompactRev() != old+100 {
		t.Fatalf("after reopen: rev %d compact %d", e.s.Rev(), e.s.CompactRev())
	}
}

func TestPrepareRestoreRefusesBadBump(t *testing.T) {
	e := newEnv(t, nil)
	e.s.Close()
	e.s = nil
	if _, err := PrepareRestore(e.eng, RestoreOptions{BumpRevision: -1}); !errors.Is(err, ErrBadRestore) {
		t.Fatalf("negative bump: %v", err)
	}
	if _, err := PrepareRestore(e.eng, RestoreOptions{BumpRevision: 1<<63 - 1}); !errors.Is(err, ErrBadRestore) {
		t.Fatalf("overflowing bump: %v", err)
	}
	var err error
	if e.s, err = Open(e.eng, nil); err != nil {
		t.Fatal(err)
	}
}

// TestStoreRestore: Restore swaps in another member's contents. The store
// then reads, hashes and writes on from them as that member's store does;
// the group it had open and its compaction hashes are gone, and the
// compaction the new contents left unfinished resumes.
func TestStoreRestore(t *testing.T) {
	e := newEnv(t, nil)
	srcEng, src := e.openSource()
	for i := range 20 {
		put(src, fmt.Sprintf("k%d", i%5), fmt.Sprint(i))
		if err := src.Commit(Meta{AppliedIndex: uint64(i + 1), AppliedTerm: 2}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	// Compacted at its revision but not yet physically: the compaction
	// resumes wherever the contents are opened.
	st, err := PrepareRestore(srcEng, RestoreOptions{Meta: Meta{AppliedIndex: 20, AppliedTerm: 2}, MarkCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srcEng.Checkpoint("ckpt"); err != nil {
		t.Fatal(err)
	}
	if src, err = Open(srcEng, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.waitCompaction(st.Rev)
	wantHash, _, _, err := src.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}

	// The store being replaced: its own history, a recorded compaction
	// hash, and a group still open.
	for i := range 10 {
		put(e.s, fmt.Sprintf("old%d", i), "v")
		e.commit(false)
	}
	if err := e.compact(5); err != nil {
		t.Fatal(err)
	}
	if len(e.s.CompactHashes()) == 0 {
		t.Fatal("no compaction hash recorded before the restore")
	}
	put(e.s, "uncommitted", "v")

	if err := e.s.Restore(func() error { return e.eng.Restore(context.Background(), "ckpt") }); err != nil {
		t.Fatal(err)
	}
	if e.s.Rev() != st.Rev || e.s.CompactRev() != st.Rev || e.s.Meta() != st.Meta {
		t.Fatalf("after restore: rev %d, compact rev %d, meta %+v; want %+v", e.s.Rev(), e.s.CompactRev(), e.s.Meta(), st)
	}
	if hs := e.s.CompactHashes(); len(hs) != 0 {
		t.Fatalf("compaction hashes of the replaced contents survive: %+v", hs)
	}
	e.s.comp.mu.Lock()
	target := e.s.comp.mu.target
	e.s.comp.mu.Unlock()
	if target != st.Rev {
		t.Fatalf("the unfinished compaction at %d did not resume (compactor target %d)", st.Rev, target)
	}
	e.s.waitCompaction(st.Rev)
	if idx, revlog := e.physicalCounts(); idx != 5 || revlog != 5 {
		t.Fatalf("after the resumed compaction: %d index and %d revision-log entries, want 5 and 5", idx, revlog)
	}
	checkKeys(t, e, "after restore", 5)
	if h, _, _, err := e.s.HashKV(0); err != nil || h != wantHash {
		t.Fatalf("HashKV = %d, %v; the source's is %d", h, err, wantHash)
	}
	kvs, err := e.rangeAll(0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, string(kv.Key)+"="+string(kv.Value))
	}
	if want := []string{"k0=15", "k1=16", "k2=17", "k3=18", "k4=19"}; !slices.Equal(got, want) {
		t.Fatalf("keys after restore %v, want %v", got, want)
	}
	// Writes go on from the new contents' revision.
	put(e.s, "new", "v")
	e.commit(false)
	if e.s.Rev() != st.Rev+1 {
		t.Fatalf("next write at %d, want %d", e.s.Rev(), st.Rev+1)
	}
}
