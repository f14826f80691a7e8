package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// Sentinel errors of Downgrade.
var (
	ErrWrongDowngradeVersionFormat   = errors.New("server: wrong downgrade target version format")
	ErrInvalidDowngradeTargetVersion = errors.New("server: invalid downgrade target version")
)

// HashKV hashes the MVCC history up to rev (0: the current revision). Every
// member that applied the same log answers the same hash at the same
// revision; the value is not comparable with etcd's.
func (s *Server) HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error) {
	h, hashRev, compactRev, err := s.hashKV(rev)
	if err != nil {
		return nil, err
	}
	return &pb.HashKVResponse{Header: &pb.ResponseHeader{}, Hash: h, HashRevision: hashRev, CompactRevision: compactRev}, nil
}

// hashKV is mvcc.Store.HashKV, timed.
func (s *Server) hashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	start := time.Now()
	if hash, hashRev, compactRev, err = s.kv.HashKV(rev); err == nil {
		s.hist.hashKV.Observe(time.Since(start).Seconds())
	}
	return hash, hashRev, compactRev, err
}

// Hash hashes the member's whole storage engine, every key space, as
// etcd's Hash does its whole backend: for tests, since it changes with
// background work such as physical compaction.
func (s *Server) Hash(ctx context.Context) (*pb.HashResponse, error) {
	start := time.Now()
	h, err := s.eng.Hash(ctx)
	if err != nil {
		return nil, err
	}
	s.hist.hash.Observe(time.Since(start).Seconds())
	return &pb.HashResponse{Header: &pb.ResponseHeader{}, Hash: h}, nil
}

// Defragment reclaims the space of deleted and compacted data, as etcd's
// does, but online: it asks Pebble for a manual compaction of the whole key
// space down to the last level, which rewrites every sstable without the
// versions that deletes and MVCC compaction removed (those no open engine
// snapshot still sees) and then deletes the old files.
//
// It takes no lock that the apply loop, reads or writes need. etcd's
// defragment holds the backend's batch and read transactions for its whole
// duration, so every write and read waits for it. Pebble compacts on its own
// goroutines from an immutable version of the LSM while commits go on into
// the memtable. The one step on the write path is the rotation of the
// memtable that Pebble starts with (what a full memtable costs anyway); the
// flush itself runs in the background. Pebble picks score-based
// compactions (such as L0's) before the next piece of a manual one, but
// with its default of one compaction at a time they wait for the piece
// running: writes would stall only if L0 filled up meanwhile (12
// sublevels, about 12 memtables or 384 MiB written during one piece).
// What it does cost writes is disk time: the flush and the rewritten
// tables share the disk with the raft WAL, whose fsyncs may wait behind
// them, and one core on a small machine (docs/benchmarks.md measures both).
//
// Defragment returns once the compaction has finished. When ctx ends, or
// the member drains (so that a shutdown does not wait for a long
// defragment), the pieces not started yet are cancelled and it returns the
// context's error or ErrStopped; a piece already running finishes in the
// background. The answer carries no header, as etcd's.
func (s *Server) Defragment(ctx context.Context) (*pb.DefragmentResponse, error) {
	select {
	case <-s.drainc:
		return nil, ErrStopped
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends when Defragment returns
		select {
		case <-s.drainc:
			cancel()
		case <-ctx.Done():
		}
	}()
	size, inUse := s.eng.Sizes()
	s.lg.Info("starting defragment", zap.Int64("current-db-size-bytes", size),
		zap.Int64("current-db-size-in-use-bytes", inUse))
	s.hist.defragsRunning.Add(1)
	st, err := s.eng.Defragment(ctx)
	s.hist.defragsRunning.Add(-1)
	s.sizeAt.Store(0) // the cached sizes are stale now
	if err != nil {
		select {
		case <-s.drainc:
			err = ErrStopped
		default:
		}
		s.lg.Warn("failed to defragment", zap.Duration("took", st.Took), zap.Error(err))
		return nil, err
	}
	s.hist.defrag.Observe(st.Took.Seconds())
	s.lg.Info("finished defragment", zap.Duration("took", st.Took),
		zap.Int64("current-db-size-bytes-diff", st.SizeAfter-st.SizeBefore),
		zap.Int64("current-db-size-bytes", st.SizeAfter),
		zap.Int64("current-db-size-in-use-bytes", st.InUseAfter))
	return &pb.DefragmentResponse{}, nil
}

