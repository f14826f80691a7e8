package mvcc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-kv/cairn/storage"
)

// layoutView is everything a client can read of a store: every revision's
// keys, the events of the whole readable history and HashKV at a few
// revisions.
type layoutView struct {
	ranges [][]string // per revision, fmtKV of each key
	events []string
	hashes []uint32
}

func viewOf(t *testing.T, e *env) layoutView {
	t.Helper()
	var v layoutView
	first, cur := max(e.s.CompactRev(), 1), e.s.Rev()
	for rev := first; rev <= cur; rev++ {
		kvs, err := e.rangeAll(rev)
		if err != nil {
			t.Fatalf("range at %d: %v", rev, err)
		}
		var rs []string
		for _, kv := range kvs {
			rs = append(rs, fmtKV(kv))
		}
		v.ranges = append(v.ranges, rs)
	}
	evs, _, err := e.s.Events(context.Background(), first+1, cur, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		v.events = append(v.events, ev.Type.String()+" "+fmtKV(ev.Kv))
	}
	for _, rev := range []int64{0, cur - 1, cur} {
		h, _, _, err := e.s.HashKV(rev)
		if err != nil {
			t.Fatalf("hash at %d: %v", rev, err)
		}
		v.hashes = append(v.hashes, h)
	}
	return v
}

// writeHistory gives e versions of every kind: several versions of a key,
// leases, empty values, keys holding 0x00, deletes, a re-created key and a
// compaction.
func writeHistory(t *testing.T, e *env) {
	t.Helper()
	put := func(k, v string, lease int64) {
		w := e.s.Write()
		w.Put([]byte(k), []byte(v), lease)
		w.End()
	}
	del := func(k string) {
		w := e.s.Write()
		w.DeleteRange([]byte(k), nil)
		w.End()
	}
	for i := range 40 {
		put(fmt.Sprintf("k%02d", i%13), strings.Repeat("v", i), int64(i%3))
	}
	put("nul\x00key", "", 0)
	put("", "empty key is refused above mvcc, kept here", 0)
	del("k03")
	del("k04")
	put("k04", "again", 7)
	e.commit(false)
	if err := e.compact(e.s.Rev() - 10); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		put(fmt.Sprintf("late%d", i), "x", -1)
	}
	del("late3")
	e.commit(false)
}

// toLayout1 rewrites the store's versions, those for which pick says so, to
// layout 1 as Cairn wrote it before layout 2: the key-index record is the
// flag (0 put, 1 tombstone), the header's varints and the value; the
// revision-log entry is the user key. The layout record is removed.
func toLayout1(t *testing.T, e *env, pick func(i int) bool) {
	t.Helper()
	e.close()
	eng, err := storage.Open("db", storage.Options{FS: e.fs, CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db := eng.DB()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{storage.PrefixKeyIndex}, UpperBound: keyIndexUpper})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	i := 0
	for valid := it.First(); valid; valid = it.Next() {
		i++
		if !pick(i) {
			continue
		}
		k := it.Key()
		key, err := indexUserKey(k)
		if err != nil {
			t.Fatal(err)
		}
		main, sub := indexRev(k)
		rk := appendRevLogKey(nil, main, sub)
		lrec, closer, err := db.Get(rk)
		if err != nil {
			t.Fatal(err)
		}
		h, _, value, err := decodeLogRecord(lrec)
		if err != nil {
			t.Fatal(err)
		}
		rec := []byte{recTombstoneV1}
		if !h.tomb {
			rec = append(h.appendTo(nil), value...)
			rec[0] = recPutV1
		}
		closer.Close()
		if err := b.Set(k, rec, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(rk, key, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(layoutKey, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}

// layoutCounts counts the key-index records of each layout and checks that
// the layout is recorded as current.
func layoutCounts(t *testing.T, e *env) (v1, v2 int) {
	t.Helper()
	db := e.eng.DB()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{storage.PrefixKeyIndex}, UpperBound: keyIndexUpper})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		switch it.Value()[0] {
		case recPutV1, recTombstoneV1:
			v1++
		case recPut, recTombstone:
			v2++
		default:
			t.Fatalf("record %x", it.Value())
		}
	}
	v, closer, err := db.Get(layoutKey)
	if err != nil {
		t.Fatalf("layout record: %v", err)
	}
	defer closer.Close()
	if binary.BigEndian.Uint64(v) != currentLayout {
		t.Fatalf("layout record %x", v)
	}
	return v1, v2
}

// TestLayoutUpgrade: a store written in layout 1, wholly or (an upgrade
// cut short) partly, reads the same after Open as before the downgrade,
// every record is in layout 2 and the layout is recorded.
func TestLayoutUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name string
		pick func(int) bool
	}{
		{"whole", func(int) bool { return true }},
		{"interrupted", func(i int) bool { return i%2 == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			writeHistory(t, e)
			want := viewOf(t, e)
			toLayout1(t, e, tc.pick)
			e.open()
			if v1, v2 := layoutCounts(t, e); v1 != 0 || v2 == 0 {
				t.Fatalf("after the upgrade: %d layout-1 and %d layout-2 records", v1, v2)
			}
			if got := viewOf(t, e); !reflect.DeepEqual(got, want) {
				t.Fatalf("the store reads differently after the upgrade:\ngot  %v\nwant %v", got, want)
			}
			// The upgraded store keeps working: writes, a compaction, a
			// reopen.
			w := e.s.Write()
			w.Put([]byte("k00"), []byte("after"), 0)
			w.End()
			e.commit(false)
			if err := e.compact(e.s.Rev()); err != nil {
				t.Fatal(err)
			}
			e.reopen()
			r, err := e.s.Range(context.Background(), []byte("k00"), nil, RangeOptions{})
			if err != nil || len(r.KVs) != 1 || string(r.KVs[0].Value) != "after" {
				t.Fatalf("k00 after the upgrade: %v, %v", r, err)
			}
		})
	}
}

