package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// openTestEngine opens a small engine in dir on fs.
func openTestEngine(t testing.TB, fs vfs.FS, dir string) *Engine {
	t.Helper()
	e, err := Open(dir, Options{FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// set writes kv to db, synced, in key order.
func set(t testing.TB, db *pebble.DB, kv map[string]string) {
	t.Helper()
	b := db.NewBatch()
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if err := b.Set([]byte(k), []byte(kv[k]), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func flush(t testing.TB, db *pebble.DB) {
	t.Helper()
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
}

// contents reads everything r holds.
func contents(t testing.TB, r pebble.Reader) map[string]string {
	t.Helper()
	it, err := r.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for valid := it.First(); valid; valid = it.Next() {
		m[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantContents(t testing.TB, r pebble.Reader, want map[string]string) {
	t.Helper()
	if got := contents(t, r); !maps.Equal(got, want) {
		t.Fatalf("contents differ:\n%s", diff(got, want))
	}
}

// diff describes up to 10 differences between got and want.
func diff(got, want map[string]string) string {
	var b strings.Builder
	n := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; (!ok || g != want[k]) && n < 10 {
			fmt.Fprintf(&b, "  %q: got %q (present %v), want %q\n", k, g, ok, want[k])
			n++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok && n < 10 {
			fmt.Fprintf(&b, "  %q: got %q, want absent\n", k, got[k])
			n++
		}
	}
	fmt.Fprintf(&b, "  (%d keys, want %d)", len(got), len(want))
	return b.String()
}

// keys returns n keys prefix0..prefix{n-1} with value v.
func keys(prefix string, n int, v string) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("%s%d", prefix, i)] = v
	}
	return m
}

func union(ms ...map[string]string) map[string]string {
	u := map[string]string{}
	for _, m := range ms {
		maps.Copy(u, m)
	}
	return u
}

// makeSource writes a database with write, checkpoints it into dir the way
// snap.OpenEngineSnapshot does (keys write left in the memtable reach the
// checkpoint only through its WAL), and removes the database.
func makeSource(t testing.TB, fs vfs.FS, dir string, write func(db *pebble.DB)) {
	t.Helper()
	live := dir + ".live"
	e := openTestEngine(t, fs, live)
	write(e.DB())
	if err := e.DB().Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.RemoveAll(live); err != nil {
		t.Fatal(err)
	}
}

// sourceOf checkpoints kv into dir, all flushed to sstables.
func sourceOf(t testing.TB, fs vfs.FS, dir string, kv map[string]string) {
	t.Helper()
	makeSource(t, fs, dir, func(db *pebble.DB) {
		set(t, db, kv)
		flush(t, db)
	})
}

// TestRestoreReplacesEverything: keys only in the old contents go, wherever
// they live (sstables, the memtable), keys only in the new appear, and keys
// in both take their new values; the result survives a reopen and a full
// compaction.
func TestRestoreReplacesEverything(t *testing.T) {
	fs := vfs.NewMem()
	e := openTestEngine(t, fs, "db")
	db := e.DB()
	oldFlushed := keys("a", 100, "old-sst")
	shared := keys("k", 100, "old")
	set(t, db, union(oldFlushed, shared))
	flush(t, db)
	oldMem := keys("m", 100, "old-mem")
	set(t, db, oldMem)
	// Overwrite some shared keys in the memtable, over their sstable values.
	set(t, db, keys("k", 50, "old-mem"))
	// The m keys and the new values of k0..k49 sit in the 1 MiB memtable
	// (nothing flushed them); the rest in sstables.
	if m := db.Metrics(); m.Total().TablesCount == 0 {
		t.Fatalf("no sstables:\n%s", m)
	}

	want := union(keys("k", 100, "new"), keys("z", 100, "new-only"))
	sourceOf(t, fs, "src", want)
	if err := e.Restore(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	wantContents(t, db, want)
	wantGone(t, fs, e.restoreDir())

	flush(t, db)
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantContents(t, db, want)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openTestEngine(t, fs, "db")
	defer e.Close()
	wantContents(t, e.DB(), want)
}

// wantGone fails unless path does not exist.
func wantGone(t testing.TB, fs vfs.FS, path string) {
	t.Helper()
	if _, err := fs.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: Stat = %v, want not exist", path, err)
	}
}

// TestRestoreFromUnflushedWAL: a source whose keys are only in its WAL is
// read in full, and left unchanged, so a retry restores it again.
func TestRestoreFromUnflushedWAL(t *testing.T) {
	fs := vfs.NewMem()
	want := union(keys("k", 300, "flushed"), keys("w", 300, "wal-only"))
	makeSource(t, fs, "src", func(db *pebble.DB) {
		set(t, db, keys("k", 300, "flushed"))
		flush(t, db)
		set(t, db, keys("w", 300, "wal-only"))
	})
	before := listFiles(t, fs, "src")
	if !slices.ContainsFunc(before, func(n string) bool { return strings.Contains(n, ".log:") }) {
		t.Fatalf("checkpoint holds no WAL: %v", before)
	}

	e := openTestEngine(t, fs, "db")
	defer e.Close()
	set(t, e.DB(), keys("w", 600, "old"))
	for range 2 {
		if err := e.Restore(context.Background(), "src"); err != nil {
			t.Fatal(err)
		}
		wantContents(t, e.DB(), want)
		if after := listFiles(t, fs, "src"); !slices.Equal(after, before) {
			t.Fatalf("Restore changed the source: %v, was %v", after, before)
		}
	}
}

// listFiles lists dir with each file's size, but for the LOCK file Pebble
// creates when it opens a database.
func listFiles(t testing.TB, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "LOCK" })
	slices.Sort(names)
	for i, n := range names {
		fi, err := fs.Stat(fs.PathJoin(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		names[i] = fmt.Sprintf("%s:%d", n, fi.Size())
	}
	return names
}

// TestRestoreEmptySource: restoring an empty database empties the engine.
func TestRestoreEmptySource(t *testing.T) {
	fs := vfs.NewMem()
	makeSource(t, fs, "src", func(*pebble.DB) {})
	e := openTestEngine(t, fs, "db")
	defer e.Close()
	set(t, e.DB(), keys("a", 100, "sst"))
	flush(t, e.DB())
	set(t, e.DB(), keys("b", 100, "mem"))
	if err := e.Restore(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	wantContents(t, e.DB(), map[string]string{})
	// Writes after the restore are visible as usual.
	set(t, e.DB(), map[string]string{"a1": "after"})
	wantContents(t, e.DB(), map[string]string{"a1": "after"})
}

// TestRestoreKeepsOpenSnapshots: a Snapshot opened before Restore still
// reads the old contents after it, as do iterators opened before; this is
// what rules out IngestAndExcise, after which the snapshot reads nothing.
func TestRestoreKeepsOpenSnapshots(t *testing.T) {
	fs := vfs.NewMem()
	old := union(keys("a", 100, "old"), keys("b", 100, "old"))
	want := keys("b", 100, "new")
	sourceOf(t, fs, "src", want)
	e := openTestEngine(t, fs, "db")
	defer e.Close()
	set(t, e.DB(), keys("a", 100, "old"))
	flush(t, e.DB())
	set(t, e.DB(), keys("b", 100, "old"))
	snap := e.DB().NewSnapshot()
	defer snap.Close()
	it, err := e.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Restore(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if string(it.Value()) != "old" {
			t.Fatalf("old iterator reads %q = %q", it.Key(), it.Value())
		}
		n++
	}
	if err := it.Close(); err != nil || n != len(old) {
		t.Fatalf("old iterator read %d keys (%v), want %d", n, err, len(old))
	}
	wantContents(t, snap, old)
	wantContents(t, e.DB(), want)
	// Compactions keep what the snapshot sees.
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantContents(t, snap, old)
	wantContents(t, e.DB(), want)
}

// TestRestoreConcurrentReaders restores two states back and forth while
// readers take snapshots and iterators, and re-read snapshots they took
// earlier: every view holds exactly one whole state, and a snapshot keeps
// the state it first showed.
func TestRestoreConcurrentReaders(t *testing.T) {
	const n = 1000
	fs := vfs.NewMem()
	oldState := keys("a", n, "old")
	newState := union(keys("b", n, "new"), map[string]string{"marker": "new"})
	sourceOf(t, fs, "old", oldState)
	makeSource(t, fs, "new", func(db *pebble.DB) {
		set(t, db, keys("b", n, "new"))
		flush(t, db)
		set(t, db, map[string]string{"marker": "new"}) // WAL only
	})
	e := openTestEngine(t, fs, "db")
	defer e.Close()
	db := e.DB()
	set(t, db, keys("a", n/2, "old"))
	flush(t, db)
	set(t, db, oldState) // half of it in the memtable only

	// state classifies a view: 0 old, 1 new, or an error.
	state := func(r pebble.Reader) (int, error) {
		it, err := r.NewIter(nil)
		if err != nil {
			return 0, err
		}
		var olds, news, markers, other int
		for valid := it.First(); valid; valid = it.Next() {
			switch k, v := it.Key(), string(it.Value()); {
			case k[0] == 'a' && v == "old":
				olds++
			case k[0] == 'b' && v == "new":
				news++
			case string(k) == "marker" && v == "new":
				markers++
			default:
				other++
			}
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
		switch {
		case olds == n && news+markers+other == 0:
			return 0, nil
		case news == n && markers == 1 && olds+other == 0:
			return 1, nil
		}
		return 0, fmt.Errorf("mixed view: %d old, %d new, %d markers, %d others", olds, news, markers, other)
	}

	done := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	reader := func(useSnapshots bool) {
		defer wg.Done()
		var held *pebble.Snapshot
		heldState := -1
		defer func() {
			if held != nil {
				held.Close()
			}
		}()
		for last := false; !last; {
			select {
			case <-done:
				last = true // one more round after the final restore
			default:
			}
			if !useSnapshots {
				if _, err := state(db); err != nil {
					errc <- err
					return
				}
				reads.Add(1)
				continue
			}
			s := db.NewSnapshot()
			st, err := state(s)
			if err != nil {
				s.Close()
				errc <- err
				return
			}
			reads.Add(1)
			// A snapshot taken earlier, perhaps before a restore, must
			// still show the state it showed then.
			if held != nil {
				if got, err := state(held); err != nil || got != heldState {
					s.Close()
					errc <- fmt.Errorf("held snapshot showed state %d, now %d (%v)", heldState, got, err)
					return
				}
				held.Close()
			}
			held, heldState = s, st
		}
	}
	for i := range 4 {
		wg.Add(1)
		go reader(i%2 == 0)
	}
	for i := range 6 {
		src, want := "new", newState
		if i%2 == 1 {
			src, want = "old", oldState
		}
		if err := e.Restore(context.Background(), src); err != nil {
			t.Fatal(err)
		}
		wantContents(t, db, want)
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	t.Logf("%d consistent reads", reads.Load())
}

// TestRestoreLarge restores 200k keys through several sstables.
func TestRestoreLarge(t *testing.T) {
	const n = 200_000
	fs := vfs.NewMem()
	key := func(i int) []byte { return binary.BigEndian.AppendUint32([]byte{'k'}, uint32(i)) }
	value := func(i int) []byte {
		return binary.LittleEndian.AppendUint64([]byte("value-"), uint64(i)*0x9e3779b97f4a7c15)
	}
	// Written as one batch to a memtable that holds it and not flushed,
	// the keys reach the checkpoint through its WAL, which keeps the
	// set-up cheap.
	se, err := Open("src.live", Options{FS: fs, MemTableSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b := se.DB().NewBatch()
	for i := range n {
		if err := b.Set(key(i), value(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := se.DB().Checkpoint("src", pebble.WithFlushedWAL()); err != nil {
		t.Fatal(err)
	}
	if err := se.Close(); err != nil {
		t.Fatal(err)
	}
	e := openTestEngine(t, fs, "db")
	defer e.Close()
	set(t, e.DB(), keys("k", 10_000, "old"))
	flush(t, e.DB())
	set(t, e.DB(), keys("j", 1000, "old"))
	e.restoreTableSize = 256 << 10
	if err := e.Restore(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}

	it, err := e.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for valid := it.First(); valid; valid = it.Next() {
		if i >= n || string(it.Key()) != string(key(i)) || string(it.Value()) != string(value(i)) {
			t.Fatalf("entry %d is %q = %q, want %q = %q", i, it.Key(), it.Value(), key(i), value(i))
		}
		i++
	}
	if err := it.Close(); err != nil || i != n {
		t.Fatalf("read %d keys (%v), want %d", i, err, n)
	}
	var tables uint64
	for _, l := range e.DB().Metrics().Levels {
		tables += l.TablesIngested
	}
	if tables < 5 {
		t.Errorf("%d tables ingested, want several", tables)
	}
	t.Logf("%d tables ingested", tables)
}

// TestRestoreOnDisk restores on the OS filesystem, where Pebble hard-links
// the tables into the engine.
func TestRestoreOnDisk(t *testing.T) {
	fs := vfs.Default
	dir := t.TempDir()
	want := union(keys("k", 500, "new"), keys("n", 500, "new"))
	makeSource(t, fs, fs.PathJoin(dir, "src"), func(db *pebble.DB) {
		set(t, db, keys("k", 500, "new"))
		flush(t, db)
		set(t, db, keys("n", 500, "new"))
	})
	e := openTestEngine(t, fs, fs.PathJoin(dir, "db"))
	set(t, e.DB(), keys("k", 1000, "old"))
	if err := e.Restore(context.Background(), fs.PathJoin(dir, "src")); err != nil {
		t.Fatal(err)
	}
	wantContents(t, e.DB(), want)
	wantGone(t, fs, e.restoreDir())
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openTestEngine(t, fs, fs.PathJoin(dir, "db"))
	defer e.Close()
	wantContents(t, e.DB(), want)
}

// TestRestoreCrash crashes the filesystem before every sync, link, rename
// and removal a Restore makes (keeping only synced data, and once more
// keeping a random part of the unsynced data) and after Restore returns:
// every crashed copy reopens to the whole old or the whole new contents,
// old before some point and new after it, and to the new contents once
// Restore returned.
func TestRestoreCrash(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	mem := vfs.NewCrashableMem()
	type crash struct {
		op string
		fs *vfs.MemFS
	}
	var (
		armed   atomic.Bool
		mu      sync.Mutex
		crashes []crash
	)
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !armed.Load() {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo,
			errorfs.OpLink, errorfs.OpRename, errorfs.OpRemove, errorfs.OpRemoveAll:
		default:
			return nil
		}
		name := fmt.Sprintf("before op %d on %s", op.Kind, op.Path)
		mu.Lock()
		defer mu.Unlock()
		crashes = append(crashes,
			crash{name + " (synced data)", mem.CrashClone(vfs.CrashCloneCfg{})},
			crash{name + " (some unsynced data)", mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})})
		return nil
	}))

	old := union(keys("a", 300, "old"), keys("k", 300, "old"))
	want := union(keys("k", 300, "new"), keys("z", 300, "new"))
	makeSource(t, fs, "src", func(db *pebble.DB) {
		set(t, db, keys("k", 300, "new"))
		flush(t, db)
		set(t, db, keys("z", 300, "new"))
	})
	e := openTestEngine(t, fs, "db")
	set(t, e.DB(), keys("a", 300, "old"))
	flush(t, e.DB())
	set(t, e.DB(), keys("k", 300, "old")) // synced to the WAL, in the memtable
	e.restoreTableSize = 4 << 10          // several tables, more points to crash at

	armed.Store(true)
	err := e.Restore(context.Background(), "src")
	armed.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	crashes = append(crashes, crash{"after Restore returned", mem.CrashClone(vfs.CrashCloneCfg{})})
	mu.Unlock()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	olds, news := 0, 0
	for i, c := range crashes {
		ce := openTestEngine(t, c.fs, "db")
		got := contents(t, ce.DB())
		wantGone(t, c.fs, ce.restoreDir())
		if err := ce.Close(); err != nil {
			t.Fatal(err)
		}
		switch {
		case maps.Equal(got, old) && news == 0 && i < len(crashes)-1:
			olds++
		case maps.Equal(got, want):
			news++
		default:
			t.Fatalf("crash %d/%d %s: reopened to neither the old contents (before any new) nor the new:\n%s",
				i, len(crashes), c.op, diff(got, want))
		}
	}
	if olds == 0 || news < 2 {
		t.Fatalf("%d crashes reopened old, %d new: the hook missed the switch", olds, news)
	}
	t.Logf("%d crash points: %d old, %d new", len(crashes), olds, news)
}

// TestRestoreErrors: a Restore that fails leaves the engine as it was and
// no sstables behind, and says why.
func TestRestoreErrors(t *testing.T) {
	old := union(keys("a", 50, "old"), keys("b", 50, "old"))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		source func(t *testing.T, fs vfs.FS) // creates "src"
		engine func(t *testing.T, db *pebble.DB)
		ctx    context.Context
		want   error // nil: any error
		old    map[string]string
	}{
		{name: "missing source", source: func(*testing.T, vfs.FS) {}},
		{name: "empty directory", source: func(t *testing.T, fs vfs.FS) {
			if err := fs.MkdirAll("src", 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "source key at 0xff", want: ErrRestoreUnsupported, source: func(t *testing.T, fs vfs.FS) {
			sourceOf(t, fs, "src", map[string]string{"k": "new", "\xff\x00": "new"})
		}},
		{name: "source range key", want: ErrRestoreUnsupported, source: func(t *testing.T, fs vfs.FS) {
			makeSource(t, fs, "src", func(db *pebble.DB) {
				if err := db.RangeKeySet([]byte("a"), []byte("c"), nil, []byte("v"), pebble.Sync); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{name: "engine key at 0xff", want: ErrRestoreUnsupported,
			source: func(t *testing.T, fs vfs.FS) { sourceOf(t, fs, "src", keys("k", 10, "new")) },
			engine: func(t *testing.T, db *pebble.DB) { set(t, db, map[string]string{"\xff": "x"}) },
		},
		{name: "canceled", want: context.Canceled, ctx: canceled,
			source: func(t *testing.T, fs vfs.FS) { sourceOf(t, fs, "src", keys("k", 10, "new")) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			tc.source(t, fs)
			e := openTestEngine(t, fs, "db")
			defer e.Close()
			set(t, e.DB(), keys("a", 50, "old"))
			flush(t, e.DB())
			set(t, e.DB(), keys("b", 50, "old"))
			want := old
			if tc.engine != nil {
				tc.engine(t, e.DB())
				want = contents(t, e.DB())
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := e.Restore(ctx, "src")
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Restore = %v, want %v", err, tc.want)
			}
			t.Log(err)
			wantContents(t, e.DB(), want)
			wantGone(t, fs, e.restoreDir())
		})
	}
}

// TestRestoreBusyAndClosed: a second Restore while one runs is refused,
// as is a Restore of a closed engine.
func TestRestoreBusyAndClosed(t *testing.T) {
	mem := vfs.NewMem()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.HasPrefix(op.Path, "db"+restoreDirSuffix) {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
		return nil
	}))
	sourceOf(t, fs, "src", keys("k", 10, "new"))
	e := openTestEngine(t, fs, "db")
	first := make(chan error, 1)
	go func() { first <- e.Restore(context.Background(), "src") }()
	<-entered
	if err := e.Restore(context.Background(), "src"); !errors.Is(err, ErrRestoreBusy) {
		t.Errorf("concurrent Restore = %v, want ErrRestoreBusy", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wantContents(t, e.DB(), keys("k", 10, "new"))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Restore(context.Background(), "src"); !errors.Is(err, ErrClosed) {
		t.Errorf("Restore after Close = %v, want ErrClosed", err)
	}
	if err := e.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

// BenchmarkRestore restores about 100 MB (100k keys of 1 KiB random
// values) on the OS filesystem; MB/s counts keys and values.
func BenchmarkRestore(b *testing.B) {
	const n, size = 100_000, 1000
	fs := vfs.Default
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	makeSource(b, fs, fs.PathJoin(dir, "src"), func(db *pebble.DB) {
		v := make([]byte, size)
		for i := 0; i < n; i += 1000 {
			batch := db.NewBatch()
			for j := i; j < i+1000; j++ {
				for k := range v {
					v[k] = byte(rng.Uint32())
				}
				key := fmt.Appendf(nil, "k%08d", j)
				total += int64(len(key) + len(v))
				if err := batch.Set(key, v, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
		}
		flush(b, db)
	})
	e, err := Open(fs.PathJoin(dir, "db"), Options{FS: fs})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if err := e.Restore(context.Background(), fs.PathJoin(dir, "src")); err != nil {
			b.Fatal(err)
		}
	}
}
