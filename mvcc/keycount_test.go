package mvcc

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/storage"
)

// countLogged is the start of the line Open logs when it counts the keys.
const countLogged = "counted the live keys"

// observe makes the store log into the returned logs from its next open.
func (e *env) observe() *observer.ObservedLogs {
	core, logs := observer.New(zap.InfoLevel)
	e.lg = zap.New(core)
	return logs
}

// scans returns the key counts Open logged in logs, and clears them.
func scans(logs *observer.ObservedLogs) []int64 {
	var counts []int64
	for _, l := range logs.FilterMessageSnippet(countLogged).TakeAll() {
		counts = append(counts, l.ContextMap()["keys"].(int64))
	}
	logs.TakeAll()
	return counts
}

// checkKeys checks the published count, and that counting the key index
// as Open does agrees with it.
func checkKeys(t *testing.T, e *env, what string, want int64) {
	t.Helper()
	if got := e.s.Keys(); got != want {
		t.Fatalf("%s: Keys() = %d, want %d", what, got, want)
	}
	if got, _, err := countLiveKeys(e.eng.DB()); err != nil || got != want {
		t.Fatalf("%s: the key index holds %d live keys (%v), want %d", what, got, err, want)
	}
}

// TestKeysCount follows the live key count through every kind of write,
// each in its own group unless said otherwise.
func TestKeysCount(t *testing.T) {
	e := newEnv(t, nil)
	txn := func(f func(tw *TxnWrite)) {
		tw := e.s.Write()
		f(tw)
		tw.End()
	}
	p := func(tw *TxnWrite, k string) { tw.Put([]byte(k), []byte("v"), 0) }
	del := func(tw *TxnWrite, k, end string, want int64) {
		t.Helper()
		var endb []byte
		if end != "" {
			endb = []byte(end)
		}
		if n := tw.DeleteRange([]byte(k), endb); n != want {
			t.Fatalf("DeleteRange(%q, %q) deleted %d, want %d", k, end, n, want)
		}
	}
	for _, step := range []struct {
		name string
		do   func()
		want int64
	}{
		{"fresh", func() {}, 0},
		{"put new keys", func() {
			txn(func(tw *TxnWrite) { p(tw, "a") })
			txn(func(tw *TxnWrite) { p(tw, "b") })
			txn(func(tw *TxnWrite) { p(tw, "c") })
		}, 3},
		{"overwrite", func() { txn(func(tw *TxnWrite) { p(tw, "a") }) }, 3},
		{"delete a live key", func() { txn(func(tw *TxnWrite) { del(tw, "b", "", 1) }) }, 2},
		{"delete an absent key", func() { txn(func(tw *TxnWrite) { del(tw, "zz", "", 0) }) }, 2},
		{"delete a deleted key", func() { txn(func(tw *TxnWrite) { del(tw, "b", "", 0) }) }, 2},
		{"delete an empty range", func() { txn(func(tw *TxnWrite) { del(tw, "m", "n", 0) }) }, 2},
		{"put after delete", func() { txn(func(tw *TxnWrite) { p(tw, "b") }) }, 3},
		{"more keys", func() { txn(func(tw *TxnWrite) { p(tw, "d"); p(tw, "e") }) }, 5},
		{"delete range [b, e)", func() { txn(func(tw *TxnWrite) { del(tw, "b", "e", 3) }) }, 2},
		{"one transaction", func() {
			txn(func(tw *TxnWrite) {
				p(tw, "x")             // +1
				p(tw, "x")             // overwrite
				del(tw, "x", "", 1)    // -1
				p(tw, "x")             // re-created: +1
				del(tw, "a", "", 1)    // -1
				del(tw, "q", "", 0)    // absent
				p(tw, "y")             // +1
				p(tw, "z")             // +1
				del(tw, "e", "f", 1)   // -1
				del(tw, "\x00", "", 0) // absent
			})
		}, 3}, // x, y, z
		{"transactions of one group", func() {
			txn(func(tw *TxnWrite) { p(tw, "k1"); p(tw, "k2") })
			txn(func(tw *TxnWrite) { del(tw, "k1", "", 1); p(tw, "k3") })
			txn(func(tw *TxnWrite) { del(tw, "k", "l", 2) }) // k2, k3
			txn(func(tw *TxnWrite) { p(tw, "k1") })
		}, 4}, // x, y, z, k1
		{"delete everything", func() { txn(func(tw *TxnWrite) { del(tw, "\x00", "\x00", 4) }) }, 0},
		{"again", func() { txn(func(tw *TxnWrite) { p(tw, "a"); p(tw, "b") }) }, 2},
	} {
		published := e.s.Keys()
		step.do()
		if got := e.s.Keys(); got != published {
			t.Fatalf("%s: Keys() = %d before commit, want the committed %d", step.name, got, published)
		}
		e.commit(false)
		checkKeys(t, e, step.name, step.want)
	}

	// Readers see committed groups only, and a discarded group leaves
	// nothing behind: the next group starts from the committed count.
	txn(func(tw *TxnWrite) { p(tw, "n1"); p(tw, "n2"); del(tw, "a", "", 1) })
	if got := e.s.Keys(); got != 2 {
		t.Fatalf("Keys() = %d with a group open, want the committed 2", got)
	}
	e.s.discardGroup()
	checkKeys(t, e, "discarded group", 2)
	txn(func(tw *TxnWrite) { p(tw, "n1") })
	e.commit(false)
	checkKeys(t, e, "group after a discarded one", 3) // a, b, n1

	// A group that fails (here a read of a corrupt record) is discarded at
	// Commit.
	k := appendRevSuffix(appendIndexPrefix(nil, []byte("bad")), 1, 0)
	if err := e.eng.DB().Set(k, []byte{recPut}, nil); err != nil {
		t.Fatal(err)
	}
	txn(func(tw *TxnWrite) { p(tw, "f1"); p(tw, "f2") })
	txn(func(tw *TxnWrite) { tw.DeleteRange([]byte("b"), []byte("bb")) })
	if err := e.s.Commit(Meta{AppliedIndex: 1000}, false); err == nil {
		t.Fatal("a group with a failed read committed")
	}
	if got := e.s.Keys(); got != 3 {
		t.Fatalf("Keys() = %d after a failed group, want 3", got)
	}
}

