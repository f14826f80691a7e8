package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/transport"
)

// This file is the member's place in its cluster: who it is at start-up,
// the peer transport, and runtime reconfiguration (etcd's Cluster service).

// Errors of runtime reconfiguration beyond membership's.
var (
	ErrNotEnoughStartedMembers = errors.New("server: re-configuration failed due to not enough started members")
	ErrLearnerNotReady         = errors.New("server: can only promote a learner member which is in sync with leader")
	// ErrUnhealthy refuses a membership change while this member has not
	// been connected to enough peers for HealthInterval.
	ErrUnhealthy = errors.New("server: unhealthy cluster")
	// ErrRemoved stops a member that was removed from the cluster.
	ErrRemoved = errors.New("the member has been permanently removed from the cluster")
)

// PathMembers is the peer-port HTTP path where a member publishes the
// cluster's member list, for members joining with
// --initial-cluster-state=existing.
const PathMembers = "/members"

// clusterInfo is what PathMembers serves.
type clusterInfo struct {
	ClusterID uint64              `json:"cluster_id"`
	Members   []membership.Member `json:"members"`
}

// bootstrapIdentity decides this member's ID and cluster ID for a data dir
// without a WAL, from --initial-cluster for a new cluster, or from a
// running member of the cluster it joins.
func (s *Server) bootstrapIdentity(initial []membership.Member, self *membership.Member) (clusterID uint64, boot []membership.Member, err error) {
	if s.cfg.InitialClusterState != "existing" {
		return membership.ClusterID(initial), initial, nil
	}
	var urls []string
	for _, m := range initial {
		if m.ID != self.ID {
			urls = append(urls, m.PeerURLs...)
		}
	}
	find := func(info clusterInfo) (membership.Member, bool) {
		for _, m := range info.Members {
			if samePeerURLs(m.PeerURLs, s.cfg.PeerURLs) {
				return m, true
			}
		}
		return membership.Member{}, false
	}
	// The member that applied the MemberAdd answered it, the others may be
	// a moment behind: ask each, for a while, for a list that has us.
	deadline := time.Now().Add(s.cfg.requestTimeout())
	for {
		info, err := fetchCluster(urls, s.cfg.requestTimeout(), s.cfg.PeerDialTLS, func(info clusterInfo) bool {
			_, ok := find(info)
			return ok
		})
		if err == nil {
			m, _ := find(info)
			self.ID, self.IsLearner = m.ID, m.IsLearner
			return info.ClusterID, info.Members, nil
		}
		if time.Now().After(deadline) {
			return 0, nil, err
		}
		time.Sleep(100 * time.Millisecond) // retry pacing
	}
}

// fetchCluster asks the members at urls for a member list that ok accepts.
func fetchCluster(urls []string, timeout time.Duration, tlsCfg *tls.Config, ok func(clusterInfo) bool) (clusterInfo, error) {
	if len(urls) == 0 {
		return clusterInfo{}, errors.New("--initial-cluster names no other member to join: list the running members' peer URLs in it")
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, TLSClientConfig: tlsCfg}}
	var errs []error
	for _, u := range urls {
		info, err := getCluster(client, strings.TrimSuffix(u, "/")+PathMembers)
		if err == nil && ok(info) {
			return info, nil
		}
		if err == nil {
			err = fmt.Errorf("no member has this member's peer URLs: add it first (etcdctl member add <name> --peer-urls=<its peer URLs>), then start it with --initial-cluster-state=existing")
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return clusterInfo{}, fmt.Errorf("could not get the member list of the cluster to join (check that its members run and are reachable at the peer URLs in --initial-cluster): %w", errors.Join(errs...))
}

func getCluster(c *http.Client, url string) (clusterInfo, error) {
	resp, err := c.Get(url)
	if err != nil {
		return clusterInfo{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return clusterInfo{}, fmt.Errorf("HTTP %s", resp.Status)
	}
	var info clusterInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&info); err != nil {
		return clusterInfo{}, err
	}
	if info.ClusterID == 0 || len(info.Members) == 0 {
		return clusterInfo{}, errors.New("empty member list")
	}
	return info, nil
}

// peerHandler serves the HTTP endpoints of the peer port.
func (s *Server) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PathMembers, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(clusterInfo{ClusterID: s.clusterID, Members: s.Members()})
	})
	mux.HandleFunc(PathHashKV, s.serveHashKV)
	return mux
}

// lateTransport lets raft send before the transport exists, which needs
// the raft node as its receiver: messages sent before are dropped, as a
// lost message is.
type lateTransport struct {
	p atomic.Pointer[transport.Transport]
}

