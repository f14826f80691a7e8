package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/storage"
)

// env is a real MVCC store on an in-memory filesystem with a hub, written
// the way the apply loop writes: commit, then Notify.
type env struct {
	t     testing.TB
	store *mvcc.Store
	hub   *Hub
	index uint64
}

func newEnv(t testing.TB, cfg Config) *env {
	eng, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, hub: NewHub(st, cfg)}
	t.Cleanup(func() { e.hub.Close(); st.Close(); eng.Close() })
	return e
}

func (e *env) put(key, val string) {
	w := e.store.Write()
	w.Put([]byte(key), []byte(val), 0)
	var evs []*mvccpb.Event
	for _, kv := range w.Changes() {
		evs = append(evs, &mvccpb.Event{Type: mvccpb.PUT, Kv: kv})
	}
	w.End()
	e.index++
	if err := e.store.Commit(mvcc.Meta{AppliedIndex: e.index, AppliedTerm: 1}, false); err != nil {
		e.t.Fatal(err)
	}
	e.hub.Notify(e.store.Rev(), evs)
}

func recv(t *testing.T, s *Stream) Response {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case <-s.Ready():
			if rs := s.Take(nil, 1); len(rs) == 1 {
				return rs[0]
			}
		case <-timeout:
			t.Fatal("no response")
			return Response{}
		}
	}
}

func TestNoEventsBeforeAnnounce(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.hub.NewStream()
	id, gen, err := s.Watch(0, []byte("k"), nil, 0, false, false)
	if err != nil || id != 0 {
		t.Fatalf("watch: %d %v", id, err)
	}
	e.put("k", "before-announce")
	if rs := s.Take(nil, 1); len(rs) > 0 {
		t.Fatalf("event before the watcher was announced: %+v", rs[0])
	}
	s.Announce(id, gen)
	// The event committed before Announce is not lost: it is caught up.
	r := recv(t, s)
	if len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "before-announce" {
		t.Fatalf("caught-up event: %+v", r)
	}
	if _, _, err := s.Watch(7, []byte("x"), nil, 0, false, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Watch(7, []byte("x"), nil, 0, false, false); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate ID: %v", err)
	}
	if _, _, err := s.Watch(5, []byte("b"), []byte("a"), 0, false, false); !errors.Is(err, ErrEmptyRange) {
		t.Fatalf("empty range: %v", err)
	}
}