// TestKeysCompaction: compaction removes only history, so it never moves
// the count, also when it drops every version of a deleted key.
func TestKeysCompaction(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 30 {
		tw := e.s.Write()
		tw.Put([]byte(fmt.Sprintf("k%d", i%7)), []byte("v"), 0)
		if i%4 == 3 {
			tw.DeleteRange([]byte(fmt.Sprintf("k%d", (i+3)%7)), nil)
		}
		tw.End()
	}
	tw := e.s.Write()
	tw.Put([]byte("gone"), []byte("v"), 0)
	tw.End()
	tw = e.s.Write()
	tw.DeleteRange([]byte("gone"), nil)
	tw.End()
	put(e.s, "last", "v")
	e.commit(false)
	want := e.s.Keys()
	checkKeys(t, e, "before compaction", want)
	if err := e.compact(e.s.Rev()); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, e, "after compaction", want)
	// The compaction dropped every version of "gone", tombstone included.
	it, err := e.eng.DB().NewIter(&pebble.IterOptions{
		LowerBound: appendIndexPrefix(nil, []byte("gone")),
		UpperBound: storage.PrefixEnd(appendIndexPrefix(nil, []byte("gone"))),
	})
	if err != nil {
		t.Fatal(err)
	}
	if it.First() {
		t.Fatalf("compaction left %q in the key index", it.Key())
	}
	it.Close()
	e.reopen()
	checkKeys(t, e, "after reopen", want)
}

