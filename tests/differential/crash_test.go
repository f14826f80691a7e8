package differential

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// etcdCrashers are request sequences that crash etcd v3.7.3 itself, so
// they cannot be compared answer to answer. Both shapes go through the
// same hole: etcd's duplicate-key check treats a "\x00" range end (every
// key from key on) as an empty interval, so a txn may delete a key with a
// from-key delete and then write it again.
//
//   - With ignore_value or ignore_lease on that put, etcd's pre-apply check
//     still sees the key, and the apply then reads a previous value that
//     the delete removed: "index out of range [0] with length 0" in
//     txn.put, a panic, and the member exits.
//   - With a plain put, the key gets a tombstone and a new version under
//     one main revision. Compacting at exactly that revision loses the new
//     version from the backend while the index still points to it; the
//     next read of the key is fatal ("range failed to find revision
//     pair").
//
// The randomized test steers around both (see avoidEtcdCrash and
// gen.unsafeCompact).
var etcdCrashers = []struct {
	name  string
	steps []proto.Message // the last one is expected to crash etcd
}{
	{"from-key delete then ignore_value put", []proto.Message{
		put("b", "1"),
		&pb.TxnRequest{Success: ops(opDelReq(&pb.DeleteRangeRequest{Key: b("a"), RangeEnd: fromKey}), opPutReq(&pb.PutRequest{Key: b("b"), IgnoreValue: true}))},
	}},
	{"delete of everything then ignore_lease put", []proto.Message{
		put("b", "1"),
		&pb.TxnRequest{Success: ops(opDelReq(&pb.DeleteRangeRequest{Key: fromKey, RangeEnd: fromKey}), opPutReq(&pb.PutRequest{Key: b("b"), Value: b("2"), IgnoreLease: true}))},
	}},
	{"nested from-key delete then outer ignore_value put", []proto.Message{
		put("b", "1"),
		&pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Success: ops(opDelReq(&pb.DeleteRangeRequest{Key: b("b"), RangeEnd: fromKey}))}), opPutReq(&pb.PutRequest{Key: b("b"), IgnoreValue: true}))},
	}},
	{"from-key delete and put of one key, compacted at that revision", []proto.Message{
		put("zz", "0"),
		&pb.TxnRequest{Success: ops(opDelReq(&pb.DeleteRangeRequest{Key: b("a"), RangeEnd: fromKey}), opPut("zz", "1"))},
		&pb.CompactionRequest{Revision: 3, Physical: true},
		get("zz"),
	}},
}

// send runs one request of a crasher sequence.
func send(ctx context.Context, s *side, m proto.Message) outcome {
	var resp proto.Message
	var err error
	switch r := m.(type) {
	case *pb.PutRequest:
		resp, err = s.kv.Put(ctx, r)
	case *pb.TxnRequest:
		resp, err = s.kv.Txn(ctx, r)
	case *pb.CompactionRequest:
		resp, err = s.kv.Compact(ctx, r)
	case *pb.RangeRequest:
		resp, err = s.kv.Range(ctx, r)
	default:
		panic(fmt.Sprintf("send: %T", m))
	}
	if err != nil {
		return outcome{err: err}
	}
	return outcome{resp: resp}
}

func showSteps(steps []proto.Message) string {
	var b strings.Builder
	for _, m := range steps {
		fmt.Fprintf(&b, "\n  %s: %s", m.ProtoReflect().Descriptor().Name(), show(m))
	}
	return b.String()
}

// TestEtcdCrashers confirms each crasher still crashes etcd (if one stops
// crashing, it is compared like any other request), then sends it to Cairn
// in a child process, so that a panic there cannot take this test binary
// down, and reports what Cairn does. Cairn must not crash; what it should
// answer etcd leaves undefined, so its answer is logged for review.
func TestEtcdCrashers(t *testing.T) {
	if os.Getenv("CAIRN_DIFF_CRASHER_CHILD") != "" {
		t.Skip("child process")
	}
	for _, c := range etcdCrashers {
		t.Run(c.name, func(t *testing.T) {
			crashed, answer := etcdCrashes(t, c.steps)
			t.Logf("requests:%s", showSteps(c.steps))
			if !crashed {
				t.Errorf("harness: etcd no longer crashes on this sequence (it answered %s); compare it like any other case instead", answer)
				return
			}
			t.Logf("etcd v3.7.3 crashed on the last request (the member exited)")
			if startCairn == nil || os.Getenv("CAIRN_DIFF_AGAINST") == "etcd" {
				t.Skip("no Cairn to compare")
			}
			out, err := runCrasherChild(t, c.name)
			if err != nil {
				t.Errorf("CAIRN CRASH %s: the child process running Cairn failed (%v) on a sequence that crashes etcd; Cairn must not crash on any input:\n%s", c.name, err, tail(out, 4000))
				return
			}
			got := ""
			for _, l := range strings.Split(out, "\n") {
				if i := strings.Index(l, "CRASHER "); i >= 0 {
					got += "\n  " + l[i+len("CRASHER "):]
				}
			}
			t.Logf("Cairn survives; its answers:%s", got)
		})
	}
}

// TestEtcdCrashersChild is the child half of TestEtcdCrashers: it runs
// only inside runCrasherChild's process.
func TestEtcdCrashersChild(t *testing.T) {
	name := os.Getenv("CAIRN_DIFF_CRASHER_CHILD")
	if name == "" {
		t.Skip("runs only as TestEtcdCrashers' child")
	}
	for _, c := range etcdCrashers {
		if c.name != name {
			continue
		}
		s := newSide("cairn", startCairn(t, options{}))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, m := range c.steps {
			t.Logf("CRASHER %s: %s", m.ProtoReflect().Descriptor().Name(), send(ctx, s, m))
		}
		after, err := s.kv.Range(ctx, all())
		t.Logf("CRASHER range of everything after: %s", outcome{resp: after, err: err})
		if err != nil {
			t.Fatalf("Cairn no longer answers after the sequence: %v", err)
		}
	}
}

// etcdCrashes sends steps to a throwaway etcd and says whether it died
// on the last one, with etcd's answer to it.
func etcdCrashes(t *testing.T, steps []proto.Message) (bool, string) {
	t.Helper()
	s := newSide("etcd", startEtcdProc(t, options{}, false))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last outcome
	for i, m := range steps {
		last = send(ctx, s, m)
		if last.err != nil && i < len(steps)-1 {
			t.Fatalf("etcd failed before the last step: %s", last)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	_, err := s.kv.Range(short, get("a"))
	return err != nil, last.String()
}

func runCrasherChild(t *testing.T, name string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEtcdCrashersChild$", "-test.v")
	cmd.Env = append(os.Environ(), "CAIRN_DIFF_CRASHER_CHILD="+name)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
