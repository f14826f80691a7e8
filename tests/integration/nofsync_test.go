package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/internal/faultfs"
	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestUnsafeNoFsync: etcd's --unsafe-no-fsync, which cmd/cairn gives as
// fsutil.NoSync over the filesystem. A member on a filesystem where every
// fsync fails starts, takes writes through raft snapshots and WAL
// segments, and after a clean restart (no machine crash) has every one of
// them; no sync of the WAL, the engine or a directory reached the disk.
func TestUnsafeNoFsync(t *testing.T) {
	inj := &faultfs.FailSyncs{}
	m := framework.StartMember(t, func(c *server.Config) {
		c.FS = fsutil.NoSync(errorfs.Wrap(vfs.Default, inj))
		c.SnapshotCount, c.WALSegmentSize = 50, 64<<10
	})
	ctx := framework.Context(t, 60*time.Second)
	cli := m.Client()
	const n = 300
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%03d", i), fmt.Sprintf("%0512d", i)); err != nil {
			t.Fatal(err)
		}
	}
	m.Restart()
	resp, err := m.Client().Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != n {
		t.Fatalf("after the restart: %v keys, %v; want %d", resp, err, n)
	}
	if got := inj.Syncs(); got != 0 {
		t.Errorf("%d syncs reached the filesystem", got)
	}
}
