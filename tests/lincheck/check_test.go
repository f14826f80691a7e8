package lincheck

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var seedFlag = flag.Uint64("lincheck.seed", 0, "seed for the randomized tests; 0 picks one from the clock")

// testSeed returns the seed of a randomized test and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -lincheck.seed=%d)", seed, seed)
	return seed
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, Applied},
		// The client gave up: the request may have been sent and applied.
		{context.DeadlineExceeded, Indeterminate},
		{context.Canceled, Indeterminate},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), Indeterminate},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), Indeterminate},
		{status.Error(codes.Canceled, "context canceled"), Indeterminate},
		// The connection or the leader went away mid-request.
		{status.Error(codes.Unavailable, "error reading from server: EOF"), Indeterminate},
		{rpctypes.ErrGRPCNoLeader, Indeterminate},
		{rpctypes.ErrNoLeader, Indeterminate},
		{rpctypes.ErrGRPCLeaderChanged, Indeterminate},
		{rpctypes.ErrLeaderChanged, Indeterminate},
		{rpctypes.ErrStopped, Indeterminate},
		{rpctypes.ErrTimeout, Indeterminate},
		{rpctypes.ErrTimeoutDueToLeaderFail, Indeterminate},
		{rpctypes.ErrTimeoutDueToConnectionLost, Indeterminate},
		// Unrecognised, or ambiguous: assume the worst.
		{errors.New("something odd"), Indeterminate},
		{status.Error(codes.Unknown, "server: boom"), Indeterminate},
		{status.Error(codes.Internal, "grpc: error while marshaling"), Indeterminate},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000 vs. 4096)"), Indeterminate},
		{rpctypes.ErrNotLeader, Indeterminate},
		// The server refused before anything was written.
		{rpctypes.ErrGRPCNoSpace, NotApplied},
		{rpctypes.ErrNoSpace, NotApplied},
		{rpctypes.ErrTooManyRequests, NotApplied},
		{rpctypes.ErrRequestTooLarge, NotApplied},
		{rpctypes.ErrGRPCRequestTooLarge, NotApplied},
		{rpctypes.ErrEmptyKey, NotApplied},
		{rpctypes.ErrTooManyOps, NotApplied},
		{rpctypes.ErrAuthOldRevision, NotApplied},
		{rpctypes.ErrPermissionDenied, NotApplied},
		{rpctypes.ErrInvalidAuthToken, NotApplied},
		{status.Error(codes.Unimplemented, "unknown method Put"), NotApplied},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%T %v) = %v, want %v", tc.err, tc.err, got, tc.want)
		}
	}
}

// fakeTB collects what Check reports instead of failing the test.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

var visPath = regexp.MustCompile(`visualisation: (\S+\.html)`)

// checkFails runs Check on h, which must not be linearizable, and returns
// its message after checking that the visualisation was written.
func checkFails(t *testing.T, h History) string {
	t.Helper()
	f := &fakeTB{TB: t}
	if Check(f, h, 30*time.Second) {
		t.Fatalf("Check passed a history that is not linearizable: %s", h.Summary())
	}
	if len(f.errors) != 1 {
		t.Fatalf("Check reported %d errors, want 1: %q", len(f.errors), f.errors)
	}
	msg := f.errors[0]
	m := visPath.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no visualisation path in:\n%s", msg)
	}
	html, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatalf("visualisation: %v", err)
	}
	if !strings.Contains(string(html), "<html") || !strings.Contains(string(html), "get(") {
		t.Fatalf("visualisation %s does not look like porcupine's (%d bytes)", m[1], len(html))
	}
	return msg
}

