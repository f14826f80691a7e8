package mvcc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairn-kv/cairn/storage"
)

// benchStore opens a store on the real filesystem (commits without fsync,
// as the apply loop does when the raft WAL is the source of durability).
func benchStore(b *testing.B) *Store {
	b.Helper()
	eng, err := storage.Open(b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(eng, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Close()
		eng.Close()
	})
	return s
}

func benchKeys(n int, format string) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf(format, i))
	}
	return keys
}

// load writes keys with 256-byte values, 1000 per group, then flushes the
// LSM so reads come from sstables.
func load(b *testing.B, s *Store, keys [][]byte) {
	val := make([]byte, 256)
	for i, k := range keys {
		tw := s.Write()
		tw.Put(k, val, 0)
		tw.End()
		if i%1000 == 999 {
			if err := s.Commit(Meta{AppliedIndex: uint64(i)}, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Commit(Meta{AppliedIndex: uint64(len(keys))}, false); err != nil {
		b.Fatal(err)
	}
	// Settle the LSM (flush and compact everything down) so background
	// compactions do not churn the block cache while the benchmark runs.
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	// Warm the block cache: the benchmarks measure the steady state.
	if _, err := s.Range(context.Background(), []byte{0}, []byte{0}, RangeOptions{Count: true}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPut: one txn with one Put of a 256-byte value per op, 100 txns
// per group commit, over 100k keys (creates first, then updates).
func BenchmarkPut(b *testing.B) {
	s := benchStore(b)
	keys := benchKeys(100_000, "key/%08d")
	val := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tw := s.Write()
		tw.Put(keys[i%len(keys)], val, 0)
		tw.End()
		if i%100 == 99 {
			if err := s.Commit(Meta{AppliedIndex: uint64(i)}, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Commit(Meta{AppliedIndex: uint64(b.N)}, false); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRangeSingleKey reads one random key of 100k at the current
// revision.
func BenchmarkRangeSingleKey(b *testing.B) {
	s := benchStore(b)
	keys := benchKeys(100_000, "key/%08d")
	load(b, s, keys)
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := s.Range(ctx, keys[rng.IntN(len(keys))], nil, RangeOptions{})
		if err != nil || len(r.KVs) != 1 {
			b.Fatalf("%v %v", r, err)
		}
	}
}

// BenchmarkRangePrefix1000 reads the 1000 keys under one of 100 prefixes.
func BenchmarkRangePrefix1000(b *testing.B) {
	s := benchStore(b)
	keys := benchKeys(100_000, "pfx%06d")
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("pfx%03d/%06d", i/1000, i%1000))
	}
	load(b, s, keys)
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p := []byte(fmt.Sprintf("pfx%03d/", rng.IntN(100)))
		r, err := s.Range(ctx, p, storage.PrefixEnd(p), RangeOptions{})
		if err != nil || len(r.KVs) != 1000 {
			b.Fatalf("%v", err)
		}
	}
}

// BenchmarkHashKVCompacted hashes a compacted store of 200k keys, 1% of
// them changed since the compaction: what a member's corruption checks
// and `etcdctl endpoint hashkv` cost at rest.
func BenchmarkHashKVCompacted(b *testing.B) {
	s := benchStore(b)
	keys := benchKeys(200_000, "key/%08d")
	load(b, s, keys)
	load(b, s, keys) // a second version of every key, for the compaction to drop
	done, err := s.Compact(s.Rev())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Commit(Meta{AppliedIndex: uint64(3 * len(keys))}, false); err != nil {
		b.Fatal(err)
	}
	<-done
	val := make([]byte, 256)
	for i := 0; i < len(keys); i += 100 {
		tw := s.Write()
		tw.Put(keys[i], val, 0)
		tw.End()
	}
	if err := s.Commit(Meta{AppliedIndex: uint64(4 * len(keys))}, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, _, _, err := s.HashKV(0); err != nil {
			b.Fatal(err)
		}
	}
}
