package faultfs

import (
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestHold: an armed Hold holds another goroutine's matching operation
// until Release, lets unmatched ones and a second matching one pass, and
// holds again once re-armed.
func TestHold(t *testing.T) {
	h := NewHold(t, errorfs.OpMkdirAll, func(path string) bool { return strings.HasSuffix(path, ".restore") })
	fs := h.Wrap(vfs.NewMem())
	mkdir := func(dir string) <-chan error {
		done := make(chan error, 1)
		go func() { done <- fs.MkdirAll(dir, 0o755) }()
		return done
	}
	wantDone := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s is still held", what)
		}
	}
	wantHeld := func() {
		t.Helper()
		select {
		case <-h.Held():
		case <-time.After(10 * time.Second):
			t.Fatal("the armed MkdirAll was not held")
		}
	}

	wantDone("a matching MkdirAll before Arm", mkdir("a.restore"))
	h.Arm()
	first := mkdir("b.restore")
	wantHeld()
	wantDone("an unmatched MkdirAll during the hold", mkdir("b"))
	wantDone("a second matching MkdirAll during the hold", mkdir("c.restore"))
	select {
	case err := <-first:
		t.Fatalf("the held MkdirAll returned before Release: %v", err)
	default:
	}
	if _, err := fs.Stat("b.restore"); err == nil {
		t.Fatal("the held MkdirAll ran before Release")
	}
	h.Release()
	wantDone("the held MkdirAll after Release", first)
	if _, err := fs.Stat("b.restore"); err != nil {
		t.Fatal(err)
	}
	wantDone("a matching MkdirAll after the hold", mkdir("d.restore"))

	h.Arm()
	again := mkdir("e.restore")
	wantHeld()
	h.Release()
	wantDone("the MkdirAll held after re-arming", again)
}

// TestHoldFileOp: operations on a file opened through the wrapped FS are
// seen with the file's path; Delay lets the held one go on by itself.
func TestHoldFileOp(t *testing.T) {
	h := NewHold(t, errorfs.OpFileSyncData, func(path string) bool { return strings.HasSuffix(path, ".wal") })
	fs := h.Wrap(vfs.NewMem())
	f, err := fs.Create("0.wal", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const delay = 50 * time.Millisecond
	h.Delay(delay)
	start := time.Now()
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Held():
	default:
		t.Fatal("SyncData was not held")
	}
	if took := time.Since(start); took < delay {
		t.Fatalf("the held SyncData took %v, want at least %v", took, delay)
	}
}

// TestHoldReleasedAtCleanup: a test that arms a Hold and ends without
// releasing it does not leave the held operation waiting.
func TestHoldReleasedAtCleanup(t *testing.T) {
	var h *Hold
	fs := vfs.NewMem()
	done := make(chan error, 1)
	t.Run("forgets Release", func(t *testing.T) {
		h = NewHold(t, errorfs.OpCreate, func(string) bool { return true })
		h.Arm()
		go func() {
			_, err := h.Wrap(fs).Create("x", vfs.WriteCategoryUnspecified)
			done <- err
		}()
		select {
		case <-h.Held():
		case <-time.After(10 * time.Second):
			t.Fatal("the armed Create was not held")
		}
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the operation is still held after its test ended")
	}
}
