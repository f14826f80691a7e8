package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// Defaults applied by Options.EnsureDefaults.
const (
	// DefaultCacheSize is the block cache for reads: 64 MiB.
	DefaultCacheSize int64 = 64 << 20
	// DefaultMemTableSize is the size of one memtable: 32 MiB.
	DefaultMemTableSize int64 = 32 << 20
	// minMaxOpenFiles is the fewest open files the engine is allowed by
	// default (Pebble's own default), whatever the process's limit.
	minMaxOpenFiles = 1000
	// maxMaxOpenFiles caps the default, whatever the process's limit.
	maxMaxOpenFiles = 1 << 16
)

// DefaultMaxOpenFiles is the soft limit on open files the engine gets by
// default for a process allowed limit file descriptors (RLIMIT_NOFILE, 0
// if unknown): all but a quarter of them, and at least 1024, which stay for
// client and peer connections, the raft WAL and snapshots; within
// [minMaxOpenFiles, maxMaxOpenFiles].
//
// Each sstable a read touches must be open, and there are many: Pebble
// moves the revision log's flushed tables down the levels as they are
// (its keys only grow), so they keep the flush's size, about 2 MiB, and a
// 6 GiB store has over 3,000. With only 1000 open, random reads reopened
// tables all the time: at 3 M keys a serializable read cost 211-213 µs of
// server CPU, 125-135 µs with all open (docs/scale.md, run J).
func DefaultMaxOpenFiles(limit uint64) int {
	reserve := max(limit/4, 1024)
	if limit < reserve+minMaxOpenFiles {
		return minMaxOpenFiles
	}
	return int(min(limit-reserve, maxMaxOpenFiles))
}

// memTableStopWritesThreshold is how many full memtables may be queued
// before Pebble stops writes: 3 rather than Pebble's 2. With 2, a forced
// flush (the raft snapshot's AsyncFlush, a defragment's Compact) while
// another flush was still writing stopped every write, Pebble's commit
// lock held, until that flush ended: 232 ms once during a defragment
// under load (docs/benchmarks.md). With 3, one flush may be running when
// another is forced. The memory bound (Options.MemTableSize) depends on it.
const memTableStopWritesThreshold = 3

// l0StopWritesThreshold is the L0 read amplification (sublevels) at which
// Pebble stops all writes until compactions bring it down. Pebble's
// default, 12, stopped a member's writes for seconds at a time while a
// 10M-key load ran on two cores (one L0 compaction had to finish first);
// a write held that long times out at the client. L0 is allowed to grow
// further instead: a point lookup pays a bloom filter probe per extra
// sublevel, a scan one more merged source, until compactions catch up.
const l0StopWritesThreshold = 100

// lBaseMaxBytes is the target size of the LSM's base level, the one L0
// compacts into: 4 MiB rather than Pebble's 64 MiB.
//
// The key index and the revision log share the LSM but not its dynamics.
// Revision-log keys only grow, so their tables never overlap and move down
// unrewritten. Key-index entries are small and land all over their range:
// each 32 MiB memtable flush of 2 KiB puts carries a few hundred KiB of
// them, spanning every key, and compacting that into the base level
// rewrites the base level's whole share of the key index. With a 64 MiB
// base level that was about 200 bytes rewritten per byte flushed; at 3 M
// keys compactions kept more than a core busy (a put cost 322-429 µs of
// server CPU, 112-156 µs at 100k). With 4 MiB, 136-166 µs; 2 MiB and
// 8 MiB did worse (docs/scale.md, run K).
const lBaseMaxBytes = 4 << 20

// compactionConcurrency lets Pebble run a second compaction when its
// compaction debt or L0 grows (Pebble's default is one at a time).
func compactionConcurrency() (lower, upper int) { return 1, 2 }

