package mvcc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cairn-kv/cairn/storage"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

func put(s *Store, key, val string) {
	tw := s.Write()
	tw.Put([]byte(key), []byte(val), 0)
	tw.End()
}

func TestReopenKeepsState(t *testing.T) {
	e := newEnv(t, nil)
	put(e.s, "a", "1")
	e.s.PutMeta("cluster", []byte("c1"))
	e.commit(false)
	put(e.s, "a", "2")
	put(e.s, "b", "1")
	if _, err := e.s.Compact(2); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Commit(Meta{AppliedIndex: 42, AppliedTerm: 3}, true); err != nil {
		t.Fatal(err)
	}
	// Uncommitted: lost on reopen.
	put(e.s, "c", "1")
	e.s.PutMeta("cluster", []byte("c2"))
	e.reopen()
	if got := e.s.Rev(); got != 4 {
		t.Errorf("Rev() = %d, want 4", got)
	}
	if got := e.s.CompactRev(); got != 2 {
		t.Errorf("CompactRev() = %d, want 2", got)
	}
	if got := e.s.Meta(); got != (Meta{AppliedIndex: 42, AppliedTerm: 3}) {
		t.Errorf("Meta() = %+v", got)
	}
	if v, err := e.s.GetMeta("cluster"); err != nil || string(v) != "c1" {
		t.Errorf("GetMeta = %q, %v", v, err)
	}
	if v, err := e.s.GetMeta("absent"); err != nil || v != nil {
		t.Errorf("GetMeta(absent) = %q, %v", v, err)
	}
	kvs, err := e.rangeAll(0)
	if err != nil || fmtKVs(kvs) != "\"a\"=\"2\" create=2 mod=3 ver=2 lease=0\n\"b\"=\"1\" create=4 mod=4 ver=1 lease=0\n" {
		t.Errorf("range after reopen = %s, %v", fmtKVs(kvs), err)
	}
	// The next write continues the revision sequence.
	put(e.s, "c", "1")
	e.commit(false)
	if got := e.s.Rev(); got != 5 {
		t.Errorf("Rev() = %d, want 5", got)
	}
}

func TestCommitWithoutGroupRecordsMeta(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.s.Commit(Meta{AppliedIndex: 7, AppliedTerm: 2}, true); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if got := e.s.Meta(); got != (Meta{AppliedIndex: 7, AppliedTerm: 2}) || e.s.Rev() != 1 {
		t.Fatalf("Meta() = %+v, Rev() = %d", got, e.s.Rev())
	}
}

// TestCommitSyncWithoutWAL: on an engine without a WAL of its own (a
// member's), a synced Commit is durable through a crash, and so is every
// commit before it.
func TestCommitSyncWithoutWAL(t *testing.T) {
	mem := vfs.NewCrashableMem()
	open := func(fs vfs.FS) (*storage.Engine, *Store) {
		t.Helper()
		eng, err := storage.Open("db", storage.Options{FS: fs, CacheSize: 8 << 20, MemTableSize: 4 << 20, DisableWAL: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(eng, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); eng.Close() })
		return eng, s
	}
	_, s := open(mem)
	put(s, "a", "1")
	if err := s.Commit(Meta{AppliedIndex: 1, AppliedTerm: 1}, false); err != nil {
		t.Fatal(err)
	}
	put(s, "b", "2")
	if err := s.Commit(Meta{AppliedIndex: 2, AppliedTerm: 1}, true); err != nil {
		t.Fatal(err)
	}
	_, s = open(mem.CrashClone(vfs.CrashCloneCfg{}))
	if m := s.Meta(); m != (Meta{AppliedIndex: 2, AppliedTerm: 1}) || s.Rev() != 3 {
		t.Fatalf("after a crash: Meta() = %+v, Rev() = %d; want index 2, revision 3", m, s.Rev())
	}
}

