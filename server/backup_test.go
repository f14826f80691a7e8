package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/tests/framework"
)

// fetchSnapshot reads a whole Maintenance.Snapshot stream from ep and
// checks its framing against etcd's: blobs of at most 32 KiB,
// remaining_bytes counting down to 0, then one 32-byte checksum response,
// no header, the storage version in every response.
func fetchSnapshot(t *testing.T, ctx context.Context, c *clientv3.Client) []byte {
	t.Helper()
	stream, err := pb.NewMaintenanceClient(c.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var resps []*pb.SnapshotResponse
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, r)
	}
	if len(resps) < 2 {
		t.Fatalf("%d responses, want at least data and checksum", len(resps))
	}
	var file []byte
	var payload int64
	for i, r := range resps {
		if r.Header != nil {
			t.Errorf("response %d has a header; etcd sends none", i)
		}
		if r.Version != server.StorageVersion {
			t.Errorf("response %d version %q, want %q", i, r.Version, server.StorageVersion)
		}
		if len(r.Blob) > server.SnapshotChunkSize {
			t.Errorf("response %d carries %d bytes", i, len(r.Blob))
		}
		file = append(file, r.Blob...)
		if i < len(resps)-1 {
			payload += int64(len(r.Blob))
		}
	}
	// remaining_bytes counts the payload still to come after each blob.
	left := payload
	for i, r := range resps[:len(resps)-1] {
		left -= int64(len(r.Blob))
		if int64(r.RemainingBytes) != left {
			t.Fatalf("response %d: remaining_bytes %d, want %d", i, r.RemainingBytes, left)
		}
	}
	last := resps[len(resps)-1]
	if len(last.Blob) != sha256.Size || last.RemainingBytes != 0 {
		t.Fatalf("last response: %d bytes, remaining %d; want the 32-byte checksum", len(last.Blob), last.RemainingBytes)
	}
	if sum := sha256.Sum256(file[:payload]); !bytes.Equal(sum[:], last.Blob) {
		t.Fatal("checksum does not match the payload")
	}
	if payload%snap.BackupAlign != 0 {
		t.Fatalf("payload of %d bytes, not a multiple of %d (etcdctl would refuse it)", payload, snap.BackupAlign)
	}
	return file
}

// restoreInto returns a framework edit that restores file into a fresh
// data dir for the member being configured, with the cluster flags the
// framework chose for it.
func restoreInto(t *testing.T, file []byte, bump int64) func(*server.Config) {
	return func(cfg *server.Config) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "restored")
		var peer []string
		for _, part := range strings.Split(cfg.InitialCluster, ",") {
			if name, url, _ := strings.Cut(part, "="); name == cfg.Name {
				peer = append(peer, url)
			}
		}
		_, err := server.Restore(context.Background(), server.RestoreConfig{
			Snapshot:       bytes.NewReader(file),
			DataDir:        dir,
			Name:           cfg.Name,
			InitialCluster: cfg.InitialCluster,
			PeerURLs:       peer,
			BumpRevision:   bump,
			MarkCompacted:  bump > 0,
		})
		if err != nil {
			t.Fatalf("restore for %s: %v", cfg.Name, err)
		}
		cfg.DataDir = dir
	}
}

func TestSnapshotUnderWritesAndRestore(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	if got := m.Server.Status().StorageVersion; got != server.StorageVersion {
		t.Fatalf("Status reports storage version %q, Snapshot %q", got, server.StorageVersion)
	}
	// Enough data for many chunks.
	val := strings.Repeat("v", 1000)
	for i := range 200 {
		if _, err := c.Put(ctx, fmt.Sprintf("pre/%04d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := c.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var acked sync.Map // key → revision
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k := fmt.Sprintf("load/%d/%06d", w, i)
				r, err := c.Put(ctx, k, k)
				if err != nil {
					return
				}
				acked.Store(k, r.Header.Revision)
			}
		}()
	}
	file := fetchSnapshot(t, ctx, c)
	stop.Store(true)
	wg.Wait()

	info, err := snap.VerifyBackup(ctx, bytes.NewReader(file))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if info.Size != int64(len(file)) || !info.HasTrailer {
		t.Fatalf("verify: %+v", info)
	}

	r := framework.StartCluster(t, 1, restoreInto(t, file, 0)).Members[0]
	rc := r.Client()
	got, err := rc.Get(ctx, "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	snapRev := got.Header.Revision
	present := map[string]int64{}
	for _, kv := range got.Kvs {
		present[string(kv.Key)] = kv.ModRevision
		if kv.ModRevision > snapRev {
			t.Errorf("%s at %d, after the restored revision %d", kv.Key, kv.ModRevision, snapRev)
		}
	}
	for i := range 200 {
		if _, ok := present[fmt.Sprintf("pre/%04d", i)]; !ok {
			t.Fatalf("pre/%04d missing", i)
		}
	}
	// Point in time: exactly the acknowledged writes at or below the
	// snapshot's revision are there.
	acked.Range(func(k, v any) bool {
		rev := v.(int64)
		if _, ok := present[k.(string)]; ok != (rev <= snapRev) {
			t.Errorf("%s written at %d: present %v with the snapshot at %d", k, rev, ok, snapRev)
		}
		return true
	})
	// Leases survive, with their keys.
	ttl, err := rc.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || ttl.GrantedTTL != 3600 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "leased" {
		t.Fatalf("lease after restore: %+v, %v", ttl, err)
	}
	// A new cluster: its own ID and member, fresh raft state, writable.
	if r.Server.ClusterID() == m.Server.ClusterID() && r.Server.ID() == m.Server.ID() {
		t.Error("restored member has the original's identity")
	}
	ml, err := rc.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 || ml.Members[0].ID != r.Server.ID() || ml.Members[0].Name != "m0" {
		t.Fatalf("member list: %+v, %v", ml, err)
	}
	p, err := rc.Put(ctx, "after", "x")
	if err != nil || p.Header.Revision != snapRev+1 {
		t.Fatalf("put after restore: %v, %v (want revision %d)", p, err, snapRev+1)
	}
	// The restored member restarts like any member.
	r.Restart()
	if g, err := r.Client().Get(ctx, "after"); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("after restart: %v, %v", g, err)
	}
}

