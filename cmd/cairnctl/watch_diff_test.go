package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctl"
	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
)

// A watch runs until it is stopped, so its cases are scripts rather than
// command lines: start the CLI through a proxy that sees the server create
// its watches, then write, waiting after each write until its event reached
// the CLI, then end the run and compare everything it printed.
type watchCase struct {
	name string
	// args may hold "{rev}" or "{rev-N}": the server's revision after
	// before ran, minus N.
	args  []string
	env   []string
	stdin string
	// before runs ahead of the CLI: history for --rev.
	before []clientv3.Op
	// compact compacts the history up to the revision after before.
	compact bool
	cmp     compare
	// watches is how many watches the server must have created before
	// the steps run; 0 for a CLI that fails before watching.
	watches int
	// replay makes the steps wait until the history from --rev ({rev})
	// has been delivered: history arriving together with a new event
	// would be one response on one run and two on another.
	replay bool
	steps  []watchStep
	// until is what stdout shows once the last event has been printed;
	// the run is then stopped (or, with stdin set, ended by closing
	// stdin). Without it the run must end by itself.
	until string
	// keepStdin leaves stdin open for a run that must end by itself
	// while interactive: closing it would end the run too.
	keepStdin bool
}

type watchStep struct {
	op    *clientv3.Op
	quiet bool   // the write is outside the watched range: no event
	stdin string // a line for interactive mode
	// watches, when set, waits for that many created watches.
	watches int
	// until waits for stdout to show it before the next step, where the
	// order of output of two watches would otherwise be up to chance.
	until string
}

func wput(k, v string) watchStep { op := clientv3.OpPut(k, v); return watchStep{op: &op} }
func wdel(k string) watchStep    { op := clientv3.OpDelete(k); return watchStep{op: &op} }
func wline(l string) watchStep   { return watchStep{stdin: l + "\n"} }

func (s watchStep) outside() watchStep          { s.quiet = true; return s }
func (s watchStep) waitOut(u string) watchStep  { s.until = u; return s }
func (s watchStep) waitWatches(n int) watchStep { s.watches = n; return s }

// valueMark is how a value shows in the stdout of a format, up to the end of
// its event.
func valueMark(format, v string) string {
	switch format {
	case "json":
		return `"value":"` + base64.StdEncoding.EncodeToString([]byte(v)) + `"`
	case "fields":
		// The last line of the pair: etcdctl writes line by line.
		return `"Value" : "` + v + `"` + "\n\"Lease\" : 0\n"
	case "protobuf":
		// mvccpb.KeyValue field 5, length-delimited; short values only.
		return "\x2a" + string(rune(len(v))) + v
	}
	return "\n" + v + "\n"
}

var watchFormats = []string{"simple", "json", "fields", "protobuf"}

