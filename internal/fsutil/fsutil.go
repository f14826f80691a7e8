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
