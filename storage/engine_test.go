package storage

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
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
	if e.Size() <= 0 {
		t.Errorf("Size() = %d, want > 0", e.Size())
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
		o.MaxOpenFiles != DefaultMaxOpenFiles || o.Logger == nil {
		t.Fatalf("defaults not applied: %+v", o)
	}
	if err := (Options{MemTableSize: 4 << 30}).Validate(); err == nil {
		t.Error("4 GiB memtable accepted")
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
	want := e.Size()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if got := e.Size(); got != want || got <= 0 {
		t.Fatalf("Size() after Close = %d, want %d", got, want)
	}
}