func watchCases() []watchCase {
	var cs []watchCase
	add := func(c ...watchCase) { cs = append(cs, c...) }

	// One key, a prefix, a range, each in every format; table fails at
	// the first event.
	for _, f := range watchFormats {
		add(
			watchCase{
				name: "key/" + f, args: args("watch", "wk/"+f, "-w", f), watches: 1,
				steps: []watchStep{wput("wk/"+f, "a"), wput("wk/"+f, "b"), wdel("wk/" + f), wput("wk/"+f+"x", "no").outside(), wput("wk/"+f, "END")},
				until: valueMark(f, "END"),
			},
			watchCase{
				name: "prefix/" + f, args: args("watch", "--prefix", "wp/"+f+"/", "-w", f), watches: 1,
				steps: []watchStep{wput("wp/"+f+"/a", "1"), wput("wp/"+f+"x", "no").outside(), wput("wp/"+f+"/b", "2"), wdel("wp/" + f + "/a"), wput("wp/"+f+"/z", "END")},
				until: valueMark(f, "END"),
			},
			watchCase{
				name: "range/" + f, args: args("watch", "wr/"+f+"/b", "wr/"+f+"/d", "-w", f), watches: 1,
				steps: []watchStep{wput("wr/"+f+"/a", "no").outside(), wput("wr/"+f+"/b", "1"), wput("wr/"+f+"/d", "no").outside(), wput("wr/"+f+"/c", "END")},
				until: valueMark(f, "END"),
			},
			watchCase{
				name: "prev-kv/" + f, args: args("watch", "wv/"+f, "--prev-kv", "-w", f), watches: 1,
				steps: []watchStep{wput("wv/"+f, "old"), wput("wv/"+f, "new"), wdel("wv/" + f), wput("wv/"+f, "END")},
				until: valueMark(f, "END"),
			},
			watchCase{
				name:   "rev-replay/" + f,
				before: []clientv3.Op{clientv3.OpPut("wh/"+f, "h1"), clientv3.OpPut("wh/"+f, "h2"), clientv3.OpDelete("wh/" + f), clientv3.OpPut("wh/"+f, "h3")},
				args:   args("watch", "wh/"+f, "--rev", "{rev-2}", "-w", f), watches: 1, replay: true,
				steps: []watchStep{wput("wh/"+f, "END")},
				until: valueMark(f, "END"),
			},
			watchCase{name: "compacted/" + f, args: args("watch", "foo", "--rev", "2", "-w", f), compact: true},
		)
	}
	add(
		watchCase{name: "key/table", args: args("watch", "wt", "-w", "table"), watches: 1, steps: []watchStep{wput("wt", "v")}},
		watchCase{
			name: "key/hex", args: args("watch", "wx", "--hex", "--prev-kv"), watches: 1,
			steps: []watchStep{wput("wx", "\x00\xff"), wput("wx", "END")},
			until: `\x45\x4e\x44`,
		},
		watchCase{
			name: "key/fields-hex", args: args("watch", "wx", "--hex", "-w", "fields"), watches: 1,
			steps: []watchStep{wput("wx", "END")},
			until: "\"Value\" : \"END\"\n\"Lease\" : 0000000000000000\n",
		},
		watchCase{
			name: "prefix/all-keys", args: args("watch", "--prefix", ""), watches: 1,
			steps: []watchStep{wput("anything", "END")},
			until: "END",
		},
		watchCase{
			name: "rev-replay/prefix-prev-kv",
			before: []clientv3.Op{clientv3.OpPut("whp/a", "1"), clientv3.OpPut("whp/b", "2"), clientv3.OpPut("whp/a", "3"),
				clientv3.OpDelete("whp/", clientv3.WithPrefix())},
			args:    args("watch", "--prefix", "whp/", "--prev-kv", "--rev", "{rev-3}", "-w", "json"),
			watches: 1, replay: true,
			steps: []watchStep{wput("whp/c", "END")},
			until: valueMark("json", "END"),
		},
		watchCase{
			name: "extra-args-ignored", args: args("watch", "wz", "wz9", "extra"), watches: 1,
			steps: []watchStep{wput("wz1", "no").outside(), wput("wz", "END")},
			until: "END",
		},
	)

	// -- command: the event in the environment.
	show := "echo rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE; env | grep ^ETCD_ | sort"
	add(
		watchCase{
			name: "exec/env", args: args("watch", "we", "--", "sh", "-c", show), watches: 1,
			steps: []watchStep{wput("we", "v 1"), wdel("we"), wput("we", "END")},
			until: "ETCD_WATCH_VALUE=\"END\"\n",
		},
		watchCase{
			name: "exec/prefix-json", args: args("watch", "--prefix", "wep/", "-w", "json", "--prev-kv", "--", "sh", "-c", show), watches: 1,
			steps: []watchStep{wput("wep/a", "1"), wput("wep/a", "END")},
			until: "ETCD_WATCH_VALUE=\"END\"\n",
		},
		watchCase{
			name: "exec/flags-after", args: args("watch", "wef", "--rev", "{rev}", "--", "echo", "event"), watches: 1,
			steps: []watchStep{wput("wef", "END")},
			until: "event\n",
		},
		watchCase{
			name: "exec/name-like-key", args: args("watch", "echo", "zzz", "--", "echo", "fired"), watches: 1,
			steps: []watchStep{wput("echo", "END")},
			until: "fired\n",
		},
		watchCase{
			name: "exec/fails", args: args("watch", "wfail", "--", "sh", "-c", "echo failing; exit 3"), watches: 1,
			steps: []watchStep{wput("wfail", "v")},
		},
		watchCase{
			name: "exec/env-key", args: args("watch", "--", "sh", "-c", "echo $ETCD_WATCH_KEY"), env: []string{"ETCDCTL_WATCH_KEY=wenv"}, watches: 1,
			steps: []watchStep{wput("wenv", "v")},
			until: "\"wenv\"\n",
		},
		watchCase{
			name: "env-range", args: args("watch"), env: []string{"ETCDCTL_WATCH_KEY=wq/a", "ETCDCTL_WATCH_RANGE_END=wq/c"}, watches: 1,
			steps: []watchStep{wput("wq/c", "no").outside(), wput("wq/b", "END")},
			until: "END",
		},
	)

	// Interactive mode: stdin is read line by line and kept open; closing
	// it ends etcdctl with an error.
	add(
		watchCase{
			name: "interactive/two-watches",
			args: args("watch", "-i"), stdin: "watch wi1\nwatch --prefix wi2/ --prev-kv\n", watches: 2,
			steps: []watchStep{
				wput("wi1", "a").waitOut("a\n"),
				wput("wi2/x", "b").waitOut("b\n"),
				wput("wi2/x", "END"),
			},
			until: "END\n",
		},
		watchCase{
			name: "interactive/progress",
			args: args("watch", "-i", "-w", "json"), stdin: "watch wip\n", watches: 1,
			steps: []watchStep{wput("wip", "a"), wline("progress")},
			until: `"Events":null`,
		},
		watchCase{
			name: "interactive/invalid-lines",
			args: args("watch", "--interactive"),
			steps: []watchStep{
				wline(""), wline("get foo"), wline("watch"), wline("watch a b --prefix"),
				wline("watch wil --rev {rev}").waitWatches(1),
				wput("wil", "END"),
			},
			until: "END\n",
		},
		watchCase{
			name: "interactive/exec", args: args("watch", "-i"), watches: 1,
			stdin: "watch wie -- sh -c 'echo got $ETCD_WATCH_VALUE'\n",
			steps: []watchStep{wput("wie", "END")},
			until: "got \"END\"\n",
		},
		watchCase{
			name: "interactive/outer-flags-ignored", args: args("watch", "-i", "--prefix"), stdin: "watch wio\n", watches: 1,
			steps: []watchStep{wput("wio/x", "no").outside(), wput("wio", "END")},
			until: "END\n",
		},
		watchCase{name: "interactive/eof", args: args("watch", "-i")},
		watchCase{name: "interactive/no-newline", args: args("watch", "-i"), stdin: "watch foo"},
		watchCase{name: "interactive/bad-flag", args: args("watch", "-i"), stdin: "watch foo --bogus\n"},
		watchCase{name: "interactive/flag-only", args: args("watch", "-i"), stdin: "watch --prefix\n"},
		watchCase{name: "interactive/separator-last", args: args("watch", "-i"), stdin: "watch foo --\n"},
		watchCase{name: "interactive/bad-quote", args: args("watch", "-i"), stdin: "watch \"\\q\"\n"},
		watchCase{name: "interactive/table", args: args("watch", "-i", "-w", "table"), stdin: "watch wit\n", watches: 1, steps: []watchStep{wput("wit", "v")}, keepStdin: true},
	)

	// Bad arguments.
	add(
		watchCase{name: "bad/no-args", args: args("watch")},
		watchCase{name: "bad/flag-only", args: args("watch", "--prefix")},
		watchCase{name: "bad/prefix-and-range-end", args: args("watch", "a", "b", "--prefix")},
		watchCase{name: "bad/separator-last", args: args("watch", "a", "--")},
		watchCase{name: "bad/env-conflict", args: args("watch", "a"), env: []string{"ETCDCTL_WATCH_KEY=b"}},
		watchCase{name: "bad/env-conflict-exec", args: args("watch", "a", "--", "echo"), env: []string{"ETCDCTL_WATCH_KEY=b"}},
		watchCase{name: "bad/env-range-only", args: args("watch", "a"), env: []string{"ETCDCTL_WATCH_RANGE_END=b"}},
		watchCase{name: "bad/rev", args: args("watch", "a", "--rev", "x"), cmp: usage},
		watchCase{name: "debug-env", args: args("watch", "--debug", "a", "b", "--prefix"), env: []string{"ETCDCTL_WATCH_KEY="}, cmp: debugVars},
		watchCase{name: "bad/format", args: args("watch", "a", "-w", "yaml")},
	)
	return cs
}