func (l *lateTransport) Send(msgs []*raftpb.Message) {
	if t := l.p.Load(); t != nil {
		t.Send(msgs)
	}
}

func (l *lateTransport) SendSnapshot(m *raftpb.Message, body io.ReadCloser) {
	if t := l.p.Load(); t != nil {
		t.SendSnapshot(m, body)
		return
	}
	body.Close()
}

// startTransport starts the peer transport and connects it to the members.
func (s *Server) startTransport() error {
	tr, err := transport.New(transport.Config{
		ID:        s.id,
		ClusterID: s.clusterID,
		Receiver:  s.node,
		Logger:    s.lg,
		Faults:    s.cfg.PeerFaults,
		TLS:       s.cfg.PeerDialTLS,
		Metrics:   s.componentMetrics,
		OnRemoved: func() {
			s.lg.Error("a peer says this member was removed from the cluster; stopping")
			s.removedOnce.Do(func() { close(s.removedc) })
		},
	})
	if err != nil {
		return err
	}
	s.tr = tr
	s.lateTr.p.Store(tr)
	s.syncPeers()
	return nil
}

// syncPeers makes the transport's peers the cluster's members. A member
// that joined and has not received the cluster's state yet uses the list
// it was given when it joined.
func (s *Server) syncPeers() {
	members := s.members.Members()
	if len(members) == 0 {
		members = s.bootPeers
	}
	want := map[uint64][]string{}
	for _, m := range members {
		if m.ID == s.id {
			continue
		}
		want[m.ID] = m.PeerURLs
		cur, known := s.peerURLs[m.ID]
		var err error
		switch {
		case !known:
			err = s.tr.AddPeer(m.ID, m.PeerURLs)
		case !slices.Equal(cur, m.PeerURLs):
			err = s.tr.UpdatePeer(m.ID, m.PeerURLs)
		}
		if err != nil && !errors.Is(err, transport.ErrPeerRemoved) && !errors.Is(err, transport.ErrClosed) {
			s.lg.Warn("connecting to a member failed", zap.String("member-id", fmt.Sprintf("%x", m.ID)), zap.Error(err))
		}
	}
	for id := range s.peerURLs {
		if _, ok := want[id]; !ok && s.members.IsRemoved(id) {
			s.tr.RemovePeer(id)
		}
	}
	s.peerURLs = want
}

// applyConfChange applies a committed conf change. replay is true for an
// entry the state machine applied before (a restart, or a snapshot that
// was newer than raft's): raft must still learn it, deciding as the first
// time did, but the member list already holds its effect.
func (s *Server) applyConfChange(e *raftpb.Entry, replay bool) (res pendingResult, removedSelf bool, cs *raftpb.ConfState, err error) {
	var cc raftpb.ConfChange
	if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
		return res, false, nil, fmt.Errorf("apply: conf change at entry %d does not decode: %w", e.GetIndex(), err)
	}
	res.id = cc.GetId()
	var reject error
	if replay {
		rejected, err := s.members.WasRejected(e.GetIndex())
		if err != nil {
			return res, false, nil, err
		}
		if rejected {
			reject = errors.New("rejected when first applied")
		}
	} else {
		ch, err := membership.DecodeChange(cc.GetContext())
		if err == nil {
			err = s.members.Validate(&cc, ch)
		}
		if err != nil {
			reject = err
			s.members.RecordRejected(e.GetIndex())
		} else {
			removedSelf = s.changeMembers(&cc, ch)
		}
	}
	toRaft := &cc
	if reject != nil {
		// Raft ignores a change of node 0: the entry is applied, but
		// changes nothing.
		toRaft = &raftpb.ConfChange{Type: cc.Type, NodeId: proto.Uint64(raft.None)}
	}
	cs, err = s.node.ApplyConfChange(context.Background(), toRaft)
	if err != nil {
		return res, false, nil, err
	}
	if reject == nil {
		s.syncPeers()
	}
	res.res = result{err: reject}
	return res, removedSelf, cs, nil
}