// TestLayoutUpgradeIsNoOpWhenCurrent: reopening a layout-2 store rewrites
// nothing (a downgrade of no record leaves only the layout record
// missing, which Open writes back).
func TestLayoutUpgradeIsNoOpWhenCurrent(t *testing.T) {
	e := newEnv(t, nil)
	writeHistory(t, e)
	want := viewOf(t, e)
	toLayout1(t, e, func(int) bool { return false })
	e.open()
	if v1, _ := layoutCounts(t, e); v1 != 0 {
		t.Fatalf("%d layout-1 records", v1)
	}
	if got := viewOf(t, e); !reflect.DeepEqual(got, want) {
		t.Fatal("the store reads differently after reopening")
	}
}

// TestLayoutFromNewerBuildRefused: a store recorded in a layout this build
// does not know is not opened.
func TestLayoutFromNewerBuildRefused(t *testing.T) {
	e := newEnv(t, nil)
	var rec [8]byte
	binary.BigEndian.PutUint64(rec[:], currentLayout+1)
	if err := e.eng.DB().Set(layoutKey, rec[:], pebble.Sync); err != nil {
		t.Fatal(err)
	}
	e.s.Close()
	_, err := openPaced(e.eng, nil, pacing{})
	if err == nil || !strings.Contains(err.Error(), "layout 3, which this build does not read") {
		t.Fatalf("open: %v", err)
	}
	e.s = nil
	if err := e.eng.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestKeysOnlyAndCountReadNoValues: keys-only and count-only ranges answer
// from the key index alone; a plain range reads the value from the
// revision log (and fails when it is missing there).
func TestKeysOnlyAndCountReadNoValues(t *testing.T) {
	e := newEnv(t, nil)
	w := e.s.Write()
	w.Put([]byte("a"), []byte("va"), 5)
	w.Put([]byte("b"), []byte("vb"), 0)
	w.End()
	e.commit(false)
	// Remove a's revision-log entry behind the store's back.
	if err := e.eng.DB().Delete(appendRevLogKey(nil, 2, 0), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := e.s.Range(ctx, []byte("a"), []byte("c"), RangeOptions{KeysOnly: true})
	if err != nil {
		t.Fatalf("keys-only: %v", err)
	}
	if len(r.KVs) != 2 || r.KVs[0].Value != nil || r.KVs[1].Value != nil || r.KVs[0].Lease != 5 || r.KVs[0].Version != 1 || r.KVs[1].ModRevision != 2 {
		t.Fatalf("keys-only: %v", r.KVs)
	}
	if r, err := e.s.Range(ctx, []byte("a"), []byte("c"), RangeOptions{Count: true}); err != nil || r.Count != 2 {
		t.Fatalf("count: %v, %v", r, err)
	}
	if r, err := e.s.Range(ctx, []byte("b"), nil, RangeOptions{}); err != nil || string(r.KVs[0].Value) != "vb" {
		t.Fatalf("b: %v, %v", r, err)
	}
	if _, err := e.s.Range(ctx, []byte("a"), nil, RangeOptions{}); !errors.Is(err, errCorrupt) {
		t.Fatalf("a without its revision-log entry: %v, want %v", err, errCorrupt)
	}
}
