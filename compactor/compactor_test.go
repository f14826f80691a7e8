package compactor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/compactor"
	"github.com/cairn-kv/cairn/tests/framework"
)

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	changed chan struct{} // closed and replaced whenever a timer is added
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), c: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.c <- c.now
	}
	c.timers = kept
}

// waitTimers waits until n timers are pending: the compactors are idle,
// waiting for their next tick.
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d timers pending after 30s, want %d", pending, n)
		}
	}
}

// tick lets n idle compactors take one tick of d and waits until they are
// idle again, so everything the tick does has happened.
func (c *fakeClock) tick(t *testing.T, d time.Duration, n int) {
	t.Helper()
	c.waitTimers(t, n)
	c.Advance(d)
	c.waitTimers(t, n)
}

// start runs a compactor on target until the test ends, logging into an
// observer it returns.
func start(t *testing.T, target compactor.Target, cfg compactor.Config) *observer.ObservedLogs {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- compactor.Run(ctx, target, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30s of its context's end")
		}
	})
	return logs
}

// compactions returns the revisions of the log lines msg, in order.
func compactions(logs *observer.ObservedLogs, msg string) []int64 {
	var revs []int64
	for _, e := range logs.FilterMessage(msg).All() {
		revs = append(revs, e.ContextMap()["revision"].(int64))
	}
	return revs
}

func put(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Put(framework.Context(t, 30*time.Second), "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// compactedAt checks through the client that the member's compaction
// revision is exactly rev: reading at rev works, one below fails with
// etcd's ErrCompacted. rev 1 means never compacted.
func compactedAt(t *testing.T, cli *clientv3.Client, rev int64) {
	t.Helper()
	ctx := framework.Context(t, 30*time.Second)
	if _, err := cli.Get(ctx, "k", clientv3.WithRev(rev)); err != nil {
		t.Fatalf("get at revision %d: %v", rev, err)
	}
	if rev <= 1 {
		return
	}
	_, err := cli.Get(ctx, "k", clientv3.WithRev(rev-1))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("get at revision %d: %v, want %v", rev-1, err, rpctypes.ErrCompacted)
	}
}

func TestParseRetention(t *testing.T) {
	for _, c := range []struct {
		mode, retention string
		want            compactor.Config
		err             string
	}{
		{"periodic", "", compactor.Config{Mode: "periodic"}, ""},
		{"periodic", "0", compactor.Config{Mode: "periodic"}, ""},
		{"periodic", "1", compactor.Config{Mode: "periodic", Retention: time.Hour}, ""},
		{"periodic", "72", compactor.Config{Mode: "periodic", Retention: 72 * time.Hour}, ""},
		{"periodic", "30m", compactor.Config{Mode: "periodic", Retention: 30 * time.Minute}, ""},
		{"periodic", "1h30m", compactor.Config{Mode: "periodic", Retention: 90 * time.Minute}, ""},
		{"revision", "0", compactor.Config{Mode: "revision"}, ""},
		{"revision", "1000", compactor.Config{Mode: "revision", Revisions: 1000}, ""},
		// etcd reads a duration in revision mode as its nanoseconds.
		{"revision", "1us", compactor.Config{Mode: "revision", Revisions: 1000}, ""},
		{"periodic", "1x", compactor.Config{}, "error parsing CompactionRetention"},
		{"periodic", "-1", compactor.Config{}, "error parsing CompactionRetention"},
		{"periodic", "-1h", compactor.Config{}, "negative"},
		{"periodic", "5ns", compactor.Config{}, "too short"},
		{"periodic", "9999999999999", compactor.Config{}, "too many hours"},
		{"", "0", compactor.Config{}, "undefined auto-compaction-mode"},
		{"daily", "1", compactor.Config{}, `unknown auto-compaction-mode "daily"`},
	} {
		got, err := compactor.ParseRetention(c.mode, c.retention)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q %q: %v", c.mode, c.retention, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q %q: error %v, want one containing %q", c.mode, c.retention, err, c.err)
		case got != c.want:
			t.Errorf("%q %q: %+v, want %+v", c.mode, c.retention, got, c.want)
		}
	}
}

