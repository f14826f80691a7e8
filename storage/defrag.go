package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Defragmentation, online and offline.
//
// Cairn's storage never needs etcd's stop-the-world defragmentation: a
// compaction of the whole key space rewrites the live data into fresh
// sstables and drops what deletions, overwrites and MVCC compaction left
// behind, while reads and writes go on. Engine.Defragment is that
// compaction plus the sizes around it, for a member's open engine (the
// Defragment RPC) and for the engine of a stopped member (cairnutl
// defrag), which OpenExisting opens only if no member has it open.

// Sentinel errors of OpenExisting.
var (
	// ErrNoDatabase: the directory does not exist or holds no database.
	ErrNoDatabase = errors.New("storage: no database")
	// ErrLocked: the database is open elsewhere, in this process or in
	// another one (a running member); Pebble's lock file says so.
	ErrLocked = errors.New("storage: database in use")
)

// OpenExisting opens the database in dir as Open does, but never creates
// one: a directory that is missing or holds no database fails with
// ErrNoDatabase, and a database that is open elsewhere with ErrLocked,
// both before anything is written.
func OpenExisting(dir string, o Options) (*Engine, error) {
	o = o.EnsureDefaults()
	desc, err := pebble.Peek(dir, o.FS)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w in %s: the directory does not exist", ErrNoDatabase, dir)
	case err != nil:
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	case !desc.Exists:
		return nil, fmt.Errorf("%w in %s", ErrNoDatabase, dir)
	}
	if err := checkUnlocked(dir, o); err != nil {
		return nil, err
	}
	// Open takes the lock again: a process that took it in between makes
	// Open fail, and the lock tells why.
	e, err := Open(dir, o)
	if err != nil {
		if lerr := checkUnlocked(dir, o); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	return e, nil
}

// checkUnlocked takes and releases the lock of the database in dir.
func checkUnlocked(dir string, o Options) error {
	lock, err := pebble.LockDirectory(dir, o.FS)
	if err != nil {
		return fmt.Errorf("%w: %s (%v)", ErrLocked, dir, err)
	}
	return lock.Close()
}

// DefragStats is what a defragmentation did: the sizes (Engine.Sizes)
// before and after, in bytes, and the time the compaction took.
type DefragStats struct {
	SizeBefore, InUseBefore int64
	SizeAfter, InUseAfter   int64
	Took                    time.Duration
}

// Defragment compacts the whole key space (CompactAll), dropping deleted
// and overwritten data from disk, and reports the sizes around it. Reads
// and writes continue meanwhile. It returns once Pebble has also deleted
// the files the compaction made obsolete (at most obsoleteWait later), so
// SizeAfter shows the space given back, as a Status after etcd's
// defragment does; files an open iterator or snapshot still reads stay.
func (e *Engine) Defragment(ctx context.Context) (DefragStats, error) {
	var st DefragStats
	st.SizeBefore, st.InUseBefore = e.Sizes()
	start := time.Now()
	err := e.CompactAll(ctx)
	if err == nil {
		e.awaitObsoleteDeleted(ctx)
	}
	st.Took = time.Since(start)
	if err != nil {
		return st, err
	}
	st.SizeAfter, st.InUseAfter = e.Sizes()
	return st, nil
}

// obsoleteWait bounds how long Defragment waits for Pebble to delete the
// files its compaction made obsolete; Pebble does so in the background
// within about 100 ms.
const obsoleteWait = time.Second

// awaitObsoleteDeleted polls until no sstable or blob file awaits deletion,
// at most obsoleteWait or until ctx ends.
func (e *Engine) awaitObsoleteDeleted(ctx context.Context) {
	deadline := time.NewTimer(obsoleteWait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		m := e.db.Metrics()
		if m.Table.Local.ObsoleteSize+m.BlobFiles.Local.ObsoleteSize == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
