package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestPowerLossKeepsAcknowledgedWrites simulates power loss with Pebble's
// crashable in-memory filesystem: while writers run, the filesystem is
// cloned keeping only what was fsynced (plus a random share of what was
// not, as a real disk might). A member started on the clone must hold every
// put acknowledged before the clone was taken, at the revision it was
// acknowledged at. This exercises WAL replay into an engine that lost its
// unsynced writes, and torn WAL tails.
func TestPowerLossKeepsAcknowledgedWrites(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for round := 0; round < 3; round++ {
		fs := vfs.NewCrashableMem()
		m := framework.StartMember(t, func(c *server.Config) {
			c.FS, c.DataDir, c.SnapshotCount = fs, "/data", 100
		})
		c := m.Client()
		ctx := framework.Context(t, 60*time.Second)
		var mu sync.Mutex
		acked := map[string]int64{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("w%d-%05d", w, i)
					r, err := c.Put(ctx, k, k)
					if err != nil {
						t.Errorf("put: %v", err)
						return
					}
					mu.Lock()
					acked[k] = r.Header.Revision
					mu.Unlock()
				}
			}(w)
		}
		// Take the crash image once a random number of puts are
		// acknowledged; snapshot the acknowledged set first, so everything
		// in it was acknowledged before the image.
		target := 200 + rng.IntN(400)
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= target {
				break
			}
			if _, err := c.Get(ctx, "w0-00000"); err != nil { // paces the loop on real work
				t.Fatal(err)
			}
		}
		mu.Lock()
		before := make(map[string]int64, len(acked))
		for k, v := range acked {
			before[k] = v
		}
		mu.Unlock()
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(60), RNG: rng})
		close(stop)
		wg.Wait()
		m.Stop()

		m2 := framework.StartMember(t, func(c *server.Config) { c.FS, c.DataDir = clone, "/data" })
		g, err := m2.Client().Get(ctx, "w", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, kv := range g.Kvs {
			got[string(kv.Key)] = kv.ModRevision
		}
		for k, rev := range before {
			if got[k] != rev {
				t.Fatalf("round %d: put %s acknowledged at revision %d before the crash; after recovery: %d (recovered %d keys at revision %d)", round, k, rev, got[k], len(got), g.Header.Revision)
			}
		}
		t.Logf("round %d: %d acknowledged before the crash image, %d recovered, revision %d", round, len(before), len(got), g.Header.Revision)
		m2.Stop()
	}
}

// TestPowerLossAfterSnapshot: the engine keeps no log of its own, so a raft
// snapshot (after which raft replays only the WAL past it, and releases the
// WAL before it) must come only once the engine holds that state durably.
// Power is lost right after a snapshot, keeping only synced data: every
// acknowledged put must come back at its revision.
func TestPowerLossAfterSnapshot(t *testing.T) {
	fs := vfs.NewCrashableMem()
	m := framework.StartMember(t, func(c *server.Config) {
		c.FS, c.DataDir, c.SnapshotCount = fs, "/data", 100
	})
	ctx := framework.Context(t, 60*time.Second)
	c := m.Client()
	acked := map[string]int64{}
	put := func(i int) {
		t.Helper()
		k := fmt.Sprintf("k%05d", i)
		r, err := c.Put(ctx, k, k)
		if err != nil {
			t.Fatal(err)
		}
		acked[k] = r.Header.Revision
	}
	snaps := snap.New(fs, "/data/member/snap")
	i := 0
	for ; i < 250; i++ {
		put(i)
	}
	for {
		s, err := snaps.Load()
		if err == nil && s.GetMetadata().GetIndex() >= 200 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no snapshot at index 200 or later: %v", err)
		}
		put(i) // each put is a synced WAL write after the snapshot's marker
		i++
	}
	put(i)
	clone := fs.CrashClone(vfs.CrashCloneCfg{})
	m.Stop()

	m2 := framework.StartMember(t, func(c *server.Config) { c.FS, c.DataDir = clone, "/data" })
	g, err := m2.Client().Get(ctx, "k", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, kv := range g.Kvs {
		got[string(kv.Key)] = kv.ModRevision
	}
	for k, rev := range acked {
		if got[k] != rev {
			t.Fatalf("%s acknowledged at revision %d; after the power loss: %d (%d keys recovered)", k, rev, got[k], len(got))
		}
	}
}

// TestRestartRemovesLeftoverSnapshots: a member that crashed while sending
// a snapshot (a checkpoint of its engine) or receiving one (a staged copy)
// removes those directories when it starts again, and keeps its data.
func TestRestartRemovesLeftoverSnapshots(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 30*time.Second)
	if _, err := m.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	memberDir := filepath.Join(m.Config.DataDir, "member")
	sending := filepath.Join(memberDir, "engine-snapshot-00000000000000aa") // snap's checkpoint naming
	receiving := filepath.Join(memberDir, "db.snap-0000000000000007")
	for _, d := range []string{sending, receiving} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "000001.sst"), []byte("leftover"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !snap.IsCheckpointDir(filepath.Base(sending)) {
		t.Fatalf("%s is not named as snap names its checkpoints", sending)
	}
	m.Start()
	for _, d := range []string{sending, receiving} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left after restart: %v", d, err)
		}
	}
	if g, err := m.Client().Get(ctx, "k"); err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v, %v", g, err)
	}
}
