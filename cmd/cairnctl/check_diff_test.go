package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
	"github.com/cairn-kv/cairn/tests/framework"
)

// "check perf" and "check datascale" load the server on purpose, and what
// they print are measurements: the comparisons mask every number and
// compare the shape of the output (its lines, and on stderr the progress
// bar's frames, collapsed into one) and the exit code.
//
// check datascale runs in full with etcdctl (10,000 writes, a few
// seconds) and shortened with cairnctl (CAIRNCTL_CHECK_DATASCALE_KEYS).
// check perf runs 60 seconds in etcdctl, which has no knob to shorten it,
// so etcdctl's output comes from one recorded run (testdata/check, see
// the README there) and cairnctl runs for one second
// (CAIRNCTL_CHECK_PERF_SECONDS) against an in-process Cairn member.

var (
	progressFrameRE = regexp.MustCompile(`\d+ / \d+ \[[-_>]*\] \d+\.\d\d% (\?|\d+) p/s`)
	framesRE        = regexp.MustCompile(`(<bar>)+`)
	numberRE        = regexp.MustCompile(`-?\d+(\.\d+)?`)
)

// checkShape masks what differs between two runs of a check command:
// endpoints, progress frames (one or more become "<bar>") and numbers.
func checkShape(s string, eps []string) string {
	s = ctltest.Normalize(s, eps, false)
	s = framesRE.ReplaceAllString(progressFrameRE.ReplaceAllString(s, "<bar>"), "<bar>")
	return numberRE.ReplaceAllString(s, "<n>")
}

func TestCheckDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and loads it")
	}
	ctlBin, server := diffBinaries(t)
	s := ctltest.StartServer(t, server)
	eps := []string{s.Endpoint}
	cli := ctltest.Client(t, s.Endpoint)
	ctx := waitContext(t)

	type checkCase struct {
		name string
		args []string
		// cairnEnv is added to cairnctl's environment only.
		cairnEnv []string
		shape    bool
	}
	run := func(c checkCase) {
		t.Run(c.name, func(t *testing.T) {
			inv := ctltest.Invocation{Args: append([]string{"--endpoints=" + s.Endpoint}, c.args...)}
			want := ctltest.RunBinary(ctlBin, inv)
			inv.Env = c.cairnEnv
			got := runCairnctl(inv)
			if !c.shape {
				checkSame(t, diffCase{name: c.name}, want, got, eps, eps)
				return
			}
			if want.Code != got.Code {
				t.Errorf("exit code: etcdctl %d, cairnctl %d", want.Code, got.Code)
			}
			for _, out := range []struct{ name, want, got string }{{"stdout", want.Stdout, got.Stdout}, {"stderr", want.Stderr, got.Stderr}} {
				if w, g := checkShape(out.want, eps), checkShape(out.got, eps); w != g {
					t.Errorf("%s differs:\netcdctl:  %q\ncairnctl: %q", out.name, w, g)
				}
			}
		})
	}

	for _, c := range []checkCase{
		{name: "perf/bad-load", args: args("check", "perf", "--load", "bogus")},
		{name: "perf/bad-load-before-format", args: args("check", "perf", "--load", "XL", "-w", "yaml")},
		{name: "perf/bad-format", args: args("check", "perf", "--load", "xLarge", "-w", "yaml")},
		{name: "datascale/bad-load", args: args("check", "datascale", "--load", "huge")},
		{name: "datascale/bad-format", args: args("check", "datascale", "--load", "medium", "-w", "yaml")},
	} {
		run(c)
	}

	for _, k := range []string{"/etcdctl-check-perf/k", "/etcdctl-check-datascale/k"} {
		if _, err := cli.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []checkCase{
		{name: "perf/prefix-has-keys", args: args("check", "perf")},
		{name: "perf/custom-prefix-has-keys", args: args("check", "perf", "--prefix", "/etcdctl-check-datascale/", "--load", "m")},
		{name: "datascale/prefix-has-keys", args: args("check", "datascale")},
		{name: "datascale/custom-prefix-has-keys", args: args("check", "datascale", "--prefix", "/etcdctl-check-perf/")},
	} {
		run(c)
	}
	if _, err := cli.Delete(ctx, "/etcdctl-check-", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}

	run(checkCase{
		name:     "datascale/run",
		args:     args("check", "datascale", "--auto-compact", "--auto-defrag"),
		cairnEnv: []string{"CAIRNCTL_CHECK_DATASCALE_KEYS=500"},
		shape:    true,
	})
	if resp, err := cli.Get(ctx, "/etcdctl-check-", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("check datascale left keys behind: %v, %v", resp, err)
	}
}

// perfVerdictRE is the grammar of check perf's stdout, numbers masked.
var perfVerdictRE = regexp.MustCompile(`^` +
	`(Compacting with revision <n>\nCompacted with revision <n>\n)?` +
	`(Defragmenting "<ep<n>>"\nDefragmented "<ep<n>>"\n)*` +
	`(FAIL: too many errors\n(FAIL: ERROR\(.*\) -> <n>\n)+)?` +
	`(PASS: Throughput is <n> writes/s|FAIL: Throughput too low: <n> writes/s)\n` +
	`(PASS: Slowest request took <n>s|Slowest request took too long: <n>s)\n` +
	`(PASS: Stddev is <n>s|Stddev too high: <n>s)\n` +
	`(PASS|FAIL)\n$`)

// TestCheckPerfShort runs check perf for one second against an in-process
// Cairn member and compares the shape of its output with etcdctl's
// recorded run. A loaded machine may miss the performance targets: the
// output must then still follow etcdctl's grammar, with the failed
// verdicts and exit code 1.
func TestCheckPerfShort(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a member for a second")
	}
	m := framework.StartMember(t)
	eps := []string{m.Endpoint}
	got := runCairnctl(ctltest.Invocation{
		Args: args("--endpoints="+m.Endpoint, "check", "perf", "--auto-compact", "--auto-defrag"),
		Env:  []string{"CAIRNCTL_CHECK_PERF_SECONDS=1"},
	})
	if resp, err := m.Client().Get(waitContext(t), "/etcdctl-check-perf/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("check perf left keys behind: %v, %v", resp, err)
	}
	recorded := func(name string) string {
		b, err := os.ReadFile("testdata/check/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return checkShape(string(b), []string{recordedEndpoint})
	}
	wantOut, wantErr := recorded("etcdctl-perf-auto.stdout"), recorded("etcdctl-perf-auto.stderr")
	gotOut, gotErr := checkShape(got.Stdout, eps), checkShape(got.Stderr, eps)
	if !perfVerdictRE.MatchString(wantOut) {
		t.Fatalf("the grammar does not fit etcdctl's recorded output %q", wantOut)
	}
	if gotErr != wantErr {
		t.Errorf("stderr differs:\netcdctl:  %q\ncairnctl: %q", wantErr, gotErr)
	}
	if strings.HasSuffix(gotOut, "\nPASS\n") {
		if got.Code != 0 || gotOut != wantOut {
			t.Errorf("exit %d, stdout differs:\netcdctl:  %q\ncairnctl: %q", got.Code, wantOut, gotOut)
		}
		return
	}
	t.Logf("the member missed a target on this machine:\n%s", got.Stdout)
	if got.Code != 1 || !perfVerdictRE.MatchString(gotOut) || !strings.HasSuffix(gotOut, "\nFAIL\n") {
		t.Errorf("exit %d, stdout not in etcdctl's grammar: %q", got.Code, gotOut)
	}
}

// recordedEndpoint is the endpoint of the recorded etcdctl runs.
const recordedEndpoint = "127.0.0.1:23791"
