package storage

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// indexKey builds a key-index key: prefix, escaped user key, suffix.
func indexKey(user, suffix []byte) []byte {
	return append(AppendEscaped([]byte{PrefixKeyIndex}, user), suffix...)
}

func TestSplitKey(t *testing.T) {
	rev := AppendUint64(AppendUint64(nil, Invert(7)), Invert(0))
	for _, tc := range []struct {
		name string
		key  []byte
		want int // prefix length
	}{
		{"index key", indexKey([]byte("foo"), rev), 1 + 3 + 2},
		{"index key with 0x00 and 0x01 bytes", indexKey([]byte{'a', 0, 1, 0}, rev), 1 + 6 + 2},
		{"index prefix alone", indexKey([]byte("foo"), nil), 1 + 3 + 2},
		{"empty user key", indexKey(nil, rev), 1 + 2},
		{"range bound, no terminator", AppendEscapedBound([]byte{PrefixKeyIndex}, []byte("fo")), 3},
		{"past every version of a key", []byte{PrefixKeyIndex, 'f', 0, 2}, 4},
		{"dangling escape", []byte{PrefixKeyIndex, 'f', 0}, 3},
		{"index prefix byte alone", []byte{PrefixKeyIndex}, 1},
		{"revision log", append([]byte{PrefixRevLog}, rev...), 17},
		{"meta", MetaKey("i/state"), 8},
		{"empty", nil, 0},
	} {
		if got := Comparer.Split(tc.key); got != tc.want {
			t.Errorf("%s: Split(%x) = %d, want %d", tc.name, tc.key, got, tc.want)
		}
	}
}

// TestComparerOrder checks Pebble's requirements of Split on the shapes of
// keys the engine sees (stored keys, seek keys, bounds, other key spaces):
// with prefix(a) = a[:Split(a)], a key with a suffix sorts after its
// prefix, prefixes order keys whose prefixes differ, and equal prefixes
// leave the order to the suffixes.
func TestComparerOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 0x02, 'a', 'b', 0xfe, 0xff}
	randBytes := func(max int) []byte {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	// pebble.CheckComparer also requires every tail of a prefix to be a
	// prefix, for tables ingested with a synthetic prefix. Cairn ingests
	// none, and a component delimited by its terminator cannot meet that.
	var suffixes [][]byte
	for range 40 {
		suffixes = append(suffixes, AppendUint64(AppendUint64(nil, rng.Uint64()), rng.Uint64()))
	}

	var keys [][]byte
	for range 3000 {
		user := randBytes(4)
		switch rng.IntN(5) {
		case 0: // stored version
			keys = append(keys, indexKey(user, suffixes[rng.IntN(len(suffixes))]))
		case 1: // range bound
			keys = append(keys, AppendEscapedBound([]byte{PrefixKeyIndex}, user))
		case 2: // arbitrary bytes after the prefix byte, as an index separator may be
			keys = append(keys, append([]byte{PrefixKeyIndex}, randBytes(24)...))
		case 3: // other key spaces
			keys = append(keys, append([]byte{PrefixRevLog}, randBytes(17)...))
		default: // seek key past a user key
			k := indexKey(user, nil)
			k[len(k)-1]++
			keys = append(keys, k)
		}
	}
	prefix := func(k []byte) []byte { return k[:Comparer.Split(k)] }
	for i, a := range keys {
		if pa := prefix(a); len(pa) < len(a) && bytes.Compare(pa, a) >= 0 {
			t.Fatalf("prefix %x does not sort before its key %x", pa, a)
		}
		b := keys[(i*7919+1)%len(keys)]
		pc, c := bytes.Compare(prefix(a), prefix(b)), Comparer.Compare(a, b)
		if c != bytes.Compare(a, b) {
			t.Fatalf("Compare(%x, %x) = %d, not bytewise", a, b, c)
		}
		if (pc < 0 && c >= 0) || (pc > 0 && c <= 0) || (c <= 0 && pc > 0) {
			t.Fatalf("keys %x and %x order %d but their prefixes %d", a, b, c, pc)
		}
		if pc == 0 && c != bytes.Compare(a[len(prefix(a)):], b[len(prefix(b)):]) {
			t.Fatalf("keys %x and %x share a prefix but their suffixes do not order them", a, b)
		}
	}
}

// TestComparerOfRefusesWhatItCannotRead: a database written with a
// comparer Cairn does not know, or whose OPTIONS file names none, is
// refused rather than read in a possibly different key order.
func TestComparerOfRefusesWhatItCannotRead(t *testing.T) {
	fs := vfs.NewMem()
	other := *Comparer
	other.Name = "someone.elses.v1"
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Comparer: &other})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := comparerOf(fs, "db"); err == nil || !strings.Contains(err.Error(), `comparer "someone.elses.v1", which Cairn does not know`) {
		t.Errorf("unknown comparer: err = %v", err)
	}

	desc, err := pebble.Peek("db", fs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.Open(desc.OptionsFilename)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, "comparer=") {
			kept = append(kept, line)
		}
	}
	w, err := fs.Create(desc.OptionsFilename, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(strings.Join(kept, ""))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := comparerOf(fs, "db"); err == nil || !strings.Contains(err.Error(), "names no comparer") {
		t.Errorf("no comparer named: err = %v", err)
	}
}
