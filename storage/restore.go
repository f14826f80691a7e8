package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors of Restore. Every error Restore returns for one of these reasons
// wraps the sentinel; IO and Pebble errors are wrapped as they are.
var (
	// ErrClosed means the engine was closed.
	ErrClosed = errors.New("storage: engine closed")
	// ErrRestoreBusy means another Restore of the same engine is running.
	ErrRestoreBusy = errors.New("storage: another restore is running")
	// ErrRestoreUnsupported means the source or the engine holds data
	// Restore cannot replace: a key at or above 0xff (outside every key
	// space) or a range key (Cairn writes none).
	ErrRestoreUnsupported = errors.New("storage: restore: unsupported contents")
)

// DefaultRestoreTableSize bounds each sstable Restore writes: 64 MiB.
const DefaultRestoreTableSize int64 = 64 << 20

// restoreSpanEnd is the exclusive upper bound of the keys Restore replaces:
// every key below it, which covers every key space (see doc.go).
var restoreSpanEnd = []byte{0xff}

// restoreDirSuffix names the directory, beside the engine's, where Restore
// writes its sstables. Open and Restore remove a leftover of a crash.
const restoreDirSuffix = ".restore"

// restoreCheckEvery is how many keys Restore copies between checks of its
// context.
const restoreCheckEvery = 4096

// restoreBytesPerSync makes Restore sync its sstables as it writes them
// (Pebble's default for its own files), so the final fsync has little left
// to do and the page cache never holds a whole table of dirty pages.
const restoreBytesPerSync = 512 << 10

// Restore atomically replaces the entire contents of e with those of the
// Pebble database in srcDir, a checkpoint on e.FS() (for example one
// snap.ReceiveEngineSnapshot wrote). srcDir is opened read-only, its WAL
// replayed in memory, and left unchanged (but for Pebble's empty LOCK
// file), so a Restore that failed or was cut short by a crash can be run
// again on it; removing it afterwards is the caller's job.
//
// Atomicity. A reader of e.DB() (Get, iterator, Snapshot,
// EventuallyFileOnlySnapshot) sees either all of the old contents or all of
// the new, never a mix: a Snapshot or iterator opened before the switch
// keeps seeing the old contents for as long as it stays open, and one
// opened after it sees the new. After a crash at any point, e holds either
// the old or the new contents; once Restore returns nil the new contents
// are durable.
//
// Writes. Restore must not run concurrently with writes to e (the caller
// stops its writers): a write committed during Restore may land before the
// switch, and be erased, or after it, and survive. Restore must not run
// concurrently with or after Close; a second concurrent Restore fails with
// ErrRestoreBusy.
//
// Cost. Memory stays bounded whatever the size of the source: keys stream
// from the source into sstables of about DefaultRestoreTableSize each,
// written to the directory e.Dir()+".restore" and gone when Restore
// returns. The source's unflushed WAL, if any, is held in memory while it
// is open; a checkpoint's WAL holds at most the source's unflushed
// memtables. Disk use peaks at about the old contents plus two
// copies of the new (the source and the ingested tables); the old
// contents are reclaimed by background compactions once no Snapshot or
// iterator older than the switch is open.
//
// Errors. On any error e is unchanged. A source or engine holding keys at
// or above 0xff, or range keys, is refused with ErrRestoreUnsupported
// before anything is written.
func (e *Engine) Restore(ctx context.Context, srcDir string) error {
	if !e.restoring.CompareAndSwap(false, true) {
		return fmt.Errorf("storage: restore from %s: %w", srcDir, ErrRestoreBusy)
	}
	defer e.restoring.Store(false)
	e.mu.RLock()
	closed := e.closed
	e.mu.RUnlock()
	if closed {
		return fmt.Errorf("storage: restore from %s: %w", srcDir, ErrClosed)
	}
	if err := e.restore(ctx, srcDir, nil); err != nil {
		return fmt.Errorf("storage: restore from %s: %w", srcDir, err)
	}
	return nil
}

// restore is Restore; srcLock, if not nil, is the caller's lock of srcDir
// (pebble.LockDirectory), which the source's open then uses.
func (e *Engine) restore(ctx context.Context, srcDir string, srcLock *pebble.Lock) error {
	if err := checkReplaceable(e.db, "the engine"); err != nil {
		return err
	}
	tmp := e.restoreDir()
	if err := e.fs.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	if err := e.fs.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		// On success Pebble has already moved the tables into the engine;
		// a directory left by a failed removal goes at the next Open.
		if rerr := e.fs.RemoveAll(tmp); rerr != nil {
			e.logger.Errorf("storage: restore: remove %s: %v", tmp, rerr)
		}
	}()

	paths, err := e.writeRestoreTables(ctx, srcDir, srcLock, tmp)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// One ingest is one atomic step, like a batch: Pebble links the tables
	// into the engine, syncs them, and records them in one MANIFEST edit
	// (or, when they must sit above a memtable, one synced WAL record) with
	// one block of sequence numbers published at once. Each table's range
	// deletion shadows every older key of its span, wherever it lives:
	// memtables, sstables, or the queue of memtables awaiting flush.
	if err := e.db.Ingest(ctx, paths); err != nil {
		return fmt.Errorf("ingest %d tables: %w", len(paths), err)
	}
	// An ingest that had to sit above a memtable is recorded only in the
	// log; without one, it is durable once flushed.
	if e.walDisabled {
		if err := e.db.Flush(); err != nil {
			return fmt.Errorf("flush the ingested tables: %w", err)
		}
	}
	return nil
}

