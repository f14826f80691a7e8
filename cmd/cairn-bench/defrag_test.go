package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/tests/framework"
)

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name     string
		from, to int
		ends     []time.Time
		want     time.Duration
	}{
		{"none", 0, 100, nil, ms(100)},
		{"steady", 0, 100, at(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), ms(10)},
		{"stall inside", 0, 100, at(10, 20, 80, 90, 100), ms(60)},
		// A gap that began before the window counts whole: the writes
		// stalled that long.
		{"stall from before", 50, 100, at(0, 10, 70, 80, 90, 100), ms(60)},
		// And one that ends after it.
		{"stall past the end", 0, 100, at(10, 20, 160), ms(140)},
		{"nothing after", 0, 100, at(10, 20), ms(80)},
		{"unsorted, duplicates", 0, 100, at(90, 10, 10, 50, 100), ms(40)},
		{"all before", 50, 100, at(10, 20), ms(80)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := longestGap(t0.Add(ms(tc.from)), t0.Add(ms(tc.to)), tc.ends)
			if got != tc.want {
				t.Fatalf("longestGap = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDefragMember runs the workload briefly against an in-process Cairn
// member: every phase is reported with puts, the compaction covers the
// history, and the database sizes are read.
func TestDefragMember(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 2*time.Minute)
	o := &options{
		endpoints: []string{m.Endpoint}, clients: 4, conns: 2, rate: 400,
		requestTimeout: 10 * time.Second, dialTimeout: 5 * time.Second, maxErrors: 100, seed: 1,
	}
	d := &defragOptions{
		fillKeys: 2000, fillVersions: 5, fillTxnOps: 100, fillClients: 4, fillConns: 2, fillValSize: 1024,
		keySize: 8, valSize: 64, loadKeys: 100, warmup: 100 * time.Millisecond, baseline: 300 * time.Millisecond,
		opTimeout: time.Minute,
	}
	if err := d.validate(o); err != nil {
		t.Fatal(err)
	}
	res, err := runDefrag(ctx, o, d, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.failed() || res.Errors != 0 {
		t.Fatalf("run failed: %d errors %q, interrupted %v, aborted %v", res.Errors, res.ErrorSamples, res.Interrupted, res.Aborted)
	}
	var names []string
	for _, p := range res.Phases {
		names = append(names, p.Name)
		if p.Puts == 0 || p.Duration <= 0 || p.LongestGap <= 0 || p.Latency.Max < p.Latency.P50 {
			t.Errorf("phase %+v: want puts, a duration, a gap and ordered latencies", p)
		}
	}
	if got := strings.Join(names, " "); got != "baseline compaction defragment after" {
		t.Fatalf("phases %q", got)
	}
	// 10,000 versions in 100 txns, plus the load's puts before the
	// compaction.
	if res.FillPuts != 10000 || res.CompactRev <= 100 {
		t.Fatalf("history of %d puts compacted at revision %d", res.FillPuts, res.CompactRev)
	}
	// Cairn's sizes leave out what its memtables hold (10 MB here, until
	// the defragment flushes them), so only their presence is checked.
	if len(res.Sizes) != 3 || res.Sizes[2].When != "after defragment" || res.Sizes[2].DBSize <= 0 {
		t.Fatalf("db sizes %+v: want three readings", res.Sizes)
	}

	if res.Succeeded == 0 || res.Succeeded < uint64(res.Phases[0].Puts) {
		t.Fatalf("%d puts succeeded in all, %d in the baseline", res.Succeeded, res.Phases[0].Puts)
	}

	// Without the history and the two operations: the two windows alone.
	bare := *d
	bare.fillKeys, bare.noCompact, bare.noDefrag = 0, true, true
	res2, err := runDefrag(ctx, o, &bare, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, p := range res2.Phases {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "baseline after" || res2.FillPuts != 0 || res2.CompactRev != 0 || len(res2.Sizes) != 1 {
		t.Fatalf("--no-compact --no-defrag: phases %q, %d history puts, compacted at %d, sizes %+v", got, res2.FillPuts, res2.CompactRev, res2.Sizes)
	}

	var buf bytes.Buffer
	if err := res.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var j jsonDefragResult
	if err := json.Unmarshal(buf.Bytes(), &j); err != nil || len(j.Phases) != 4 || j.FillPuts != 10000 {
		t.Fatalf("JSON report %s: %v", buf.Bytes(), err)
	}
	buf.Reset()
	if err := res.writeText(&buf); err != nil || !strings.Contains(buf.String(), "defragment") {
		t.Fatalf("text report %q: %v", buf.String(), err)
	}
}

// TestDefragCommandFlags checks the validation that runs before any
// connection is made.
func TestDefragCommandFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"defrag", "--total", "5"}, "--total does not apply"},
		{[]string{"defrag", "--endpoints", "a:1,b:2"}, "exactly one endpoint"},
		{[]string{"defrag", "--fill-keys", "10", "--fill-txn-ops", "3"}, "multiple of --fill-txn-ops"},
		{[]string{"defrag", "--fill-conns", "5", "--fill-clients", "4"}, "--fill-conns 5"},
		{[]string{"defrag", "--load-keys", "0"}, "--load-keys 0"},
		{[]string{"defrag", "--key-size", "2", "--load-keys", "101"}, "holds only 100"},
		{[]string{"defrag", "--baseline", "0s"}, "--baseline"},
	} {
		cmd := newRootCommand()
		cmd.SetArgs(tt.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}
