package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/reference"
)

// Backup and restore as an operator does it: snapshots of a live cluster
// under write load, through clientv3 and through the real etcdctl, checked
// with cairnutl, restored with cairnutl into the data dirs of a new
// cluster of real cairn processes.

var (
	cairnutlOnce sync.Once
	cairnutlBin  string
	cairnutlErr  error
)

// cairnutl builds cmd/cairnutl once into the binaries' directory.
func cairnutl(t *testing.T) string {
	t.Helper()
	cairnutlOnce.Do(func() {
		root, err := reference.RepoRoot()
		if err != nil {
			cairnutlErr = err
			return
		}
		cairnutlBin = filepath.Join(binDir, "cairnutl")
		cmd := exec.Command("go", "build", "-o", cairnutlBin, "./cmd/cairnutl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cairnutlErr = fmt.Errorf("building cairnutl: %v\n%s", err, out)
		}
	})
	if cairnutlErr != nil {
		t.Fatal(cairnutlErr)
	}
	return cairnutlBin
}

// runBin runs a binary and returns stdout, stderr and the exit code.
func runBin(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", bin, err)
	}
	return out.String(), errb.String(), 0
}

type snapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

func statusOf(t *testing.T, file string) snapshotStatus {
	t.Helper()
	out, errOut, code := runBin(t, cairnutl(t), "snapshot", "status", file, "-w", "json")
	if code != 0 {
		t.Fatalf("cairnutl snapshot status %s: exit %d\n%s", file, code, errOut)
	}
	var st snapshotStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status output %q: %v", out, err)
	}
	return st
}

