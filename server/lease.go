package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/lease"
)

// LeaseGrant creates a lease through raft. A zero ID asks the server to
// choose a positive one; a TTL below the minimum is raised to it.
func (s *Server) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > lease.MaxTTL {
		return nil, ErrLeaseTTLTooLarge
	}
	// Decide ID and TTL here, not at apply, so the log holds the final
	// values and every member applies the same ones whatever its config.
	g := &pb.LeaseGrantRequest{ID: r.ID, TTL: max(r.TTL, s.cfg.minLeaseTTL())}
	for g.ID == 0 {
		g.ID = int64(s.nextID() & (1<<63 - 1))
	}
	res, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseGrant: g})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.LeaseGrantResponse), nil
}

// LeaseRevoke revokes a lease through raft, deleting its keys in one
// revision.
func (s *Server) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: r.ID}})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.LeaseRevokeResponse), nil
}

// LeaseRenew restarts a lease's TTL and returns it. Only the leader's
// lessor renews; a request arriving before it took office waits for it.
func (s *Server) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	var ttl int64
	err := s.onPrimaryApplied(ctx, func() (err error) {
		if ttl, err = s.lessor.Renew(id); err == nil {
			s.metrics.leasesRenewed.Add(1)
		}
		return err
	})
	if errors.Is(err, errForward) {
		return s.forwardRenew(ctx, id)
	}
	return ttl, err
}

// LeaseTimeToLive describes a lease; unknown leases answer TTL -1 as in
// etcd.
func (s *Server) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var info lease.Info
	err := s.onPrimaryApplied(ctx, func() (err error) {
		info, err = s.lessor.TimeToLive(r.ID)
		return err
	})
	if errors.Is(err, errForward) {
		return s.forwardTimeToLive(ctx, r)
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: -1}
	if errors.Is(err, ErrLeaseNotFound) {
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	// etcd truncates the remaining time to whole seconds.
	resp.TTL, resp.GrantedTTL = int64(info.Remaining.Seconds()), info.TTL
	if r.Keys {
		keys, err := s.kv.LeaseKeys(r.ID)
		if err != nil {
			return nil, err
		}
		resp.Keys = keys
	}
	return resp, nil
}

// LeaseLeases lists every lease.
func (s *Server) LeaseLeases(ctx context.Context) (*pb.LeaseLeasesResponse, error) {
	ids := s.lessor.Leases()
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	return resp, nil
}

// onPrimary runs op, which needs the primary lessor, waiting until this
// member's lessor is primary if it is the leader and not yet promoted.
// Forwarding to another member's leader arrives with multi-member clusters.
func (s *Server) onPrimary(ctx context.Context, op func() error) error {
	// The common case, the leader's lessor answering at once, costs no
	// timer: keep-alives are the hottest lease path.
	if err := op(); !errors.Is(err, lease.ErrNotPrimary) {
		return mapLeaseErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	for {
		primary := s.lessor.PrimaryNotify()
		err := op()
		if !errors.Is(err, lease.ErrNotPrimary) {
			return mapLeaseErr(err)
		}
		if st := s.node.Status(); st.Lead != 0 && !st.IsLeader {
			return errForward
		}
		select {
		case <-primary:
		case <-ctx.Done():
			if s.node.Status().Lead == 0 {
				return ErrNoLeader
			}
			return s.mapWaitErr(ctx, ctx.Err())
		case <-s.donec:
			return ErrStopped
		}
	}
}

// onPrimaryApplied is onPrimary for an operation on one lease. A lease
// the primary does not know may have been granted through another member
// that applied the grant first (and acknowledged it); so before answering
// that the lease is not found, the primary applies everything committed
// and asks again, as etcd does. Only a miss costs that round.
func (s *Server) onPrimaryApplied(ctx context.Context, op func() error) error {
	err := s.onPrimary(ctx, op)
	if !errors.Is(err, ErrLeaseNotFound) {
		return err
	}
	if err := s.LinearizableBarrier(ctx); err != nil {
		return err
	}
	return s.onPrimary(ctx, op)
}

func mapLeaseErr(err error) error {
	switch {
	case errors.Is(err, lease.ErrNotFound):
		return ErrLeaseNotFound
	case errors.Is(err, lease.ErrExists):
		return ErrLeaseExists
	}
	return err
}

// applyLease applies the lease requests of the raft log.
func (s *Server) applyLease(r *pb.InternalRaftRequest) result {
	switch {
	case r.LeaseGrant != nil:
		g := r.LeaseGrant
		if err := s.lessor.Grant(g.ID, g.TTL); err != nil {
			return result{err: mapLeaseErr(err)}
		}
		s.metrics.leasesGranted.Add(1)
		s.hist.leaseTTLs.Observe(float64(g.TTL))
		return result{resp: &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}, ID: g.ID, TTL: g.TTL}}
	case r.LeaseRevoke != nil:
		id := r.LeaseRevoke.ID
		if !s.lessor.Exists(id) {
			return result{err: ErrLeaseNotFound}
		}
		t := s.kv.Write()
		keys, err := t.LeaseKeys(id)
		if err != nil {
			t.End()
			// The group is broken; Commit reports it and stops the member.
			return result{err: err}
		}
		v := s.countOps(t)
		for _, k := range keys {
			v.DeleteRange(k, nil)
		}
		v.done()
		rev := t.Rev()
		s.endWrite(t)
		if err := s.lessor.Revoke(id); err != nil {
			panic(fmt.Sprintf("server: lease %x vanished while being revoked: %v", id, err))
		}
		s.metrics.leasesRevoked.Add(1)
		return result{resp: &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: rev}}}
	case r.LeaseCheckpoint != nil:
		for _, cp := range r.LeaseCheckpoint.Checkpoints {
			s.lessor.Checkpoint(cp.ID, cp.Remaining_TTL)
		}
		return result{resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}}}
	}
	panic("server: applyLease called without a lease request")
}

