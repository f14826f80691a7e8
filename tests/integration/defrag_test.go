package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// The data set and load of TestDefragmentDuringWriteLoad.
const (
	// defragValueSize × defragValues bytes of incompressible values are
	// written (96 MiB); all but one in defragKeepEvery are then deleted.
	defragValueSize = 64 << 10
	defragValues    = 1536
	defragKeepEvery = 10
	// defragVersions versions of defragVersionKeys small keys, written in
	// txns of defragVersionKeys puts, all but the last version of each
	// compacted away: work for MVCC's physical compaction.
	defragVersions    = 50_000
	defragVersionKeys = 100
	// The write load: defragClients clientv3 clients with defragWorkers
	// goroutines each, every goroutine putting a 256-byte value
	// defragWorkerRate times a second.
	defragClients    = 4
	defragWorkers    = 2
	defragWorkerRate = 100
	// defragBaseline is the length of each window of load alone.
	defragBaseline = 2 * time.Second
	// defragMaxStall is the longest put the issue tolerates during a
	// defragment, on a quiet machine.
	defragMaxStall = 100 * time.Millisecond
)

// TestDefragmentDuringWriteLoad: a Defragment that reclaims about 86 MiB,
// issued while several clients write at a steady rate, gives the space
// back and stalls no write. An MVCC compaction of about 50,000 revisions
// runs just before it, under the same load; its figures are logged.
//
// A latency bound alone would be flaky on a small shared machine, so the
// test compares the puts during the defragment with the same load alone,
// in one window before the compaction and one after the defragment:
//
//   - writes keep flowing: puts complete during the defragment at a
//     quarter of the baseline windows' rate at least;
//   - no put takes longer than max(100 ms, 2 × the slowest put of the
//     baseline windows).
//
// What it catches: a defragment that stops writes for its duration, as
// etcd's does (it holds the backend's batch and read transactions while it
// copies the database). With such a lock injected (the apply loop taking
// a mutex that Server.Defragment holds around the engine compaction), 0-4
// puts completed during the defragment where 212-384 were expected (three
// runs), the puts in flight waited for all of it (210-840 ms over ten
// runs), and the test failed. The flow check catches that
// however noisy the baseline; the latency bound only when the defragment
// outlasts it.
//
// Noise: on a 2-core VM whose disk other tenants share, a WAL fsync
// sometimes takes 100-500 ms whatever Cairn does, and the defragment's own
// writes (a memtable flush, the rewritten tables) add to the disk's queue;
// a put then waits for it. Such a hiccup is random, where a stall from a
// lock comes back in every run. So a run that fails a check is repeated on
// fresh data, up to defragAttempts runs, and the test fails when none
// passes.
func TestDefragmentDuringWriteLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 96 MiB per run")
	}
	m := framework.StartMember(t)
	// A run takes 7-16 s, and under -race about 2 minutes.
	ctx := framework.Context(t, 8*time.Minute)
	c := m.Client()
	var failed []string
	for attempt := 1; attempt <= defragAttempts; attempt++ {
		r := runDefragAttempt(ctx, t, m, c, attempt)
		var why []string
		if float64(r.completed) < r.expected/4 {
			why = append(why, fmt.Sprintf("%d puts completed during the defragment (%v), under a quarter of the %.0f the baseline's rate gives",
				r.completed, r.took, r.expected))
		}
		if r.slowest > r.limit {
			why = append(why, fmt.Sprintf("a put took %v during the defragment, over the %v bound (max(%v, 2 × the baseline's %v))",
				r.slowest, r.limit, defragMaxStall, r.baseline))
		}
		if len(why) == 0 {
			if r.took <= r.limit {
				t.Logf("run %d: the defragment (%v) did not outlast the %v bound: only the flow check could have caught a stall", attempt, r.took, r.limit)
			}
			return
		}
		failed = append(failed, fmt.Sprintf("run %d: %s", attempt, strings.Join(why, "; ")))
		t.Logf("%s; trying again on fresh data", failed[len(failed)-1])
	}
	t.Fatalf("the defragment held up writes in each of %d runs:\n%s", defragAttempts, strings.Join(failed, "\n"))
}

// defragAttempts is how many runs TestDefragmentDuringWriteLoad makes at
// most (see there).
const defragAttempts = 3

// defragAttemptResult is what one run of TestDefragmentDuringWriteLoad
// measured.
type defragAttemptResult struct {
	took      time.Duration // the defragment
	completed int           // puts that completed during it
	expected  float64       // completions at the lower rate of the baseline windows
	slowest   time.Duration // put in flight during it
	baseline  time.Duration // slowest put of the baseline windows
	limit     time.Duration // max(defragMaxStall, 2 × baseline)
}