func (e *Engine) restoreDir() string { return e.dir + restoreDirSuffix }

// writeRestoreTables copies every key of the database in srcDir into
// sstables under tmp and returns their paths in key order.
//
// The tables partition [nil, restoreSpanEnd): each holds a range deletion
// over its own slice of that span plus the source's keys in it. Ingested,
// the deletion erases every old key of the slice while the keys beside it,
// which share its sequence number, stay visible (a range deletion only
// covers keys with lower sequence numbers). The slices do not overlap, as
// Pebble requires of the tables of one ingest, and together cover the whole
// span, so the ingest replaces everything. Range deletions rather than
// IngestAndExcise's excise: an excise drops the old keys from the LSM at
// once, so a Snapshot opened before it would then read an empty database;
// a range deletion lets compactions keep the old keys for such snapshots.
func (e *Engine) writeRestoreTables(ctx context.Context, srcDir string, srcLock *pebble.Lock, tmp string) (paths []string, err error) {
	cmp, err := comparerOf(e.fs, srcDir)
	if err != nil {
		return nil, err
	}
	src, err := pebble.Open(srcDir, &pebble.Options{
		FS:       e.fs,
		ReadOnly: true,
		Logger:   e.logger,
		Comparer: cmp,
		Lock:     srcLock,
	})
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close source: %w", cerr)
		}
	}()
	if err := checkReplaceable(src, "the source"); err != nil {
		return nil, err
	}
	it, err := src.NewIter(&pebble.IterOptions{UpperBound: restoreSpanEnd})
	if err != nil {
		return nil, fmt.Errorf("iterate source: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("iterate source: %w", cerr)
		}
	}()

	var (
		w     *sstable.Writer
		start []byte // first key of w's slice of the span; nil is the lowest key
		n     int
	)
	defer func() {
		if w != nil {
			// Only on error: close the unfinished table so its file can go.
			_ = w.Close()
		}
	}()
	// finish ends the current table's slice just before end.
	finish := func(end []byte) error {
		err := w.DeleteRange(start, end)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		w = nil
		if err != nil {
			return fmt.Errorf("write %s: %w", paths[len(paths)-1], err)
		}
		return nil
	}
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%restoreCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		k := it.Key()
		if w != nil && int64(w.Raw().EstimatedSize()) >= e.restoreTableSize {
			if err := finish(k); err != nil {
				return nil, err
			}
			start = append(start[:0:0], k...)
		}
		if w == nil {
			if w, err = e.createRestoreTable(tmp, len(paths)); err != nil {
				return nil, err
			}
			paths = append(paths, e.fs.PathJoin(tmp, restoreTableName(len(paths))))
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read source: %w", err)
		}
		if err := w.Set(k, v); err != nil {
			return nil, fmt.Errorf("write %s: %w", paths[len(paths)-1], err)
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	if w == nil {
		// An empty source: one table holding only the deletion.
		if w, err = e.createRestoreTable(tmp, 0); err != nil {
			return nil, err
		}
		paths = append(paths, e.fs.PathJoin(tmp, restoreTableName(0)))
	}
	if err := finish(restoreSpanEnd); err != nil {
		return nil, err
	}
	return paths, nil
}

func restoreTableName(i int) string { return fmt.Sprintf("%06d.sst", i) }

// createRestoreTable creates table i under tmp. The writer fsyncs the file
// when closed, as ingestion requires.
func (e *Engine) createRestoreTable(tmp string, i int) (*sstable.Writer, error) {
	path := e.fs.PathJoin(tmp, restoreTableName(i))
	f, err := e.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	f = vfs.NewSyncingFile(f, vfs.SyncingFileOptions{BytesPerSync: restoreBytesPerSync})
	return sstable.NewWriter(objstorageprovider.NewFileWritable(f), e.tableOpts), nil
}

// checkReplaceable refuses a database (named what) holding data Restore
// cannot carry over or erase.
func checkReplaceable(r pebble.Reader, what string) error {
	if ok, err := hasAny(r, &pebble.IterOptions{LowerBound: restoreSpanEnd}); err != nil {
		return fmt.Errorf("check %s: %w", what, err)
	} else if ok {
		return fmt.Errorf("%w: %s holds keys at or above %#x", ErrRestoreUnsupported, what, restoreSpanEnd)
	}
	if ok, err := hasAny(r, &pebble.IterOptions{KeyTypes: pebble.IterKeyTypeRangesOnly}); err != nil {
		return fmt.Errorf("check %s: %w", what, err)
	} else if ok {
		return fmt.Errorf("%w: %s holds range keys", ErrRestoreUnsupported, what)
	}
	return nil
}

// hasAny reports whether an iterator with options o finds anything.
func hasAny(r pebble.Reader, o *pebble.IterOptions) (bool, error) {
	it, err := r.NewIter(o)
	if err != nil {
		return false, err
	}
	ok := it.First()
	return ok, it.Close()
}
