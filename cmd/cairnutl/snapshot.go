package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/internal/table"
	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/storage"
)

// progressEvery is the period of progress logs; shorter runs log none.
const progressEvery = 5 * time.Second

func (a *app) snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot <subcommand>",
		Short: "Manages Cairn snapshot files",
	}
	status := &cobra.Command{
		Use:   "status <filename>",
		Short: "Gets backend snapshot status of a given file",
		Long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
	}
	status.Run = a.do(a.snapshotStatus)

	var ro restoreOptions
	restore := &cobra.Command{
		Use:   "restore <filename> --data-dir {output dir} [options]",
		Short: "Restores a Cairn snapshot file to a data directory of a new cluster",
	}
	f := restore.Flags()
	f.StringVar(&ro.dataDir, "data-dir", "", "Path to the output data directory")
	f.StringVar(&ro.name, "name", server.DefaultName, "Human-readable name for this member")
	f.StringVar(&ro.initialCluster, "initial-cluster", server.DefaultName+"=http://localhost:2380", "Initial cluster configuration for restore bootstrap")
	f.StringVar(&ro.token, "initial-cluster-token", server.DefaultInitialClusterToken, "Initial cluster token for the cluster during restore bootstrap")
	f.StringVar(&ro.peerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster")
	f.BoolVar(&ro.skipHashCheck, "skip-hash-check", false, "Ignore snapshot integrity hash value (the engine inside is still checked)")
	f.Uint64Var(&ro.bump, "bump-revision", 0, "How much to increase the latest revision after restore")
	f.BoolVar(&ro.markCompacted, "mark-compacted", false, "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)")
	f.StringVar(&ro.walDir, "wal-dir", "", "Path to the WAL directory (default: the data directory's member/wal); give cairn the same --wal-dir")
	// etcdutl's bbolt-only flag: known, and ignored.
	f.Uint64("initial-memory-map-size", 0, "ignored: Cairn has no memory-mapped database")
	_ = f.MarkHidden("initial-memory-map-size")
	_ = restore.MarkFlagRequired("data-dir")
	restore.Run = a.do(func(cmd *cobra.Command, args []string) error { return a.snapshotRestore(cmd, args, ro) })

	cmd.AddCommand(status, restore)
	return cmd
}

// dbStatus is etcdutl's snapshot.Status: the same JSON field names.
type dbStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

func (a *app) snapshotStatus(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return exitf(exitBadArgs, "snapshot status requires exactly one argument")
	}
	print, err := a.statusPrinter()
	if err != nil {
		return err
	}
	path := args[0]
	st, err := a.status(path)
	if err != nil {
		return err
	}
	return print(st)
}

// status checks the whole file and computes its status from the engine
// it holds, unpacked into a temporary directory.
func (a *app) status(path string) (dbStatus, error) {
	lg := a.logger()
	f, size, err := openSnapshot(path)
	if err != nil {
		return dbStatus{}, err
	}
	defer f.Close()
	tmp, err := os.MkdirTemp("", "cairnutl-status-")
	if err != nil {
		return dbStatus{}, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "db")
	r := newProgress(f, size, progressEvery, time.Now, func(read, total int64) {
		lg.Info("reading snapshot", zap.String("path", path), zap.Int64("read-bytes", read), zap.Int64("total-bytes", total),
			zap.String("progress", fmt.Sprintf("%d%%", read*100/max(total, 1))))
	})
	info, err := snap.ReceiveBackup(a.ctx, vfs.Default, r, dir, false)
	if err != nil {
		return dbStatus{}, explain(path, err, false)
	}
	eng, err := storage.Open(dir, storage.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		return dbStatus{}, fmt.Errorf("opening the engine in %s: %w", path, err)
	}
	defer eng.Close()
	st, err := mvcc.ReadState(eng)
	if err != nil {
		return dbStatus{}, fmt.Errorf("reading the store in %s: %w", path, err)
	}
	h, err := eng.Hash(a.ctx)
	if err != nil {
		return dbStatus{}, err
	}
	n, err := countKeys(a.ctx, eng)
	if err != nil {
		return dbStatus{}, err
	}
	return dbStatus{Hash: h, Revision: st.Rev, TotalKey: n, TotalSize: info.Body.FileBytes, Version: server.StorageVersion}, nil
}

func countKeys(ctx context.Context, eng *storage.Engine) (int, error) {
	it, err := eng.DB().NewIter(&pebble.IterOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			it.Close()
			return 0, ctx.Err()
		}
	}
	return n, it.Close()
}