// Options configures an Engine. The zero value is valid: every field has a
// default, applied by EnsureDefaults.
type Options struct {
	// FS is the filesystem the database lives on. Default vfs.Default (the
	// OS); tests use vfs.NewCrashableMem() to simulate power loss.
	FS vfs.FS
	// CacheSize is the block cache size in bytes. Default DefaultCacheSize
	// (64 MiB).
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. Default
	// DefaultMemTableSize (32 MiB). Up to three memtables hold writes not
	// yet flushed (memTableStopWritesThreshold) and Pebble keeps one more
	// for reuse, so memtables take at most 4*MemTableSize. The engine's
	// memory is therefore bounded by about CacheSize + 4*MemTableSize
	// (192 MiB with the defaults), whatever the number of keys.
	MemTableSize int64
	// MaxOpenFiles is a soft limit on open files. Default
	// DefaultMaxOpenFiles of the process's RLIMIT_NOFILE.
	MaxOpenFiles int
	// Logger receives Pebble's log lines. Default zap.NewNop().
	Logger *zap.Logger
	// DisableWAL turns off Pebble's own write-ahead log, for a caller that
	// can rebuild whatever a crash loses (a member replays its raft WAL).
	// Writes then become durable only when a memtable is flushed: a crash,
	// even of the process alone, loses every write since the last flush,
	// and the engine comes back exactly as of some flush (a prefix of its
	// writes). Commits with pebble.Sync fail; use Flush (or Pebble's
	// AsyncFlush) to make writes durable. Restore, Close and Checkpoint
	// flush first, so they lose nothing. A member's engine runs this way:
	// each write then costs one write to the raft WAL instead of two logs,
	// and the raft WAL's fsyncs no longer carry Pebble's log along (ext4
	// orders the data of both).
	DisableWAL bool
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o Options) EnsureDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.MaxOpenFiles <= 0 {
		o.MaxOpenFiles = DefaultMaxOpenFiles(fileLimit())
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	// Pebble refuses memtables of 4 GiB or more.
	if o.MemTableSize >= 4<<30 {
		return fmt.Errorf("storage: MemTableSize %d must be below 4 GiB", o.MemTableSize)
	}
	return nil
}

// Engine is an open Pebble database. It is safe for concurrent use.
type Engine struct {
	db     *pebble.DB
	dir    string
	fs     vfs.FS
	logger pebble.Logger
	// tableOpts writes sstables in the format the database expects (its
	// comparer, table format and block settings), for Restore to ingest.
	tableOpts sstable.WriterOptions
	// stalls counts and logs Pebble's write stalls.
	stalls *writeStalls
	// restoreTableSize is the size in bytes at which Restore starts a new
	// sstable: DefaultRestoreTableSize; tests lower it.
	restoreTableSize int64
	// walDisabled is Options.DisableWAL.
	walDisabled bool
	// restoring is set while a Restore runs; a second one is refused.
	restoring atomic.Bool
	// mu orders Size, which monitoring calls from any goroutine at any
	// time, against Close.
	mu                  sync.RWMutex
	closed              bool
	lastSize, lastInUse int64
}

// Open opens (creating if needed) the database in dir. A database a Cairn
// build from before Comparer wrote is first upgraded (see upgrade).
func Open(dir string, o Options) (*Engine, error) {
	o = o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := upgrade(dir, o); err != nil {
		return nil, err
	}
	return openEngine(dir, o)
}

// testPebbleOptions, set only by tests (export_test.go), edits the Pebble
// options of the engines opened while it is set.
var testPebbleOptions func(*pebble.Options)

