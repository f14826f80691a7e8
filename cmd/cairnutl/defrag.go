package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/internal/table"
	"github.com/cairn-kv/cairn/storage"
)

// "defrag --data-dir D" compacts the whole storage engine of a stopped
// member (D/member/db), as the member's Defragment RPC does online: the
// contents stay as they are, deleted and compacted data leave the disk.
// Like etcdutl it prints nothing on stdout and logs "defragmenting" and
// "finished defragmenting directory" with etcd's size fields on stderr;
// a failure is "Error: Failed to defragment etcd data[D] (<why>)", exit
// 1. Unlike etcdutl, which waits for a running member to release its
// database, it refuses at once (the member holds Pebble's lock), and it
// refuses a directory that is not a member's data dir instead of
// creating a database there.

func (a *app) defragCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "defrag --data-dir DIR",
		Short: "Defragments the storage of a stopped member",
		Long: `Compacts the whole storage engine of the member whose data dir is DIR,
which must not be running (use "cairnctl defrag" for a running member).`,
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "Required. Data directory of a member that is not running.")
	_ = cmd.MarkFlagRequired("data-dir")
	cmd.Run = a.do(func(*cobra.Command, []string) error {
		if err := a.defrag(dataDir); err != nil {
			return fmt.Errorf("Failed to defragment etcd data[%s] (%v)", dataDir, err)
		}
		return nil
	})
	return cmd
}

func (a *app) defrag(dataDir string) error {
	if fi, err := os.Stat(dataDir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dataDir)
	}
	dbDir := filepath.Join(dataDir, "member", "db")
	// The member's own settings: without a WAL of its own, the engine
	// relies on Close to flush.
	eng, err := storage.OpenExisting(dbDir, storage.Options{DisableWAL: true, CacheSize: 8 << 20, MemTableSize: 4 << 20})
	switch {
	case errors.Is(err, storage.ErrNoDatabase):
		return fmt.Errorf("%s is not the data dir of a member: %s holds no database", dataDir, dbDir)
	case errors.Is(err, storage.ErrLocked):
		return fmt.Errorf("the member is running: %v; stop it first, or defragment it online with cairnctl defrag", err)
	case err != nil:
		return err
	}
	lg := a.logger()
	size, inUse := eng.Sizes()
	lg.Info("defragmenting",
		zap.String("path", dbDir),
		zap.Int64("current-db-size-bytes", size),
		zap.String("current-db-size", table.Bytes(uint64(size))),
		zap.Int64("current-db-size-in-use-bytes", inUse),
		zap.String("current-db-size-in-use", table.Bytes(uint64(inUse))),
	)
	st, err := eng.Defragment(a.ctx)
	if cerr := eng.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	lg.Info("finished defragmenting directory",
		zap.String("path", dbDir),
		zap.Int64("current-db-size-bytes-diff", st.SizeAfter-st.SizeBefore),
		zap.Int64("current-db-size-bytes", st.SizeAfter),
		zap.String("current-db-size", table.Bytes(uint64(st.SizeAfter))),
		zap.Int64("current-db-size-in-use-bytes-diff", st.InUseAfter-st.InUseBefore),
		zap.Int64("current-db-size-in-use-bytes", st.InUseAfter),
		zap.String("current-db-size-in-use", table.Bytes(uint64(st.InUseAfter))),
		zap.Duration("took", st.Took),
	)
	return nil
}