// cairnctlRun is cairnctl in process, as a ctltest.RunFunc.
func cairnctlRun(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return ctl.Run(ctl.Invocation{
		Args: append([]string{"etcdctl"}, args...), Env: env,
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Context: ctx,
	})
}

// testWatch runs every watch case with etcdctl against a and cairnctl
// against its twin b, one side after the other: each side writes after its
// own watch started.
func testWatch(t *testing.T, ctlBin string, a, b *ctltest.Server) {
	for _, c := range watchCases() {
		t.Run("watch/"+c.name, func(t *testing.T) {
			want, epWant := runWatch(t, "etcdctl", c, a, func(inv ctltest.Invocation) (*ctltest.Live, error) {
				return ctltest.StartBinary(ctlBin, inv)
			})
			got, epGot := runWatch(t, "cairnctl", c, b, func(inv ctltest.Invocation) (*ctltest.Live, error) {
				return ctltest.StartFunc(cairnctlRun, inv)
			})
			if want.Stopped != got.Stopped {
				t.Errorf("etcdctl stopped: %v (exit %d), cairnctl stopped: %v (exit %d)", want.Stopped, want.Code, got.Stopped, got.Code)
			}
			if want.Stopped || got.Stopped {
				// A stopped run has no exit code to compare.
				got.Code = want.Code
			}
			checkSame(t, diffCase{name: c.name, cmp: c.cmp}, want, got, []string{epWant}, []string{epGot})
		})
	}
}