func TestSnapshotStopsWhenDraining(t *testing.T) {
	m := framework.StartMember(t)
	c := m.Client()
	ctx := framework.Context(t, 30*time.Second)
	m.Server.Drain()
	stream, err := pb.NewMaintenanceClient(c.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrStopped) {
		t.Fatalf("snapshot from a draining member: %v, want %v", err, rpctypes.ErrStopped)
	}
}

func TestRestoreRefuses(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 30*time.Second)
	file := fetchSnapshot(t, ctx, m.Client())
	base := func(dir string) server.RestoreConfig {
		return server.RestoreConfig{
			Snapshot:       bytes.NewReader(file),
			DataDir:        dir,
			Name:           "a",
			InitialCluster: "a=http://127.0.0.1:1,b=http://127.0.0.1:2",
			PeerURLs:       []string{"http://127.0.0.1:1"},
		}
	}

	// A data dir with anything in it is never touched.
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Restore(ctx, base(busy)); !errors.Is(err, server.ErrDataDirNotEmpty) {
		t.Fatalf("non-empty data dir: %v", err)
	}

	cases := map[string]func(*server.RestoreConfig){
		"unknown name": func(c *server.RestoreConfig) { c.Name = "z" },
		"peer urls":    func(c *server.RestoreConfig) { c.PeerURLs = []string{"http://127.0.0.1:9"} },
		"bad cluster":  func(c *server.RestoreConfig) { c.InitialCluster = "a" },
		"truncated":    func(c *server.RestoreConfig) { c.Snapshot = bytes.NewReader(file[:len(file)/2]) },
		"bad checksum": func(c *server.RestoreConfig) {
			bad := bytes.Clone(file)
			bad[len(bad)-1] ^= 1
			c.Snapshot = bytes.NewReader(bad)
		},
		"flipped byte": func(c *server.RestoreConfig) {
			bad := bytes.Clone(file)
			bad[len(bad)/3] ^= 0x40
			c.Snapshot = bytes.NewReader(bad)
			c.SkipHashCheck = true // the body's own checksum still catches it
		},
		"negative bump": func(c *server.RestoreConfig) { c.BumpRevision = -1 },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "new")
			cfg := base(dir)
			edit(&cfg)
			if _, err := server.Restore(ctx, cfg); err == nil {
				t.Fatal("restore succeeded")
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the failed restore left %s: %v", dir, err)
			}
			// An existing empty data dir stays, empty.
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			cfg = base(dir)
			edit(&cfg)
			if _, err := server.Restore(ctx, cfg); err == nil {
				t.Fatal("restore succeeded")
			}
			if names, err := os.ReadDir(dir); err != nil || len(names) != 0 {
				t.Fatalf("the failed restore left %v in the data dir (%v)", names, err)
			}
		})
	}

	// With the trailer cut off, only --skip-hash-check restores.
	cut := file[:len(file)-sha256.Size]
	cfg := base(filepath.Join(t.TempDir(), "cut"))
	cfg.Snapshot = bytes.NewReader(cut)
	if _, err := server.Restore(ctx, cfg); !errors.Is(err, snap.ErrBodyTruncated) {
		t.Fatalf("no trailer: %v", err)
	}
	cfg.Snapshot, cfg.SkipHashCheck = bytes.NewReader(cut), true
	res, err := server.Restore(ctx, cfg)
	if err != nil {
		t.Fatalf("no trailer, --skip-hash-check: %v", err)
	}
	want, _ := membership.ParseInitialCluster(cfg.InitialCluster, "etcd-cluster")
	if res.MemberID != want[0].ID || res.ClusterID != membership.ClusterID(want) || len(res.Members) != 2 {
		t.Fatalf("result: %+v", res)
	}
	if res.State.AppliedIndex != 1 || res.State.Rev != m.Server.Rev() {
		t.Fatalf("state: %+v, member at revision %d", res.State, m.Server.Rev())
	}
}

// TestSnapshotFromLearner: a learner serves Snapshot, the one stream etcd
// lets it serve; other streams stay refused.
func TestSnapshotFromLearner(t *testing.T) {
	c := framework.StartCluster(t, 1)
	ctx := framework.Context(t, 30*time.Second)
	if _, err := c.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	l := c.AddMember(ctx, true)
	file := fetchSnapshot(t, ctx, l.Client())
	if _, err := snap.VerifyBackup(ctx, bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	wc := l.Client().Watch(ctx, "k")
	wr := <-wc
	if !errors.Is(rpctypes.Error(wr.Err()), rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)) {
		t.Fatalf("watch on a learner: %v", wr.Err())
	}
}