// runDefragAttempt writes and deletes the data set, starts the load, and
// measures a baseline window, the compaction, the defragment and a second
// baseline window. It fails the test if the space is not reclaimed.
func runDefragAttempt(ctx context.Context, t *testing.T, m *framework.Member, c *clientv3.Client, attempt int) defragAttemptResult {
	fillDefragData(ctx, t, c)
	before, err := c.Status(ctx, m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}

	l := startDefragLoad(ctx, t, m)
	// The first puts pay for connection warm-up: left out of every window.
	waitWindow(ctx, t, 300*time.Millisecond)
	var base1, compaction, defrag, base2 loadWindow
	base1.measure(func() { waitWindow(ctx, t, defragBaseline) })
	compaction.measure(func() {
		rev := l.lastRev()
		if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			t.Fatalf("compact at %d: %v", rev, err)
		}
	})
	mid, err := c.Status(ctx, m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defrag.measure(func() {
		if _, err := c.Defragment(ctx, m.Endpoint); err != nil {
			t.Fatalf("defragment: %v", err)
		}
	})
	after, err := c.Status(ctx, m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	base2.measure(func() { waitWindow(ctx, t, defragBaseline) })
	puts := l.stop()

	// Space: the deleted values and compacted versions are gone. The
	// bound is from the bytes written, not from the size before: with
	// Pebble's log off, what the memtables hold is on no disk yet, so
	// the size reported right after the fill depends on whether the
	// engine flushed meanwhile.
	const written = defragValues * defragValueSize
	const dropped = written * (defragKeepEvery - 1) / defragKeepEvery
	t.Logf("run %d: db size / in use: %.1f / %.1f MiB before the compaction, %.1f / %.1f MiB after it, %.1f / %.1f MiB after the defragment",
		attempt, mibOf(before.DbSize), mibOf(before.DbSizeInUse), mibOf(mid.DbSize), mibOf(mid.DbSizeInUse), mibOf(after.DbSize), mibOf(after.DbSizeInUse))
	if after.DbSizeInUse > written-dropped*3/4 || after.DbSize > written-dropped*3/4 {
		t.Fatalf("defragment reclaimed too little: db size %d → %d, in use %d → %d, with %d of %d bytes of values deleted",
			before.DbSize, after.DbSize, before.DbSizeInUse, after.DbSizeInUse, dropped, written)
	}

	// Latency: the puts of a baseline window are those that started and
	// ended in it, so that none stalled by the operation before counts;
	// the puts of an operation are those in flight at any time during it.
	stats := func(name string, w loadWindow, within bool) (maxLat time.Duration) {
		lats := w.latencies(puts, within)
		if len(lats) == 0 {
			t.Fatalf("run %d: %s (%v): no put", attempt, name, w.took())
		}
		slices.Sort(lats)
		maxLat = lats[len(lats)-1]
		t.Logf("run %d: %-12s %6v  %4d puts  p50 %6v  p99 %6v  max %6v", attempt, name, w.took().Round(time.Millisecond), len(lats),
			lats[len(lats)/2].Round(100*time.Microsecond), lats[len(lats)*99/100].Round(100*time.Microsecond), maxLat.Round(100*time.Microsecond))
		return maxLat
	}
	var r defragAttemptResult
	r.baseline = max(stats("baseline", base1, true), stats("baseline", base2, true))
	mc := stats("compaction", compaction, false)
	r.slowest, r.took = stats("defragment", defrag, false), defrag.took()
	r.limit = max(defragMaxStall, 2*r.baseline)
	r.completed = defrag.completions(puts)
	r.expected = min(base1.rate(puts), base2.rate(puts)) * r.took.Seconds()
	t.Logf("run %d: %d puts completed during the defragment, %.0f expected at the baseline's rate", attempt, r.completed, r.expected)
	// The compaction's figures are logged, not checked: on a 2-core
	// machine its slowest put took 12-221 ms in 28 runs, but for 510 ms
	// and 1.4 s with the machine loaded, often above the bound
	// (docs/benchmarks.md).
	t.Logf("run %d: compaction: slowest put %v, %.1f× the bound", attempt, mc, float64(mc)/float64(r.limit))
	return r
}

// fillDefragData writes the data set of TestDefragmentDuringWriteLoad and
// deletes most of it: defragValues values of defragValueSize under keep/
// (one in defragKeepEvery) and drop/ (the others, then deleted), and
// defragVersions versions of defragVersionKeys keys under ver/.
func fillDefragData(ctx context.Context, t *testing.T, c *clientv3.Client) {
	t.Helper()
	start := time.Now()
	val := make([]byte, defragValueSize)
	for i := range val {
		val[i] = byte(rand.Uint32()) // incompressible, as Pebble compresses blocks
	}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < defragValues; i += 8 {
				key := fmt.Sprintf("drop/%05d", i)
				if i%defragKeepEvery == 0 {
					key = fmt.Sprintf("keep/%05d", i)
				}
				if _, err := c.Put(ctx, key, string(val)); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			ops := make([]clientv3.Op, defragVersionKeys)
			for i := w; i < defragVersions/defragVersionKeys; i += 4 {
				for k := range ops {
					ops[k] = clientv3.OpPut(fmt.Sprintf("ver/%03d", k), fmt.Sprintf("%040d", i))
				}
				if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("fill: %v", err)
	}
	d, err := c.Delete(ctx, "drop/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(defragValues - (defragValues+defragKeepEvery-1)/defragKeepEvery); d.Deleted != want {
		t.Fatalf("deleted %d keys, want %d", d.Deleted, want)
	}
	t.Logf("wrote %d MiB and %d versions, deleted %d values in %v",
		defragValues*defragValueSize>>20, defragVersions, d.Deleted, time.Since(start).Round(time.Millisecond))
}

// timedPut is one put of the load: when it was sent and answered.
type timedPut struct{ start, end time.Time }

// defragLoad is the write load of TestDefragmentDuringWriteLoad.
type defragLoad struct {
	t      *testing.T
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		puts []timedPut
		rev  int64
		err  error
	}
}

// startDefragLoad starts defragClients × defragWorkers goroutines, each
// putting a 256-byte value to its own keys defragWorkerRate times a second.
// A goroutine behind schedule sends at once.
func startDefragLoad(ctx context.Context, t *testing.T, m *framework.Member) *defragLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &defragLoad{t: t, cancel: cancel}
	val := strings.Repeat("v", 256)
	for ci := range defragClients {
		c := m.Client()
		for w := range defragWorkers {
			l.wg.Go(func() {
				tick := time.NewTicker(time.Second / defragWorkerRate)
				defer tick.Stop()
				var mine []timedPut
				defer func() {
					l.mu.Lock()
					l.mu.puts = append(l.mu.puts, mine...)
					l.mu.Unlock()
				}()
				for n := 0; ; n++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					start := time.Now()
					r, err := c.Put(ctx, fmt.Sprintf("load/%d-%d/%03d", ci, w, n%1000), val)
					end := time.Now()
					if ctx.Err() != nil {
						return
					}
					l.mu.Lock()
					if err != nil && l.mu.err == nil {
						l.mu.err = err
					}
					if err == nil {
						l.mu.rev = max(l.mu.rev, r.Header.Revision)
					}
					l.mu.Unlock()
					if err != nil {
						return
					}
					mine = append(mine, timedPut{start, end})
				}
			})
		}
	}
	return l
}