// leaseProposer is how the primary lessor reaches raft.
type leaseProposer struct{ s *Server }

func (p leaseProposer) ProposeRevoke(ctx context.Context, id int64) error {
	_, err := p.s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
	if err == nil {
		p.s.metrics.leasesExpired.Add(1)
	}
	return err
}

func (p leaseProposer) ProposeCheckpoints(ctx context.Context, cps []lease.Checkpoint) error {
	req := &pb.LeaseCheckpointRequest{Checkpoints: make([]*pb.LeaseCheckpoint, len(cps))}
	for i, cp := range cps {
		req.Checkpoints[i] = &pb.LeaseCheckpoint{ID: cp.ID, Remaining_TTL: cp.RemainingTTL}
	}
	_, err := p.s.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: req})
	return err
}

// followLeadership promotes the lessor when this member becomes leader and
// demotes it when it stops being one. Promotion waits until everything
// committed before is applied, so the remaining TTLs it starts from
// include every checkpoint and no revoked lease comes back.
func (s *Server) followLeadership() {
	for {
		changed := s.node.LeaderChanged()
		var retry <-chan time.Time
		if s.node.Status().IsLeader {
			err := s.LinearizableBarrier(context.Background())
			switch {
			case err != nil:
				retry = time.After(s.cfg.HeartbeatInterval)
			case s.node.Status().IsLeader:
				s.lessor.Promote(s.cfg.ElectionTimeout)
				s.lg.Info("lessor promoted", zap.Duration("extend", s.cfg.ElectionTimeout))
			}
		} else {
			s.lessor.Demote()
		}
		select {
		case <-changed:
		case <-retry:
		case <-s.stopc:
			return
		}
	}
}

// stopCheckpointTimeout bounds how long a stopping leader spends recording
// its leases' remaining TTLs.
const stopCheckpointTimeout = 2 * time.Second

// checkpointLeases records every lease's exact remaining TTL before a
// graceful stop, so a restart or the next leader resumes each lease where
// it was rather than at the last periodic checkpoint. Best effort: a crash
// falls back to the periodic checkpoints.
func (s *Server) checkpointLeases() {
	batches := s.lessor.RemainingTTLs()
	if len(batches) == 0 {
		return
	}
	const unrecorded = "could not record lease TTLs before stopping; they resume from the last periodic checkpoint"
	if voters := s.voters(); s.connected(voters, 0) < quorum(len(voters)) {
		s.lg.Warn(unrecorded, zap.Error(ErrUnhealthy)) // nothing could commit them
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopCheckpointTimeout)
	defer cancel()
	p := leaseProposer{s}
	for _, batch := range batches {
		if err := p.ProposeCheckpoints(ctx, batch); err != nil {
			s.lg.Warn(unrecorded, zap.Error(err))
			return
		}
	}
}
