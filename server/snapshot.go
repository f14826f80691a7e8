package server

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/snap"
)

// State-machine snapshots between members: a leader streams its whole
// engine to a member that is behind the leader's raft log; the member
// stores it, and when raft hands it the snapshot, replaces its engine's
// contents with it in one atomic step.
//
// The engine sent is newer than the raft snapshot it travels with (the
// apply loop runs ahead of raft snapshots), which is harmless: the
// receiver skips entries its state already holds, as after a restart.

// stagedPrefix names the directories holding received engine snapshots,
// member/db.snap-<raft snapshot index, %016x>, until they are installed.
const stagedPrefix = "db.snap-"

func (s *Server) stagedDir(index uint64) string {
	return filepath.Join(s.memberDir, fmt.Sprintf("%s%016x", stagedPrefix, index))
}

// snapshotBody opens the engine snapshot sent to a member behind the log.
func (s *Server) snapshotBody() (io.ReadCloser, error) {
	b, err := snap.OpenEngineSnapshot(s.eng, s.memberDir)
	if err != nil {
		return nil, err
	}
	return &timedSnapshot{ReadCloser: b, start: time.Now(), h: s.hist}, nil
}

// timedSnapshot times an engine snapshot from its opening to its first
// Close, which may come from another goroutine to cut a send short.
type timedSnapshot struct {
	io.ReadCloser
	start time.Time
	h     *histograms
	once  sync.Once
}

func (t *timedSnapshot) Close() error {
	t.once.Do(func() { t.h.observeSnapshot(t.start) })
	return t.ReadCloser.Close()
}

// storeSnapshot receives the engine snapshot that comes with a MsgSnap,
// durably, before raft sees the message.
func (s *Server) storeSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	index := m.GetSnapshot().GetMetadata().GetIndex()
	dir := s.stagedDir(index)
	if err := s.cfg.FS.RemoveAll(dir); err != nil {
		return err
	}
	s.lg.Info("receiving snapshot", zap.String("from", fmt.Sprintf("%x", m.GetFrom())), zap.Uint64("index", index))
	start := time.Now()
	n, err := snap.ReceiveEngineSnapshot(ctx, s.cfg.FS, body, dir)
	if err != nil {
		return fmt.Errorf("receiving the snapshot at index %d: %w", index, err)
	}
	s.hist.snapDBSave.Observe(time.Since(start).Seconds())
	s.lg.Info("received snapshot", zap.Uint64("index", index), zap.Int64("bytes", n))
	return nil
}

// installSnapshot replaces the member's state with the engine snapshot
// stored for the raft snapshot rs. Apply loop only.
func (s *Server) installSnapshot(rs *raftpb.Snapshot) error {
	s.metrics.snapshotApplying.Store(true)
	defer s.metrics.snapshotApplying.Store(false)
	index := rs.GetMetadata().GetIndex()
	dir := s.stagedDir(index)
	if err := s.installSnapshotFiles(dir); err != nil {
		return fmt.Errorf("installing the snapshot at index %d from %s: %w", index, dir, err)
	}
	if got := s.kv.Meta().AppliedIndex; got < index {
		return fmt.Errorf("the snapshot's engine applied index %d is behind its raft index %d", got, index)
	}
	s.syncPeers()
	s.hub.Resync(s.kv.Rev())
	s.removeStaged(false)
	s.lg.Info("installed snapshot", zap.Uint64("raft-index", index),
		zap.Uint64("applied-index", s.kv.Meta().AppliedIndex), zap.Int64("revision", s.kv.Rev()))
	return nil
}

// recoverSnapshot finishes an install that a crash interrupted: raft
// persisted a snapshot newer than the engine, whose engine snapshot is
// still staged. Start-up only.
func (s *Server) recoverSnapshot(snapIndex uint64) error {
	dir := s.stagedDir(snapIndex)
	if _, err := s.cfg.FS.Stat(dir); err != nil {
		return nil
	}
	s.lg.Warn("finishing the install of a snapshot interrupted by a crash", zap.Uint64("index", snapIndex))
	return s.installSnapshotFiles(dir)
}

func (s *Server) installSnapshotFiles(dir string) error {
	if err := s.kv.Restore(func() error { return s.eng.Restore(context.Background(), dir) }); err != nil {
		return err
	}
	if err := s.lessor.Reload(s.eng); err != nil {
		return err
	}
	if err := s.alarms.reload(); err != nil {
		return err
	}
	return s.members.Reload()
}

// removeStaged deletes staged engine snapshots and, at start-up
// (outgoing), the checkpoints of snapshots that were being sent.
func (s *Server) removeStaged(outgoing bool) {
	names, err := s.cfg.FS.List(s.memberDir)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, stagedPrefix) || (outgoing && snap.IsCheckpointDir(n)) {
			if err := s.cfg.FS.RemoveAll(filepath.Join(s.memberDir, n)); err != nil {
				s.lg.Warn("removing a stale snapshot directory failed", zap.String("dir", n), zap.Error(err))
			}
		}
	}
}