// openEngine opens the database in dir with options o (defaults applied).
func openEngine(dir string, o Options) (*Engine, error) {
	// Pebble charges memtables against the block cache, so the cache is
	// sized to hold CacheSize of blocks on top of the largest memtable
	// reservation; otherwise full memtables would leave no room for blocks.
	cache := pebble.NewCache(o.CacheSize + (memTableStopWritesThreshold+1)*o.MemTableSize)
	stalls := &writeStalls{lg: o.Logger}
	// The DB takes its own reference on the cache; ours is dropped on return.
	defer cache.Unref()
	po := &pebble.Options{
		FS:                          o.FS,
		Cache:                       cache,
		MemTableSize:                uint64(o.MemTableSize),
		MemTableStopWritesThreshold: memTableStopWritesThreshold,
		L0StopWritesThreshold:       l0StopWritesThreshold,
		LBaseMaxBytes:               lBaseMaxBytes,
		CompactionConcurrencyRange:  compactionConcurrency,
		MaxOpenFiles:                o.MaxOpenFiles,
		FormatMajorVersion:          pebble.FormatNewest,
		Comparer:                    Comparer,
		EventListener:               stalls.listener(),
		Logger:                      zapLogger{o.Logger.Sugar()},
		DisableWAL:                  o.DisableWAL,
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = filterPolicy
	}
	if testPebbleOptions != nil {
		testPebbleOptions(po)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	e := &Engine{db: db, dir: dir, fs: o.FS, logger: po.Logger, stalls: stalls, walDisabled: o.DisableWAL, restoreTableSize: DefaultRestoreTableSize}
	// Pebble fills in the defaults of its own copy of po; the writer
	// options need them too.
	wo := po.Clone()
	wo.EnsureDefaults()
	e.tableOpts = wo.MakeWriterOptions(0, db.TableFormat())
	// The sstables of a Restore that a crash interrupted.
	if err := o.FS.RemoveAll(e.restoreDir()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage: open %s: remove leftover %s: %w", dir, e.restoreDir(), err)
	}
	return e, nil
}

// DB returns the underlying database. Callers must not close it.
func (e *Engine) DB() *pebble.DB { return e.db }

// Dir returns the directory the database lives in.
func (e *Engine) Dir() string { return e.dir }

// FS returns the filesystem the database lives on.
func (e *Engine) FS() vfs.FS { return e.fs }

// Sizes returns the bytes the database occupies on disk (sstables, WAL,
// manifest, including files awaiting deletion) and the part of them in
// use: all but the files Pebble deletes in the background (obsolete
// sstables and blob files) and the WAL space it reuses. Pebble keeps the files of flushed
// WALs to write its next WALs into (recycling), and a recycled file keeps
// its old length whatever it holds, so a WAL counts by the data it holds.
// Neither kind of space comes back through compaction: leaving it out is
// what lets compaction and defragmentation bring inUse down, as they bring
// down an etcd database's size. With DisableWAL, writes still in memtables
// count in neither until they are flushed. After Close, the last sizes it
// saw.
func (e *Engine) Sizes() (size, inUse int64) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return e.lastSize, e.lastInUse
	}
	return sizes(e.db.Metrics())
}

func sizes(m *pebble.Metrics) (size, inUse int64) {
	// Pebble measures the live WALs' files as of when each was opened, so
	// the current one's data may exceed that: it takes at least the space
	// of what it holds (WAL.Size).
	live := max(m.WAL.PhysicalSize, m.WAL.Size)
	rest := m.DiskSpaceUsage() - m.WAL.PhysicalSize - m.WAL.ObsoletePhysicalSize
	size = int64(rest + live + m.WAL.ObsoletePhysicalSize)
	inUse = int64(rest - m.Table.Local.ObsoleteSize - m.BlobFiles.Local.ObsoleteSize + m.WAL.Size)
	return size, inUse
}

// Close closes the database. Every iterator, snapshot and batch on it must
// be closed first.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("storage: close: %w", ErrClosed)
	}
	var ferr error
	if e.walDisabled {
		// Without a log, the memtables are all that hold the latest writes.
		if ferr = e.db.Flush(); ferr != nil {
			ferr = fmt.Errorf("storage: flush before close: %w", ferr)
		}
	}
	e.lastSize, e.lastInUse = sizes(e.db.Metrics())
	e.closed = true
	return errors.Join(ferr, e.db.Close())
}

// Flush makes every write committed before the call durable: with
// DisableWAL, the only way to; otherwise a flush of the memtables.
func (e *Engine) Flush() error { return e.db.Flush() }

// Checkpoint writes a consistent point-in-time copy of the database into
// the new directory dir (Pebble's Checkpoint: sstables hard-linked when dir
// is on the same filesystem, WAL and MANIFEST copied). It holds every write
// committed before the call and none committed after it returns. With
// DisableWAL the memtables are flushed first, since the copy has no log to
// carry them.
func (e *Engine) Checkpoint(dir string) error {
	if e.walDisabled {
		if err := e.db.Flush(); err != nil {
			return fmt.Errorf("storage: flush before checkpoint: %w", err)
		}
	}
	if err := e.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("storage: checkpoint into %s: %w", dir, err)
	}
	return nil
}