// lastRev returns the newest revision a put of the load was answered at.
func (l *defragLoad) lastRev() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.rev
}

// stop ends the load and returns its puts; a failed put fails the test.
func (l *defragLoad) stop() []timedPut {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.err != nil {
		l.t.Fatalf("a put of the load failed: %v", l.mu.err)
	}
	return l.mu.puts
}

// loadWindow is a span of the test's timeline.
type loadWindow struct{ start, end time.Time }

func (w *loadWindow) measure(f func()) {
	w.start = time.Now()
	f()
	w.end = time.Now()
}

func (w loadWindow) took() time.Duration { return w.end.Sub(w.start) }

// latencies returns the latency of every put that started and ended
// within w, or (within unset) that was in flight at some time during w.
func (w loadWindow) latencies(puts []timedPut, within bool) []time.Duration {
	var lats []time.Duration
	for _, p := range puts {
		in := p.end.After(w.start) && p.start.Before(w.end)
		if within {
			in = !p.start.Before(w.start) && !p.end.After(w.end)
		}
		if in {
			lats = append(lats, p.end.Sub(p.start))
		}
	}
	return lats
}

// completions returns how many puts completed within w.
func (w loadWindow) completions(puts []timedPut) int {
	n := 0
	for _, p := range puts {
		if !p.end.Before(w.start) && !p.end.After(w.end) {
			n++
		}
	}
	return n
}

// rate returns the puts per second that completed within w.
func (w loadWindow) rate(puts []timedPut) float64 {
	return float64(w.completions(puts)) / w.took().Seconds()
}

// waitWindow lets d pass: the length of a measurement window.
func waitWindow(ctx context.Context, t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}

func mibOf(n int64) float64 { return float64(n) / (1 << 20) }

// TestDefragmentWhenDraining: a draining member refuses a Defragment as it
// refuses a Snapshot, so that a shutdown does not wait for one.
func TestDefragmentWhenDraining(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 30*time.Second)
	c := m.Client()
	if resp, err := c.Defragment(ctx, m.Endpoint); err != nil || resp.Header != nil {
		t.Fatalf("defragment: %v, %v; want an answer without a header, as etcd's", resp, err)
	}
	m.Server.Drain()
	if _, err := c.Defragment(ctx, m.Endpoint); !errors.Is(rpctypes.Error(err), rpctypes.ErrStopped) {
		t.Fatalf("defragment of a draining member: %v, want %v", err, rpctypes.ErrStopped)
	}
}