// TestFullQueueFallsBehindWithoutGaps: with a queue of 2 and nobody
// reading, the watcher is moved off the live path; once read, it gets every
// revision exactly once, in order.
func TestFullQueueFallsBehindWithoutGaps(t *testing.T) {
	e := newEnv(t, Config{QueueSize: 2, CatchUpRevs: 7, RetryInterval: time.Millisecond})
	s := e.hub.NewStream()
	id, gen, _ := s.Watch(0, []byte("k"), []byte{}, 0, false, false)
	s.Announce(id, gen)
	const n = 100
	for i := 0; i < n; i++ {
		e.put(fmt.Sprintf("k%03d", i), "v")
	}
	if st := e.hub.Stats(); st.Victims == 0 || st.SlowWatchers != 1 {
		t.Fatalf("stats after overflowing a queue of 2: %+v", st)
	}
	next := int64(2)
	for next <= n+1 {
		r := recv(t, s)
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next {
				t.Fatalf("revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next++
		}
	}
	// And the next revision follows, whichever path delivers it.
	e.put("k-live", "v")
	if r := recv(t, s); r.Events[0].Kv.ModRevision != n+2 {
		t.Fatalf("event after catching up: %+v", r)
	}
}

func TestCanceledWatcherGetsNothing(t *testing.T) {
	e := newEnv(t, Config{QueueSize: 1, RetryInterval: time.Millisecond})
	s := e.hub.NewStream()
	id, gen, _ := s.Watch(0, []byte("k"), nil, 0, false, false)
	s.Announce(id, gen)
	e.put("k", "1")
	e.put("k", "2") // queue full: falls behind
	if err := s.Cancel(id); err != nil {
		t.Fatal(err)
	}
	if st := e.hub.Stats(); st.Watchers != 0 || st.SlowWatchers != 0 {
		t.Fatalf("a canceled watcher is still registered: %+v", st)
	}
	e.put("k", "3")
	if r := recv(t, s); string(r.Events[0].Kv.Value) != "1" { // queued before the cancel
		t.Fatalf("unexpected response %+v", r)
	}
	if err := s.Cancel(id); !errors.Is(err, ErrNotExist) {
		t.Fatalf("second cancel: %v", err)
	}
}

// countingSource is the real store, counting history reads.
type countingSource struct {
	*mvcc.Store
	reads atomic.Int64
}

func (c *countingSource) Events(ctx context.Context, from, to int64, maxEvents, maxBytes int) ([]*mvccpb.Event, int64, error) {
	c.reads.Add(1)
	return c.Store.Events(ctx, from, to, maxEvents, maxBytes)
}

// TestCatchUpSharesReads: 100 watchers starting at the same past revision
// are served from shared storage reads, not one read each.
func TestCatchUpSharesReads(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 50; i++ {
		e.put(fmt.Sprintf("k%02d", i), "v")
	}
	src := &countingSource{Store: e.store}
	h := NewHub(src, Config{RetryInterval: time.Hour})
	defer h.Close()
	s := h.NewStream()
	for i := 1; i <= 100; i++ {
		id, gen, err := s.Watch(int64(i), []byte("k"), []byte{}, 2, false, false)
		if err != nil {
			t.Fatal(err)
		}
		s.Announce(id, gen)
	}
	for got := 0; got < 100; {
		r := recv(t, s)
		if len(r.Events) != 50 {
			t.Fatalf("watcher %d got %d events, want 50", r.WatchID, len(r.Events))
		}
		got++
	}
	if n := src.reads.Load(); n >= 10 {
		t.Fatalf("%d storage reads for 100 watchers at the same revision", n)
	}
}

// TestReaderMakingRoomWakesCatchUp: with no retry tick to fall back on, a
// watcher that fell behind catches up as soon as its reader takes
// responses (Stream.Take), as the gRPC send loop does.
func TestReaderMakingRoomWakesCatchUp(t *testing.T) {
	e := newEnv(t, Config{QueueSize: 2, CatchUpRevs: 3, RetryInterval: time.Hour})
	s := e.hub.NewStream()
	id, gen, _ := s.Watch(0, []byte("k"), []byte{}, 0, false, false)
	s.Announce(id, gen)
	const n = 30
	for i := 0; i < n; i++ {
		e.put(fmt.Sprintf("k%02d", i), "v")
	}
	next := int64(2)
	for next <= n+1 {
		r := recv(t, s) // Take makes room
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next {
				t.Fatalf("revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next++
		}
	}
}

// TestResync: when the store's contents were replaced behind the hub's
// back (a snapshot from the leader), Resync makes every watcher read what
// it has not seen from the store, and the hub serves it live again
// afterwards; a watcher whose next revision is compacted in the new
// contents is canceled with the compact revision.
func TestResync(t *testing.T) {
	e := newEnv(t, Config{RetryInterval: time.Hour}) // only Resync wakes the catch-up
	// silent commits without Notify, as a restore does.
	silent := func(key, val string) {
		w := e.store.Write()
		w.Put([]byte(key), []byte(val), 0)
		w.End()
		e.index++
		if err := e.store.Commit(mvcc.Meta{AppliedIndex: e.index, AppliedTerm: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	// next returns the revisions of the events of the next responses, up
	// to and including rev.
	next := func(s *Stream, rev int64) []int64 {
		t.Helper()
		var revs []int64
		for len(revs) == 0 || revs[len(revs)-1] < rev {
			r := recv(t, s)
			if r.CompactRevision != 0 || len(r.Events) == 0 {
				t.Fatalf("unexpected response %+v", r)
			}
			for _, ev := range r.Events {
				revs = append(revs, ev.Kv.ModRevision)
			}
		}
		return revs
	}
	s := e.hub.NewStream()
	id, gen, _ := s.Watch(0, []byte("k"), nil, 0, false, false)
	s.Announce(id, gen)
	e.put("k", "1") // revision 2
	if got := next(s, 2); !slices.Equal(got, []int64{2}) {
		t.Fatalf("live events at revisions %v", got)
	}

	silent("k", "2")     // 3
	silent("other", "v") // 4
	silent("k", "3")     // 5
	e.hub.Resync(e.store.Rev())
	if got := next(s, 5); !slices.Equal(got, []int64{3, 5}) {
		t.Fatalf("after Resync, events at revisions %v, want [3 5]", got)
	}
	e.put("k", "4") // 6, live again
	if got := next(s, 6); !slices.Equal(got, []int64{6}) {
		t.Fatalf("after catching up, events at revisions %v, want [6]", got)
	}

	silent("k", "5") // 7, never seen
	silent("k", "6") // 8
	if _, err := e.store.Compact(8); err != nil {
		t.Fatal(err)
	}
	e.index++
	if err := e.store.Commit(mvcc.Meta{AppliedIndex: e.index, AppliedTerm: 1}, false); err != nil {
		t.Fatal(err)
	}
	e.hub.Resync(e.store.Rev())
	if r := recv(t, s); r.CompactRevision != 8 || len(r.Events) != 0 {
		t.Fatalf("a watcher whose revision 7 was compacted got %+v, want a cancel at compact revision 8", r)
	}
}

// TestQueueBoundsRevisions: a stream's queue holds QueueSize revisions
// however many of its watchers each one reaches; the next revision makes
// every one of them fall behind, and they catch up from storage in order.
func TestQueueBoundsRevisions(t *testing.T) {
	e := newEnv(t, Config{QueueSize: 2, RetryInterval: time.Hour})
	s := e.hub.NewStream()
	const watchers = 50
	for range watchers {
		id, gen, _ := s.Watch(0, []byte("k"), nil, 0, false, false)
		s.Announce(id, gen)
	}
	e.put("k", "1")
	e.put("k", "2")
	if st := e.hub.Stats(); st.SlowWatchers != 0 || st.Victims != 0 {
		t.Fatalf("two revisions for %d watchers in a queue of 2: %+v", watchers, st)
	}
	e.put("k", "3")
	if st := e.hub.Stats(); st.SlowWatchers != watchers {
		t.Fatalf("a third revision in a full queue: %d slow watchers, want %d", st.SlowWatchers, watchers)
	}
	next := map[int64]int64{}
	for range 3 * watchers {
		r := recv(t, s)
		for _, ev := range r.Events {
			if want := max(next[r.WatchID], 2); ev.Kv.ModRevision != want {
				t.Fatalf("watcher %d: revision %d, want %d", r.WatchID, ev.Kv.ModRevision, want)
			}
			next[r.WatchID] = ev.Kv.ModRevision + 1
		}
	}
	for id, n := range next {
		if n != 5 {
			t.Fatalf("watcher %d stopped before revision %d", id, n)
		}
	}
}

// BenchmarkNotifyFanout: the apply loop's share of watch fan-out, one
// single-put revision reaching 1000 prefix watchers on 10 streams whose
// readers keep up.
func BenchmarkNotifyFanout(b *testing.B) {
	e := newEnv(b, Config{QueueSize: 1 << 20})
	var streams []*Stream
	for range 10 {
		s := e.hub.NewStream()
		streams = append(streams, s)
		for range 100 {
			id, gen, err := s.Watch(0, []byte("k"), []byte("l"), 0, false, false)
			if err != nil {
				b.Fatal(err)
			}
			s.Announce(id, gen)
		}
	}
	rev := e.store.Rev()
	var buf []Response
	b.ResetTimer()
	for range b.N {
		rev++
		kv := &mvccpb.KeyValue{Key: []byte("k1"), Value: []byte("v"), ModRevision: rev, CreateRevision: rev, Version: 1}
		e.hub.Notify(rev, []*mvccpb.Event{{Type: mvccpb.PUT, Kv: kv}})
		for _, s := range streams {
			buf = s.Take(buf[:0], 1<<20)
		}
	}
	if st := e.hub.Stats(); st.SlowWatchers != 0 {
		b.Fatalf("%d watchers fell behind", st.SlowWatchers)
	}
}

// TestPendingEvents: the hub counts the events queued in streams and not
// taken yet (etcd_debugging_mvcc_pending_events_total); a stream closed
// with events queued takes them out of the count.
func TestPendingEvents(t *testing.T) {
	e := newEnv(t, Config{})
	var streams []*Stream
	for range 2 {
		s := e.hub.NewStream()
		id, gen, err := s.Watch(0, []byte("k"), []byte{}, 0, false, false)
		if err != nil {
			t.Fatal(err)
		}
		s.Announce(id, gen)
		streams = append(streams, s)
	}
	for i := range 3 {
		e.put(fmt.Sprint("k", i), "v")
	}
	if n := e.hub.Stats().PendingEvents; n != 6 {
		t.Fatalf("%d events pending after 3 revisions to 2 streams, want 6", n)
	}
	if rs := streams[0].Take(nil, 2); len(rs) != 2 {
		t.Fatalf("took %d responses, want 2", len(rs))
	}
	if n := e.hub.Stats().PendingEvents; n != 4 {
		t.Fatalf("%d events pending after taking 2, want 4", n)
	}
	streams[1].Close()
	if n := e.hub.Stats().PendingEvents; n != 1 {
		t.Fatalf("%d events pending after closing a stream with 3 queued, want 1", n)
	}
	if rs := streams[0].Take(nil, 10); len(rs) != 1 {
		t.Fatalf("took %d responses, want the last one", len(rs))
	}
	if n := e.hub.Stats().PendingEvents; n != 0 {
		t.Fatalf("%d events pending with every queue empty", n)
	}
}
