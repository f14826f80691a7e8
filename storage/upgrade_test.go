package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// upgradeKeys are the contents the upgrade tests copy: versions of a few
// user keys, revision-log entries and a meta entry.
func upgradeKeys() (keys, values [][]byte) {
	for i := range 50 {
		for rev := int64(3); rev > 0; rev-- {
			suffix := AppendUint64(AppendUint64(nil, Invert(rev)), Invert(0))
			keys = append(keys, indexKey(fmt.Appendf(nil, "key-%02d\x00", i), suffix))
			values = append(values, fmt.Appendf(nil, "value %d@%d", i, rev))
		}
		keys = append(keys, append([]byte{PrefixRevLog}, AppendUint64(AppendUint64(nil, uint64(i)), 0)...))
		values = append(values, fmt.Appendf(nil, "key-%02d", i))
	}
	keys = append(keys, MetaKey("i/state"))
	values = append(values, []byte("state"))
	// In the database's order.
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	sk, sv := make([][]byte, len(keys)), make([][]byte, len(keys))
	for i, j := range idx {
		sk[i], sv[i] = keys[j], values[j]
	}
	return sk, sv
}

// writeDB writes keys into a new database in dir with comparer cmp.
func writeDB(t *testing.T, fs vfs.FS, dir string, cmp *pebble.Comparer) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Comparer: cmp})
	if err != nil {
		t.Fatal(err)
	}
	keys, values := upgradeKeys()
	b := db.NewBatch()
	for i := range keys {
		if err := b.Set(keys[i], values[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkUpgraded opens dir and checks it holds upgradeKeys with Comparer,
// answers a prefix seek, and that no upgrade directory is left.
func checkUpgraded(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	e, err := Open(dir, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	it, err := e.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	keys, values := upgradeKeys()
	var n int
	for valid := it.First(); valid; valid = it.Next() {
		if n >= len(keys) || !bytes.Equal(it.Key(), keys[n]) || !bytes.Equal(it.Value(), values[n]) {
			t.Fatalf("entry %d: %x = %q, want %x = %q", n, it.Key(), it.Value(), keys[min(n, len(keys)-1)], values[min(n, len(keys)-1)])
		}
		n++
	}
	if n != len(keys) {
		t.Fatalf("%d entries after the upgrade, want %d", n, len(keys))
	}
	seek := indexKey([]byte("key-07\x00"), nil)
	if !it.SeekPrefixGE(seek) || !bytes.HasPrefix(it.Key(), seek) || string(it.Value()) != "value 7@3" {
		t.Fatalf("SeekPrefixGE(%x) did not find the newest version of key-07", seek)
	}
	if missing := indexKey([]byte("key-07"), nil); it.SeekPrefixGE(missing) {
		t.Fatalf("SeekPrefixGE(%x) found %x, a key of another user key", missing, it.Key())
	}
	if cmp, err := comparerOf(fs, dir); err != nil || cmp != Comparer {
		t.Fatalf("comparer after the upgrade: %v, %v", cmp.Name, err)
	}
	for _, left := range []string{dir + upgradeDirSuffix, dir + legacyDirSuffix} {
		if exists(fs, left) {
			t.Errorf("%s left behind", left)
		}
	}
}

func TestOpenUpgradesLegacyDatabase(t *testing.T) {
	fs := vfs.NewMem()
	writeDB(t, fs, "db", pebble.DefaultComparer)
	checkUpgraded(t, fs, "db")
	// A second Open finds nothing to do.
	checkUpgraded(t, fs, "db")
}

func TestOpenFinishesInterruptedUpgrade(t *testing.T) {
	t.Run("cut while the copy was built", func(t *testing.T) {
		fs := vfs.NewMem()
		writeDB(t, fs, "db", pebble.DefaultComparer)
		// Half a copy: a database with some other contents.
		if err := fs.MkdirAll("db"+upgradeDirSuffix, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create("db"+upgradeDirSuffix+"/000001.sst", vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		checkUpgraded(t, fs, "db")
	})
	t.Run("cut between the renames", func(t *testing.T) {
		fs := vfs.NewMem()
		writeDB(t, fs, "db"+legacyDirSuffix, pebble.DefaultComparer)
		writeDB(t, fs, "db"+upgradeDirSuffix, Comparer)
		checkUpgraded(t, fs, "db")
	})
	t.Run("cut before the old database was removed", func(t *testing.T) {
		fs := vfs.NewMem()
		writeDB(t, fs, "db"+legacyDirSuffix, pebble.DefaultComparer)
		writeDB(t, fs, "db", Comparer)
		checkUpgraded(t, fs, "db")
	})
}

func TestUpgradeWaitsForTheLock(t *testing.T) {
	fs := vfs.NewMem()
	writeDB(t, fs, "db", pebble.DefaultComparer)
	lock, err := pebble.LockDirectory("db", fs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open("db", Options{FS: fs}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a locked old database: %v, want ErrLocked", err)
	}
	if cmp, err := comparerOf(fs, "db"); err != nil || cmp != pebble.DefaultComparer || exists(fs, "db"+upgradeDirSuffix) {
		t.Fatalf("the locked database was touched: comparer %v, %v", cmp.Name, err)
	}
	if err := lock.Close(); err != nil {
		t.Fatal(err)
	}
	checkUpgraded(t, fs, "db")
}