// Downgrade answers as etcd does for a target it cannot downgrade to,
// whatever the target: a Cairn cluster has no older version to go back to.
// Canceling, with no downgrade ever in progress, answers as etcd's does:
// the cluster version.
func (s *Server) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	switch r.Action {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		if !isVersion(r.Version) {
			return nil, ErrWrongDowngradeVersionFormat
		}
		return nil, ErrInvalidDowngradeTargetVersion
	case pb.DowngradeRequest_CANCEL:
		return &pb.DowngradeResponse{Header: &pb.ResponseHeader{}, Version: ClusterVersion}, nil
	}
	return nil, ErrInvalidDowngradeTargetVersion
}

// isVersion accepts what etcd's downgrade target parser accepts for the
// purpose here: MAJOR.MINOR or MAJOR.MINOR.PATCH, optionally followed by
// a pre-release or build suffix.
func isVersion(v string) bool {
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// ErrBadLeaderTransferee refuses a leadership transfer to a member that is
// not a voting member.
var ErrBadLeaderTransferee = errors.New("server: bad leader transferee")

// ErrNotLeader refuses a request only the leader may serve.
var ErrNotLeader = errors.New("server: not leader")

// ErrLeaderTransferTimeout reports a leadership transfer that did not
// finish within the request timeout.
var ErrLeaderTransferTimeout = errors.New("etcdserver: request timed out, leader transfer took too long")

// MoveLeader hands leadership to the voting member target through raft's
// leadership transfer, and returns once target leads. Only the leader may
// be asked, as in etcd.
func (s *Server) MoveLeader(ctx context.Context, target uint64) error {
	if !s.node.Status().IsLeader {
		return ErrNotLeader
	}
	if m, ok := s.members.Member(target); !ok || m.IsLearner {
		return ErrBadLeaderTransferee
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	start := time.Now()
	s.lg.Info("leadership transfer starting",
		zap.String("local-member-id", fmt.Sprintf("%x", s.id)),
		zap.String("current-leader-member-id", fmt.Sprintf("%x", s.id)),
		zap.String("transferee-member-id", fmt.Sprintf("%x", target)))
	for {
		changed := s.node.LeaderChanged()
		if s.node.Status().Lead == target {
			s.lg.Info("leadership transfer finished",
				zap.String("local-member-id", fmt.Sprintf("%x", s.id)),
				zap.String("old-leader-member-id", fmt.Sprintf("%x", s.id)),
				zap.String("new-leader-member-id", fmt.Sprintf("%x", target)),
				zap.Duration("took", time.Since(start)))
			return nil
		}
		if err := s.node.TransferLeadership(ctx, target); err != nil {
			return s.mapWaitErr(ctx, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ErrLeaderTransferTimeout
		case <-s.donec:
			return ErrStopped
		}
	}
}

// transferLeadershipOnStop hands leadership, when this member holds it
// and has other voters, to the voter it has had a live stream to for the
// longest, as etcd's graceful stop does. The cluster keeps a leader
// without waiting out an election timeout, and proposals the followers
// forward meanwhile reach a leader instead of a member about to vanish
// (they would wait out the client's deadline).
//
// Unlike etcd, which waits up to the request timeout (7 s by default), it
// gives up after an election timeout and a heartbeat: raft abandons a
// transfer the transferee has not won by then, and the others elect a
// leader of their own within about as long once this member is gone.
func (s *Server) transferLeadershipOnStop() {
	st := s.node.Status()
	local := zap.String("local-member-id", fmt.Sprintf("%x", s.id))
	lead := zap.String("current-leader-member-id", fmt.Sprintf("%x", st.Lead))
	if !st.IsLeader {
		s.lg.Info("skipped leadership transfer; local server is not leader", local, lead)
		return
	}
	var target uint64
	var oldest time.Time
	voters := s.voters()
	for _, m := range voters {
		if t := s.tr.ActiveSince(m.ID); m.ID != s.id && !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			target, oldest = m.ID, t
		}
	}
	err := ErrUnhealthy
	switch {
	case len(voters) < 2:
		s.lg.Info("skipped leadership transfer for single voting member cluster", local, lead)
		return
	case target != 0:
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ElectionTimeout+s.cfg.HeartbeatInterval)
		err = s.MoveLeader(ctx, target)
		cancel()
	}
	if err != nil {
		s.lg.Warn("leadership transfer failed", local, zap.Error(err))
	}
}
