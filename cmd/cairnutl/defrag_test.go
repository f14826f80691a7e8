package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestDefragDataDir defragments the data dir of a real member: refused
// while it runs, done once it stopped, and the member comes back with
// every key and the same revision.
func TestDefragDataDir(t *testing.T) {
	m := framework.StartMember(t)
	dir := m.Config.DataDir
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := m.Client()
	rng := rand.New(rand.NewPCG(7, 7))
	val := make([]byte, 4096)
	want := map[string]string{}
	for i := range 200 {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		k := fmt.Sprintf("key/%03d", i)
		if _, err := cli.Put(ctx, k, string(val)); err != nil {
			t.Fatal(err)
		}
		want[k] = string(val)
	}
	for i := 0; i < 200; i += 2 {
		k := fmt.Sprintf("key/%03d", i)
		if _, err := cli.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	get, err := cli.Get(ctx, "key/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	rev := get.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := runUtl("defrag", "--data-dir", dir)
	prefix := fmt.Sprintf("Error: Failed to defragment etcd data[%s] (the member is running: storage: database in use: %s (", dir, filepath.Join(dir, "member", "db"))
	if code != exitError || out != "" || !strings.HasPrefix(errOut, prefix) || !strings.Contains(errOut, "cairnctl defrag") {
		t.Fatalf("defrag of a running member: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	m.Stop()
	out, errOut, code = runUtl("defrag", "--data-dir", dir)
	if code != 0 || out != "" {
		t.Fatalf("defrag: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "\tdefragmenting\t") || !strings.Contains(lines[1], "\tfinished defragmenting directory\t") {
		t.Fatalf("defrag logs:\n%s", errOut)
	}
	for _, field := range []string{`"path": "` + filepath.Join(dir, "member", "db") + `"`, `"current-db-size-bytes-diff": `, `"current-db-size-in-use": `, `"took": `} {
		if !strings.Contains(lines[1], field) {
			t.Errorf("log %q lacks %s", lines[1], field)
		}
	}

	m.Start()
	cli = m.Client()
	get, err = cli.Get(ctx, "key/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if get.Header.Revision != rev || len(get.Kvs) != len(want) {
		t.Fatalf("after defrag: revision %d with %d keys, want %d with %d", get.Header.Revision, len(get.Kvs), rev, len(want))
	}
	for _, kv := range get.Kvs {
		if want[string(kv.Key)] != string(kv.Value) {
			t.Fatalf("key %s changed", kv.Key)
		}
	}
	if _, err := cli.Get(ctx, "key/", clientv3.WithPrefix(), clientv3.WithRev(rev-1)); err == nil {
		t.Error("a revision before the compaction is readable again")
	}
	if _, err := cli.Put(ctx, "after", "defrag"); err != nil {
		t.Fatal(err)
	}
}

func TestDefragRefusesOtherDirs(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "missing")
	empty := filepath.Join(tmp, "empty")
	os.Mkdir(empty, 0o700)
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"defrag"}, "Error: required flag(s) \"data-dir\" not set\n"},
		{[]string{"defrag", "--data-dir", missing}, fmt.Sprintf("Error: Failed to defragment etcd data[%s] (stat %s: no such file or directory)\n", missing, missing)},
		{[]string{"defrag", "--data-dir", file}, fmt.Sprintf("Error: Failed to defragment etcd data[%s] (%s is not a directory)\n", file, file)},
		{[]string{"defrag", "--data-dir", empty}, fmt.Sprintf("Error: Failed to defragment etcd data[%s] (%s is not the data dir of a member: %s holds no database)\n", empty, empty, filepath.Join(empty, "member", "db"))},
	} {
		out, errOut, code := runUtl(c.args...)
		if code != exitError || out != "" || errOut != c.msg {
			t.Errorf("%v: exit %d, %q, %q; want 1, %q", c.args, code, out, errOut, c.msg)
		}
	}
	if ls, _ := os.ReadDir(empty); len(ls) != 0 {
		t.Errorf("defrag left %v in a directory that was not a data dir", ls)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("defrag created the missing data dir")
	}
}