// changeMembers applies a valid change to the member list.
func (s *Server) changeMembers(cc *raftpb.ConfChange, ch membership.Change) (removedSelf bool) {
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if ch.Promote {
			s.members.Promote(id)
			s.lg.Info("promoted learner", zap.String("member-id", fmt.Sprintf("%x", id)))
			return false
		}
		m := ch.Member
		m.ID = id
		m.IsLearner = cc.GetType() == raftpb.ConfChangeAddLearnerNode
		s.members.Add(m)
		s.lg.Info("added member", zap.String("member-id", fmt.Sprintf("%x", id)), zap.Strings("peer-urls", m.PeerURLs), zap.Bool("learner", m.IsLearner))
	case raftpb.ConfChangeRemoveNode:
		s.members.Remove(id)
		s.lg.Info("removed member", zap.String("member-id", fmt.Sprintf("%x", id)))
		return id == s.id
	case raftpb.ConfChangeUpdateNode:
		s.members.UpdatePeerURLs(id, ch.Member.PeerURLs)
		s.lg.Info("updated member", zap.String("member-id", fmt.Sprintf("%x", id)), zap.Strings("peer-urls", ch.Member.PeerURLs))
	}
	return false
}

// applyMemberAttr records the name and client URLs a member published.
func (s *Server) applyMemberAttr(r *membershippb.ClusterMemberAttrSetRequest) result {
	a := r.GetMemberAttributes()
	s.members.SetAttributes(r.GetMember_ID(), a.GetName(), a.GetClientUrls())
	return result{}
}

// publish records this member's name and client URLs in the member list,
// through raft, unless it already holds them.
func (s *Server) publish(ctx context.Context) error {
	if m, ok := s.members.Member(s.id); ok && m.Name == s.cfg.Name && slices.Equal(m.ClientURLs, s.cfg.ClientURLs) {
		return nil
	}
	_, err := s.propose(ctx, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID:        s.id,
		MemberAttributes: &membershippb.Attributes{Name: s.cfg.Name, ClientUrls: s.cfg.ClientURLs},
	}})
	return err
}

// proposeConfChange proposes cc with the member change ch as its context
// and waits until it is applied.
func (s *Server) proposeConfChange(ctx context.Context, cc *raftpb.ConfChange, ch membership.Change) error {
	if err := s.members.Validate(cc, ch); err != nil {
		return err
	}
	id := s.nextID()
	cc.Id = proto.Uint64(id)
	cc.Context = ch.Encode()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	c := s.w.register(id)
	if err := s.node.ProposeConfChange(ctx, cc); err != nil {
		s.w.cancel(id)
		return s.mapWaitErr(ctx, err)
	}
	select {
	case res := <-c:
		return res.err
	case <-ctx.Done():
		s.w.cancel(id)
		return s.mapWaitErr(ctx, ctx.Err())
	case <-s.donec:
		return ErrStopped
	}
}

// encodeRemove encodes a conf change entry that removes member id.
func encodeRemove(id uint64) []byte {
	b, err := proto.Marshal(&raftpb.ConfChange{
		Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id),
		Context: membership.Change{Member: membership.Member{ID: id}}.Encode(),
	})
	if err != nil {
		panic(err) // a ConfChange always encodes
	}
	return b
}

// AddMember adds a member (a learner when learner is set) with peerURLs
// and returns it.
func (s *Server) AddMember(ctx context.Context, peerURLs []string, learner bool) (membership.Member, error) {
	if err := membership.ValidatePeerURLs(peerURLs); err != nil {
		return membership.Member{}, err
	}
	m := membership.NewAddedMember(peerURLs, s.cfg.InitialClusterToken, time.Now())
	m.IsLearner = learner
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	if s.strict() {
		if !learner && !s.readyToAdd() {
			return membership.Member{}, ErrNotEnoughStartedMembers
		}
		// The new member counts as a voter that is not connected yet.
		if voters := s.voters(); len(voters) > 1 && s.connected(voters, s.cfg.HealthInterval) < quorum(len(voters)+1) {
			return membership.Member{}, ErrUnhealthy
		}
	}
	cc := &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(m.ID)}
	if err := s.proposeConfChange(ctx, cc, membership.Change{Member: m}); err != nil {
		return membership.Member{}, err
	}
	return m, nil
}

// RemoveMember removes member id from the cluster for good.
func (s *Server) RemoveMember(ctx context.Context, id uint64) error {
	if m, ok := s.members.Member(id); !(ok && m.IsLearner) && s.strict() {
		if !s.enoughStarted(id, 0) {
			return ErrNotEnoughStartedMembers
		}
		// A member that is down is not part of the active quorum; one
		// that is up must leave a connected quorum behind.
		if voters := s.voters(); (id == s.id || !s.tr.ActiveSince(id).IsZero()) &&
			s.connected(voters, s.cfg.HealthInterval)-1 < quorum(len(voters)-1) {
			return ErrUnhealthy
		}
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}
	return s.proposeConfChange(ctx, cc, membership.Change{Member: membership.Member{ID: id}})
}

