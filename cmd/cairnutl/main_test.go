package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/internal/table"
	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/storage"
)

// snapshotFile writes a snapshot file of a store with n keys (one put
// each) and returns its path, the engine's hash and its key count.
func snapshotFile(t *testing.T, n int) (string, uint32, int) {
	t.Helper()
	fs := vfs.NewMem()
	eng, err := storage.Open("/db", storage.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	kv, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		w := kv.Write()
		w.Put(fmt.Appendf(nil, "key/%03d", i), []byte("value"), 0)
		w.End()
		if err := kv.Commit(mvcc.Meta{AppliedIndex: uint64(i + 2), AppliedTerm: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	kv.Close()
	h, err := eng.Hash(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	it, _ := eng.DB().NewIter(nil)
	for ok := it.First(); ok; ok = it.Next() {
		keys++
	}
	it.Close()
	b, err := snap.OpenBackup(eng, "/scratch")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path, h, keys
}

func runUtl(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"cairnutl"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func TestStatus(t *testing.T) {
	path, hash, keys := snapshotFile(t, 20)
	out, errOut, code := runUtl("snapshot", "status", path, "-w", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st dbStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"hash":`, `"revision":`, `"totalKey":`, `"totalSize":`, `"version":`} {
		if !strings.Contains(out, field) {
			t.Errorf("json output %q lacks etcdutl's field %s", out, field)
		}
	}
	if st.Hash != hash || st.Revision != 21 || st.TotalKey != keys || st.TotalSize == 0 || st.Version != "3.7.0" {
		t.Fatalf("status %+v; want hash %x, revision 21, %d keys", st, hash, keys)
	}
	size := table.Bytes(uint64(st.TotalSize))
	row := fmt.Sprintf("%x, 21, %d, %s, 3.7.0\n", hash, keys, size)
	if out, _, _ := runUtl("snapshot", "status", path); out != row {
		t.Errorf("simple: %q, want %q", out, row)
	}
	fields := fmt.Sprintf("\"Hash\" : %d\n\"Revision\" : 21\n\"Keys\" : %d\n\"Size\" : %d\n\"Version\" : 3.7.0\n", hash, keys, st.TotalSize)
	if out, _, _ := runUtl("snapshot", "status", path, "-w", "fields"); out != fields {
		t.Errorf("fields: %q, want %q", out, fields)
	}
	out, _, _ = runUtl("snapshot", "status", path, "-w", "table")
	lines := strings.Split(out, "\n")
	if len(lines) != 6 || !strings.Contains(lines[1], "│   HASH   │ REVISION │ TOTAL KEYS │") || !strings.HasSuffix(lines[3], "│   3.7.0 │") {
		t.Errorf("table:\n%s", out)
	}
	if _, errOut, code := runUtl("snapshot", "status", path, "-w", "yaml"); code != exitBadFeature || errOut != "Error: unsupported output format\n" {
		t.Errorf("bad format: %d %q", code, errOut)
	}
	if _, errOut, code := runUtl("snapshot", "status"); code != exitBadArgs || errOut != "Error: snapshot status requires exactly one argument\n" {
		t.Errorf("no argument: %d %q", code, errOut)
	}
	data, _ := os.ReadFile(path)
	cut := filepath.Join(t.TempDir(), "cut.db")
	os.WriteFile(cut, data[:len(data)-40], 0o600)
	if _, errOut, code := runUtl("snapshot", "status", cut); code != exitError || !strings.Contains(errOut, "is truncated") {
		t.Errorf("truncated: %d %q", code, errOut)
	}
}

func TestRestoreArgs(t *testing.T) {
	path, _, _ := snapshotFile(t, 3)
	dir := filepath.Join(t.TempDir(), "d")
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"snapshot", "restore", path, "--data-dir", dir, "--bump-revision", "5"}, exitBadArgs, "Error: --mark-compacted required if --revision-bump > 0\n"},
		{[]string{"snapshot", "restore", path, "--data-dir", dir, "--mark-compacted"}, exitBadArgs, "Error: --mark-compacted required if --revision-bump > 0\n"},
		{[]string{"snapshot", "restore", "--data-dir", dir}, exitBadArgs, "Error: snapshot restore requires exactly one argument\n"},
		{[]string{"snapshot", "restore", path}, exitError, "Error: required flag(s) \"data-dir\" not set\n"},
		{[]string{"snapshot", "restore", path, "--data-dir", dir, "--name", "x"}, exitError, "Error: couldn't find local name \"x\" in the initial cluster configuration \"default=http://localhost:2380\"\n"},
	} {
		_, errOut, code := runUtl(c.args...)
		if code != c.code || errOut != c.msg {
			t.Errorf("%v: exit %d, %q; want %d, %q", c.args, code, errOut, c.code, c.msg)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%v left %s", c.args, dir)
		}
	}
	// Defaults as etcdutl's: one member "default" at localhost:2380.
	_, errOut, code := runUtl("snapshot", "restore", path, "--data-dir", dir, "--bump-revision", "10", "--mark-compacted")
	if code != 0 {
		t.Fatalf("restore: %d %s", code, errOut)
	}
	for _, p := range []string{"member/db", "member/wal", "member/snap"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("restored data dir lacks %s: %v", p, err)
		}
	}
	_, errOut, code = runUtl("snapshot", "restore", path, "--data-dir", dir)
	if code != exitError || !strings.Contains(errOut, "not empty") || !strings.Contains(errOut, "restore into a new or empty directory") {
		t.Errorf("restore over a data dir: %d %q", code, errOut)
	}
	// A --wal-dir that holds anything is refused too, and the new data
	// dir is not left behind.
	other := filepath.Join(t.TempDir(), "other")
	_, errOut, code = runUtl("snapshot", "restore", path, "--data-dir", other, "--wal-dir", filepath.Join(dir, "member"))
	if code != exitError || !strings.Contains(errOut, `wal-dir "`+filepath.Join(dir, "member")+`" not empty`) {
		t.Errorf("restore into a used --wal-dir: %d %q", code, errOut)
	}
	if _, err := os.Stat(other); err == nil {
		t.Errorf("the refused restore left %s", other)
	}
}

func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	var reports [][2]int64
	p := newProgress(strings.NewReader(strings.Repeat("x", 100)), 100, 5*time.Second, func() time.Time { return now },
		func(read, total int64) { reports = append(reports, [2]int64{read, total}) })
	buf := make([]byte, 10)
	for range 10 {
		now = now.Add(2 * time.Second)
		if _, err := p.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	// Reads at 2s, 4s, 6s, …: reports at 6s, 12s, 18s.
	want := [][2]int64{{30, 100}, {60, 100}, {90, 100}}
	if fmt.Sprint(reports) != fmt.Sprint(want) {
		t.Fatalf("reports %v, want %v", reports, want)
	}
}