// TestCompactEdges follows etcd: a fresh store (compact revision -1
// internally) accepts Compact(0) once; the check is against the apply
// loop's revision, including uncommitted transactions.
func TestCompactEdges(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.compact(0); err != nil {
		t.Fatalf("Compact(0) on a fresh store: %v", err)
	}
	if err := e.compact(0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("second Compact(0): %v", err)
	}
	if err := e.compact(2); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("Compact(2) at rev 1: %v", err)
	}
	put(e.s, "a", "1") // rev 2, not committed yet
	done, err := e.s.Compact(2)
	if err != nil {
		t.Fatalf("Compact(2) after an uncommitted put: %v", err)
	}
	// Readers see the compaction only when its group commits.
	if got := e.s.CompactRev(); got != 0 {
		t.Fatalf("CompactRev() before commit = %d", got)
	}
	tw := e.s.Write()
	if _, err := tw.Range([]byte("a"), nil, RangeOptions{Rev: 1}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("txn range below the group's compaction: %v", err)
	}
	tw.End()
	e.commit(false)
	<-done
	if got := e.s.CompactRev(); got != 2 {
		t.Fatalf("CompactRev() = %d", got)
	}
	if _, h, c, err := e.s.HashKV(0); err != nil || h != 2 || c != 2 {
		t.Fatalf("HashKV(0) = rev %d compact %d, %v", h, c, err)
	}
	if _, _, _, err := e.s.HashKV(1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("HashKV(1): %v", err)
	}
	if _, _, _, err := e.s.HashKV(3); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("HashKV(3): %v", err)
	}
}

// feed applies the same seeded random workload to e, compacting at the
// same points, and returns the model.
func feed(t *testing.T, e *env, seed uint64, groups int) *model {
	rng := rand.New(rand.NewPCG(seed, 2))
	m := newModel()
	for range groups {
		for range 1 + rng.IntN(3) {
			ops := m.randomTxn(rng)
			m.apply(ops)
			runTxn(e.s, ops)
		}
		if rng.IntN(10) == 0 && m.rev() > m.compact {
			m.compact += 1 + rng.Int64N(m.rev()-m.compact)
			if _, err := e.s.Compact(m.compact); err != nil {
				t.Fatal(err)
			}
		}
		e.commit(false)
	}
	return m
}

// TestAppendKeyValue: the hash's encoding of a version is protobuf's
// deterministic encoding of the mvccpb.KeyValue, as etcd stores it.
func TestAppendKeyValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 3))
	pick := func(vals ...int64) int64 { return vals[rng.IntN(len(vals))] }
	for range 1000 {
		kv := &mvccpb.KeyValue{
			Key:            []byte("k")[:rng.IntN(2)],
			CreateRevision: pick(0, 1, rng.Int64()),
			ModRevision:    pick(0, 127, 128, rng.Int64()),
			Version:        pick(0, 1, rng.Int64N(1000)),
			Value:          make([]byte, pick(0, 1, 200)),
			Lease:          pick(0, -1, rng.Int64()),
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(kv)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendKeyValue(nil, kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Value, kv.Lease); !bytes.Equal(got, want) {
			t.Fatalf("%v: got %x, want %x", kv, got, want)
		}
	}
}

