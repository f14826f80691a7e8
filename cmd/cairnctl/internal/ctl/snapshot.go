package ctl

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/internal/table"
	"github.com/cairn-kv/cairn/snap"
)

// "snapshot save" does what etcdctl's does, with the same messages, logs
// and exit codes: it streams Maintenance.Snapshot from the one endpoint
// given into FILE.part, fsyncs it, and renames it to FILE. On top of that
// it checks what it received before the rename: a Cairn snapshot file in
// full (its format, the engine's own checksum and the file's SHA-256
// trailer), any other file (etcd's) by its SHA-256 trailer; a damaged
// stream leaves nothing behind. A save that runs longer than
// progressEvery logs its progress on stderr every progressEvery.

// progressEvery is the period of "snapshot save" progress logs; saves
// shorter than that log none, so their output is etcdctl's.
const progressEvery = 5 * time.Second

func (a *app) snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot <subcommand>",
		Short:   "Manages etcd node snapshots",
		GroupID: groupCluster,
	}
	save := &cobra.Command{
		Use:   "save <filename>",
		Short: "Stores an etcd node backend snapshot to a given file",
	}
	save.Run = a.run(a.snapshotSave)
	cmd.AddCommand(save)
	return cmd
}

func (a *app) snapshotSave(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return exitf(exitBadArgs, "snapshot save expects one argument <filename>")
	}
	lg := a.newLogger(zapcore.InfoLevel)
	spec, err := a.clientConfig(cmd)
	if err != nil {
		return err
	}
	cfg, err := clientv3.NewClientConfig(spec, lg)
	if err != nil {
		return exitWith(exitBadArgs, err)
	}
	// As etcdctl: no deadline unless --command-timeout is given.
	ctx, cancel := context.WithCancel(a.ctx)
	if cmd.Flags().Changed("command-timeout") {
		d, _ := cmd.Flags().GetDuration("command-timeout")
		ctx, cancel = context.WithTimeout(a.ctx, d)
	}
	defer cancel()
	path := args[0]
	version, err := a.saveSnapshot(ctx, lg, *cfg, path)
	if err != nil {
		if a.ctx.Err() != nil {
			return errSignaled
		}
		return exitWith(exitInterrupted, err)
	}
	fmt.Fprintf(a.stdout, "Snapshot saved at %s\n", path)
	if version != "" {
		fmt.Fprintf(a.stdout, "Server version %s\n", version)
	}
	return nil
}