var revRE = regexp.MustCompile(`\{rev(-\d+)?\}`)

func runWatch(t *testing.T, side string, c watchCase, s *ctltest.Server, start func(ctltest.Invocation) (*ctltest.Live, error)) (ctltest.Result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, op := range c.before {
		if _, err := cli.Do(ctx, op); err != nil {
			t.Fatalf("%s: before: %v", side, err)
		}
	}
	r, err := cli.Get(ctx, "cairnctl-watch-rev")
	if err != nil {
		t.Fatal(err)
	}
	rev := r.Header.Revision
	if c.compact {
		if _, err := cli.Compact(ctx, rev); err != nil {
			t.Fatalf("%s: compact: %v", side, err)
		}
	}
	sub := func(v string) string {
		return revRE.ReplaceAllStringFunc(v, func(m string) string {
			n, _ := strconv.ParseInt(strings.Trim(m, "{rev}"), 10, 64) // "-N" or ""
			return strconv.FormatInt(rev+n, 10)
		})
	}
	p := ctltest.StartProxy(t, s.Endpoint)
	inv := ctltest.Invocation{Args: []string{"--endpoints=" + p.Endpoint}, Env: c.env, Stdin: c.stdin}
	for _, a := range c.args {
		inv.Args = append(inv.Args, sub(a))
	}
	live, err := start(inv)
	if err != nil {
		t.Fatalf("%s: %v", side, err)
	}
	// Waits end early when the CLI exits.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		select {
		case <-live.Exited():
			wcancel()
		case <-wctx.Done():
		}
	}()
	fail := func(what string, err error) ctltest.Result {
		res := live.Stop()
		t.Errorf("%s: %s: %v\nstdout: %q\nstderr: %q", side, what, err, res.Stdout, res.Stderr)
		return res
	}
	if err := p.WaitCreated(wctx, c.watches); err != nil {
		return fail(fmt.Sprintf("waiting for %d watches", c.watches), err), p.Endpoint
	}
	if c.replay {
		if err := p.WaitEvent(wctx, rev); err != nil {
			return fail("waiting for the history", err), p.Endpoint
		}
	}
	for i, st := range c.steps {
		if st.stdin != "" {
			if err := live.WriteStdin(sub(st.stdin)); err != nil {
				return fail(fmt.Sprintf("step %d: stdin", i), err), p.Endpoint
			}
		}
		if st.op != nil {
			resp, err := cli.Do(ctx, *st.op)
			if err != nil {
				t.Fatalf("%s: step %d: %v", side, i, err)
			}
			if !st.quiet {
				var wrote int64
				if r := resp.Put(); r != nil {
					wrote = r.Header.Revision
				} else {
					wrote = resp.Del().Header.Revision
				}
				if err := p.WaitEvent(wctx, wrote); err != nil {
					return fail(fmt.Sprintf("step %d: waiting for the event", i), err), p.Endpoint
				}
			}
		}
		if st.watches > 0 {
			if err := p.WaitCreated(wctx, st.watches); err != nil {
				return fail(fmt.Sprintf("step %d: waiting for %d watches", i, st.watches), err), p.Endpoint
			}
		}
		if st.until != "" {
			if err := live.WaitStdout(wctx, st.until); err != nil {
				return fail(fmt.Sprintf("step %d: waiting for %q", i, st.until), err), p.Endpoint
			}
		}
	}
	if c.until == "" {
		// The CLI must end by itself.
		if !c.keepStdin {
			live.CloseStdin()
		}
		res := live.Wait(ctx)
		if res.Stopped {
			t.Errorf("%s: did not exit by itself", side)
		}
		return res, p.Endpoint
	}
	if err := live.WaitStdout(wctx, c.until); err != nil {
		return fail(fmt.Sprintf("waiting for %q", c.until), err), p.Endpoint
	}
	if slices.Contains(c.args, "-i") || slices.Contains(c.args, "--interactive") {
		live.CloseStdin()
		return live.Wait(ctx), p.Endpoint
	}
	return live.Stop(), p.Endpoint
}