// UpdateMember changes member id's peer URLs.
func (s *Server) UpdateMember(ctx context.Context, id uint64, peerURLs []string) error {
	if err := membership.ValidatePeerURLs(peerURLs); err != nil {
		return err
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(id)}
	return s.proposeConfChange(ctx, cc, membership.Change{Member: membership.Member{ID: id, PeerURLs: peerURLs}})
}

// PromoteMember makes learner id a voting member once it has caught up
// with the leader. Only the leader can tell; others forward the request.
func (s *Server) PromoteMember(ctx context.Context, id uint64) error {
	if !s.node.Status().IsLeader {
		return s.promoteMember(ctx, id)
	}
	// etcd counts the promotions its leader made or refused.
	err := s.promoteMember(ctx, id)
	if err == nil {
		s.metrics.promotions.Add(1)
	} else {
		s.hist.promoteFailures.WithLabelValues(err.Error()).Inc()
	}
	return err
}

func (s *Server) promoteMember(ctx context.Context, id uint64) error {
	m, ok := s.members.Member(id)
	switch {
	case !ok:
		return membership.ErrIDNotFound
	case !m.IsLearner:
		return membership.ErrNotLearner
	}
	if !s.node.Status().IsLeader {
		if err := s.forwardPromote(ctx, id); err != nil {
			return err
		}
		// The caller reads the member list here next: let it show the
		// promotion the leader applied.
		return s.LinearizableBarrier(ctx)
	}
	rs, err := s.node.RaftStatus(ctx)
	if err != nil {
		return s.mapWaitErr(ctx, err)
	}
	// etcd's rule: the learner's log must reach 90% of the leader's.
	if pr, ok := rs.Progress[id]; !ok || float64(pr.Match) < 0.9*float64(rs.Progress[s.id].Match) {
		return ErrLearnerNotReady
	}
	// The learner counts as a voter, and as started, as in etcd.
	if s.strict() && !s.enoughStarted(0, 1) {
		return ErrNotEnoughStartedMembers
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id)}
	return s.proposeConfChange(ctx, cc, membership.Change{Member: m, Promote: true})
}

// removedMarker is a file in the member directory recording that the
// member learned it was removed. A member stopped by its peers' refusal
// may never apply its own removal, so its member list cannot tell a
// restart that it is gone; this file does.
const removedMarker = "removed"

func (s *Server) markRemoved() {
	path := filepath.Join(s.memberDir, removedMarker)
	f, err := s.cfg.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err == nil {
		err = errors.Join(f.Sync(), f.Close(), fsutil.SyncDir(s.cfg.FS, s.memberDir))
	}
	if err != nil {
		s.lg.Warn("recording the member's removal failed", zap.Error(err))
	}
}

func (s *Server) wasRemoved() bool {
	_, err := s.cfg.FS.Stat(filepath.Join(s.memberDir, removedMarker))
	return err == nil
}

// IsLearner reports whether this member is a learner.
func (s *Server) IsLearner() bool { return s.members.IsLearner(s.id) }

func (s *Server) strict() bool { return !s.cfg.NoStrictReconfigCheck }

// A member counts as started once it has published its name through
// raft, as in etcd; connected is a separate, transport-level question.

// enoughStarted reports whether the started voting members, leaving out
// member skip (0: none) and adding add started voters, would be a quorum
// of the voters.
func (s *Server) enoughStarted(skip uint64, add int) bool {
	voters, started := add, add
	for _, m := range s.voters() {
		if m.ID == skip {
			continue
		}
		voters++
		if m.Name != "" {
			started++
		}
	}
	return started >= quorum(voters)
}

// readyToAdd is enoughStarted for one more, not yet started, voter, with
// etcd's exception: a one-member cluster may always grow to two, which is
// how a cluster restored from a backup is rebuilt.
func (s *Server) readyToAdd() bool {
	voters := s.voters()
	started := 0
	for _, m := range voters {
		if m.Name != "" {
			started++
		}
	}
	return (len(voters) == 1 && started == 1) || started >= quorum(len(voters)+1)
}

// voters returns the voting members.
func (s *Server) voters() []membership.Member {
	var vs []membership.Member
	for _, m := range s.members.Members() {
		if !m.IsLearner {
			vs = append(vs, m)
		}
	}
	return vs
}

// connected counts the members of ms this member has had a live stream
// to for at least d, itself included.
func (s *Server) connected(ms []membership.Member, d time.Duration) int {
	since := time.Now().Add(-d)
	n := 0
	for _, m := range ms {
		if t := s.tr.ActiveSince(m.ID); m.ID == s.id || (!t.IsZero() && t.Before(since)) {
			n++
		}
	}
	return n
}

func quorum(n int) int { return n/2 + 1 }
