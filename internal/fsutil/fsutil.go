// Package fsutil holds the small filesystem helpers that the WAL, the
// snapshot files and the server share.
package fsutil

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SyncDir makes the creation, rename or removal of entries in each of dirs
// durable, in order: fsync the directory itself.
func SyncDir(fs vfs.FS, dirs ...string) error {
	for _, dir := range dirs {
		d, err := fs.OpenDir(dir)
		if err != nil {
			return fmt.Errorf("opening directory %s to sync it: %w", dir, err)
		}
		if err := d.Sync(); err != nil {
			_ = d.Close()
			return fmt.Errorf("syncing directory %s: %w", dir, err)
		}
		if err := d.Close(); err != nil {
			return err
		}
	}
	return nil
}

// NoSync returns fs with every sync of a file or directory made a no-op,
// for etcd's --unsafe-no-fsync. Writes still reach the operating system,
// so a process that crashes or is killed loses nothing; a machine crash or
// power loss can lose or tear anything written since the operating system
// last wrote back on its own, acknowledged writes included.
func NoSync(fs vfs.FS) vfs.FS { return noSyncFS{fs} }

type noSyncFS struct{ vfs.FS }

func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return noSyncFile(fs.FS.Create(name, c))
}

func (fs noSyncFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return noSyncFile(fs.FS.Open(name, opts...))
}

func (fs noSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return noSyncFile(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs noSyncFS) OpenDir(name string) (vfs.File, error) { return noSyncFile(fs.FS.OpenDir(name)) }

func (fs noSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return noSyncFile(fs.FS.ReuseForWrite(oldname, newname, c))
}

func noSyncFile(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncingFile{f}, nil
}

// noSyncingFile is a file whose syncs do nothing; SyncTo reports a full
// sync so that callers do not follow it with Sync.
type noSyncingFile struct{ vfs.File }

func (noSyncingFile) Sync() error                { return nil }
func (noSyncingFile) SyncData() error            { return nil }
func (noSyncingFile) SyncTo(int64) (bool, error) { return true, nil }
