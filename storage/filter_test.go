package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/storage"
)

// TestOneKeyLookupsSkipTablesByFilter checks that the lookups of one user
// key go through the sstables' bloom filters: a single-key Range of a key
// that no table holds, and Put's read of the previous version of a new
// key, each let a filter rule out every table instead of reading its
// blocks. Without the engine's filter policy, its comparer's Split, or the
// prefix seeks of mvcc's Range and Put, Pebble counts no filter hits.
func TestOneKeyLookupsSkipTablesByFilter(t *testing.T) {
	storage.KeepLSMShapeForTest(t)
	eng, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commit := func() {
		t.Helper()
		m := s.Meta()
		if err := s.Commit(mvcc.Meta{AppliedIndex: m.AppliedIndex + 1, AppliedTerm: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	// Two flushed tables, so that every lookup has tables to skip.
	for round := range 2 {
		tw := s.Write()
		for i := range 500 {
			tw.Put(fmt.Appendf(nil, "k%03d-%d", i, round), []byte("value"), 0)
		}
		tw.End()
		commit()
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	hits := func() int64 { return eng.DB().Metrics().Filter.Hits }

	const lookups = 200
	before := hits()
	for i := range lookups {
		// Inside the tables' key ranges, so only a filter can rule them out.
		key := fmt.Appendf(nil, "k%03d-x", i)
		r, err := s.Range(context.Background(), key, nil, mvcc.RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.KVs) != 0 {
			t.Fatalf("Range(%s) = %v, want nothing", key, r.KVs)
		}
	}
	if got := hits() - before; got < lookups {
		t.Errorf("single-key Ranges of %d missing keys: %d filter hits, want at least %d", lookups, got, lookups)
	}

	before = hits()
	tw := s.Write()
	for i := range lookups {
		tw.Put(fmt.Appendf(nil, "k%03d-new", i), []byte("v"), 0)
	}
	tw.End()
	commit()
	if got := hits() - before; got < lookups {
		t.Errorf("puts of %d new keys: %d filter hits, want at least %d", lookups, got, lookups)
	}
}