func (a *app) statusPrinter() (func(dbStatus) error, error) {
	row := func(s dbStatus) []string {
		return []string{fmt.Sprintf("%x", s.Hash), fmt.Sprint(s.Revision), fmt.Sprint(s.TotalKey), table.Bytes(uint64(s.TotalSize)), s.Version}
	}
	switch a.writeOut {
	case "simple":
		return func(s dbStatus) error {
			_, err := fmt.Fprintln(a.stdout, strings.Join(row(s), ", "))
			return err
		}, nil
	case "json":
		return func(s dbStatus) error {
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, string(b))
			return err
		}, nil
	case "fields":
		return func(s dbStatus) error {
			_, err := fmt.Fprintf(a.stdout, "\"Hash\" : %d\n\"Revision\" : %d\n\"Keys\" : %d\n\"Size\" : %d\n\"Version\" : %s\n",
				s.Hash, s.Revision, s.TotalKey, s.TotalSize, s.Version)
			return err
		}, nil
	case "table":
		return func(s dbStatus) error {
			return table.Render(a.stdout, []string{"hash", "revision", "total keys", "total size", "version"}, [][]string{row(s)})
		}, nil
	case "protobuf":
		return nil, exitf(exitBadFeature, "protobuf not supported as output format")
	}
	return nil, exitf(exitBadFeature, "unsupported output format")
}

type restoreOptions struct {
	dataDir, walDir, name, initialCluster, token, peerURLs string
	skipHashCheck, markCompacted                           bool
	bump                                                   uint64
}

func (a *app) snapshotRestore(cmd *cobra.Command, args []string, o restoreOptions) error {
	if len(args) != 1 {
		return exitf(exitBadArgs, "snapshot restore requires exactly one argument")
	}
	if (o.bump == 0 && o.markCompacted) || (o.bump > 0 && !o.markCompacted) {
		return exitf(exitBadArgs, "--mark-compacted required if --revision-bump > 0")
	}
	if o.bump > math.MaxInt64 {
		return exitf(exitBadArgs, "--bump-revision %d is too large", o.bump)
	}
	path := args[0]
	lg := a.logger()
	f, size, err := openSnapshot(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := newProgress(f, size, progressEvery, time.Now, func(read, total int64) {
		lg.Info("restoring snapshot: in progress", zap.String("path", path), zap.Int64("read-bytes", read), zap.Int64("total-bytes", total),
			zap.String("progress", fmt.Sprintf("%d%%", read*100/max(total, 1))))
	})
	_, err = server.Restore(a.ctx, server.RestoreConfig{
		Snapshot:            r,
		DataDir:             o.dataDir,
		WALDir:              o.walDir,
		Name:                o.name,
		InitialCluster:      o.initialCluster,
		InitialClusterToken: o.token,
		PeerURLs:            strings.Split(o.peerURLs, ","),
		BumpRevision:        int64(o.bump),
		MarkCompacted:       o.markCompacted,
		SkipHashCheck:       o.skipHashCheck,
		Logger:              lg,
	})
	if err != nil {
		return explain(path, err, true)
	}
	return nil
}

// openSnapshot opens a snapshot file and returns its size.
func openSnapshot(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory, not a snapshot file", path)
	}
	return f, fi.Size(), nil
}

// explain turns an error about the file into a message that says what to
// do.
func explain(path string, err error, restoring bool) error {
	switch {
	case errors.Is(err, snap.ErrEtcdSnapshot):
		return fmt.Errorf("%s is an etcd snapshot (a bbolt database), not a Cairn snapshot: Cairn cannot read it; restore it with etcdutl into an etcd cluster, or take a snapshot of a Cairn member (cairnctl snapshot save)", path)
	case errors.Is(err, snap.ErrNotBackup):
		return fmt.Errorf("%s is not a Cairn snapshot file (%v): give the file written by cairnctl or etcdctl \"snapshot save\" against a Cairn member", path, err)
	case errors.Is(err, snap.ErrBodyTruncated):
		return fmt.Errorf("snapshot file %s is truncated (%v): it was not completely written or copied; use a complete copy, or take a new snapshot", path, err)
	case errors.Is(err, snap.ErrBodyChecksum), errors.Is(err, snap.ErrBodyCorrupt):
		hint := ""
		if restoring {
			hint = "; nothing was restored"
		}
		return fmt.Errorf("snapshot file %s is damaged (%v): use another copy, or take a new snapshot%s", path, err, hint)
	case errors.Is(err, server.ErrDataDirNotEmpty):
		return fmt.Errorf("%v: restore into a new or empty directory", err)
	}
	return err
}

// progress reads from r and reports every period, the first time once a
// period has passed.
type progress struct {
	r           io.Reader
	read, total int64
	every       time.Duration
	now         func() time.Time
	last        time.Time
	report      func(read, total int64)
}

func newProgress(r io.Reader, total int64, every time.Duration, now func() time.Time, report func(read, total int64)) *progress {
	return &progress{r: r, total: total, every: every, now: now, last: now(), report: report}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	if t := p.now(); t.Sub(p.last) >= p.every {
		p.last = t
		p.report(p.read, p.total)
	}
	return n, err
}
