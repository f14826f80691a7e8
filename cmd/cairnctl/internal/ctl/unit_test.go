package ctl

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestHexEscape(t *testing.T) {
	if got := hexEscape([]byte{0, 'a', 0xff}); got != `\x00\x61\xff` {
		t.Errorf("got %q", got)
	}
	if got := hexEscape(nil); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestSplitArgs(t *testing.T) {
	for line, want := range map[string][]string{
		`put k v`:                        {"put", "k", "v"},
		`put k "a b\tc"`:                 {"put", "k", "a b\tc"},
		`put 'k x' 'it''s'`:              {"put", "k x", "it", "s"},
		`get --prefix   dir/  --limit=2`: {"get", "--prefix", "dir/", "--limit=2"},
	} {
		got, err := splitArgs(line)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	if _, err := splitArgs(`put k "\q"`); err == nil {
		t.Error("bad escape accepted")
	}
}

func TestParseCompare(t *testing.T) {
	for _, tc := range []struct {
		line   string
		target pb.Compare_CompareTarget
		result pb.Compare_CompareResult
		check  func(*pb.Compare) bool
	}{
		{`value("k") = "v"`, pb.Compare_VALUE, pb.Compare_EQUAL, func(c *pb.Compare) bool { return string(c.GetValue()) == "v" }},
		{`val("k x") != ""`, pb.Compare_VALUE, pb.Compare_NOT_EQUAL, func(c *pb.Compare) bool { return len(c.GetValue()) == 0 }},
		{`mod("k") > "5"`, pb.Compare_MOD, pb.Compare_GREATER, func(c *pb.Compare) bool { return c.GetModRevision() == 5 }},
		{`m("k") < "7"`, pb.Compare_MOD, pb.Compare_LESS, func(c *pb.Compare) bool { return c.GetModRevision() == 7 }},
		{`create("k") = "0"`, pb.Compare_CREATE, pb.Compare_EQUAL, func(c *pb.Compare) bool { return c.GetCreateRevision() == 0 }},
		{`version("k") = "3"`, pb.Compare_VERSION, pb.Compare_EQUAL, func(c *pb.Compare) bool { return c.GetVersion() == 3 }},
		// etcdctl v3.7.3 panics on every lease compare; the documented
		// grammar takes a decimal lease ID, which we honour.
		{`lease("k") = "694"`, pb.Compare_LEASE, pb.Compare_EQUAL, func(c *pb.Compare) bool { return c.GetLease() == 694 }},
	} {
		cmp, err := parseCompare(tc.line)
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		c := cmp.GetCompare()
		if c.Target != tc.target || c.Result != tc.result || !tc.check(c) {
			t.Errorf("%s: got %v", tc.line, c)
		}
	}

	for line, want := range map[string]string{
		`value "k" = "v"`:   `malformed comparison: value "k" = "v"`,
		`value("k")="v"`:    `malformed comparison: value("k")="v"; got value("k")  ""`,
		`size("k") = "1"`:   `malformed comparison: size("k") = "1" (unknown target size)`,
		`mod("k") > "five"`: `invalid txn compare request: mod("k") > "five"`,
	} {
		_, err := parseCompare(line)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitInvalidInput || err.Error() != want {
			t.Errorf("%s: got %v, want %q (exit %d)", line, err, want, exitInvalidInput)
		}
	}
	var c *crash
	if _, err := parseCompare(`mod("k") >= "1"`); !errors.As(err, &c) {
		t.Errorf("unknown operator: got %v, want a crash", err)
	}
}

func FuzzParseCompare(f *testing.F) {
	for _, s := range []string{`value("k") = "v"`, `mod("k") > "5"`, `lease("a\"b") != "1"`, `x(`, `(`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = parseCompare(line)
		_, _ = splitArgs(line)
	})
}

// Commands that fail before dialing need no server.
func TestRunWithoutServer(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{"version"}, stdout: "etcdctl version: 3.7.3\nAPI version: 3.7\n"},
		{args: []string{"put"}, code: exitBadArgs, stderr: "Error: put command needs 1 argument and input from stdin or 2 arguments\n"},
		{args: []string{"get", "a", "--order", "x"}, code: exitBadFeature, stderr: "Error: bad sort order x\n"},
		{args: []string{"txn", "x"}, code: exitBadArgs, stderr: "Error: txn command does not accept argument\n"},
		{args: []string{"compaction", "1", "2"}, code: exitBadArgs, stderr: "Error: compaction command needs 1 argument\n"},
		{args: []string{"nosuch"}, code: exitErr, stderr: "Error: unknown command \"nosuch\" for \"etcdctl\"\nRun 'etcdctl --help' for usage.\n"},
	} {
		var out, errb bytes.Buffer
		code := Run(Invocation{Args: append([]string{"/usr/bin/etcdctl"}, tc.args...), Stdin: strings.NewReader(tc.stdin), Stdout: &out, Stderr: &errb})
		if code != tc.code || out.String() != tc.stdout || errb.String() != tc.stderr {
			t.Errorf("%q: got %d %q %q, want %d %q %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestUsageErrorGoesToStderr(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(Invocation{Args: []string{"etcdctl", "get", "--bogus"}, Stdout: &out, Stderr: &errb})
	if code != exitErr || out.Len() != 0 || !strings.HasPrefix(errb.String(), "Error: unknown flag: --bogus\nUsage:\n  etcdctl get") {
		t.Errorf("got %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := Run(Invocation{Args: []string{"etcdctl", "get", "--help"}, Stdout: &out, Stderr: &errb}); code != 0 || errb.Len() != 0 ||
		!strings.HasSuffix(out.String(), "Use \"etcdctl options\" for a list of global command-line options (applies to all commands).\n") {
		t.Errorf("help: got %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
