package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestSizesInUse: the bytes in use follow the data, WAL included, while
// Size also keeps the WAL files Pebble recycles; in use never exceeds
// Size. The space quota charges what is in use, so deleting and compacting
// must bring it back down.
func TestSizesInUse(t *testing.T) {
	e, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	check := func(what string, lo, hi int64) {
		t.Helper()
		size, inUse := e.Sizes()
		if inUse < lo || inUse > hi || inUse > size {
			t.Fatalf("%s: size %d, in use %d; want in use in [%d, %d], at most size", what, size, inUse, lo, hi)
		}
	}
	var seed [32]byte
	r := rand.NewChaCha8(seed)
	const n, valueSize = 128, 8 << 10
	write := func() {
		t.Helper()
		for i := range n {
			v := make([]byte, valueSize)
			r.Read(v)
			if err := e.DB().Set(MetaKey(fmt.Sprintf("k%03d", i)), v, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
	check("empty", 0, 64<<10)
	write()
	check("written", n*valueSize, 2*n*valueSize)
	if err := e.DB().DeleteRange(MetaKey(""), MetaKey("\xff"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("deleted and compacted", 0, 64<<10)
	write()
	check("written again", n*valueSize, 2*n*valueSize)
}
