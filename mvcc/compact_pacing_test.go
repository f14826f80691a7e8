package mvcc

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCompactionRestHonoursClose: a compactor resting (for an hour) in its
// hash pass, and at the next Open in the deletion it resumes, stops at once
// when the store closes, releasing the waiter; at the normal pace the
// compaction then finishes with the result it would have had.
func TestCompactionRestHonoursClose(t *testing.T) {
	rested := make(chan struct{}, 1)
	sleepy := pacing{rest: func(time.Duration) time.Duration {
		select {
		case rested <- struct{}{}:
		default:
		}
		return time.Hour
	}}
	e := &env{t: t, fs: vfs.NewMem(), pacing: sleepy}
	e.open()
	t.Cleanup(e.close)
	for v := range 5 {
		for k := range 20 {
			put(e.s, fmt.Sprintf("k%02d", k), fmt.Sprintf("v%d", v))
		}
		e.commit(false)
	}
	rev := e.s.Rev()
	want, err := e.rangeAll(rev)
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.s.Compact(rev)
	if err != nil {
		t.Fatal(err)
	}
	e.commit(false)
	s := e.s
	waitFor(t, rested, "a rest in the hash pass")
	closeWithin(t, e, 10*time.Second)
	waitFor(t, done, "the waiter released by Close")
	if hs := s.CompactHashes(); len(hs) != 0 {
		t.Fatalf("an interrupted hash pass recorded %+v", hs)
	}

	// Resumed at Open, the compaction is not hashed: it rests in deletion.
	e.open()
	waitFor(t, rested, "a rest in the resumed deletion")
	closeWithin(t, e, 10*time.Second)

	e.pacing = pacing{}
	e.open()
	e.s.waitCompaction(rev)
	got, err := e.rangeAll(rev)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := fmtKVs(got), fmtKVs(want); g != w {
		t.Fatalf("after the resumed compaction:\n%s\nwant\n%s", g, w)
	}
	if idx, rl := e.physicalCounts(); idx != 20 || rl != 20 {
		t.Fatalf("after the resumed compaction: %d index, %d log entries; want 20", idx, rl)
	}
}

// TestPacedCompactionSameResult: a compactor that rests at every step
// records the same hashes and leaves the same data as one that never
// waits.
func TestPacedCompactionSameResult(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	a := newEnv(t, nil)
	var rests atomic.Int64
	b := &env{t: t, fs: vfs.NewMem(), pacing: pacing{
		rest: func(time.Duration) time.Duration { rests.Add(1); return time.Microsecond },
	}}
	b.open()
	t.Cleanup(b.close)
	m := feed(t, a, seed, 100)
	feed(t, b, seed, 100)
	a.s.waitCompaction(m.compact)
	b.s.waitCompaction(m.compact)
	// Every key, entry and commit is a step, each one a rest with a zero
	// slice: far more rests than compactions, or the pacing is not wired.
	if n := rests.Load(); n < int64(len(b.s.CompactHashes()))*10 {
		t.Fatalf("%d rests in %d paced compactions", n, len(b.s.CompactHashes()))
	}
	if ha, hb := a.s.CompactHashes(), b.s.CompactHashes(); !slices.Equal(ha, hb) {
		t.Fatalf("compact hashes: unpaced %+v, paced %+v", ha, hb)
	}
	ia, ra := a.physicalCounts()
	ib, rb := b.physicalCounts()
	if ia != ib || ra != rb {
		t.Fatalf("physical entries: unpaced %d/%d, paced %d/%d", ia, ra, ib, rb)
	}
	for rev := max(m.compact, 1); rev <= m.rev(); rev++ {
		ga, erra := a.rangeAll(rev)
		gb, errb := b.rangeAll(rev)
		if erra != nil || errb != nil || fmtKVs(ga) != fmtKVs(gb) {
			t.Fatalf("range at %d: unpaced %v %s, paced %v %s", rev, erra, fmtKVs(ga), errb, fmtKVs(gb))
		}
	}
}

// waitFor waits until ch yields or closes, failing the test after a
// minute.
func waitFor[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("no %s within a minute", what)
	}
}

// closeWithin closes e's store and engine, failing the test if that takes
// longer than d.
func closeWithin(t *testing.T, e *env, d time.Duration) {
	t.Helper()
	closed := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(closed)
		e.close()
	}()
	select {
	case <-closed:
	case <-time.After(d):
		t.Fatalf("Close still blocked after %v: the compactor's rest ignores the stop", d)
	}
	t.Logf("closed in %v", time.Since(start))
}
