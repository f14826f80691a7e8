package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/wal"
)

// This file connects the node to its peers: outgoing messages and
// snapshots through Config.Transport, and the transport.Receiver methods
// through which peers' messages and the transport's reports come in.

// send hands raft's messages to the transport. A MsgSnap needs the
// state-machine snapshot as its body, which is opened off the loop.
func (n *Node) send(msgs []*raftpb.Message) {
	if len(msgs) == 0 || n.cfg.Transport == nil {
		return
	}
	if !slices.ContainsFunc(msgs, isSnap) {
		// The common case: no copy on every Ready.
		n.cfg.Transport.Send(msgs)
		return
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if isSnap(m) {
			n.sendSnapshot(m)
			continue
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		n.cfg.Transport.Send(out)
	}
}

func isSnap(m *raftpb.Message) bool { return m.GetType() == raftpb.MessageType_MsgSnap }

func (n *Node) sendSnapshot(m *raftpb.Message) {
	to := m.GetTo()
	if n.cfg.SnapshotBody == nil {
		n.reports.add(report{id: to, snapshot: true, status: raft.SnapshotFailure})
		return
	}
	n.lg.Info("sending snapshot to a lagging member",
		zap.String("to", fmt.Sprintf("%x", to)),
		zap.Uint64("snapshot-index", m.GetSnapshot().GetMetadata().GetIndex()))
	go func() {
		body, err := n.cfg.SnapshotBody()
		if err != nil {
			n.lg.Warn("opening the snapshot for a member failed", zap.String("to", fmt.Sprintf("%x", to)), zap.Error(err))
			n.reports.add(report{id: to, snapshot: true, status: raft.SnapshotFailure})
			return
		}
		n.cfg.Transport.SendSnapshot(m, body)
	}()
}

// installSnapshot makes a snapshot from the leader durable and raft's
// starting point, then hands it to the apply loop. The state-machine
// snapshot it refers to was stored by StoreSnapshot before raft saw it.
func (n *Node) installSnapshot(s *raftpb.Snapshot) error {
	md := s.GetMetadata()
	if err := n.snap.SaveSnap(s); err != nil {
		return err
	}
	if err := n.wal.SaveSnapshot(wal.Snapshot{Index: md.GetIndex(), Term: md.GetTerm()}); err != nil {
		return fmt.Errorf("raftnode: WAL snapshot marker: %w", err)
	}
	if err := n.ms.ApplySnapshot(s); err != nil {
		return fmt.Errorf("raftnode: applying snapshot %d: %w", md.GetIndex(), err)
	}
	n.confState = md.GetConfState()
	n.alone = isAlone(n.confState, n.cfg.ID)
	n.snapIndex = md.GetIndex()
	if c := md.GetIndex(); c > n.commit.Load() {
		n.commit.Store(c)
	}
	n.lg.Info("installing snapshot from the leader", zap.Uint64("index", md.GetIndex()), zap.Uint64("term", md.GetTerm()))
	if err := n.deliver(Apply{Snapshot: s}); err != nil {
		return err
	}
	if err := n.wal.ReleaseTo(md.GetIndex()); err != nil {
		return err
	}
	if err := n.snap.Purge(n.cfg.MaxSnapshots); err != nil {
		n.lg.Warn("purging old snapshots failed", zap.Error(err))
	}
	return nil
}

// Process hands a peer's message to raft (transport.Receiver).
func (n *Node) Process(ctx context.Context, m *raftpb.Message) error {
	select {
	case n.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
}

// TryProcess hands a peer's message to raft if the raft loop's queue has
// room (transport.TryProcessor).
func (n *Node) TryProcess(m *raftpb.Message) bool {
	select {
	case n.recvc <- m:
		return true
	default:
		return false
	}
}

// ReceiveSnapshot stores a snapshot's body through Config.StoreSnapshot and
// then hands the MsgSnap to raft (transport.Receiver).
func (n *Node) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	if n.cfg.StoreSnapshot == nil {
		return errors.New("raftnode: this member cannot receive snapshots")
	}
	if err := n.cfg.StoreSnapshot(ctx, m, body); err != nil {
		return err
	}
	return n.Process(ctx, m)
}

// ReportUnreachable tells raft that messages to a peer were lost
// (transport.Receiver). It never blocks.
func (n *Node) ReportUnreachable(id uint64) { n.reports.add(report{id: id}) }

// ReportSnapshot tells raft how sending a snapshot ended
// (transport.Receiver). It never blocks.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n.reports.add(report{id: id, snapshot: true, status: status})
}

type report struct {
	id       uint64
	snapshot bool
	status   raft.SnapshotStatus
}

// reports queues the transport's reports for the raft loop without ever
// blocking the transport. Unreachable reports are coalesced per peer;
// snapshot reports are each kept, since raft waits for every one.
type reports struct {
	wake chan struct{} // capacity 1
	mu   sync.Mutex
	q    []report
}

func (r *reports) add(rep report) {
	r.mu.Lock()
	if rep.snapshot || !containsUnreachable(r.q, rep.id) {
		r.q = append(r.q, rep)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func containsUnreachable(q []report, id uint64) bool {
	for _, r := range q {
		if !r.snapshot && r.id == id {
			return true
		}
	}
	return false
}

func (r *reports) deliver(rn *raft.RawNode) {
	r.mu.Lock()
	q := r.q
	r.q = nil
	r.mu.Unlock()
	for _, rep := range q {
		if rep.snapshot {
			rn.ReportSnapshot(rep.id, rep.status)
		} else {
			rn.ReportUnreachable(rep.id)
		}
	}
}

// ProposeConfChange proposes a configuration change. As with Propose, a nil
// error means raft accepted it, not that it committed.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	return n.submit(ctx, proposal{cc: cc, errc: make(chan error, 1)})
}

// RaftStatus returns raft's full status, with the leader's view of every
// follower's progress.
func (n *Node) RaftStatus(ctx context.Context) (raft.Status, error) {
	c := make(chan raft.Status, 1)
	select {
	case n.statusc <- c:
	case <-ctx.Done():
		return raft.Status{}, ctx.Err()
	case <-n.donec:
		return raft.Status{}, ErrStopped
	}
	return <-c, nil
}

// AdvanceTicks runs k ticks of raft's clock at once, as if k tick
// intervals had passed (etcd's initial election tick advance): a follower
// that heard from no leader comes k ticks closer to campaigning.
func (n *Node) AdvanceTicks(ctx context.Context, k int) error {
	select {
	case n.advance <- k:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
}

// TransferLeadership asks the leader to hand leadership to member to. It
// returns once raft took the request; the caller watches Status for the
// outcome.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	select {
	case n.transfer <- to:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
}
