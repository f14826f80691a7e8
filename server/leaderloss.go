package server

import (
	"context"
	"sync"
	"time"
)

// noLeaderTimeouts is how many election timeouts in a row a member must
// go without a leader before LeaderLost fires: etcd's rule for ending the
// streams whose clients require a leader. Reconnecting a stream costs more
// than refusing a new request, which happens at once.
const noLeaderTimeouts = 3

// leaderLoss is the state behind LeaderLost.
type leaderLoss struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

// HasLeader reports whether this member knows of a leader now.
func (s *Server) HasLeader() bool { return s.node.Status().Lead != 0 }

// LeaderLost returns a context that is canceled once this member has had
// no leader for noLeaderTimeouts election timeouts in a row. Streams whose
// clients require a leader (clientv3.WithRequireLeader) end then, so that
// their clients move to a member that has one. Call it before checking
// HasLeader: a loss after the check still ends the stream. Once a context
// is canceled, later calls get a new one.
func (s *Server) LeaderLost() context.Context {
	s.leaderLoss.mu.Lock()
	defer s.leaderLoss.mu.Unlock()
	if s.leaderLoss.ctx == nil {
		s.leaderLoss.ctx, s.leaderLoss.cancel = context.WithCancel(context.Background())
	}
	return s.leaderLoss.ctx
}

// monitorLeaderLoss cancels LeaderLost's context when the member has gone
// noLeaderTimeouts election timeouts without a leader, looking once per
// election timeout as etcd does.
func (s *Server) monitorLeaderLoss() {
	t := time.NewTicker(s.cfg.ElectionTimeout)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-t.C:
		case <-s.stopc:
			return
		}
		if s.HasLeader() {
			missed = 0
			continue
		}
		if missed++; missed == noLeaderTimeouts {
			s.leaderLoss.mu.Lock()
			if s.leaderLoss.cancel != nil {
				s.leaderLoss.cancel()
				s.leaderLoss.ctx, s.leaderLoss.cancel = nil, nil
			}
			s.leaderLoss.mu.Unlock()
		}
	}
}
