package main

import (
	"bytes"
	"compress/flate"
	"math/rand/v2"
	"testing"
)

// TestDistinctValues checks that --distinct-values gives values of the
// asked size that differ from put to put and do not compress against each
// other, and that without it every put sends the one value.
func TestDistinctValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	k := keyOptions{keySize: 8, valSize: 2048, keySpaceSize: 1000}
	same := newPutWorkload(&k, 1, false, 1)
	if a, b := same.valueFor(r), same.valueFor(r); a != b || len(a) != 2048 {
		t.Fatalf("default: values of %d and %d bytes, equal %v; want one value of 2048", len(a), len(b), a == b)
	}

	k.distinctValues = true
	w := newPutWorkload(&k, 1, false, 1)
	seen := map[string]bool{}
	var joined bytes.Buffer
	for range 1000 {
		v := w.valueFor(r)
		if len(v) != 2048 {
			t.Fatalf("value of %d bytes, want 2048", len(v))
		}
		seen[v] = true
		if joined.Len() < 16*2048 {
			joined.WriteString(v)
		}
	}
	if len(seen) < 995 {
		t.Fatalf("%d distinct values in 1000 puts", len(seen))
	}
	// 16 values in a row, about four Pebble blocks' worth, as one stream.
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(joined.Bytes())
	fw.Close()
	if z.Len() < joined.Len()*95/100 {
		t.Fatalf("%d bytes of values compress to %d", joined.Len(), z.Len())
	}

	k.valSize = 0
	if v := newPutWorkload(&k, 1, false, 1).valueFor(r); v != "" {
		t.Fatalf("--val-size 0: value %q", v)
	}
}
