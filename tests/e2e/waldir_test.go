package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWALDir: with etcd's --wal-dir the WAL lives in that directory, not
// in the data dir, and an acknowledged write survives SIGKILL. A member
// started with the wrong WAL location refuses to start instead of
// founding a new raft log over its data, both ways. cairnutl snapshot
// restore --wal-dir builds a member that cairn starts with the same
// --wal-dir.
func TestWALDir(t *testing.T) {
	root := t.TempDir()
	dataDir, walDir := filepath.Join(root, "data"), filepath.Join(root, "wal")
	p := startCairn(t, dataDir, "--wal-dir", walDir)
	if out, errOut, code := p.ctl(etcdctlBin, "", "put", "k", "v"); code != 0 || out != "OK\n" {
		t.Fatalf("put: %d %q %s", code, out, errOut)
	}
	p.Kill()
	if _, err := os.Stat(filepath.Join(dataDir, "member", "wal")); !os.IsNotExist(err) {
		t.Fatalf("the data dir holds a WAL (%v)", err)
	}
	segments, err := filepath.Glob(filepath.Join(walDir, "*"))
	if err != nil || len(segments) == 0 {
		t.Fatalf("no WAL files in --wal-dir: %v %v", segments, err)
	}
	p.Restart()
	if out, errOut, code := p.ctl(etcdctlBin, "", "get", "k", "--print-value-only"); code != 0 || out != "v\n" {
		t.Fatalf("get after SIGKILL and restart: %d %q %s", code, out, errOut)
	}
	snapFile := filepath.Join(root, "snap.db")
	if out, errOut, code := p.ctl(etcdctlBin, "", "snapshot", "save", snapFile); code != 0 {
		t.Fatalf("snapshot save: %d %q %s", code, out, errOut)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	// The wrong WAL location, both ways: nothing starts.
	refused := func(args []string, want string) {
		t.Helper()
		q := &proc{t: t, Endpoint: p.Endpoint, DataDir: dataDir, args: args}
		q.launch()
		t.Cleanup(q.Kill)
		select {
		case <-q.exited:
		case <-time.After(60 * time.Second):
			t.Fatalf("cairn %v did not exit", args)
		}
		if code := q.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(q.Log(), want) {
			t.Fatalf("cairn %v: exit %d, want a refusal containing %q:\n%s", args, code, want, q.Log())
		}
	}
	without := make([]string, 0, len(p.args))
	for i := 0; i < len(p.args); i++ {
		if p.args[i] == "--wal-dir" {
			i++
			continue
		}
		without = append(without, p.args[i])
	}
	refused(without, "if this member ran with --wal-dir, start it with the same --wal-dir")
	if err := os.Rename(walDir, filepath.Join(dataDir, "member", "wal")); err != nil {
		t.Fatal(err)
	}
	refused(append(without, "--wal-dir", walDir), "--wal-dir "+walDir+" holds no WAL, but the data dir has one")

	// Restore into a data dir and a WAL dir of their own.
	rData, rWAL := filepath.Join(root, "restored"), filepath.Join(root, "restored-wal")
	if _, errOut, code := runBin(t, cairnutl(t), "snapshot", "restore", snapFile, "--data-dir", rData, "--wal-dir", rWAL); code != 0 {
		t.Fatalf("cairnutl snapshot restore --wal-dir: %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(rData, "member", "wal")); !os.IsNotExist(err) {
		t.Fatalf("the restored data dir holds a WAL (%v)", err)
	}
	r := startCairn(t, rData, "--wal-dir", rWAL)
	if out, errOut, code := r.ctl(etcdctlBin, "", "get", "k", "--print-value-only"); code != 0 || out != "v\n" {
		t.Fatalf("get from the restored member: %d %q %s", code, out, errOut)
	}
}

// TestUnsafeNoFsyncFlag: --unsafe-no-fsync, which test setups such as
// controller-runtime's envtest pass to etcd, starts a member that warns
// it does not fsync, takes writes, and keeps them over a clean restart.
// (tests/integration's TestUnsafeNoFsync shows no sync reaches the disk.)
func TestUnsafeNoFsyncFlag(t *testing.T) {
	p := startCairn(t, "", "--unsafe-no-fsync")
	p.waitLog(`"msg":"fsync is off (--unsafe-no-fsync)`, 10*time.Second)
	if out, errOut, code := p.ctl(etcdctlBin, "", "put", "k", "v"); code != 0 {
		t.Fatalf("put: %d %s %s", code, out, errOut)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	p.Restart()
	if out, errOut, code := p.ctl(etcdctlBin, "", "get", "k", "--print-value-only"); code != 0 || out != "v\n" {
		t.Fatalf("get after the restart: %d %q %s", code, out, errOut)
	}
}
