package server

import (
	"context"
	"errors"
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
	h, hashRev, compactRev, err := s.kv.HashKV(rev)
	if err != nil {
		return nil, err
	}
	return &pb.HashKVResponse{Header: &pb.ResponseHeader{}, Hash: h, HashRevision: hashRev, CompactRevision: compactRev}, nil
}

// Hash hashes the member's whole storage engine, every key space, as
// etcd's Hash does its whole backend: for tests, since it changes with
// background work such as physical compaction.
func (s *Server) Hash(ctx context.Context) (*pb.HashResponse, error) {
	h, err := s.eng.Hash(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: &pb.ResponseHeader{}, Hash: h}, nil
}

// Defragment reclaims the space of deleted and compacted data by compacting
// the whole engine. Unlike etcd's, it never blocks reads or writes: Pebble
// compacts in the background while the apply loop keeps committing.
func (s *Server) Defragment(ctx context.Context) (*pb.DefragmentResponse, error) {
	start := time.Now()
	before := s.eng.Size()
	if err := s.eng.CompactAll(ctx); err != nil {
		return nil, err
	}
	s.sizeAt.Store(0) // the cached size is stale now
	s.lg.Info("defragmented", zap.Duration("took", time.Since(start)),
		zap.Int64("size-before", before), zap.Int64("size-after", s.eng.Size()))
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
	for {
		changed := s.node.LeaderChanged()
		if s.node.Status().Lead == target {
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
