package storage

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/internal/faultfs"
)

func TestEngineReopen(t *testing.T) {
	fs := vfs.NewMem()
	e, err := Open("db", Options{FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DB().Set(MetaKey("x"), []byte("y"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if size, _ := e.Sizes(); size <= 0 {
		t.Errorf("Sizes() = %d, want > 0", size)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	e, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v, c, err := e.DB().Get(MetaKey("x"))
	if err != nil || string(v) != "y" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	c.Close()
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.EnsureDefaults()
	if o.FS != vfs.Default || o.CacheSize != DefaultCacheSize || o.MemTableSize != DefaultMemTableSize ||
		o.MaxOpenFiles != DefaultMaxOpenFiles(fileLimit()) || o.Logger == nil {
		t.Fatalf("defaults not applied: %+v", o)
	}
	for _, c := range []struct {
		limit uint64
		want  int
	}{
		{0, minMaxOpenFiles},         // unknown
		{1024, minMaxOpenFiles},      // a common soft limit: too small to share
		{2024, minMaxOpenFiles},      // 1024 kept back
		{4096, 3072},                 // 1024 kept back
		{20000, 15000},               // a quarter kept back
		{40000, 30000},               // etcd's systemd unit's LimitNOFILE
		{1 << 20, maxMaxOpenFiles},   // Docker's default
		{1<<63 - 1, maxMaxOpenFiles}, // unlimited
	} {
		if got := DefaultMaxOpenFiles(c.limit); got != c.want {
			t.Errorf("DefaultMaxOpenFiles(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
	if err := (Options{MemTableSize: 4 << 30}).Validate(); err == nil {
		t.Error("4 GiB memtable accepted")
	}
}

// TestSettingsReachPebble reads back, from the OPTIONS file Pebble writes,
// the settings the engine chose for it: dropping one from openEngine would
// go unnoticed by every functional test.
func TestSettingsReachPebble(t *testing.T) {
	fs := vfs.NewMem()
	e, err := Open("db", Options{FS: fs, MemTableSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got, err := pebbleOptions(fs, "db")
	if err != nil || got == nil {
		t.Fatalf("pebbleOptions = %v, %v", got, err)
	}
	for k, v := range map[string]string{
		"comparer":                        ComparerName,
		"max_open_files":                  strconv.Itoa(DefaultMaxOpenFiles(fileLimit())),
		"mem_table_size":                  strconv.Itoa(8 << 20),
		"mem_table_stop_writes_threshold": strconv.Itoa(memTableStopWritesThreshold),
		"l0_stop_writes_threshold":        strconv.Itoa(l0StopWritesThreshold),
		"lbase_max_bytes":                 strconv.Itoa(lBaseMaxBytes),
		"max_concurrent_compactions":      "2",
		"disable_wal":                     "false",
	} {
		if got[k] != v {
			t.Errorf("Pebble's %s = %q, want %q", k, got[k], v)
		}
	}
}

// TestSizeAfterClose: monitoring may ask for the size while the member
// shuts down; after Close it gets the last size, not a crash.
func TestSizeAfterClose(t *testing.T) {
	e, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DB().Set(MetaKey("x"), []byte("y"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	wantSize, wantInUse := e.Sizes()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if size, inUse := e.Sizes(); size != wantSize || inUse != wantInUse || size <= 0 {
		t.Fatalf("Sizes() after Close = %d, %d, want %d, %d", size, inUse, wantSize, wantInUse)
	}
}

// TestDisableWAL: an engine without a WAL of its own keeps exactly what was
// flushed through a crash, refuses synced commits, and loses nothing that
// Flush, Restore or Close made durable.
func TestDisableWAL(t *testing.T) {
	mem := vfs.NewCrashableMem()
	open := func(fs vfs.FS) *Engine {
		t.Helper()
		e, err := Open("db", Options{FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, DisableWAL: true})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	commit := func(db *pebble.DB, kv map[string]string) {
		t.Helper()
		b := db.NewBatch()
		for k, v := range kv {
			if err := b.Set([]byte(k), []byte(v), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	reopened := func(fs vfs.FS) map[string]string {
		t.Helper()
		e := open(fs)
		defer e.Close()
		return contents(t, e.DB())
	}

	e := open(mem)
	flushed, unflushed := keys("a", 50, "1"), keys("b", 50, "2")
	commit(e.DB(), flushed)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	commit(e.DB(), unflushed)
	if err := e.DB().Set([]byte("s"), nil, pebble.Sync); err == nil {
		t.Fatal("a synced commit succeeded without a WAL")
	}
	if got := reopened(mem.CrashClone(vfs.CrashCloneCfg{})); !maps.Equal(got, flushed) {
		t.Fatalf("after a crash: %s", diff(got, flushed))
	}

	// Restore over unflushed writes (its ingest sits above the memtable)
	// is durable once it returns.
	restored := keys("k", 50, "3")
	makeSource(t, mem, "src", func(db *pebble.DB) { set(t, db, restored) })
	if err := e.Restore(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	if got := reopened(mem.CrashClone(vfs.CrashCloneCfg{})); !maps.Equal(got, restored) {
		t.Fatalf("after a crash following Restore: %s", diff(got, restored))
	}

	// Close flushes.
	last := keys("z", 50, "4")
	commit(e.DB(), last)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want := union(restored, last)
	if got := reopened(mem.CrashClone(vfs.CrashCloneCfg{})); !maps.Equal(got, want) {
		t.Fatalf("after Close and a crash: %s", diff(got, want))
	}
}

// TestWriteStallsCountedAndLogged: writes that fill every memtable while a
// flush cannot finish stall; Stats counts the stall and its length while
// it lasts and after, and the log says why and for how long.
func TestWriteStallsCountedAndLogged(t *testing.T) {
	const memtable = 256 << 10 // Pebble's first memtable size: no ramp-up
	flush := holdFlush(t)
	core, logs := observer.New(zap.InfoLevel)
	stalled := make(chan struct{}, 1)
	lg := zap.New(core, zap.Hooks(func(en zapcore.Entry) error {
		if en.Message == "storage engine is holding writes back" {
			select {
			case stalled <- struct{}{}:
			default:
			}
		}
		return nil
	}))
	e, err := Open("db", Options{FS: flush.Wrap(vfs.NewMem()), MemTableSize: memtable, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.WriteStalls != 0 || st.WriteStalled != 0 || st.MemTables != 1 {
		t.Fatalf("a new engine: %+v", st)
	}
	flush.Arm()
	wrote := make(chan error, 1)
	go func() {
		value := make([]byte, 1<<10)
		for i := range (memTableStopWritesThreshold + 2) * memtable / len(value) {
			if err := e.DB().Set(MetaKey(strconv.Itoa(i)), value, pebble.NoSync); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case <-stalled:
	case err := <-wrote:
		t.Fatalf("the writes did not stall while no flush could finish: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the writes neither stalled nor finished")
	}
	during := e.Stats()
	if during.WriteStalls != 1 || during.WriteStalled <= 0 || during.MemTables != memTableStopWritesThreshold {
		t.Errorf("during the stall: %+v, want 1 stall under way and %d memtables", during, memTableStopWritesThreshold)
	}
	flush.Release()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	after := e.Stats()
	if after.WriteStalls < 1 || after.WriteStalled < during.WriteStalled {
		t.Errorf("after the stall: %+v; during it: %+v", after, during)
	}
	entries := logs.FilterMessageSnippet("storage engine").All()
	if len(entries) < 2 {
		t.Fatalf("%d log lines, want a stall and its release", len(entries))
	}
	for _, en := range entries[:2] {
		if en.ContextMap()["reason"] != "memtable count limit reached" {
			t.Errorf("%q: reason %v", en.Message, en.ContextMap()["reason"])
		}
	}
	if entries[1].Message != "storage engine released writes" || entries[1].ContextMap()["stalled"] == nil {
		t.Errorf("the release: %q %v", entries[1].Message, entries[1].ContextMap())
	}
}

// TestForcedFlushWhileFlushingKeepsWrites: a forced flush (the raft
// snapshot's AsyncFlush, a defragment's Compact) while another flush is
// still writing its table must not stop writes. Pebble stops them, holding
// its commit lock, when rotating the memtable would queue
// memTableStopWritesThreshold full memtables; with 2, a defragment that
// began during a flush stopped a member's puts for 232 ms.
func TestForcedFlushWhileFlushingKeepsWrites(t *testing.T) {
	const memtable = 256 << 10 // Pebble's first memtable size: no ramp-up
	flush := holdFlush(t)
	e, err := Open("db", Options{FS: flush.Wrap(vfs.NewMem()), MemTableSize: memtable})
	if err != nil {
		t.Fatal(err)
	}
	db := e.DB()
	value := make([]byte, 1<<10)
	fill := func(from int) {
		for i := from; i < from+memtable/len(value)*3/4; i++ {
			if err := db.Set(MetaKey(strconv.Itoa(i)), value, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill(0)
	flush.Arm()
	first, err := db.AsyncFlush()
	if err != nil {
		t.Fatal(err)
	}
	<-flush.Held() // the first flush is writing its table, and stays there
	fill(1000)
	second := make(chan error, 1)
	go func() {
		_, err := db.AsyncFlush()
		second <- err
	}()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a forced flush during a flush stopped writes")
	}
	flush.Release()
	<-first
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// holdFlush holds the creation of the next sstable once armed: a flush
// that stays in progress.
func holdFlush(t *testing.T) *faultfs.Hold {
	return faultfs.NewHold(t, errorfs.OpCreate, func(path string) bool { return strings.HasSuffix(path, ".sst") })
}
