package server

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

const (
	// peerWaitInterval and peerWait bound how often and how long a
	// starting member looks for its peers' connections before it
	// advances its election clock (etcd's values).
	peerWaitInterval = 50 * time.Millisecond
	peerWait         = 5 * time.Second
)

// advanceElectionTicks is etcd's --initial-election-tick-advance, on by
// default. A member of a cluster of several waits until streams to more
// than one of its peers are up (at most peerWait), then runs its election
// clock forward to two ticks short of the election timeout. Members that
// start or restart together then elect a leader within a heartbeat or two
// of finding each other, instead of waiting out a whole election timeout
// with everyone connected. A leader already there keeps its place: its
// heartbeats reset the clock, and with pre-vote a follower that still
// hears from it cannot win. A lone voter campaigns at once anyway
// (raftnode). The log lines are etcd's.
func (s *Server) advanceElectionTicks() {
	ticks := int(s.cfg.ElectionTimeout / s.cfg.HeartbeatInterval)
	if len(s.members.Members()) < 2 {
		return
	}
	if s.cfg.NoInitialElectionTickAdvance {
		s.lg.Info("skipping initial election tick advance", zap.Int("election-ticks", ticks))
		return
	}
	s.lg.Info("starting initial election tick advance", zap.Int("election-ticks", ticks))
	t := time.NewTicker(peerWaitInterval)
	defer t.Stop()
	for range int(peerWait / peerWaitInterval) {
		select {
		case <-t.C:
		case <-s.stopc:
			return
		}
		active := 0
		for _, m := range s.members.Members() {
			if m.ID != s.id && !s.tr.ActiveSince(m.ID).IsZero() {
				active++
			}
		}
		if active < 2 {
			continue
		}
		forward := ticks - 2
		s.lg.Info("initialized peer connections; fast-forwarding election ticks",
			zap.String("local-member-id", fmt.Sprintf("%x", s.id)),
			zap.Int("forward-ticks", forward),
			zap.String("forward-duration", (time.Duration(forward)*s.cfg.HeartbeatInterval).String()),
			zap.Int("election-ticks", ticks),
			zap.String("election-timeout", s.cfg.ElectionTimeout.String()),
			zap.Int("active-remote-members", active))
		// Returns once raft took the ticks, or the node stopped.
		s.node.AdvanceTicks(context.Background(), forward)
		return
	}
}
