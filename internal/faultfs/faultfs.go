package faultfs

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Hold holds the first operation of its kind on a matching path after each
// arming; see the package documentation. It is an errorfs.Injector that
// never injects an error.
type Hold struct {
	t     testing.TB
	kind  errorfs.OpKind
	match func(path string) bool
	mu    struct {
		sync.Mutex
		armed bool
		delay time.Duration // of the arming; 0: until Release
		// held is closed when the latest arming's operation is held.
		held chan struct{}
		// release is closed by Release; nil after it until the next arming.
		// Every operation held in between waits on the same one.
		release chan struct{}
	}
}

// NewHold returns a disarmed Hold for operations of kind whose path
// satisfies match; match may be called concurrently.
func NewHold(t testing.TB, kind errorfs.OpKind, match func(path string) bool) *Hold {
	h := &Hold{t: t, kind: kind, match: match}
	h.mu.held = make(chan struct{})
	return h
}

// Wrap returns fs with h in front of it.
func (h *Hold) Wrap(fs vfs.FS) vfs.FS { return errorfs.Wrap(fs, h) }

// Arm makes h hold the next matching operation until Release.
func (h *Hold) Arm() { h.arm(0) }

// Delay makes h hold the next matching operation for d, or until Release if
// that comes first: a slow disk.
func (h *Hold) Delay(d time.Duration) { h.arm(d) }

func (h *Hold) arm(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.armed, h.mu.delay = true, d
	h.mu.held = make(chan struct{})
	if h.mu.release == nil {
		h.mu.release = make(chan struct{})
	}
	h.t.Cleanup(h.Release)
}

// Held returns a channel closed once the operation of the latest arming is
// held.
func (h *Hold) Held() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.held
}

// Release disarms h and lets a held operation go on.
func (h *Hold) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.armed = false
	if h.mu.release != nil {
		close(h.mu.release)
		h.mu.release = nil
	}
}

// MaybeError implements errorfs.Injector: it holds op if h is armed and op
// matches, and returns nil.
func (h *Hold) MaybeError(op errorfs.Op) error {
	if op.Kind != h.kind || !h.match(op.Path) {
		return nil
	}
	h.mu.Lock()
	if !h.mu.armed {
		h.mu.Unlock()
		return nil
	}
	h.mu.armed = false
	held, release, delay := h.mu.held, h.mu.release, h.mu.delay
	h.mu.Unlock()
	close(held)
	if delay == 0 {
		<-release
		return nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-release:
	case <-timer.C:
	}
	return nil
}

// String implements errorfs.Injector.
func (h *Hold) String() string { return fmt.Sprintf("(Hold %d)", h.kind) }

// FailSyncs is an errorfs.Injector that fails every sync of a file or
// directory and counts them: wrap a filesystem with errorfs.Wrap(fs, f) to
// show that nothing above it syncs (fsutil.NoSync, --unsafe-no-fsync).
type FailSyncs struct{ n atomic.Int64 }

// Syncs returns how many syncs reached the filesystem (and failed).
func (f *FailSyncs) Syncs() int64 { return f.n.Load() }

func (f *FailSyncs) String() string { return "(FailSyncs)" }

// MaybeError implements errorfs.Injector.
func (f *FailSyncs) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		f.n.Add(1)
		return errors.New("faultfs: a sync reached the filesystem")
	}
	return nil
}