func TestCheckReportsViolation(t *testing.T) {
	h := History{
		at(0, 1, put("k", "a", Absent)),
		at(0, 1, put("other", "x", Absent)),
		pending(1, put("k", "lost", Some("a"))),
		at(2, 3, put("k", "b", Some("a"))),
		at(4, 5, get("k", Some("a"))),
		at(4, 5, get("other", Some("x"))),
	}
	msg := checkFails(t, h)
	t.Logf("Check said:\n%s", msg)
	for _, want := range []string{
		"NOT linearizable",
		"6 ops: get 2 (applied 2), put 4 (applied 3, indeterminate 1)",
		"(1 pruned)", // the indeterminate put nobody saw
		`key "k" (3 ops): the first answer no linearization explains:
      client 0 [4ns, 5ns] get("k") -> "a"`,
		`put("k", "b") -> was "a"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(msg, `key "other"`) {
		t.Errorf("report blames a linearizable key")
	}
}

func TestCheckPasses(t *testing.T) {
	f := &fakeTB{TB: t}
	h := History{at(0, 1, put("k", "a", Absent)), at(2, 3, get("k", Some("a")))}
	if !Check(f, h, 0) || len(f.errors) != 0 {
		t.Fatalf("Check failed a linearizable history: %q", f.errors)
	}
}

// TestPruneKeepsVerdict generates small histories by simulating a correct
// server (with indeterminate writes that took effect and ones that did
// not), corrupts half of them, and checks that pruning never changes
// porcupine's verdict, and that every uncorrupted history passes.
func TestPruneKeepsVerdict(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	var verdicts [2]map[porcupine.CheckResult]int
	prunedIllegal := 0
	for i := range 3000 {
		h := simulate(rng, 4+rng.IntN(8))
		corrupt := i%2 == 1
		if corrupt {
			corruptOne(rng, h)
		}
		want := porcupine.CheckOperationsTimeout(Model(), h, 0)
		res := Verify(h, 0)
		if res.Verdict != want {
			t.Fatalf("history %d: pruned %d ops and got %v, unpruned %v:\n%s", i, res.Pruned, res.Verdict, want, dump(h))
		}
		if !corrupt && want != porcupine.Ok {
			t.Fatalf("history %d from a correct server is %v:\n%s", i, want, dump(h))
		}
		if verdicts[i%2] == nil {
			verdicts[i%2] = make(map[porcupine.CheckResult]int)
		}
		verdicts[i%2][want]++
		if want == porcupine.Illegal && res.Pruned > 0 {
			prunedIllegal++
		}
	}
	t.Logf("correct: %v; corrupted: %v; illegal with pruned ops: %d", verdicts[0], verdicts[1], prunedIllegal)
	if verdicts[1][porcupine.Illegal] < 300 || prunedIllegal < 100 {
		t.Fatalf("the generator hardly exercises the pruning: %v, %d", verdicts[1], prunedIllegal)
	}
}

// simulate returns a history of n operations on one key that a correct
// server could have produced: each effective operation takes effect at a
// random point of its interval, in that order.
func simulate(rng *rand.Rand, n int) History {
	const key = "k"
	type planned struct {
		op    porcupine.Operation
		point int64 // linearization point; -1 if it takes no effect
	}
	pool := []Value{Absent, Some("x")}
	ops := make([]planned, n)
	for i := range ops {
		call := rng.Int64N(100_000)
		ret := call + 1 + rng.Int64N(30_000)
		in := Input{Key: key}
		switch p := rng.IntN(100); {
		case p < 35:
			in.Kind = OpGet
		case p < 65:
			in.Kind = OpPut
		case p < 85:
			in.Kind = OpCAS
		default:
			in.Kind = OpDelete
		}
		if in.Kind == OpPut || in.Kind == OpCAS {
			in.Value = fmt.Sprintf("v%d", i)
			pool = append(pool, Some(in.Value))
		}
		out := Output{Outcome: Applied}
		point := call + rng.Int64N(ret-call+1)
		switch p := rng.IntN(100); {
		case p < 15: // indeterminate, took effect (possibly long after)
			out = Output{Outcome: Indeterminate, Err: "timeout"}
			point = call + rng.Int64N(60_000)
			ret = Infinity
		case p < 30: // indeterminate, never took effect
			out = Output{Outcome: Indeterminate, Err: "timeout"}
			point, ret = -1, Infinity
		case p < 38 && in.Kind != OpGet: // refused
			out = Output{Outcome: NotApplied, Err: "refused"}
			point = -1
		}
		ops[i] = planned{porcupine.Operation{Input: in, Output: out, Call: call, Return: ret}, point}
	}
	for i := range ops {
		if in := ops[i].op.Input.(Input); in.Kind == OpCAS {
			in.Expected = pool[rng.IntN(len(pool))]
			ops[i].op.Input = in
		}
	}
	order := make([]int, 0, n)
	for i := range ops {
		if ops[i].point >= 0 {
			order = append(order, i)
		}
	}
	sort.Slice(order, func(a, b int) bool { return ops[order[a]].point < ops[order[b]].point })
	state := Absent
	for _, i := range order {
		in, out := ops[i].op.Input.(Input), ops[i].op.Output.(Output)
		if in.Kind == OpCAS && rng.IntN(2) == 0 {
			in.Expected = state // make half the compares succeed
			ops[i].op.Input = in
		}
		if out.Outcome == Applied {
			out.Value = state
			if in.Kind == OpCAS && state != in.Expected {
				out.Outcome = NotApplied
			}
			ops[i].op.Output = out
		}
		_, state = step(state, in, out)
	}
	h := make(History, n)
	for i := range ops {
		h[i] = ops[i].op
	}
	return h
}

// corruptOne changes what one observing operation saw, or turns an
// operation that never took effect into one that did.
func corruptOne(rng *rand.Rand, h History) {
	for range 100 {
		op := &h[rng.IntN(len(h))]
		in, out := op.Input.(Input), op.Output.(Output)
		switch {
		case out.observed():
			vs := []Value{Absent, Some("x"), Some(fmt.Sprintf("v%d", rng.IntN(len(h))))}
			out.Value = vs[rng.IntN(len(vs))]
		case out.Outcome == NotApplied && in.Kind == OpPut:
			out = Output{Outcome: Applied, Value: Absent}
		default:
			continue
		}
		op.Output = out
		return
	}
}

func dump(h History) string {
	var b strings.Builder
	for _, op := range h {
		b.WriteString("  " + describeOp(op) + "\n")
	}
	return b.String()
}