func TestHashKV(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	a, b := newEnv(t, nil), newEnv(t, nil)
	m := feed(t, a, seed, 100)
	feed(t, b, seed, 100)
	a.s.waitCompaction(m.compact)
	b.s.waitCompaction(m.compact)
	// c has the same history, with the compactions in the model only: it
	// never dropped anything, so its hash looks every version at or below
	// the compact revision up in the key index, where a and b, compacted,
	// go by the keys changed since (changedAbove).
	c := newEnv(t, nil)
	rng := rand.New(rand.NewPCG(seed, 2))
	m2 := newModel()
	for range 100 {
		for range 1 + rng.IntN(3) {
			ops := m2.randomTxn(rng)
			m2.apply(ops)
			runTxn(c.s, ops)
		}
		if rng.IntN(10) == 0 && m2.rev() > m2.compact {
			m2.compact += 1 + rng.Int64N(m2.rev()-m2.compact) // model only
		}
		c.commit(false)
	}
	uncompacted := func(rev int64) uint32 {
		t.Helper()
		snap := c.eng.DB().NewSnapshot()
		defer snap.Close()
		h, err := hashHistory(snap, rev, m.compact, nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	check := func() {
		t.Helper()
		for rev := max(m.compact, 1); rev <= m.rev(); rev++ {
			ha, ra, ca, err := a.s.HashKV(rev)
			if err != nil {
				t.Fatal(err)
			}
			hb, rb, cb, err := b.s.HashKV(rev)
			if err != nil {
				t.Fatal(err)
			}
			// At the compact revision itself, HashKV answers with the hash
			// the compaction took before removing anything, under the
			// previous compact revision, as etcd does.
			wantCompact := m.compact
			if rev == m.compact {
				wantCompact = ca
			}
			if ha != hb || ra != rb || ca != cb || ra != rev || ca != wantCompact {
				t.Fatalf("HashKV(%d): %x/%d/%d vs %x/%d/%d", rev, ha, ra, ca, hb, rb, cb)
			}
			// Physical progress does not matter: the compacted store hashes
			// like the uncompacted one.
			if hc := uncompacted(rev); rev != m.compact && ha != hc {
				t.Fatalf("HashKV(%d) of the compacted store %x, of the uncompacted one %x", rev, ha, hc)
			}
		}
	}
	check()
	// Too many changed keys to hold: the compacted store looks versions up
	// as the uncompacted one does, with the same hashes.
	defer func(n int) { maxChangedKeyBytes = n }(maxChangedKeyBytes)
	maxChangedKeyBytes = 0
	check()
	// Different data, different hash.
	put(b.s, "zz", "1")
	put(a.s, "zz", "2")
	a.commit(false)
	b.commit(false)
	ha, _, _, _ := a.s.HashKV(0)
	hb, _, _, _ := b.s.HashKV(0)
	if ha == hb {
		t.Fatalf("different values hash alike: %x", ha)
	}
}

// TestCrashAtGroupBoundary crashes (dropping a random part of what was not
// synced) at many points and checks the store comes back at exactly one
// committed group, at or after the last synced one, with the data of that
// group and its compaction resumed.
func TestCrashAtGroupBoundary(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	fs := vfs.NewCrashableMem()
	e := newEnv(t, fs)
	m := newModel()
	type boundary struct{ rev, compact int64 }
	bounds := []boundary{{1, -1}} // by applied index
	var synced uint64
	for gi := 1; gi <= 120; gi++ {
		for range 1 + rng.IntN(3) {
			ops := m.randomTxn(rng)
			for i := range ops {
				// Large values fill WAL blocks, so unsynced groups reach
				// the file and a crash can keep some of them.
				if ops[i].kind == 'p' {
					ops[i].val = append(ops[i].val, bytes.Repeat([]byte{'x'}, rng.IntN(4000))...)
				}
			}
			m.apply(ops)
			runTxn(e.s, ops)
		}
		if rng.IntN(8) == 0 && m.rev() > m.compact {
			m.compact += 1 + rng.Int64N(m.rev()-m.compact)
			if _, err := e.s.Compact(m.compact); err != nil {
				t.Fatal(err)
			}
		}
		sync := rng.IntN(5) == 0
		if err := e.s.Commit(Meta{AppliedIndex: uint64(gi), AppliedTerm: 1}, sync); err != nil {
			t.Fatal(err)
		}
		if sync {
			synced = uint64(gi)
		}
		bounds = append(bounds, boundary{m.rev(), m.compact})
		if gi%15 != 0 {
			continue
		}
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), 0))})
		ce := newEnv(t, clone)
		idx := ce.s.Meta().AppliedIndex
		if idx < synced || idx > uint64(gi) {
			t.Fatalf("after crash at group %d: applied index %d, synced %d", gi, idx, synced)
		}
		t.Logf("crash at group %d (synced %d): recovered group %d", gi, synced, idx)
		b := bounds[idx]
		if ce.s.Rev() != b.rev || ce.s.CompactRev() != max(b.compact, 0) {
			t.Fatalf("after crash: group %d has rev %d compact %d, store rev %d compact %d",
				idx, b.rev, b.compact, ce.s.Rev(), ce.s.CompactRev())
		}
		cm := &model{states: m.states[:b.rev+1], compact: b.compact}
		verify(t, ce, cm, rng)
		ce.s.waitCompaction(b.compact)
		verify(t, ce, cm, rng)
		ce.close()
	}
}

// TestCompactionResumesAtOpen crashes after the group that scheduled a
// compaction was synced but before any compaction batch (never synced) is
// durable; Open must finish the compaction.
func TestCompactionResumesAtOpen(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := newEnv(t, fs)
	for i := range 50 {
		tw := e.s.Write()
		tw.Put([]byte(fmt.Sprintf("k%d", i%5)), []byte("v"), 0)
		tw.End()
	}
	e.commit(true)
	before, _ := e.physicalCounts()
	// Stop the compactor first so the crash image cannot hold any of its
	// batches, then schedule and commit with sync.
	e.s.comp.close()
	if _, err := e.s.Compact(40); err != nil {
		t.Fatal(err)
	}
	e.commit(true)
	clone := fs.CrashClone(vfs.CrashCloneCfg{})
	// Before the store opens: scheduled but not finished.
	eng, err := storage.Open("db", storage.Options{FS: clone})
	if err != nil {
		t.Fatal(err)
	}
	raw := &Store{db: eng.DB()}
	sched, _ := loadInt(raw.db, scheduledCompactKey)
	fin, _ := loadInt(raw.db, finishedCompactKey)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if sched != 40 || fin != -1 {
		t.Fatalf("crash image: scheduled %d finished %d, want 40 and -1", sched, fin)
	}
	ce := newEnv(t, clone)
	ce.s.waitCompaction(40)
	// Revisions 2..51 wrote k0..k4 in turn: 11 versions above 40 plus the
	// newest at or below 40 of each of the 5 keys.
	if idx, rl := ce.physicalCounts(); idx != 16 || rl != 16 || before != 50 {
		t.Fatalf("after resumed compaction: %d index, %d log entries (%d before); want 16", idx, rl, before)
	}
	if got, err := loadInt(ce.s.db, finishedCompactKey); err != nil || got != 40 {
		t.Fatalf("finished compact = %d, %v", got, err)
	}
}

