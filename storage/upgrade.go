package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Suffixes of the directories an upgrade uses beside the engine's own.
const (
	upgradeDirSuffix = ".upgrade" // the upgraded database while it is built
	legacyDirSuffix  = ".legacy"  // the old database once it is swapped out
)

// upgrade rewrites a database in dir written with Pebble's default comparer
// (by a Cairn build from before Comparer) into one written with Comparer,
// so that it gets bloom filters and prefix seeks; it also finishes an
// upgrade a crash interrupted. A database already written with Comparer,
// and a directory that holds none, are left alone.
//
// The keys are copied, in order, into a new database in dir+".upgrade"
// (Restore's streaming copy: memory stays bounded, disk use peaks at two
// copies), which is made durable before the swap: dir becomes
// dir+".legacy", dir+".upgrade" becomes dir, and dir+".legacy" is removed.
// A crash before the first rename leaves the old database in dir and the
// half-built copy is discarded at the next Open; a crash between the
// renames leaves both complete databases, and the next Open finishes the
// swap.
func upgrade(dir string, o Options) error {
	fs := o.FS
	newDir, oldDir := dir+upgradeDirSuffix, dir+legacyDirSuffix
	parent := filepath.Dir(filepath.Clean(dir))
	switch {
	case !exists(fs, dir) && exists(fs, newDir) && exists(fs, oldDir):
		// Cut between the renames: newDir was complete before oldDir
		// existed.
		if err := fs.Rename(newDir, dir); err != nil {
			return fmt.Errorf("storage: finish upgrade of %s: %w", dir, err)
		}
		if err := fsutil.SyncDir(fs, parent); err != nil {
			return err
		}
	case exists(fs, newDir):
		// Cut while newDir was built: dir holds the old database.
		if err := fs.RemoveAll(newDir); err != nil {
			return fmt.Errorf("storage: remove unfinished upgrade %s: %w", newDir, err)
		}
	}
	if err := fs.RemoveAll(oldDir); err != nil {
		return fmt.Errorf("storage: remove %s: %w", oldDir, err)
	}
	if !exists(fs, dir) {
		return nil
	}
	cmp, err := comparerOf(fs, dir)
	if err != nil || cmp == Comparer {
		return err
	}
	// Held until the old database is gone: a process running on it (an
	// older build) must not have its directory renamed away.
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		return fmt.Errorf("%w: %s (%v)", ErrLocked, dir, err)
	}
	defer lock.Close()
	o.Logger.Sugar().Infof("storage: upgrading %s to comparer %s (a one-time copy of the database)", dir, ComparerName)
	if err := copyInto(newDir, dir, lock, o); err != nil {
		_ = fs.RemoveAll(newDir)
		return fmt.Errorf("storage: upgrade %s: %w", dir, err)
	}
	if err := fs.Rename(dir, oldDir); err != nil {
		return fmt.Errorf("storage: upgrade %s: %w", dir, err)
	}
	if err := fsutil.SyncDir(fs, parent); err != nil {
		return err
	}
	if err := fs.Rename(newDir, dir); err != nil {
		return fmt.Errorf("storage: upgrade %s: %w", dir, err)
	}
	if err := fsutil.SyncDir(fs, parent); err != nil {
		return err
	}
	return fs.RemoveAll(oldDir)
}

// copyInto creates a database in dst holding exactly the keys of the one in
// src, which the caller has locked with srcLock, durably.
func copyInto(dst, src string, srcLock *pebble.Lock, o Options) error {
	o.DisableWAL = false
	e, err := openEngine(dst, o)
	if err != nil {
		return err
	}
	if err := e.restore(context.Background(), src, srcLock); err != nil {
		_ = e.Close()
		return err
	}
	if err := e.Close(); err != nil {
		return err
	}
	return fsutil.SyncDir(o.FS, dst)
}

func exists(fs vfs.FS, path string) bool {
	_, err := fs.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
