package mvcc

import (
	"context"
	"fmt"
	"testing"
)

// TestOneKeyLookupsSkipTablesByFilter checks that the lookups of one user
// key go through the sstables' bloom filters: a single-key Range of a key
// that no table holds, and Put's read of the previous version of a new
// key, each let a filter rule out every table instead of reading its
// blocks. Without the engine's filter policy, its comparer's Split, or the
// prefix seeks of Range and latest, Pebble counts no filter hits.
func TestOneKeyLookupsSkipTablesByFilter(t *testing.T) {
	e := newEnv(t, nil)
	// Two flushed tables, so that every lookup has tables to skip.
	for round := range 2 {
		tw := e.s.Write()
		for i := range 500 {
			tw.Put(fmt.Appendf(nil, "k%03d-%d", i, round), []byte("value"), 0)
		}
		tw.End()
		e.commit(false)
		if err := e.eng.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	hits := func() int64 { return e.eng.DB().Metrics().Filter.Hits }

	const lookups = 200
	before := hits()
	for i := range lookups {
		// Inside the tables' key ranges, so only a filter can rule them out.
		key := fmt.Appendf(nil, "k%03d-x", i)
		r, err := e.s.Range(context.Background(), key, nil, RangeOptions{})
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
	tw := e.s.Write()
	for i := range lookups {
		tw.Put(fmt.Appendf(nil, "k%03d-new", i), []byte("v"), 0)
	}
	tw.End()
	e.commit(false)
	if got := hits() - before; got < lookups {
		t.Errorf("puts of %d new keys: %d filter hits, want at least %d", lookups, got, lookups)
	}
}
