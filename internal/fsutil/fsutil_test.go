package fsutil

import (
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/cairn-kv/cairn/internal/faultfs"
)

// TestNoSync: no sync through NoSync reaches the filesystem below, on
// files made in any of the ways an FS makes them and on directories;
// writes do, and read back.
func TestNoSync(t *testing.T) {
	inj := &faultfs.FailSyncs{}
	under := errorfs.Wrap(vfs.Default, inj)
	// The seam works: a sync on the bare FS fails.
	dir := t.TempDir()
	if d, err := under.OpenDir(dir); err != nil || d.Sync() == nil {
		t.Fatalf("bare errorfs: %v, sync succeeded", err)
	}
	fs := NoSync(under)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	f, err := fs.Create(a, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("written")); err != nil {
		t.Fatal(err)
	}
	full, err := f.SyncTo(7)
	if err != nil || !full || f.Sync() != nil || f.SyncData() != nil || f.Close() != nil {
		t.Fatalf("sync of a created file: full %v, %v", full, err)
	}
	for name, open := range map[string]func() (vfs.File, error){
		"OpenReadWrite": func() (vfs.File, error) { return fs.OpenReadWrite(a, vfs.WriteCategoryUnspecified) },
		"Open":          func() (vfs.File, error) { return fs.Open(a) },
		"OpenDir":       func() (vfs.File, error) { return fs.OpenDir(dir) },
		"ReuseForWrite": func() (vfs.File, error) { return fs.ReuseForWrite(a, b, vfs.WriteCategoryUnspecified) },
	} {
		f, err := open()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := f.Sync(); err != nil {
			t.Errorf("%s: sync: %v", name, err)
		}
		f.Close()
	}
	if n := inj.Syncs(); n != 1 {
		t.Errorf("%d syncs reached the filesystem, want only the bare one", n)
	}
	got, err := vfs.Default.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	buf := make([]byte, 7)
	if _, err := got.ReadAt(buf, 0); err != nil || string(buf) != "written" {
		t.Errorf("read back %q, %v", buf, err)
	}
	// Errors of the FS below still come through.
	if _, err := fs.Open(filepath.Join(dir, "missing")); err == nil {
		t.Error("opening a missing file succeeded")
	}
}