// TestKeysPersisted: the count survives a reopen without a scan; a store
// whose record is missing (an older build's) or stale (written to by an
// older build after this one) is counted once at Open and recorded.
func TestKeysPersisted(t *testing.T) {
	e := newEnv(t, nil)
	logs := e.observe()
	for i := range 20 {
		put(e.s, fmt.Sprintf("k%02d", i), "v")
	}
	tw := e.s.Write()
	tw.DeleteRange([]byte("k05"), []byte("k10"))
	tw.End()
	e.commit(false)
	// Groups that do not change the count still move the revision.
	put(e.s, "k00", "again")
	e.commit(false)
	e.s.PutMeta("m", []byte("v"))
	e.commit(true)
	const want = 15
	e.reopen()
	if got := scans(logs); len(got) != 0 {
		t.Fatalf("reopen counted the keys again: %v", got)
	}
	checkKeys(t, e, "reopen", want)

	// rewrite changes the record in the engine, with no store open.
	rewrite := func(f func(db *pebble.DB) error) {
		t.Helper()
		e.close()
		eng, err := storage.Open("db", storage.Options{FS: e.fs})
		if err != nil {
			t.Fatal(err)
		}
		if err := f(eng.DB()); err != nil {
			t.Fatal(err)
		}
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		e.open()
	}
	rewrite(func(db *pebble.DB) error { return db.Delete(keyCountKey, pebble.Sync) })
	if got := scans(logs); len(got) != 1 || got[0] != want {
		t.Fatalf("Open without a record logged counts %v, want one of %d", got, want)
	}
	checkKeys(t, e, "counted", want)
	e.reopen()
	if got := scans(logs); len(got) != 0 {
		t.Fatalf("counted again after the count was recorded: %v", got)
	}
	checkKeys(t, e, "reopen after counting", want)

	rev := e.s.Rev()
	rewrite(func(db *pebble.DB) error {
		v := encodeKeyCount(want+7, rev-1) // written before an older build's writes
		return db.Set(keyCountKey, v[:], pebble.Sync)
	})
	if got := scans(logs); len(got) != 1 || got[0] != want {
		t.Fatalf("Open with a stale record logged counts %v, want one of %d", got, want)
	}
	checkKeys(t, e, "stale record", want)

	// An empty store is counted silently.
	f := newEnv(t, nil)
	flogs := f.observe()
	f.reopen()
	if got := scans(flogs); len(got) != 0 {
		t.Fatalf("an empty store logged counts %v", got)
	}
	checkKeys(t, f, "empty", 0)
}

// TestKeysRestore: contents restored from a store that predates the record
// are counted; PrepareRestore keeps the count recorded across a revision
// bump.
func TestKeysRestore(t *testing.T) {
	e := newEnv(t, nil)
	logs := e.observe()
	e.reopen()
	srcEng, src := e.openSource()
	for i := range 12 {
		put(src, fmt.Sprintf("k%d", i%8), "v")
	}
	if err := src.Commit(Meta{AppliedIndex: 1, AppliedTerm: 1}, true); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := PrepareRestore(srcEng, RestoreOptions{Meta: Meta{AppliedIndex: 5, AppliedTerm: 2}, BumpRevision: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := srcEng.Checkpoint("bumped"); err != nil {
		t.Fatal(err)
	}
	if err := srcEng.DB().Delete(keyCountKey, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := srcEng.Checkpoint("old"); err != nil {
		t.Fatal(err)
	}

	put(e.s, "mine", "v")
	e.commit(false)
	put(e.s, "uncommitted", "v")
	if err := e.s.Restore(func() error { return e.eng.Restore(context.Background(), "bumped") }); err != nil {
		t.Fatal(err)
	}
	if got := scans(logs); len(got) != 0 {
		t.Fatalf("restored contents with a restamped record were counted: %v", got)
	}
	if e.s.Rev() != st.Rev {
		t.Fatalf("Rev() = %d after restore, want %d", e.s.Rev(), st.Rev)
	}
	checkKeys(t, e, "restored", 8)

	if err := e.s.Restore(func() error { return e.eng.Restore(context.Background(), "old") }); err != nil {
		t.Fatal(err)
	}
	if got := scans(logs); len(got) != 1 || got[0] != 8 {
		t.Fatalf("restored contents without a record: logged counts %v, want one of 8", got)
	}
	checkKeys(t, e, "restored without a record", 8)
	put(e.s, "new", "v")
	e.commit(false)
	checkKeys(t, e, "write after restore", 9)
}
