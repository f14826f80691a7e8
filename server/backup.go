package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/raftnode"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/storage"
)

// Backup and restore: etcd's Maintenance.Snapshot streams a consistent
// copy of the member's whole state as a snapshot file (snap.Backup: an
// engine checkpoint framed like etcd's files, with a SHA-256 trailer);
// Restore turns such a file into the data dir of a member of a new
// cluster.

// StorageVersion is the storage version a member reports: Status's
// StorageVersion, and the version field of every Snapshot response, which
// etcdctl prints as "Server version".
const StorageVersion = "3.7.0"

// SnapshotChunkSize is the largest blob of one Snapshot response, etcd's
// 32 KiB.
const SnapshotChunkSize = 32 << 10

// Snapshot streams a point-in-time snapshot file of the member's whole
// state through send, as etcd's Maintenance.Snapshot does: the payload in
// chunks of up to SnapshotChunkSize bytes, each response's remaining_bytes
// counting the payload bytes still to come (0 in the last one), then one
// more response carrying the 32-byte SHA-256 trailer with remaining_bytes
// 0. Responses carry no header, as etcd's, and the version field is
// StorageVersion. Writes continue meanwhile: the copy is a Pebble
// checkpoint holding exactly the writes committed before it was taken,
// and reading it does not hold the engine. The stream ends early, with
// ErrStopped, when the member drains or stops.
func (s *Server) Snapshot(ctx context.Context, send func(*pb.SnapshotResponse) error) error {
	select {
	case <-s.drainc:
		return ErrStopped
	default:
	}
	b, err := snap.OpenBackup(s.eng, s.memberDir)
	if err != nil {
		return err
	}
	defer s.hist.observeSnapshot(time.Now())
	defer b.Close()
	total := b.PayloadSize()
	start := time.Now()
	s.lg.Info("sending database snapshot to client",
		zap.Int64("total-bytes", total), zap.String("storage-version", StorageVersion))
	for sent := int64(0); sent < total; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.drainc:
			return ErrStopped
		default:
		}
		// A new buffer for each response: gRPC may still hold the last
		// one after Send returns (stats handlers read messages lazily).
		buf := make([]byte, min(SnapshotChunkSize, total-sent))
		if _, err := io.ReadFull(b, buf); err != nil {
			return fmt.Errorf("reading the snapshot: %w", err)
		}
		sent += int64(len(buf))
		if err := send(&pb.SnapshotResponse{RemainingBytes: uint64(total - sent), Blob: buf, Version: StorageVersion}); err != nil {
			return err
		}
	}
	sum, err := io.ReadAll(b)
	if err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	s.lg.Info("sending database sha256 checksum to client",
		zap.Int64("total-bytes", total), zap.Int("checksum-size", len(sum)))
	if err := send(&pb.SnapshotResponse{Blob: sum, Version: StorageVersion}); err != nil {
		return err
	}
	s.lg.Info("successfully sent database snapshot to client",
		zap.Int64("total-bytes", total), zap.Duration("took", time.Since(start)))
	return nil
}