// startRestored restores file into a data dir per member of a new cluster
// of n members (names r0, r1, …) with cairnutl, then starts a cairn
// process on each; extra goes to cairnutl restore.
func startRestored(t *testing.T, file string, n int, extra ...string) []*proc {
	t.Helper()
	ms, initial := newMembers(t, "r", n)
	var ps []*proc
	for _, m := range ms {
		dir := filepath.Join(t.TempDir(), "restored")
		cluster := []string{"--name", m.name, "--initial-cluster", initial,
			"--initial-cluster-token", "restored-token", "--initial-advertise-peer-urls", "http://" + m.peer}
		args := append(append([]string{"snapshot", "restore", file, "--data-dir", dir}, cluster...), extra...)
		if _, errOut, code := runBin(t, cairnutl(t), args...); code != 0 {
			t.Fatalf("cairnutl %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
		ps = append(ps, &proc{t: t, Endpoint: m.client, DataDir: dir, args: append(cluster,
			"--data-dir", dir,
			"--listen-client-urls", "http://"+m.client, "--advertise-client-urls", "http://"+m.client,
			"--listen-peer-urls", "http://"+m.peer,
			"--heartbeat-interval", "20", "--election-timeout", "200")})
	}
	launchCluster(ps)
	return ps
}

func TestBackupRestoreCluster(t *testing.T) {
	ps := startCluster(t, 3)
	c := newClient(t, endpoints(ps)...)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Writers through clientv3 while the snapshots are taken; each key is
	// written once, so the state at revision R is exactly the keys
	// written at or below R.
	w := framework.StartWriters(ctx, t, c, 4, "w")
	w.WaitCount(ctx, 300)

	dir := t.TempDir()
	// clientv3's Maintenance.Snapshot, from member 0.
	one := newClient(t, ps[0].Endpoint)
	defer one.Close()
	rc, err := one.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fromClient := filepath.Join(dir, "client.db")
	f, err := os.Create(fromClient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	f.Close()
	// The real etcdctl's "snapshot save", from member 1.
	fromEtcdctl := filepath.Join(dir, "etcdctl.db")
	out, errOut, code := ps[1].ctl(etcdctlBin, "", "snapshot", "save", fromEtcdctl)
	if code != 0 || !strings.HasPrefix(out, "Snapshot saved at "+fromEtcdctl+"\n") {
		t.Fatalf("etcdctl snapshot save: exit %d\n%s%s", code, out, errOut)
	}
	w.Stop()

	stClient, stEtcdctl := statusOf(t, fromClient), statusOf(t, fromEtcdctl)
	t.Logf("snapshots at revisions %d (clientv3) and %d (etcdctl), %d writes acknowledged", stClient.Revision, stEtcdctl.Revision, w.Count())
	for _, st := range []snapshotStatus{stClient, stEtcdctl} {
		if st.Revision < 300 || st.TotalKey < 300 || st.TotalSize == 0 || st.Version == "" {
			t.Fatalf("implausible status %+v", st)
		}
	}

	// A new cluster of three from the clientv3 snapshot.
	rs := startRestored(t, fromClient, 3)
	reps := endpoints(rs)
	rcli := newClient(t, reps...)
	defer rcli.Close()
	// Exactly the puts acknowledged up to the snapshot's revision.
	w.Verify(ctx, rcli, "the cluster restored from the clientv3 snapshot", stClient.Revision)
	// Every member holds the same state.
	var hashes []uint32
	for _, p := range rs {
		h, err := rcli.HashKV(ctx, p.Endpoint, stClient.Revision)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("restored members' HashKV at %d differ: %v", stClient.Revision, hashes)
	}
	ml, err := rcli.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %v, %v", ml, err)
	}
	for _, m := range ml.Members {
		if !strings.HasPrefix(m.Name, "r") {
			t.Errorf("member %x named %q: the old cluster's members survived", m.ID, m.Name)
		}
	}
	p, err := rcli.Put(ctx, "after-restore", "x")
	if err != nil || p.Header.Revision != stClient.Revision+1 {
		t.Fatalf("put on the restored cluster: %v, %v (want revision %d)", p, err, stClient.Revision+1)
	}
	for _, ep := range reps {
		one := newClient(t, ep)
		r, err := one.Get(ctx, "after-restore")
		one.Close()
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("%s: %v, %v", ep, r, err)
		}
	}

	// etcdctl's file, restored with a revision bump: a watch from an old
	// revision is cancelled as compacted, and new revisions start past
	// the bump.
	const bump = 1000
	b := startRestored(t, fromEtcdctl, 1, "--bump-revision", fmt.Sprint(bump), "--mark-compacted")[0]
	bc := newClient(t, b.Endpoint)
	defer bc.Close()
	wc := bc.Watch(ctx, "w", clientv3.WithPrefix(), clientv3.WithRev(2))
	select {
	case wr := <-wc:
		if !wr.Canceled || wr.CompactRevision != stEtcdctl.Revision+bump || !errors.Is(wr.Err(), rpctypes.ErrCompacted) {
			t.Fatalf("watch from revision 2: %+v (%v), want a compaction cancel at %d", wr, wr.Err(), stEtcdctl.Revision+bump)
		}
	case <-ctx.Done():
		t.Fatal("no compaction cancel")
	}
	if _, err := bc.Get(ctx, "w0-000000", clientv3.WithRev(stEtcdctl.Revision)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read at the old revision: %v", err)
	}
	p, err = bc.Put(ctx, "after-bump", "x")
	if err != nil || p.Header.Revision < stEtcdctl.Revision+bump+1 {
		t.Fatalf("put after the bump: %v, %v (want revision ≥ %d)", p, err, stEtcdctl.Revision+bump+1)
	}
	g, err := bc.Get(ctx, "w", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count == 0 {
		t.Fatalf("the bumped restore lost its keys: %v, %v", g, err)
	}
}

// TestRestoreRefusesDamagedFiles: cairnutl refuses truncated and
// corrupted files, and etcd's, with an error that says what to do, and
// leaves no data dir behind.
func TestRestoreRefusesDamagedFiles(t *testing.T) {
	p := startCairn(t, "")
	dir := t.TempDir()
	file := filepath.Join(dir, "good.db")
	if out, errOut, code := p.ctl(etcdctlBin, "", "snapshot", "save", file); code != 0 {
		t.Fatalf("etcdctl snapshot save: exit %d\n%s%s", code, out, errOut)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x20
	bolt := make([]byte, 4096+32)
	bolt[16], bolt[17], bolt[18], bolt[19] = 0xed, 0xda, 0x0c, 0xed
	for _, c := range []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "is truncated", good[:len(good)*2/3]},
		{"no-trailer", "is truncated", good[:len(good)-32]},
		{"flipped", "is damaged", flipped},
		{"etcd", "is an etcd snapshot", bolt},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := filepath.Join(dir, c.name+".db")
			if err := os.WriteFile(bad, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := runBin(t, cairnutl(t), "snapshot", "status", bad)
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("status: exit %d, stderr %q; want 1 and %q", code, errOut, c.want)
			}
			data := filepath.Join(t.TempDir(), "data")
			_, errOut, code = runBin(t, cairnutl(t), "snapshot", "restore", bad, "--data-dir", data)
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("restore: exit %d, stderr %q; want 1 and %q", code, errOut, c.want)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused restore left %s: %v", data, err)
			}
		})
	}
}
