package main

import (
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestRangeRandomKeys checks that the keys drawn are those put and txn-put
// write over the same key space: in range, padded alike, and all of them
// reached.
func TestRangeRandomKeys(t *testing.T) {
	const space = 20
	w := newRangeRandomWorkload(6, space, false)
	seen := map[string]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		k := w.key(r)
		if len(k) != 6 || k < "000000" || k > "000019" {
			t.Fatalf("key %q outside the 20 keys of 6 bytes", k)
		}
		seen[k] = true
	}
	if len(seen) != space {
		t.Fatalf("2000 draws reached %d of %d keys", len(seen), space)
	}
}

// TestRangeRandomCommandFlags checks the flag validation that runs before
// any connection is made.
func TestRangeRandomCommandFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"range-random", "--consistency", "x"}, "--consistency"},
		{[]string{"range-random", "--key-space-size", "0"}, "--key-space-size 0"},
		{[]string{"range-random", "--key-size", "2", "--key-space-size", "101"}, "holds only 100"},
		{[]string{"range-random", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		cmd := newRootCommand()
		cmd.SetArgs(tt.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

// TestRangeRandomMember loads keys with txn-put against an in-process member
// and reads them back at random: every read over the loaded key space
// succeeds, and reads over a larger one fail on the keys that are missing.
func TestRangeRandomMember(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 2*time.Minute)
	o := &options{
		endpoints: []string{m.Endpoint}, clients: 4, conns: 2, total: 50,
		requestTimeout: 10 * time.Second, dialTimeout: 5 * time.Second, maxErrors: 0, seed: 1,
	}
	k := &keyOptions{keySize: 8, valSize: 64, keySpaceSize: 500, sequentialKeys: true}
	res, err := run(ctx, o, newPutWorkload(k, 10, true, o.seed), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 50 || res.Errors != 0 {
		t.Fatalf("load: %d succeeded, %d failed (%q), want 50, 0", res.Succeeded, res.Errors, res.ErrorSamples)
	}

	for _, serializable := range []bool{false, true} {
		read := *o
		read.total = 400
		res, err = run(ctx, &read, newRangeRandomWorkload(8, 500, serializable), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if res.Succeeded != 400 || res.Errors != 0 || res.failed() {
			t.Fatalf("serializable=%v: %d succeeded, %d failed (%q), want 400, 0", serializable, res.Succeeded, res.Errors, res.ErrorSamples)
		}
	}

	// Keys 500 to 999 were never written: about half the reads miss.
	read := *o
	read.total = 400
	res, err = run(ctx, &read, newRangeRandomWorkload(8, 1000, true), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors < 100 || res.Succeeded < 100 || res.Succeeded+res.Errors != 400 {
		t.Fatalf("half-missing key space: %d succeeded, %d failed, want about 200 each", res.Succeeded, res.Errors)
	}
	if !strings.Contains(res.ErrorSamples[0], "0 keys returned, want 1") {
		t.Fatalf("error sample %q, want a missing key", res.ErrorSamples[0])
	}
}
