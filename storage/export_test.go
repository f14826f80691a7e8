package storage

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// KeepLSMShapeForTest turns off Pebble's automatic compactions in the
// engines opened until the test ends, so that flushed tables stay in L0
// (Pebble consults no bloom filter of L6 tables by default, and a fresh
// database's compactions move everything there).
func KeepLSMShapeForTest(t testing.TB) {
	testPebbleOptions = func(o *pebble.Options) { o.DisableAutomaticCompactions = true }
	t.Cleanup(func() { testPebbleOptions = nil })
}