// RestoreConfig says how Restore builds a data dir. The member flags
// mean what they mean to cairn (and etcdutl): the new cluster's
// --initial-cluster, --initial-cluster-token, this member's --name and
// --initial-advertise-peer-urls.
type RestoreConfig struct {
	// Snapshot is the snapshot file, read once to its end.
	Snapshot io.Reader
	// DataDir is the data dir to create; it must not exist or be empty.
	DataDir string
	// WALDir, when set, is where the WAL goes instead of
	// DataDir/member/wal (etcd's --wal-dir, to be given to cairn too); it
	// must not exist or be empty.
	WALDir string
	// Name is this member's name in InitialCluster.
	Name string
	// InitialCluster lists the new cluster's members, "name=url,…".
	InitialCluster string
	// InitialClusterToken seeds the member and cluster IDs; default
	// DefaultInitialClusterToken, as cairn's.
	InitialClusterToken string
	// PeerURLs are this member's advertised peer URLs; they must be its
	// URLs in InitialCluster.
	PeerURLs []string
	// BumpRevision raises the revision by that much (0: keep it);
	// MarkCompacted compacts at the resulting revision. See
	// mvcc.RestoreOptions.
	BumpRevision  int64
	MarkCompacted bool
	// SkipHashCheck accepts a file whose SHA-256 trailer is missing or
	// wrong; the engine inside is still checked against its own.
	SkipHashCheck bool
	// FS is the filesystem of DataDir; default vfs.Default.
	FS vfs.FS
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// RestoreResult describes a restored data dir.
type RestoreResult struct {
	MemberID, ClusterID uint64
	Members             []membership.Member
	// State is the restored store's: its revision, compact revision and
	// applied raft position (1, as a new cluster's).
	State mvcc.State
	// Snapshot describes the file that was read.
	Snapshot snap.BackupInfo
}

// ErrDataDirNotEmpty refuses to restore over existing data.
var ErrDataDirNotEmpty = errors.New("server: data dir not empty")

// Restore builds, from a snapshot file, the data dir of a member of a new
// cluster: the snapshot's keys, values, revisions, leases and auth data,
// the member list replaced by cfg.InitialCluster's members, and a fresh
// raft state. That raft state is exactly the one a new member
// bootstrapping from cfg.InitialCluster writes (a raft snapshot at index
// 1, term 1, with the initial members as voters), and the store's applied
// index is 1, so every member restored from the same file with the same
// cluster flags holds the same state, and cairn starts on the data dir as
// a member that restarts (its own flags' cluster settings are then
// ignored, as for any data dir that holds a member).
//
// Restore writes into DataDir/member.partial and renames it to
// DataDir/member once everything is durable: after a crash DataDir holds
// a complete member or none (a leftover member.partial is never
// started; remove DataDir and restore again). With WALDir the WAL is
// written there just before that rename: after a crash, remove both
// directories and restore again. On an error nothing it created is left.
func Restore(ctx context.Context, cfg RestoreConfig) (res RestoreResult, err error) {
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.InitialClusterToken == "" {
		cfg.InitialClusterToken = DefaultInitialClusterToken
	}
	fs, lg := cfg.FS, cfg.Logger
	if cfg.Snapshot == nil || cfg.DataDir == "" {
		return res, errors.New("restore needs a snapshot file and a data dir")
	}
	initial, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return res, err
	}
	self, err := initialSelf(initial, cfg.Name, cfg.InitialCluster)
	if err != nil {
		return res, err
	}
	if err := checkAdvertisedPeerURLs(self, cfg.PeerURLs); err != nil {
		return res, err
	}
	if cfg.BumpRevision < 0 {
		return res, fmt.Errorf("%w: negative revision bump %d", mvcc.ErrBadRestore, cfg.BumpRevision)
	}

	walCreated := false
	if cfg.WALDir != "" {
		switch names, lerr := fs.List(cfg.WALDir); {
		case lerr == nil && len(names) > 0:
			return res, fmt.Errorf("%w: wal-dir %q not empty", ErrDataDirNotEmpty, cfg.WALDir)
		case lerr != nil && !errors.Is(lerr, os.ErrNotExist):
			return res, fmt.Errorf("%w: wal-dir %q could not be read: %w", ErrDataDirNotEmpty, cfg.WALDir, lerr)
		case lerr != nil:
			walCreated = true
		}
	}
	created := false
	switch names, lerr := fs.List(cfg.DataDir); {
	case lerr == nil && len(names) > 0:
		return res, fmt.Errorf("%w: data-dir %q not empty or could not be read", ErrDataDirNotEmpty, cfg.DataDir)
	case lerr != nil && !errors.Is(lerr, os.ErrNotExist):
		return res, fmt.Errorf("%w: data-dir %q not empty or could not be read: %w", ErrDataDirNotEmpty, cfg.DataDir, lerr)
	case lerr != nil:
		created = true
	}
	if err := fs.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return res, fmt.Errorf("creating data dir %s: %w", cfg.DataDir, err)
	}
	tmp := filepath.Join(cfg.DataDir, "member.partial")
	defer func() {
		if err == nil {
			return
		}
		if created {
			_ = fs.RemoveAll(cfg.DataDir)
		} else {
			_ = fs.RemoveAll(tmp)
		}
		if walCreated {
			_ = fs.RemoveAll(cfg.WALDir)
		}
	}()
	if err := fs.MkdirAll(tmp, 0o700); err != nil {
		return res, err
	}

	lg.Info("restoring snapshot", zap.String("data-dir", cfg.DataDir))
	dbDir := filepath.Join(tmp, "db")
	if res.Snapshot, err = snap.ReceiveBackup(ctx, fs, cfg.Snapshot, dbDir, cfg.SkipHashCheck); err != nil {
		return res, err
	}
	eng, err := storage.Open(dbDir, storage.Options{FS: fs})
	if err != nil {
		return res, err
	}
	res.State, err = mvcc.PrepareRestore(eng, mvcc.RestoreOptions{
		Meta:          mvcc.Meta{AppliedIndex: 1, AppliedTerm: 1},
		BumpRevision:  cfg.BumpRevision,
		MarkCompacted: cfg.MarkCompacted,
	})
	if err == nil {
		err = membership.ResetMembers(eng, initial)
	}
	if cerr := eng.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	if cfg.BumpRevision > 0 {
		lg.Info("bumped the revision", zap.Int64("bump", cfg.BumpRevision), zap.Int64("revision", res.State.Rev))
	}
	if cfg.MarkCompacted {
		lg.Info("marked the revision compacted", zap.Int64("compact-revision", res.State.CompactRev))
	}

	res.MemberID, res.ClusterID, res.Members = self.ID, membership.ClusterID(initial), initial
	md, err := json.Marshal(walMetadata{MemberID: self.ID, ClusterID: res.ClusterID, Name: cfg.Name})
	if err != nil {
		return res, err
	}
	var voters []uint64
	for _, m := range initial {
		voters = append(voters, m.ID)
	}
	if err := raftnode.WriteFounding(fs, tmp, cfg.WALDir, md, voters); err != nil {
		return res, err
	}
	member := filepath.Join(cfg.DataDir, "member")
	if err := fsutil.SyncDir(fs, tmp); err != nil {
		return res, err
	}
	if err := fs.Rename(tmp, member); err != nil {
		return res, err
	}
	if err := fsutil.SyncDir(fs, cfg.DataDir, filepath.Dir(filepath.Clean(cfg.DataDir))); err != nil {
		return res, err
	}
	lg.Info("restored snapshot", zap.String("data-dir", cfg.DataDir),
		zap.String("member-id", fmt.Sprintf("%x", res.MemberID)), zap.String("cluster-id", fmt.Sprintf("%x", res.ClusterID)),
		zap.Int64("revision", res.State.Rev), zap.Int64("compact-revision", res.State.CompactRev))
	return res, nil
}