// TestRevisionMode: every 5 minutes the leader compacts to the current
// revision minus the retention, skips a revision it compacted already, and
// takes ErrCompacted (an operator went further) as a success.
func TestRevisionMode(t *testing.T) {
	m := framework.StartMember(t)
	cli := m.Client()
	for range 10 {
		put(t, cli)
	}
	rev := m.Server.Rev()
	clock := newFakeClock()
	logs := start(t, m.Server, compactor.Config{Mode: compactor.ModeRevision, Revisions: 3, Clock: clock})

	clock.waitTimers(t, 1)
	clock.Advance(compactor.RevisionInterval - time.Nanosecond)
	compactedAt(t, cli, 1)
	clock.Advance(time.Nanosecond)
	clock.waitTimers(t, 1)
	compactedAt(t, cli, rev-3)

	// Nothing written: the same revision is not compacted again.
	clock.tick(t, compactor.RevisionInterval, 1)
	if got := compactions(logs, "starting auto revision compaction"); len(got) != 1 {
		t.Fatalf("compactions %v, want one", got)
	}

	// An operator compacts further; the compactor's next, lower target
	// fails with ErrCompacted, which is not an error.
	if _, err := cli.Compact(framework.Context(t, 30*time.Second), rev); err != nil {
		t.Fatal(err)
	}
	rev = put(t, cli)
	clock.tick(t, compactor.RevisionInterval, 1)
	compactedAt(t, cli, rev-1)
	if got, want := compactions(logs, "completed auto revision compaction"), []int64{rev - 1 - 3, rev - 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("completed compactions %v, want %v", got, want)
	}
	if failed := logs.FilterMessage("failed auto revision compaction").Len(); failed != 0 {
		t.Fatalf("%d failed compactions logged", failed)
	}

	// Writes move the target.
	for range 5 {
		rev = put(t, cli)
	}
	clock.tick(t, compactor.RevisionInterval, 1)
	compactedAt(t, cli, rev-3)
}

// failing is the real member whose next fail Compact calls fail, as when
// the proposal times out.
type failing struct {
	compactor.Target
	fail atomic.Int32
}

func (f *failing) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if f.fail.Add(-1) >= 0 {
		return nil, errors.New("injected failure")
	}
	return f.Target.Compact(ctx, r)
}

// TestPeriodicMode drives etcd's periodic schedule tick by tick: samples of
// the revision every min(retention, 1h)/10, a first compaction once the
// retention has passed, to the revision sampled a retention ago, then one
// every min(retention, 1h) after the last success; a failure is retried at
// the next tick.
func TestPeriodicMode(t *testing.T) {
	for _, c := range []struct {
		retention, tick time.Duration
		failures        int32
		// want maps a tick to the sample compacted to then; sample i is
		// the revision after the write of tick i (0: at start).
		want map[int]int
	}{
		{10 * time.Minute, time.Minute, 0, map[int]int{10: 0, 20: 9, 30: 19}},
		{time.Hour, 6 * time.Minute, 0, map[int]int{10: 0, 20: 9, 30: 19}},
		{2 * time.Hour, 6 * time.Minute, 0, map[int]int{20: 0, 30: 9, 40: 19}},
		// Two failures: retried at each tick, the window sliding meanwhile.
		{30 * time.Second, 3 * time.Second, 2, map[int]int{12: 1, 22: 11}},
	} {
		t.Run(c.retention.String(), func(t *testing.T) {
			m := framework.StartMember(t)
			cli := m.Client()
			put(t, cli)
			target := &failing{Target: m.Server}
			target.fail.Store(c.failures)
			clock := newFakeClock()
			logs := start(t, target, compactor.Config{Mode: compactor.ModePeriodic, Retention: c.retention, Clock: clock})

			clock.waitTimers(t, 1) // the first sample is taken
			samples := []int64{m.Server.Rev()}
			compacted := int64(1)
			last := 0
			for k := range c.want {
				last = max(last, k)
			}
			for i := 1; i <= last; i++ {
				samples = append(samples, put(t, cli))
				clock.tick(t, c.tick, 1)
				if s, ok := c.want[i]; ok {
					compacted = samples[s]
				}
				compactedAt(t, cli, compacted)
			}
			var want []int64
			for i := 1; i <= last; i++ {
				if s, ok := c.want[i]; ok {
					want = append(want, samples[s])
				}
			}
			if got := compactions(logs, "completed auto periodic compaction"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("completed compactions %v, want %v", got, want)
			}
			if got := logs.FilterMessage("failed auto periodic compaction").Len(); got != int(c.failures) {
				t.Fatalf("%d failed compactions logged, want %d", got, c.failures)
			}
		})
	}
}

