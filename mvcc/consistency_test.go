package mvcc

import (
	"slices"
	"testing"
)

// TestCompactHashes: each compaction applied from the log records the
// hash HashKV answers at its revision, newest first, and a store fed the
// same history records the same hashes.
func TestCompactHashes(t *testing.T) {
	a, b := newEnv(t, nil), newEnv(t, nil)
	for _, e := range []*env{a, b} {
		for i, v := range []string{"1", "2", "3", "4"} {
			w := e.s.Write()
			w.Put([]byte("k"), []byte(v), 0)
			w.Put([]byte{'o', byte('0' + i)}, []byte(v), 0)
			w.End()
			e.commit(false)
		}
		if err := e.compact(3); err != nil {
			t.Fatal(err)
		}
		if err := e.compact(5); err != nil {
			t.Fatal(err)
		}
	}
	got := a.s.CompactHashes()
	if len(got) != 2 || got[0].Revision != 5 || got[0].CompactRevision != 3 || got[1].Revision != 3 || got[1].CompactRevision != -1 {
		t.Fatalf("compact hashes %+v", got)
	}
	for _, h := range got {
		hash, rev, compact, err := a.s.HashKV(h.Revision)
		if err != nil || hash != h.Hash || rev != h.Revision || compact != h.CompactRevision {
			t.Fatalf("HashKV(%d) = %x %d %d %v, recorded %+v", h.Revision, hash, rev, compact, err, h)
		}
	}
	if other := b.s.CompactHashes(); !slices.Equal(got, other) {
		t.Fatalf("same history, other hashes: %+v vs %+v", got, other)
	}
	// A reopened store resumes nothing and records nothing old.
	a.reopen()
	if hs := a.s.CompactHashes(); len(hs) != 0 {
		t.Fatalf("after reopen: %+v", hs)
	}
}

// TestCorruptValueForTesting: the seam changes a version's value, and so
// HashKV, without changing revisions, versions or leases.
func TestCorruptValueForTesting(t *testing.T) {
	e := newEnv(t, nil)
	for _, v := range []string{"1", "2"} {
		w := e.s.Write()
		w.Put([]byte("k"), []byte(v), 7)
		w.End()
		e.commit(false)
	}
	w := e.s.Write()
	w.DeleteRange([]byte("gone"), nil)
	w.Put([]byte("gone"), []byte("x"), 0)
	w.End()
	e.commit(false)
	w = e.s.Write()
	w.DeleteRange([]byte("gone"), nil)
	w.End()
	e.commit(false)
	before, _, _, err := e.s.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.CorruptValueForTesting([]byte("k"), 2, []byte("bad")); err != nil {
		t.Fatal(err)
	}
	kvs, err := e.rangeAll(2)
	if err != nil || len(kvs) != 1 || fmtKV(kvs[0]) != `"k"="bad" create=2 mod=2 ver=1 lease=7` {
		t.Fatalf("at revision 2: %v %v", kvs, err)
	}
	if kvs, err := e.rangeAll(0); err != nil || len(kvs) != 1 || fmtKV(kvs[0]) != `"k"="2" create=2 mod=3 ver=2 lease=7` {
		t.Fatalf("current: %v %v", kvs, err)
	}
	after, rev, _, err := e.s.HashKV(0)
	if err != nil || after == before || rev != e.s.Rev() {
		t.Fatalf("HashKV after the fault: %x (before %x) at %d, %v", after, before, rev, err)
	}
	if err := e.s.CorruptValueForTesting([]byte("gone"), 0, []byte("bad")); err == nil {
		t.Fatal("corrupted a deleted key")
	}
	if err := e.s.CorruptValueForTesting([]byte("none"), 0, []byte("bad")); err == nil {
		t.Fatal("corrupted a key that never existed")
	}
}
