package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/storage"
	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/reference"
)

// "snapshot save" runs through etcdctl and cairnctl against the same
// server, one after the other, writing the same path: against an
// in-process Cairn member (Cairn snapshot files) and against the reference
// etcd (bbolt files, which cairnctl checks by their SHA-256 trailer). The
// outputs must match; the two files must hold the same state.

// sizeRE masks the size of the fetched snapshot: two checkpoints of the
// same Cairn state need not have the same files (the engine flushes and
// compacts in the background).
var sizeRE = regexp.MustCompile(`size="[^"]*"`)

func TestSnapshotSaveDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	etcdBin, ctlBin, err := reference.Binaries()
	if err != nil {
		t.Skipf("reference binaries unavailable: %v", err)
	}
	t.Run("cairn", func(t *testing.T) {
		m := framework.StartMember(t)
		ctx := framework.Context(t, 30e9)
		if _, err := m.Client().Put(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		testSnapshotSave(t, ctlBin, m.Endpoint, true)
	})
	t.Run("etcd", func(t *testing.T) {
		s := ctltest.StartServer(t, etcdBin)
		testSnapshotSave(t, ctlBin, s.Endpoint, false)
	})
}

func testSnapshotSave(t *testing.T, ctlBin, ep string, cairn bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.db")
	// run adds --endpoints unless args name their own.
	run := func(t *testing.T, args ...string) (want, got ctltest.Result) {
		t.Helper()
		inv := ctltest.Invocation{Args: args}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--endpoints") }) {
			inv.Args = append([]string{"--endpoints=" + ep}, args...)
		}
		want = ctltest.RunBinary(ctlBin, inv)
		if _, err := os.Stat(path); err == nil {
			if err := os.Rename(path, path+".etcdctl"); err != nil {
				t.Fatal(err)
			}
		}
		got = runCairnctl(inv)
		return want, got
	}
	compare := func(t *testing.T, want, got ctltest.Result) {
		t.Helper()
		eps := []string{ep}
		wo, gotOut := ctltest.Normalize(want.Stdout, eps, true), ctltest.Normalize(got.Stdout, eps, true)
		we, ge := ctltest.Normalize(want.Stderr, eps, true), ctltest.Normalize(got.Stderr, eps, true)
		we, ge = sizeRE.ReplaceAllString(we, `size=<size>`), sizeRE.ReplaceAllString(ge, `size=<size>`)
		if want.Code != got.Code {
			t.Errorf("exit code: etcdctl %d, cairnctl %d", want.Code, got.Code)
		}
		if wo != gotOut {
			t.Errorf("stdout differs:\netcdctl:  %q\ncairnctl: %q", wo, gotOut)
		}
		if we != ge {
			t.Errorf("stderr differs:\netcdctl:  %q\ncairnctl: %q", we, ge)
		}
	}

	same := func(t *testing.T, args ...string) {
		t.Helper()
		want, got := run(t, args...)
		compare(t, want, got)
	}

	t.Run("save", func(t *testing.T) {
		want, got := run(t, "snapshot", "save", path)
		compare(t, want, got)
		if want.Code != 0 {
			t.Fatalf("etcdctl failed: %s", want.Stderr)
		}
		a, err := os.ReadFile(path + ".etcdctl")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
			t.Errorf("cairnctl left %s.part: %v", path, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("saved file mode: %v, %v", fi.Mode(), err)
		}
		if !cairn {
			if _, err := snap.CheckTrailer(bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			return
		}
		if engineHash(t, a) != engineHash(t, b) {
			t.Error("etcdctl's and cairnctl's snapshots of the same state differ")
		}
	})
	t.Run("json-ignored", func(t *testing.T) {
		same(t, "snapshot", "save", path, "-w", "json")
	})
	t.Run("no-args", func(t *testing.T) {
		same(t, "snapshot", "save")
	})
	t.Run("two-args", func(t *testing.T) {
		same(t, "snapshot", "save", path, path)
	})
	t.Run("two-endpoints", func(t *testing.T) {
		same(t, "snapshot", "save", path, "--endpoints="+ep+","+ep)
	})
	t.Run("bad-dir", func(t *testing.T) {
		same(t, "snapshot", "save", filepath.Join(dir, "missing", "snap.db"))
	})
	t.Run("dead-endpoint", func(t *testing.T) {
		if !cairn {
			t.Skip("the same as against Cairn: no server is involved")
		}
		same(t, "snapshot", "save", path, "--endpoints=127.0.0.1:1", "--command-timeout=1s")
	})
	t.Run("bad-format", func(t *testing.T) {
		same(t, "snapshot", "save", path, "-w", "yaml")
	})
}

// engineHash unpacks a Cairn snapshot file and hashes the engine in it.
func engineHash(t *testing.T, file []byte) uint32 {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if _, err := snap.ReceiveBackup(context.Background(), vfs.Default, bytes.NewReader(file), dir, false); err != nil {
		t.Fatal(err)
	}
	eng, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	h, err := eng.Hash(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