// TestOnlyLeaderCompacts runs a compactor on each member of a cluster:
// only the leader's compacts, and after a leader change only the new one.
func TestOnlyLeaderCompacts(t *testing.T) {
	c := framework.StartCluster(t, 3)
	cli := c.Client()
	ctx := framework.Context(t, 30*time.Second)
	clock := newFakeClock()
	logs := map[uint64]*observer.ObservedLogs{}
	for _, m := range c.Members {
		logs[m.Server.ID()] = start(t, m.Server, compactor.Config{Mode: compactor.ModeRevision, Revisions: 2, Clock: clock})
	}
	const msg = "completed auto revision compaction"
	// step writes through the leader, so that its own revision, which it
	// compacts from, includes the writes; then lets the compactors tick.
	step := func(leader *framework.Member) {
		t.Helper()
		var rev int64
		for range 3 {
			rev = put(t, leader.Client())
		}
		clock.tick(t, compactor.RevisionInterval, len(c.Members))
		if l := c.Leader(ctx); l != leader {
			t.Skipf("leader changed from %x to %x during the tick", leader.Server.ID(), l.Server.ID())
		}
		compactedAt(t, cli, rev-2)
	}
	counts := func(want map[*framework.Member]int) {
		t.Helper()
		for _, m := range c.Members {
			if n := logs[m.Server.ID()].FilterMessage(msg).Len(); n != want[m] {
				t.Fatalf("member %s: %d compactions, want %d", m.Config.Name, n, want[m])
			}
		}
	}

	leader := c.Leader(ctx)
	step(leader)
	counts(map[*framework.Member]int{leader: 1})

	var next *framework.Member
	for _, m := range c.Members {
		if m != leader {
			next = m
			break
		}
	}
	if err := leader.Server.MoveLeader(ctx, next.Server.ID()); err != nil {
		t.Fatal(err)
	}
	if l := c.Leader(ctx); l != next {
		t.Fatalf("leader %s after moving it to %s", l.Config.Name, next.Config.Name)
	}
	step(next)
	counts(map[*framework.Member]int{leader: 1, next: 1})
}

// TestRunStops: Run returns once its context ends, and at once when
// disabled or misconfigured.
func TestRunStops(t *testing.T) {
	m := framework.StartMember(t)
	if err := compactor.Run(context.Background(), m.Server, compactor.Config{Mode: compactor.ModePeriodic}); err != nil {
		t.Fatalf("disabled: %v", err)
	}
	if err := compactor.Run(context.Background(), m.Server, compactor.Config{Mode: "x", Retention: time.Hour}); err == nil {
		t.Fatal("unknown mode accepted")
	}
	for _, mode := range []string{compactor.ModePeriodic, compactor.ModeRevision} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- compactor.Run(ctx, m.Server, compactor.Config{Mode: mode, Retention: time.Hour, Revisions: 1, Clock: newFakeClock()})
		}()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Run did not return", mode)
		}
	}
}
