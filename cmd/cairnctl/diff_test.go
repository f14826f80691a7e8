package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctl"
	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
	"github.com/cairn-kv/cairn/tests/reference"
)

// compare says which part of the output must be identical.
type compare int

const (
	exact      compare = iota // stdout, stderr and exit code
	durations                 // exact once Go durations are masked
	tableShape                // durations masked and table padding collapsed
	usage                     // help and usage prose differ: stderr's first line only, no stdout
	lastLine                  // stderr's last line only (usage printed before it)
	debugVars                 // stderr's ETCDCTL_* lines only (gRPC debug logs differ)
)

type diffCase struct {
	name  string
	args  []string // "{ep}" is replaced by the server endpoint of each side
	stdin string
	env   []string // "{ep}" is replaced too
	// shared runs both CLIs against the same server, etcdctl first: for
	// read-only cluster commands whose output names the server's own URLs.
	shared bool
	// noEndpoint leaves out the --endpoints flag the harness adds.
	noEndpoint bool
	cmp        compare
}

func args(s ...string) []string { return s }

// txnIn builds txn's stdin: compares, success requests, failure requests,
// each block ended by an empty line.
func txnIn(cmps, then, els []string) string {
	var b strings.Builder
	for _, block := range [][]string{cmps, then, els} {
		for _, l := range block {
			b.WriteString(l + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

var formats = []string{"simple", "json", "fields", "protobuf", "table"}

func withFormats(name string, a []string) []diffCase {
	var cs []diffCase
	for _, f := range formats {
		cs = append(cs, diffCase{name: name + "/" + f, args: append(append([]string{}, a...), "-w", f)})
	}
	return cs
}

// diffCases run in order against twin servers: every case sees the state
// left by the previous ones, identically on both sides.
func diffCases() []diffCase {
	var cs []diffCase
	add := func(c ...diffCase) { cs = append(cs, c...) }

	// put
	add(
		diffCase{name: "put", args: args("put", "foo", "bar")},
		diffCase{name: "put/prev-kv", args: args("put", "foo", "bar2", "--prev-kv")},
		diffCase{name: "put/prev-kv/json", args: args("put", "foo", "bar3", "--prev-kv", "-w", "json")},
		diffCase{name: "put/prev-kv/fields", args: args("put", "foo", "bar4", "--prev-kv", "-w", "fields")},
		diffCase{name: "put/prev-kv/protobuf", args: args("put", "foo", "bar5", "--prev-kv", "-w", "protobuf")},
		diffCase{name: "put/prev-kv/hex", args: args("put", "foo", "bar6", "--prev-kv", "--hex")},
		diffCase{name: "put/prev-kv/fields-hex", args: args("put", "foo", "bar7", "--prev-kv", "--hex", "-w", "fields")},
		diffCase{name: "put/table-unsupported", args: args("put", "tbl", "v", "-w", "table")},
		diffCase{name: "put/bad-format", args: args("put", "tbl", "v", "-w", "xml")},
		diffCase{name: "put/empty-value", args: args("put", "empty", "")},
		diffCase{name: "put/stdin", args: args("put", "fromstdin"), stdin: "hello\nworld\n"},
		diffCase{name: "put/stdin-binary", args: args("put", "bin"), stdin: "\x00\x01\xfe\xff"},
		diffCase{name: "put/no-value", args: args("put", "novalue")},
		diffCase{name: "put/no-args", args: args("put")},
		diffCase{name: "put/dash-value", args: args("put", "dash", "--", "-v")},
		diffCase{name: "put/ignore-value-missing", args: args("put", "--ignore-value", "nokey")},
		diffCase{name: "put/ignore-value", args: args("put", "--ignore-value", "foo", "--prev-kv")},
		diffCase{name: "put/ignore-value-extra-arg", args: args("put", "--ignore-value", "foo", "x")},
		diffCase{name: "put/ignore-lease", args: args("put", "--ignore-lease", "foo", "bar8")},
		diffCase{name: "put/bad-lease", args: args("put", "--lease", "zz", "k", "v")},
		diffCase{name: "put/unknown-lease", args: args("put", "--lease", "1234abc", "k", "v")},
		diffCase{name: "put/unicode", args: args("put", "ключ", "значение \"q\" \t tab")},
		diffCase{name: "put/newline-key", args: args("put", "new\nline", "v")},
		diffCase{name: "put/html", args: args("put", "<a&b>", "<v>", "-w", "json")},
	)
	for i, kv := range [][2]string{{"dir/a", "3"}, {"dir/b", "1"}, {"dir/c", "2"}, {"dir/d", "5"}, {"dir/b", "4"}, {"dirx", "0"}} {
		add(diffCase{name: fmt.Sprintf("put/dir-%d", i), args: args("put", kv[0], kv[1])})
	}

	// get
	add(withFormats("get", args("get", "foo"))...)
	add(withFormats("get/missing", args("get", "nokey"))...)
	add(withFormats("get/prefix", args("get", "dir/", "--prefix"))...)
	add(withFormats("get/limit", args("get", "dir/", "--prefix", "--limit", "2"))...)
	add(
		diffCase{name: "get/hex", args: args("get", "bin", "--hex")},
		diffCase{name: "get/hex/json", args: args("get", "bin", "--hex", "-w", "json")},
		diffCase{name: "get/hex/fields", args: args("get", "bin", "--hex", "-w", "fields")},
		diffCase{name: "get/binary", args: args("get", "bin")},
		diffCase{name: "get/empty-value/json", args: args("get", "empty", "-w", "json")},
		diffCase{name: "get/empty-value/fields", args: args("get", "empty", "-w", "fields")},
		diffCase{name: "get/unicode/fields", args: args("get", "ключ", "-w", "fields")},
		diffCase{name: "get/newline-key/fields", args: args("get", "new\nline", "-w", "fields")},
		diffCase{name: "get/html/json", args: args("get", "<a&b>", "-w", "json")},
		diffCase{name: "get/range-end", args: args("get", "dir/a", "dir/c")},
		diffCase{name: "get/range-end/json", args: args("get", "dir/a", "dir/c", "-w", "json")},
		diffCase{name: "get/from-key", args: args("get", "--from-key", "dir/c")},
		diffCase{name: "get/from-key-empty", args: args("get", "--from-key", "", "--keys-only")},
		diffCase{name: "get/prefix-empty", args: args("get", "--prefix", "", "--keys-only")},
		diffCase{name: "get/keys-only", args: args("get", "dir/", "--prefix", "--keys-only")},
		diffCase{name: "get/keys-only/json", args: args("get", "dir/", "--prefix", "--keys-only", "-w", "json")},
		diffCase{name: "get/count-only/fields", args: args("get", "dir/", "--prefix", "--count-only", "-w", "fields")},
		diffCase{name: "get/count-only/json", args: args("get", "dir/", "--prefix", "--count-only", "-w", "json")},
		diffCase{name: "get/count-only/simple", args: args("get", "dir/", "--prefix", "--count-only")},
		diffCase{name: "get/print-value-only", args: args("get", "dir/", "--prefix", "--print-value-only")},
		diffCase{name: "get/print-value-only/json", args: args("get", "dir/", "--prefix", "--print-value-only", "-w", "json")},
		diffCase{name: "get/descend", args: args("get", "dir/", "--prefix", "--order", "DESCEND")},
		diffCase{name: "get/ascend-lower", args: args("get", "dir/", "--prefix", "--order", "ascend")},
		diffCase{name: "get/sort-value", args: args("get", "dir/", "--prefix", "--sort-by", "VALUE")},
		diffCase{name: "get/sort-value-desc", args: args("get", "dir/", "--prefix", "--sort-by", "value", "--order", "DESCEND")},
		diffCase{name: "get/sort-create", args: args("get", "dir/", "--prefix", "--sort-by", "CREATE", "--order", "DESCEND")},
		diffCase{name: "get/sort-modify", args: args("get", "dir/", "--prefix", "--sort-by", "MODIFY")},
		diffCase{name: "get/sort-version", args: args("get", "dir/", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND")},
		diffCase{name: "get/sort-key-limit", args: args("get", "dir/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND", "--limit", "1", "-w", "json")},
		diffCase{name: "get/bad-order", args: args("get", "dir/", "--prefix", "--order", "up")},
		diffCase{name: "get/bad-sort", args: args("get", "dir/", "--prefix", "--sort-by", "size")},
		diffCase{name: "get/rev", args: args("get", "foo", "--rev", "2", "-w", "json")},
		diffCase{name: "get/future-rev", args: args("get", "foo", "--rev", "100000")},
		diffCase{name: "get/serializable", args: args("get", "foo", "--consistency", "s")},
		diffCase{name: "get/bad-consistency", args: args("get", "foo", "--consistency", "x")},
		diffCase{name: "get/min-create-rev", args: args("get", "dir/", "--prefix", "--min-create-rev", "30")},
		diffCase{name: "get/max-create-rev", args: args("get", "dir/", "--prefix", "--max-create-rev", "30")},
		diffCase{name: "get/min-mod-rev", args: args("get", "dir/", "--prefix", "--min-mod-rev", "31")},
		diffCase{name: "get/max-mod-rev", args: args("get", "dir/", "--prefix", "--max-mod-rev", "31", "-w", "fields")},
		diffCase{name: "get/min-gt-max-create", args: args("get", "dir/", "--prefix", "--min-create-rev", "9", "--max-create-rev", "3")},
		diffCase{name: "get/min-gt-max-mod", args: args("get", "dir/", "--prefix", "--min-mod-rev", "9", "--max-mod-rev", "3")},
		diffCase{name: "get/prefix-and-from-key", args: args("get", "a", "--prefix", "--from-key")},
		diffCase{name: "get/keys-and-count", args: args("get", "a", "--keys-only", "--count-only")},
		diffCase{name: "get/prefix-with-range-end", args: args("get", "a", "b", "--prefix")},
		diffCase{name: "get/no-args", args: args("get")},
		diffCase{name: "get/stream", args: args("get", "dir/", "--prefix", "--stream", "-w", "json")},
		diffCase{name: "get/prefix-match-command", args: args("ge", "foo")},
		diffCase{name: "get/unknown-flag", args: args("get", "foo", "--bogus"), cmp: usage},
	)

	// txn
	okTxn := txnIn(
		[]string{`value("foo") = "bar8"`, `mod("dir/a") > "0"`, `create("dir/b") < "1000"`, `version("dir/b") = "2"`, `ver("dirx") != "5"`},
		[]string{`put txn/a "hello world"`, `get dir/ --prefix --limit 2`, `del dir/d --prev-kv`, `put txn/b 'single quoted' --prev-kv`},
		[]string{`put txn/failed x`},
	)
	add(
		diffCase{name: "txn/success", args: args("txn"), stdin: okTxn},
		diffCase{name: "txn/success/json", args: args("txn", "-w", "json"), stdin: okTxn},
		diffCase{name: "txn/success/fields", args: args("txn", "-w", "fields"), stdin: okTxn},
		diffCase{name: "txn/success/protobuf", args: args("txn", "-w", "protobuf"), stdin: okTxn},
		diffCase{name: "txn/success/table", args: args("txn", "-w", "table"), stdin: okTxn},
		diffCase{name: "txn/success/hex", args: args("txn", "--hex"), stdin: okTxn},
	)
	failTxn := txnIn(
		[]string{`value("foo") = "nope"`},
		[]string{`put txn/never x`},
		[]string{`get txn/ --prefix`, `put txn/c "c" --prev-kv`, `del txn/ --prefix`},
	)
	add(
		diffCase{name: "txn/failure", args: args("txn"), stdin: failTxn},
		diffCase{name: "txn/failure/json", args: args("txn", "-w", "json"), stdin: failTxn},
		diffCase{name: "txn/failure/fields", args: args("txn", "-w", "fields"), stdin: failTxn},
		diffCase{name: "txn/interactive", args: args("txn", "-i"), stdin: okTxn},
		diffCase{name: "txn/interactive-short", args: args("txn", "--interactive", "-w", "json"), stdin: failTxn},
		diffCase{name: "txn/empty", args: args("txn"), stdin: "\n\n\n"},
		diffCase{name: "txn/only-compares", args: args("txn"), stdin: txnIn([]string{`c("foo") > "1"`, `m("foo") > "1"`, `val("foo") != "x"`}, nil, nil)},
		diffCase{name: "txn/eof", args: args("txn"), stdin: "value(\"foo\") = \"x\"\n"},
		diffCase{name: "txn/no-input", args: args("txn")},
		diffCase{name: "txn/args", args: args("txn", "extra")},
		diffCase{name: "txn/malformed-no-paren", args: args("txn"), stdin: txnIn([]string{`value "foo" = "x"`}, nil, nil)},
		diffCase{name: "txn/malformed-scan", args: args("txn"), stdin: txnIn([]string{`value("foo")="x"`}, nil, nil)},
		diffCase{name: "txn/malformed-unquoted", args: args("txn"), stdin: txnIn([]string{`value(foo) = "x"`}, nil, nil)},
		diffCase{name: "txn/unknown-target", args: args("txn"), stdin: txnIn([]string{`size("foo") = "1"`}, nil, nil)},
		diffCase{name: "txn/bad-number", args: args("txn"), stdin: txnIn([]string{`mod("foo") > "x"`}, nil, nil)},
		diffCase{name: "txn/bad-op", args: args("txn"), stdin: txnIn([]string{`mod("foo") >= "1"`}, nil, nil), cmp: usage},
		diffCase{name: "txn/short-request", args: args("txn"), stdin: txnIn(nil, []string{`put`}, nil)},
		diffCase{name: "txn/unknown-request", args: args("txn"), stdin: txnIn(nil, []string{`watch foo`}, nil)},
		diffCase{name: "txn/request-bad-flag", args: args("txn"), stdin: txnIn(nil, []string{`get foo --bogus`}, nil), cmp: lastLine},
		diffCase{name: "txn/request-arg-error", args: args("txn"), stdin: txnIn(nil, []string{`get foo bar --prefix`}, nil)},
		diffCase{name: "txn/request-no-value", args: args("txn"), stdin: txnIn(nil, []string{`put onlykey --prev-kv`}, nil)},
		diffCase{name: "txn/request-bad-quote", args: args("txn"), stdin: txnIn(nil, []string{`put k "\q"`}, nil)},
		diffCase{name: "txn/request-prefix-match", args: args("txn"), stdin: txnIn(nil, []string{`g foo`, `p txn/p v`, `d txn/p`}, nil)},
	)

	// del
	add(
		diffCase{name: "del/missing", args: args("del", "nokey")},
		diffCase{name: "del/prev-kv", args: args("del", "dir/a", "--prev-kv")},
		diffCase{name: "del/prev-kv/fields", args: args("del", "txn/a", "--prev-kv", "-w", "fields")},
		diffCase{name: "del/prev-kv/protobuf", args: args("del", "txn/b", "--prev-kv", "-w", "protobuf")},
		diffCase{name: "del/table", args: args("del", "nokey", "-w", "table")},
		diffCase{name: "del/range", args: args("del", "dir/b", "dir/d", "--range", "--prev-kv", "-w", "json")},
		diffCase{name: "del/range-warning", args: args("del", "zz1", "zz2")},
		diffCase{name: "del/prefix", args: args("del", "dir", "--prefix", "--prev-kv", "--hex")},
		diffCase{name: "del/from-key", args: args("del", "--from-key", "zzz")},
		diffCase{name: "del/no-args", args: args("del")},
		diffCase{name: "del/too-many", args: args("del", "a", "b", "c")},
		diffCase{name: "del/prefix-and-from-key", args: args("del", "a", "--prefix", "--from-key")},
		diffCase{name: "del/prefix-with-range-end", args: args("del", "a", "b", "--from-key")},
	)

	// compaction
	add(
		diffCase{name: "compaction/future", args: args("compaction", "100000")},
		diffCase{name: "compaction/ok", args: args("compaction", "5")},
		diffCase{name: "compaction/compacted", args: args("compaction", "3")},
		diffCase{name: "compaction/same", args: args("compaction", "5")},
		diffCase{name: "compaction/physical", args: args("compaction", "--physical", "8")},
		diffCase{name: "compaction/get-compacted-rev", args: args("get", "foo", "--rev", "4")},
		diffCase{name: "compaction/not-a-number", args: args("compaction", "x")},
		diffCase{name: "compaction/no-args", args: args("compaction")},
		diffCase{name: "compaction/json-ignored", args: args("compaction", "9", "-w", "json")},
	)

	// defrag: one line per endpoint with the time it took.
	add(
		diffCase{name: "defrag", args: args("defrag"), cmp: durations},
		diffCase{name: "defrag/format-ignored", args: args("defrag", "-w", "json"), cmp: durations},
		diffCase{name: "defrag/args-ignored", args: args("defrag", "extra"), cmp: durations},
		diffCase{name: "defrag/bad-format", args: args("defrag", "-w", "yaml")},
		diffCase{name: "defrag/cluster", args: args("defrag", "--cluster"), cmp: durations},
		diffCase{name: "defrag/env-cluster-not-global", args: args("defrag"), env: []string{"ETCDCTL_CLUSTER=true"}, cmp: durations},
		diffCase{name: "defrag/dead", args: args("defrag", "--endpoints", "127.0.0.1:1", "--command-timeout", "300ms"), noEndpoint: true, cmp: durations},
		diffCase{name: "defrag/one-dead", args: args("defrag", "--endpoints", "127.0.0.1:1,{ep}", "--command-timeout", "300ms"), noEndpoint: true, cmp: durations},
		diffCase{name: "defrag/cluster-dead", args: args("defrag", "--cluster", "--endpoints", "127.0.0.1:1", "--dial-timeout", "300ms", "--command-timeout", "300ms"), noEndpoint: true},
	)

	// cluster commands against one server: their output names its URLs.
	for _, f := range formats {
		add(diffCase{name: "member-list/" + f, args: args("member", "list", "-w", f), shared: true})
		add(diffCase{name: "member-list/hex/" + f, args: args("member", "list", "--hex", "-w", f), shared: true})
		add(diffCase{name: "endpoint-status/" + f, args: args("endpoint", "status", "-w", f), shared: true})
		add(diffCase{name: "endpoint-hashkv/" + f, args: args("endpoint", "hashkv", "-w", f), shared: true})
		add(diffCase{name: "endpoint-status/cluster/" + f, args: args("endpoint", "status", "--cluster", "-w", f), shared: true})
		cmp := durations
		if f == "table" {
			cmp = tableShape
		}
		add(diffCase{name: "endpoint-health/" + f, args: args("endpoint", "health", "-w", f), shared: true, cmp: cmp})
		add(diffCase{name: "endpoint-health/cluster/" + f, args: args("endpoint", "health", "--cluster", "-w", f), shared: true, cmp: cmp})
	}
	add(
		diffCase{name: "endpoint-hashkv/rev", args: args("endpoint", "hashkv", "--rev", "12", "--cluster"), shared: true},
		diffCase{name: "endpoint-hashkv/compacted", args: args("endpoint", "hashkv", "--rev", "3"), shared: true},
		diffCase{name: "member-list/serializable", args: args("member", "list", "--consistency", "s"), shared: true},
		diffCase{name: "member-list/bad-consistency", args: args("member", "list", "--consistency", "x"), shared: true},
		diffCase{name: "endpoint-status/dead", args: args("endpoint", "status", "--endpoints", "127.0.0.1:1", "--command-timeout", "1s", "-w", "table"), shared: true},
		diffCase{name: "endpoint-health/dead", args: args("endpoint", "health", "--endpoints", "127.0.0.1:1", "--command-timeout", "1s"), noEndpoint: true, cmp: durations},
		diffCase{name: "endpoint-health/dead/json", args: args("endpoint", "health", "--endpoints", "127.0.0.1:1", "--command-timeout", "1s", "-w", "json"), noEndpoint: true, cmp: durations},
		diffCase{name: "endpoint/help-unknown", args: args("endpoint", "hashes"), cmp: usage},
	)

	// global flags, environment, errors
	add(
		diffCase{name: "version", args: args("version"), noEndpoint: true},
		diffCase{name: "unknown-command", args: args("frobnicate"), cmp: usage},
		diffCase{name: "bad-format", args: args("get", "foo", "-w", "yaml")},
		diffCase{name: "dead-endpoint", args: args("get", "foo", "--endpoints", "127.0.0.1:1", "--dial-timeout", "1s", "--command-timeout", "1s"), noEndpoint: true},
		diffCase{name: "env/endpoints", args: args("put", "env", "v"), env: []string{"ETCDCTL_ENDPOINTS={ep}"}, noEndpoint: true},
		diffCase{name: "env/write-out", args: args("get", "env"), env: []string{"ETCDCTL_WRITE_OUT=json"}},
		diffCase{name: "env/hex-fields", args: args("get", "env", "-w", "fields"), env: []string{"ETCDCTL_HEX=true"}},
		diffCase{name: "env/conflict", args: args("get", "env"), env: []string{"ETCDCTL_ENDPOINTS={ep}"}},
		diffCase{name: "env/unknown", args: args("get", "env"), env: []string{"ETCDCTL_API=3", "ETCDCTL_FROBNICATE=1"}},
		diffCase{name: "env/local-flag-ignored", args: args("get", "dir"), env: []string{"ETCDCTL_PREFIX=true"}},
		diffCase{name: "env/bad-value-ignored", args: args("get", "env"), env: []string{"ETCDCTL_DIAL_TIMEOUT=soon"}},
		diffCase{name: "env/empty-value", args: args("get", "env"), env: []string{"ETCDCTL_WRITE_OUT="}},
		diffCase{name: "env/cluster", args: args("endpoint", "status", "-w", "json"), env: []string{"ETCDCTL_CLUSTER=true"}, shared: true},
		diffCase{name: "debug", args: args("get", "env", "--debug"), cmp: debugVars},
		diffCase{name: "endpoints-list", args: args("get", "env", "--endpoints", "{ep},{ep}")},
		diffCase{name: "user-password", args: args("get", "env", "--user", "root:pw")},
		diffCase{name: "empty-cert", args: args("get", "env", "--cert", "")},
	)
	return cs
}

// diffBinaries returns the reference etcdctl and the server binary the
// differential tests run against: $CAIRNCTL_DIFF_SERVER, else the
// reference etcd. It skips t when the reference binaries are unavailable.
func diffBinaries(t *testing.T) (ctlBin, server string) {
	t.Helper()
	etcdBin, ctlBin, err := reference.Binaries()
	if err != nil {
		t.Skipf("reference binaries unavailable: %v", err)
	}
	if s := os.Getenv(ctltest.ServerEnv); s != "" {
		return ctlBin, s
	}
	return ctlBin, etcdBin
}

// startTwins starts two fresh servers of the binary under test (see
// diffBinaries): etcdctl runs against one, cairnctl against the other.
func startTwins(t *testing.T) (ctlBin string, a, b *ctltest.Server) {
	t.Helper()
	ctlBin, server := diffBinaries(t)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = ctltest.StartServer(t, server) }()
	go func() { defer wg.Done(); b = ctltest.StartServer(t, server) }()
	wg.Wait()
	if a == nil || b == nil {
		t.FailNow()
	}
	return ctlBin, a, b
}

// differential runs each case with etcdctl against server A and with cairnctl
// (in process, named etcdctl) against its twin B, and compares.
func TestDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	ctlBin, a, b := startTwins(t)

	for _, c := range diffCases() {
		t.Run(c.name, func(t *testing.T) {
			var want, got ctltest.Result
			if c.shared && strings.HasPrefix(c.name, "endpoint-status") {
				settleBackend(t, a.Endpoint)
			}
			if c.shared {
				want = ctltest.RunBinary(ctlBin, invocation(c, a))
				got = runCairnctl(invocation(c, a))
			} else {
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); want = ctltest.RunBinary(ctlBin, invocation(c, a)) }()
				got = runCairnctl(invocation(c, b))
				wg.Wait()
			}
			epsA, epsB := []string{a.Endpoint}, []string{b.Endpoint}
			if c.shared {
				epsB = epsA
			}
			checkSame(t, c, want, got, epsA, epsB)
		})
	}
	testWatch(t, ctlBin, a, b)
}

// settleBackend makes the server's reported database sizes stable before a
// status comparison: etcd commits its backend on a 100 ms timer, and a
// commit landing between the etcdctl and the cairnctl run changes "in use".
// Maintenance.Hash forces that commit; a server without Hash has nothing
// pending (Cairn reports sizes straight from its engine).
func settleBackend(t *testing.T, ep string) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = pb.NewMaintenanceClient(c.ActiveConnection()).Hash(ctx, &pb.HashRequest{})
}

func invocation(c diffCase, s *ctltest.Server) ctltest.Invocation {
	sub := func(v string) string { return strings.ReplaceAll(v, "{ep}", s.Endpoint) }
	var inv ctltest.Invocation
	if !c.noEndpoint {
		inv.Args = append(inv.Args, "--endpoints="+s.Endpoint)
	}
	for _, a := range c.args {
		inv.Args = append(inv.Args, sub(a))
	}
	for _, e := range c.env {
		inv.Env = append(inv.Env, sub(e))
	}
	inv.Stdin = c.stdin
	return inv
}

func runCairnctl(inv ctltest.Invocation) ctltest.Result {
	var out, errb bytes.Buffer
	code := ctl.Run(ctl.Invocation{
		Args:   append([]string{"etcdctl"}, inv.Args...),
		Env:    append(ctltest.BaseEnv(), inv.Env...),
		Stdin:  strings.NewReader(inv.Stdin),
		Stdout: &out,
		Stderr: &errb,
	})
	return ctltest.Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

func checkSame(t *testing.T, c diffCase, want, got ctltest.Result, epsWant, epsGot []string) {
	t.Helper()
	dur := c.cmp == durations || c.cmp == tableShape
	wo, go_ := ctltest.Normalize(want.Stdout, epsWant, dur), ctltest.Normalize(got.Stdout, epsGot, dur)
	we, ge := ctltest.Normalize(want.Stderr, epsWant, dur), ctltest.Normalize(got.Stderr, epsGot, dur)
	switch c.cmp {
	case tableShape:
		wo, go_ = ctltest.TableShape(wo), ctltest.TableShape(go_)
	case usage:
		wo, go_ = "", ""
		we, ge = ctltest.FirstLine(we), ctltest.FirstLine(ge)
	case lastLine:
		we, ge = ctltest.LastLine(we), ctltest.LastLine(ge)
	case debugVars:
		we, ge = envLines(we), envLines(ge)
	}
	if want.Code != got.Code {
		t.Errorf("exit code: etcdctl %d, cairnctl %d", want.Code, got.Code)
	}
	if wo != go_ {
		t.Errorf("stdout differs:\netcdctl:  %q\ncairnctl: %q", wo, go_)
	}
	if we != ge {
		t.Errorf("stderr differs:\netcdctl:  %q\ncairnctl: %q", we, ge)
	}
}

func envLines(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "ETCDCTL_") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