// saveSnapshot fetches the snapshot into path and returns the server's
// version.
func (a *app) saveSnapshot(ctx context.Context, lg *zap.Logger, cfg clientv3.Config, path string) (string, error) {
	clg := lg.Named("client")
	cfg.Logger = clg
	if len(cfg.Endpoints) != 1 {
		return "", fmt.Errorf("snapshot must be requested to one selected node, not multiple %v", cfg.Endpoints)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return "", err
	}
	defer func() {
		if err := cli.Close(); err != nil {
			lg.Error("Failed to close client", zap.Error(err))
		}
	}()

	part := path + ".part"
	defer func() {
		if err := os.RemoveAll(part); err != nil {
			lg.Error("Failed to cleanup .part file", zap.Error(err))
		}
	}()
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("could not open %s (%w)", part, err)
	}
	defer func() {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			lg.Error("Could not close file descriptor", zap.Error(err))
		}
	}()
	lg.Info("created temporary db file", zap.String("path", part))

	start := time.Now()
	// The raw stream rather than clientv3's Snapshot: it tells the
	// remaining bytes, for the progress log, and is never silently
	// restarted halfway (a retried stream would append a second copy).
	ss, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{}, grpc.WaitForReady(true))
	if err != nil {
		clg.Error("streamer failed to create ClientStream", zap.Error(err))
		return "", clientv3.ContextError(ctx, err)
	}
	clg.Info("opened snapshot stream; downloading")
	sr := &snapshotReader{ctx: ctx, ss: ss, lg: clg}
	first, err := sr.recv()
	if err != nil {
		return "", err
	}
	version := first.GetVersion()
	lg.Info("fetching snapshot", zap.String("endpoint", cfg.Endpoints[0]))
	sr.progress = newSaveProgress(progressEvery, time.Now, func(received, total int64) {
		fields := []zap.Field{zap.String("endpoint", cfg.Endpoints[0]), zap.String("received", table.Bytes(uint64(received)))}
		if total > 0 {
			fields = append(fields, zap.String("total", table.Bytes(uint64(total))), zap.String("progress", fmt.Sprintf("%d%%", received*100/total)))
		}
		lg.Info("fetching snapshot: in progress", fields...)
	})
	sr.pending = first

	fw := &recordingWriter{w: f}
	size, verr := verifySnapshot(ctx, io.TeeReader(sr, fw))
	switch {
	case sr.err != nil:
		return version, fmt.Errorf("could not write snapshot: %w", sr.err)
	case fw.err != nil:
		return version, fmt.Errorf("could not write snapshot: %w", fw.err)
	case size%512 != sha256.Size:
		return version, fmt.Errorf("sha256 checksum not found [bytes: %d]", size)
	case verr != nil:
		return version, fmt.Errorf("the snapshot received from %s is damaged, %s was not written (take the snapshot again): %w", cfg.Endpoints[0], path, verr)
	}
	if err := f.Sync(); err != nil {
		return version, fmt.Errorf("could not fsync snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return version, fmt.Errorf("could not close file descriptor: %w", err)
	}
	lg.Info("fetched snapshot",
		zap.String("endpoint", cfg.Endpoints[0]),
		zap.String("size", table.Bytes(uint64(size))),
		zap.Duration("took", time.Since(start)),
		zap.String("etcd-version", version),
	)
	if err := os.Rename(part, path); err != nil {
		return version, fmt.Errorf("could not rename %s to %s (%w)", part, path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	lg.Info("saved", zap.String("path", path))
	return version, nil
}

// verifySnapshot reads a whole snapshot file from r and checks it; it
// returns the bytes read. A Cairn snapshot file is checked in full,
// anything else (etcd's bbolt files) by its SHA-256 trailer only.
func verifySnapshot(ctx context.Context, r io.Reader) (int64, error) {
	cr := &countReader{r: r}
	br := bufio.NewReaderSize(cr, 64<<10)
	head, _ := br.Peek(8)
	var err error
	if snap.IsBackupHeader(head) {
		_, err = snap.VerifyBackup(ctx, br)
	} else {
		_, err = snap.CheckTrailer(br)
	}
	// Count what the stream holds even when the check stopped early, as
	// etcdctl would have saved it all.
	_, _ = io.Copy(io.Discard, br)
	return cr.n, err
}

// snapshotReader reads the blobs of a Snapshot stream. err keeps the
// stream's own error, told apart from a failed check of its contents.
type snapshotReader struct {
	ctx      context.Context
	ss       pb.Maintenance_SnapshotClient
	lg       *zap.Logger
	pending  *pb.SnapshotResponse
	buf      []byte
	received int64
	progress *saveProgress
	err      error
	eof      bool
}

func (s *snapshotReader) recv() (*pb.SnapshotResponse, error) {
	r, err := s.ss.Recv()
	switch {
	case err == io.EOF:
		s.lg.Info("completed snapshot read; closing")
		s.eof = true
		return nil, io.EOF
	case err != nil:
		s.lg.Warn("failed to receive from snapshot stream; closing", zap.Error(err))
		s.err = clientv3.ContextError(s.ctx, err)
		return nil, s.err
	}
	return r, nil
}

func (s *snapshotReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.eof {
			return 0, io.EOF
		}
		r := s.pending
		s.pending = nil
		if r == nil {
			var err error
			if r, err = s.recv(); err != nil {
				return 0, err
			}
		}
		s.buf = r.GetBlob()
		s.received += int64(len(s.buf))
		if s.progress != nil {
			total := int64(0)
			if rem := r.GetRemainingBytes(); rem > 0 {
				// The payload still to come, and the checksum after it.
				total = s.received + int64(rem) + sha256.Size
			}
			s.progress.update(s.received, total)
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// saveProgress calls report at most once per every, the first time once
// every has passed since it was made.
type saveProgress struct {
	every  time.Duration
	now    func() time.Time
	last   time.Time
	total  int64
	report func(received, total int64)
}

func newSaveProgress(every time.Duration, now func() time.Time, report func(received, total int64)) *saveProgress {
	return &saveProgress{every: every, now: now, last: now(), report: report}
}

// update records that received bytes arrived of total (0: unknown; the
// last known total is kept).
func (p *saveProgress) update(received, total int64) {
	if total > 0 {
		p.total = total
	}
	if t := p.now(); t.Sub(p.last) >= p.every {
		p.last = t
		p.report(received, p.total)
	}
}

type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
