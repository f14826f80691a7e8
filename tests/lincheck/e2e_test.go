package lincheck

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestWorkloadSingleMember runs the workload against one healthy member and
// checks the history, which must be linearizable and exercise every kind
// of operation and outcome the workload can produce without faults.
func TestWorkloadSingleMember(t *testing.T) {
	m := framework.StartMember(t)
	clients := make([]*clientv3.Client, 4)
	for i := range clients {
		clients[i] = m.Client()
	}
	// Rounds of 2 s on the same keys until the history has every kind of
	// operation and outcome, each at least 10 times: one round on an idle
	// machine, more when it is loaded.
	tctx := framework.Context(t, time.Minute)
	seed, rec := testSeed(t), NewRecorder()
	var h History
	var short []string
	for round := uint64(0); ; round++ {
		ctx, cancel := context.WithTimeout(tctx, 2*time.Second)
		h = Workload(ctx, clients, 3, WorkloadConfig{Seed: seed + round<<32, Workers: 8, Recorder: rec})
		cancel()
		if short = missingOutcomes(h, 10); len(short) == 0 || tctx.Err() != nil {
			t.Logf("history after %d rounds: %s", round+1, h.Summary())
			break
		}
	}
	for _, s := range short {
		t.Errorf("only %s", s)
	}
	// Without faults, the only errors are the client giving up: the end
	// of ctx cuts one operation per worker short, and on a loaded machine
	// any number may outlive OpTimeout (a stalled fsync holds up every
	// worker at once), so their count proves nothing. Any other error is
	// indeterminate only if it is misread, or a fault of the member.
	var timeouts int
	var misread History
	for _, op := range h {
		switch out := op.Output.(Output); {
		case out.Outcome != Indeterminate:
		case clientGaveUp(out.Err):
			timeouts++
		default:
			misread = append(misread, op)
		}
	}
	t.Logf("%d operations cut short by the client", timeouts)
	if len(misread) > 0 {
		t.Errorf("%d operations on a healthy member failed other than by the client giving up:\n%s", len(misread), dump(misread))
	}
	Check(t, h, time.Minute)
}