// writeStalls counts Pebble's write stalls (writes held back until a flush
// or compaction catches up) and logs each with its reason and length: a
// stall holds up the apply loop, and so every write of the member.
type writeStalls struct {
	lg     *zap.Logger
	mu     sync.Mutex
	began  time.Time // of the stall under way; zero when none is
	reason string
	count  int64
	total  time.Duration // of the stalls that ended
}

func (w *writeStalls) listener() *pebble.EventListener {
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.began, w.reason = time.Now(), info.Reason
			w.count++
			w.lg.Warn("storage engine is holding writes back", zap.String("reason", w.reason))
		},
		WriteStallEnd: func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			d := time.Since(w.began)
			w.total += d
			w.began = time.Time{}
			w.lg.Warn("storage engine released writes", zap.String("reason", w.reason), zap.Duration("stalled", d))
		},
	}
}

// stats returns the stalls begun and their total length, the one under
// way counted up to now.
func (w *writeStalls) stats() (count int64, total time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	total = w.total
	if !w.began.IsZero() {
		total += time.Since(w.began)
	}
	return w.count, total
}

// Stats is what an operator watches of the engine's health, for the
// member's /metrics: write stalls, the compaction backlog behind them, and
// the block cache. Counters run from Open.
type Stats struct {
	// WriteStalls counts the times Pebble held every write back until a
	// flush or compaction caught up; WriteStalled is their total length,
	// including the time so far of one under way.
	WriteStalls  int64
	WriteStalled time.Duration
	// CompactionDebt is the bytes Pebble estimates it must compact to bring
	// every level within its target size; CompactionsRunning, how many
	// compactions run now.
	CompactionDebt     uint64
	CompactionsRunning int64
	// L0Sublevels is level 0's depth, the read amplification flushes add;
	// writes stop at l0StopWritesThreshold. L0Tables is its table count.
	L0Sublevels int32
	L0Tables    int64
	// MemTables counts the memtables in memory: the one taking writes and
	// those queued for flushing.
	MemTables int64
	// BlockCacheBytes is what the block cache holds (memtables included,
	// see openEngine); BlockCacheHits and BlockCacheMisses count block
	// reads it answered and did not.
	BlockCacheBytes, BlockCacheHits, BlockCacheMisses int64
}

// Stats returns the engine's Stats; after Close, only the stall counters.
func (e *Engine) Stats() Stats {
	var st Stats
	st.WriteStalls, st.WriteStalled = e.stalls.stats()
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return st
	}
	m := e.db.Metrics()
	st.CompactionDebt, st.CompactionsRunning = m.Compact.EstimatedDebt, m.Compact.NumInProgress
	st.L0Sublevels, st.L0Tables = m.Levels[0].Sublevels, m.Levels[0].TablesCount
	st.MemTables = m.MemTable.Count
	st.BlockCacheBytes, st.BlockCacheHits, st.BlockCacheMisses = m.BlockCache.Size, m.BlockCache.Hits, m.BlockCache.Misses
	return st
}

// zapLogger adapts zap to pebble.Logger.
type zapLogger struct{ s *zap.SugaredLogger }

func (l zapLogger) Infof(format string, args ...any)  { l.s.Infof(format, args...) }
func (l zapLogger) Errorf(format string, args ...any) { l.s.Errorf(format, args...) }
func (l zapLogger) Fatalf(format string, args ...any) { l.s.Fatalf(format, args...) }

// Hash returns a CRC-32C over every key and value in the engine, read
// from one consistent snapshot.
func (e *Engine) Hash(ctx context.Context) (uint32, error) {
	snap := e.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return 0, err
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var lens []byte
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			it.Close()
			return 0, ctx.Err()
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return 0, err
		}
		// Lengths first, so no two different contents hash the same bytes.
		lens = binary.AppendUvarint(binary.AppendUvarint(lens[:0], uint64(len(it.Key()))), uint64(len(v)))
		h.Write(lens)
		h.Write(it.Key())
		h.Write(v)
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// CompactAll compacts the whole key space, dropping deleted and overwritten
// data from disk. Reads and writes continue meanwhile.
func (e *Engine) CompactAll(ctx context.Context) error {
	return e.db.Compact(ctx, []byte{0}, []byte{0xff}, true)
}