// TestConcurrentReaders reads at fixed and current revisions while the
// apply loop writes and compacts; run with -race.
func TestConcurrentReaders(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	// Precompute the workload so readers can share the model read-only.
	m := newModel()
	type group struct {
		txns    [][]op
		compact int64
	}
	var groups []group
	for range 150 {
		var g group
		for range 1 + rng.IntN(3) {
			ops := m.randomTxn(rng)
			m.apply(ops)
			g.txns = append(g.txns, ops)
		}
		if rng.IntN(6) == 0 && m.rev() > m.compact {
			m.compact += 1 + rng.Int64N(m.rev()-m.compact)
			g.compact = m.compact
		}
		groups = append(groups, g)
	}
	e := newEnv(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(seed, uint64(10+r)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				cur := e.s.Rev()
				rev := cur
				if lo := e.s.CompactRev(); rr.IntN(2) == 0 && cur > lo {
					rev = max(lo, 1) + rr.Int64N(cur-max(lo, 1)+1)
				}
				o := RangeOptions{Rev: rev}
				if rr.IntN(3) == 0 {
					o.Rev = 0
				}
				res, err := e.s.Range(context.Background(), []byte{0}, []byte{0}, o)
				if errors.Is(err, ErrCompacted) && o.Rev != 0 {
					continue // compacted meanwhile
				}
				if err != nil {
					errc <- fmt.Errorf("range at %d: %w", o.Rev, err)
					return
				}
				if o.Rev == 0 {
					rev = res.Rev
				}
				if res.Rev < rev {
					errc <- fmt.Errorf("result rev %d below read rev %d", res.Rev, rev)
					return
				}
				if g, w := fmtKVs(res.KVs), fmtKVs(rangeOf(m.states[rev], []byte{0}, []byte{0})); g != w {
					errc <- fmt.Errorf("range at %d:\n got %s\nwant %s", rev, g, w)
					return
				}
			}
		}()
	}
	for i, g := range groups {
		for _, ops := range g.txns {
			runTxn(e.s, ops)
		}
		if g.compact > 0 {
			if _, err := e.s.Compact(g.compact); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.s.Commit(Meta{AppliedIndex: uint64(i + 1)}, false); err != nil {
			t.Fatal(err)
		}
	}
	e.s.waitCompaction(m.compact)
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// TestTxnReadErrorFailsGroup checks that a read inside a write transaction
// that fails on corrupt data makes the group uncommittable: the member must
// stop rather than answer from a read its peers may have done fine.
func TestTxnReadErrorFailsGroup(t *testing.T) {
	for _, read := range []struct {
		name string
		do   func(tw *TxnWrite) error
	}{
		{"range", func(tw *TxnWrite) error { _, err := tw.Range([]byte("bad"), nil, RangeOptions{}); return err }},
		{"delete range", func(tw *TxnWrite) error { tw.DeleteRange([]byte("bad"), []byte("bae")); return nil }},
	} {
		t.Run(read.name, func(t *testing.T) {
			e := newEnv(t, nil)
			put(e.s, "ok", "1")
			e.commit(false)
			// A put record cut short after its flag byte.
			k := appendRevSuffix(appendIndexPrefix(nil, []byte("bad")), 1, 0)
			if err := e.eng.DB().Set(k, []byte{recPut}, nil); err != nil {
				t.Fatal(err)
			}
			tw := e.s.Write()
			err := read.do(tw)
			tw.End()
			if read.name == "range" && err == nil {
				t.Fatal("range over a corrupt record succeeded")
			}
			m := e.s.Meta()
			if err := e.s.Commit(Meta{AppliedIndex: m.AppliedIndex + 1}, false); err == nil {
				t.Fatal("group with a failed read committed")
			}
		})
	}
}