// missingOutcomes lists, as "<count> <what>", each kind of operation and
// outcome a fault-free workload produces that h holds fewer than n of.
func missingOutcomes(h History, n int) []string {
	// Deletes that found something, and CASes on absent keys that won.
	removed, created := 0, 0
	for _, op := range h {
		in, out := op.Input.(Input), op.Output.(Output)
		if in.Kind == OpDelete && out.Outcome == Applied && out.Value.Present {
			removed++
		}
		if in.Kind == OpCAS && out.Outcome == Applied && !in.Expected.Present {
			created++
		}
	}
	var short []string
	for _, c := range []struct {
		what string
		n    int
	}{
		{"applied gets", h.Count(OpGet, Applied)},
		{"applied puts", h.Count(OpPut, Applied)},
		{"swapped casses", h.Count(OpCAS, Applied)},
		{"casses whose compare failed", h.Count(OpCAS, NotApplied)},
		{"applied deletes", h.Count(OpDelete, Applied)},
		{"deletes that removed a value", removed},
		{"casses that created a key", created},
	} {
		if c.n < n {
			short = append(short, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return short
}

// clientGaveUp reports whether msg, an indeterminate operation's error, is
// the client's own deadline or cancellation. The deadline travels with the
// request, and when the member notices it first it answers as etcd does,
// "etcdserver: request timed out" (its own limit is over 5 s, longer than
// any operation of these tests may run, so the deadline was the client's).
func clientGaveUp(msg string) bool {
	return strings.HasSuffix(msg, context.DeadlineExceeded.Error()) || strings.HasSuffix(msg, context.Canceled.Error()) ||
		strings.HasSuffix(msg, rpctypes.ErrTimeout.Error())
}

// TestWorkloadClientTimeouts gives up on operations after a millisecond or
// so, so that many writes are indeterminate for real: the client stopped
// waiting, and the member applied some of them anyway and not others. The
// history must still check, quickly, and contain both kinds. Workloads
// with several timeouts share one Recorder and one set of keys, so that on
// any machine some timeouts fall near the member's latency.
func TestWorkloadClientTimeouts(t *testing.T) {
	seed := testSeed(t)
	m := framework.StartMember(t)
	clients := []*clientv3.Client{m.Client(), m.Client()}
	ctx, cancel := context.WithTimeout(framework.Context(t, time.Minute), time.Second)
	defer cancel()
	rec := NewRecorder()
	var wg sync.WaitGroup
	for i, d := range []time.Duration{300 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond} {
		cfg := WorkloadConfig{Seed: seed + uint64(i), Workers: 2, OpTimeout: d, Recorder: rec}
		wg.Go(func() { Workload(ctx, clients, 3, cfg) })
	}
	wg.Wait()
	h := rec.History()

	observed := make(map[Value]bool)
	for _, op := range h {
		if out := op.Output.(Output); out.observed() {
			observed[out.Value] = true
		}
	}
	seen, unseen := 0, 0
	for _, op := range h {
		if in := op.Input.(Input); in.Kind == OpPut && op.Output.(Output).Outcome == Indeterminate {
			if observed[Some(in.Value)] {
				seen++
			} else {
				unseen++
			}
		}
	}
	t.Logf("history: %s; indeterminate puts seen later %d, never seen %d", h.Summary(), seen, unseen)
	if seen < 10 || unseen < 10 {
		t.Errorf("want at least 10 indeterminate puts that were applied and 10 never seen; got %d and %d", seen, unseen)
	}
	Check(t, h, time.Minute)
}

// TestRecorderOutcomes records a definite failure and an indeterminate
// write against a real member and checks how they land in the history.
func TestRecorderOutcomes(t *testing.T) {
	m := framework.StartMember(t, func(cfg *server.Config) { cfg.MaxRequestBytes = 1024 })
	ctx := framework.Context(t, 30*time.Second)
	rec := NewRecorder()
	c := rec.Client(m.Client())

	if _, err := c.Put(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	// Refused by the server: definitely not applied.
	if _, err := c.Put(ctx, "k", strings.Repeat("x", 2048)); err == nil || Classify(err) != NotApplied {
		t.Fatalf("oversized put: %v, classified %v; want a definite failure", err, Classify(err))
	}
	// Cut short by the client: the write may or may not have happened.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Put(canceled, "k", "maybe"); err == nil || Classify(err) != Indeterminate {
		t.Fatalf("put with a canceled context: %v, classified %v; want indeterminate", err, Classify(err))
	}
	if swapped, was, err := c.CAS(ctx, "k", Some("b"), "c"); err != nil || swapped || was != Some("a") {
		t.Fatalf("cas expecting b: swapped %v, was %v, err %v", swapped, was, err)
	}
	if swapped, _, err := c.CAS(ctx, "k", Some("a"), "d"); err != nil || !swapped {
		t.Fatalf("cas expecting a: swapped %v, err %v", swapped, err)
	}
	if swapped, was, err := c.CAS(ctx, "new", Absent, "e"); err != nil || !swapped || was != Absent {
		t.Fatalf("cas creating a key: swapped %v, was %v, err %v", swapped, was, err)
	}
	if prev, err := c.Delete(ctx, "k"); err != nil || prev != Some("d") {
		t.Fatalf("delete: prev %v, err %v", prev, err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || v != Absent {
		t.Fatalf("get after delete: %v, %v", v, err)
	}

	h := rec.History()
	if len(h) != 8 {
		t.Fatalf("recorded %d ops, want 8:\n%s", len(h), dump(h))
	}
	for i, op := range h {
		if i > 0 && op.Call < h[i-1].Call {
			t.Errorf("op %d called at %d, before op %d at %d", i, op.Call, i-1, h[i-1].Call)
		}
		if op.Return < op.Call {
			t.Errorf("op %d returned before its call", i)
		}
	}
	if out := h[1].Output.(Output); out.Outcome != NotApplied || out.Err == "" || h[1].Return == Infinity {
		t.Errorf("oversized put recorded as %+v returning at %d", out, h[1].Return)
	}
	if out := h[2].Output.(Output); out.Outcome != Indeterminate || h[2].Return != Infinity {
		t.Errorf("canceled put recorded as %+v returning at %d", out, h[2].Return)
	}
	if h[3].ClientId == h[2].ClientId {
		t.Errorf("the client kept its porcupine id after an indeterminate op, so it would overlap itself")
	}
	Check(t, h, time.Minute)
}

// TestCatchesStaleReadsFromPartitionedFollower proves end to end that the
// checker catches a real violation. A single member cannot serve a stale
// read, so this uses a 3-member cluster: one follower is cut off from its
// peers while the majority keeps taking writes, and one client reads from
// the follower with WithSerializable, which answers from its local, now
// stale, state. Every operation is really issued and recorded on one clock;
// nothing is spliced or fabricated.
func TestCatchesStaleReadsFromPartitionedFollower(t *testing.T) {
	seed := testSeed(t)
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, time.Minute)
	leader, follower := c.Leader(ctx), c.Follower(ctx)
	var other *framework.Member
	for _, m := range c.Members {
		if m != leader && m != follower {
			other = m
		}
	}
	rec := NewRecorder()
	const keys = 3
	cfg := WorkloadConfig{Seed: seed, Workers: 6, Recorder: rec}

	// Phase 1: a short workload through every member, so that the follower
	// holds values.
	phase, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	Workload(phase, []*clientv3.Client{leader.Client(), other.Client(), follower.Client()}, keys, cfg)
	cancel()

	c.Isolate(follower)
	stale := rec.Client(follower.Client())

	// Phase 2: the workload goes on through the majority while the stale
	// client reads from the follower (under ctx, so that no read is cut
	// short and the client keeps its porcupine id).
	phase, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { Workload(phase, []*clientv3.Client{leader.Client(), other.Client()}, keys, cfg) })
	names := []string{rec.KeyPrefix() + "k0", rec.KeyPrefix() + "k1", rec.KeyPrefix() + "k2"}
	for i := 0; phase.Err() == nil; i++ {
		if _, err := stale.GetSerializable(ctx, names[i%keys]); err != nil {
			t.Fatalf("serializable read from the cut-off follower: %v", err)
		}
	}
	wg.Wait()
	// Make the violation certain: an acknowledged write, then a read from
	// the follower, which cannot have seen it.
	fresh := rec.uniqueValue()
	if _, err := rec.Client(leader.Client()).Put(ctx, names[0], fresh); err != nil {
		t.Fatal(err)
	}
	if v, err := stale.GetSerializable(ctx, names[0]); err != nil || v == Some(fresh) {
		t.Fatalf("read from the cut-off follower: %v, %v; want a stale value", v, err)
	}

	h := rec.History()
	var honest History
	staleReads := 0
	for _, op := range h {
		if op.ClientId == stale.id {
			staleReads++
			continue
		}
		honest = append(honest, op)
	}
	t.Logf("history: %s, of which %d reads from the follower", h.Summary(), staleReads)
	if res := Verify(honest, time.Minute); res.Verdict != porcupine.Ok {
		t.Fatalf("the history without the follower's reads is %v:\n%s", res.Verdict, res.Report())
	}
	msg := checkFails(t, h)
	t.Logf("Check said:\n%s", msg)
	if !strings.Contains(msg, fmt.Sprintf("key %q", names[0])) {
		t.Errorf("the report does not blame %s, the key certainly read stale", names[0])
	}
}
