package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/mvcc"
)

// Corruption detection: etcd's three checks, which compare HashKV between
// members. Apply is deterministic, so members that applied the same log
// hold the same history and answer the same hash at the same revision and
// compact revision; a difference means some member's state is no longer
// what its log produced (a disk, a bug, an operator's hand).
//
//   - Initial check (New, Config.NoInitialCorruptCheck): a member that
//     restarts with data, in a cluster with other members, hashes its
//     history at its current revision while every peer hashes its own at
//     that revision, before it starts its peer transport, so before it
//     votes, leads or sends anyone a snapshot of its state. A peer at the
//     same compact revision with another hash makes it refuse to start
//     with etcd's "<member ID> found data inconsistency with peers". A peer
//     that is behind, has compacted past the revision, sits at another
//     compact revision or cannot be reached is skipped with a warning.
//   - Periodic check (Config.CorruptCheckTime): the leader hashes at its
//     current revision, asks the peers for theirs at that revision, waits
//     for a linearizable barrier and hashes again (etcd's PeriodicCheck).
//     Each hash walks the whole uncompacted history (some microseconds
//     per version), hence its default period of an hour.
//   - Compact hash check (Config.NoCompactHashCheck,
//     CompactHashCheckTime): the leader takes the hashes its compactions
//     recorded (mvcc.Store.CompactHashes), newest first, and asks the
//     peers for the hashes theirs recorded at the same revisions, until
//     one revision is checked on every member (etcd's CompactHashCheck).
//     It catches divergence in history a later compaction removes, which
//     the periodic check no longer sees, and costs nearly nothing: every
//     compaction hashes its history anyway. Unlike etcd's, a peer that
//     recorded no hash at the revision says so instead of hashing its
//     whole history for an answer the check could not compare.
//
// Both periodic checks raise CORRUPT only by proposing Alarm ACTIVATE
// through raft; apply stays deterministic and every member then refuses
// writes (alarm.go). Whom they raise it for follows etcd's compact hash
// check in both: when a quorum of all members agrees on a hash, every
// comparable member outside that quorum; without such a quorum, member 0
// (the cluster as a whole). etcd's periodic check instead raises it for
// the first follower whose hash differs from the leader's, a healthy one
// when the leader is the corrupt member; see docs/compatibility.md. The
// periodic check also raises it, as etcd's does, for a follower ahead of
// the leader's revision or compact revision after the barrier, and for
// the leader itself when its hash changed while its revision did not.
//
// Members ask each other over the peer port: GET PathHashKV on each of a
// peer's peer URLs (as etcd's /members/hashkv), answered by peerHandler
// from the member's MVCC store, so the checks need neither client URLs nor
// a published member list, and work before the asking member serves
// anything. A peer's hash of the whole history is waited for as long as
// the member's own took, twice over, plus the request timeout
// (peerHashWait): it is as much work. A recorded compaction hash is
// waited for the request timeout. A peer that does not answer in time is
// skipped.

// PathHashKV is the peer-port HTTP path where a member answers its peers'
// HashKV requests for the corruption checks: GET with the query parameter
// revision (0 or absent: the current one); answers a peerHash as JSON, or
// HTTP 400 with the MVCC error's text for a compacted or future revision.
// With compaction=true it answers only with the hash a compaction at that
// revision recorded, and 404 when it holds none: the compact hash check
// could not compare anything else, and computing it would cost a pass
// over the whole history.
const PathHashKV = "/members/hashkv"

// clusterIDHeader carries the asking member's cluster ID (hex) in hashkv
// requests; a member of another cluster answers 412.
const clusterIDHeader = "X-Etcd-Cluster-ID"

// ErrDataInconsistency is the initial check's refusal to start, wrapped
// with the member's ID as etcd words it.
var ErrDataInconsistency = errors.New("found data inconsistency with peers")

// errClusterIDMismatch is a peer's answer when it belongs to another
// cluster.
var errClusterIDMismatch = errors.New("cluster ID mismatch")

// errNoCompactHash is a peer's answer when it recorded no compaction hash
// at the revision asked.
var errNoCompactHash = errors.New("no compaction hash recorded at the revision")

// peerHash is a member's HashKV as the corruption checks exchange it.
type peerHash struct {
	MemberID uint64 `json:"member_id"`
	// Revision is the member's current revision when it answered.
	Revision        int64  `json:"revision"`
	Hash            uint32 `json:"hash"`
	HashRevision    int64  `json:"hash_revision"`
	CompactRevision int64  `json:"compact_revision"`
}

// peerHashResult is one peer's answer, or why there is none.
type peerHashResult struct {
	id   uint64
	urls []string
	resp *peerHash
	err  error
}

// corruptionChecks is the Server's part for the checks.
type corruptionChecks struct {
	client *http.Client
	// ctx ends when the member stops; done closes when the monitor
	// goroutine has returned.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// mu orders every local hash and fault injection against the closing
	// of the store: closed is set, under the write lock, before the apply
	// loop closes the MVCC store and the engine.
	mu     sync.RWMutex
	closed bool
	// compactChecked is the newest compaction revision whose hash every
	// member was found to agree on; written by the monitor goroutine
	// only.
	compactChecked atomic.Int64
	// periodicCompared counts periodic checks that compared the hash with
	// at least one peer's.
	periodicCompared atomic.Int64
}

func (c *corruptionChecks) init(tlsCfg *tls.Config) {
	c.client = &http.Client{
		// A peer that answers with a redirect is not a Cairn member.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute, TLSClientConfig: tlsCfg},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.done = make(chan struct{})
}

// stopCorruptionChecks ends the monitor goroutine, waits for it, and stops
// local hashes for good. The apply loop calls it before closing the store.
func (s *Server) stopCorruptionChecks() {
	c := &s.corrupt
	c.cancel()
	<-c.done
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.client.CloseIdleConnections()
}

// CorruptionCheckStats is what the corruption checks this member ran as
// leader found so far.
type CorruptionCheckStats struct {
	// PeriodicCompared counts periodic checks that compared this member's
	// hash with at least one peer's.
	PeriodicCompared int64
	// CompactRevisionChecked is the newest compaction revision whose hash
	// the compact hash check found the same on every member; 0: none yet.
	CompactRevisionChecked int64
}

// CorruptionChecks reports what this member's corruption checks found.
func (s *Server) CorruptionChecks() CorruptionCheckStats {
	return CorruptionCheckStats{
		PeriodicCompared:       s.corrupt.periodicCompared.Load(),
		CompactRevisionChecked: s.corrupt.compactChecked.Load(),
	}
}

// InjectCorruptValue is a fault-injection seam for tests: it overwrites,
// in this member's engine only and bypassing raft, the value of key's
// newest version at revision rev (0: current), so that this member's
// state diverges from its peers' at the same revision, as corruption
// would make it (mvcc.Store.CorruptValueForTesting).
func (s *Server) InjectCorruptValue(key []byte, rev int64, value []byte) error {
	s.corrupt.mu.RLock()
	defer s.corrupt.mu.RUnlock()
	if s.corrupt.closed {
		return ErrStopped
	}
	return s.kv.CorruptValueForTesting(key, rev, value)
}

// localHash is this member's HashKV at rev (0: current).
func (s *Server) localHash(rev int64) (peerHash, error) {
	s.corrupt.mu.RLock()
	defer s.corrupt.mu.RUnlock()
	if s.corrupt.closed {
		return peerHash{}, ErrStopped
	}
	if s.cfg.BeforeHashKV != nil {
		s.cfg.BeforeHashKV()
	}
	h, hashRev, compactRev, err := s.hashKV(rev)
	if err != nil {
		return peerHash{}, err
	}
	return peerHash{MemberID: s.id, Revision: s.kv.Rev(), Hash: h, HashRevision: hashRev, CompactRevision: compactRev}, nil
}

// localCompactHash is the hash this member's compaction at rev recorded.
func (s *Server) localCompactHash(rev int64) (peerHash, error) {
	for _, h := range s.kv.CompactHashes() {
		if h.Revision == rev {
			return peerHash{MemberID: s.id, Revision: s.kv.Rev(), Hash: h.Hash, HashRevision: h.Revision, CompactRevision: h.CompactRevision}, nil
		}
	}
	return peerHash{}, errNoCompactHash
}

// serveHashKV answers a peer's PathHashKV request.
func (s *Server) serveHashKV(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if cid := r.Header.Get(clusterIDHeader); cid != "" && cid != strconv.FormatUint(s.clusterID, 16) {
		http.Error(w, errClusterIDMismatch.Error(), http.StatusPreconditionFailed)
		return
	}
	var rev int64
	if v := r.URL.Query().Get("revision"); v != "" {
		var err error
		if rev, err = strconv.ParseInt(v, 10, 64); err != nil {
			http.Error(w, "bad revision", http.StatusBadRequest)
			return
		}
	}
	var h peerHash
	var err error
	if r.URL.Query().Get("compaction") == "true" {
		h, err = s.localCompactHash(rev)
	} else {
		h, err = s.localHash(rev)
	}
	switch {
	case errors.Is(err, errNoCompactHash):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case errors.Is(err, mvcc.ErrCompacted), errors.Is(err, mvcc.ErrFutureRev):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case errors.Is(err, ErrStopped), errors.Is(err, mvcc.ErrClosed):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case err != nil:
		s.lg.Warn("hashing for a peer's corruption check failed", zap.Int64("revision", rev), zap.Error(err))
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(h)
}

// fetchPeerHash asks the member with ID id at peer URL base for its hash
// at rev, only the one its compaction at rev recorded if compaction is set.
func (s *Server) fetchPeerHash(ctx context.Context, id uint64, base string, rev int64, compaction bool) (*peerHash, error) {
	u := strings.TrimSuffix(base, "/") + PathHashKV + "?revision=" + strconv.FormatInt(rev, 10)
	if compaction {
		u += "&compaction=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(clusterIDHeader, strconv.FormatUint(s.clusterID, 16))
	resp, err := s.corrupt.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(body))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest:
		for _, e := range []error{mvcc.ErrCompacted, mvcc.ErrFutureRev} {
			if text == e.Error() {
				return nil, e
			}
		}
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, text)
	case http.StatusPreconditionFailed:
		return nil, errClusterIDMismatch
	case http.StatusNotFound:
		if text == errNoCompactHash.Error() {
			return nil, errNoCompactHash
		}
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, text)
	default:
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, text)
	}
	var h peerHash
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, err
	}
	if h.MemberID != id {
		return nil, fmt.Errorf("answered by member %x, not %x", h.MemberID, id)
	}
	return &h, nil
}

// peerHashes asks every other member, concurrently, for its hash at rev
// (with compaction, the one its compaction at rev recorded), trying each
// of its peer URLs in turn, each for at most wait (0: until ctx ends).
func (s *Server) peerHashes(ctx context.Context, rev int64, compaction bool, wait time.Duration) []peerHashResult {
	var peers []peerHashResult
	for _, m := range s.members.Members() {
		if m.ID != s.id && len(m.PeerURLs) > 0 {
			peers = append(peers, peerHashResult{id: m.ID, urls: m.PeerURLs})
		}
	}
	var wg sync.WaitGroup
	for i := range peers {
		p := &peers[i]
		wg.Go(func() {
			for _, u := range p.urls {
				actx, cancel := ctx, context.CancelFunc(func() {})
				if wait > 0 {
					actx, cancel = context.WithTimeout(ctx, wait)
				}
				p.resp, p.err = s.fetchPeerHash(actx, p.id, u, rev, compaction)
				cancel()
				if p.err == nil || ctx.Err() != nil || errors.Is(p.err, errNoCompactHash) {
					return
				}
				s.lg.Warn("failed hash kv request",
					zap.String("local-member-id", fmt.Sprintf("%x", s.id)), zap.Int64("requested-revision", rev),
					zap.String("remote-peer-endpoint", u), zap.Error(p.err))
			}
		})
	}
	wg.Wait()
	return peers
}

// peerHashWait is how long the checks wait for a peer's hash of the whole
// history, given that this member's own hash of it took local: the
// request timeout, plus twice local. A peer hashes as much as this member
// did, possibly busier or with less of it in the page cache; at 10 GiB
// that is a minute or more, far past the request timeout, which alone
// would skip every peer of a large member and compare nothing.
func (s *Server) peerHashWait(local time.Duration) time.Duration {
	return s.cfg.requestTimeout() + 2*local
}

// initialCorruptCheck is the initial check (see the top of the file): nil
// when no comparable peer disagrees.
func (s *Server) initialCorruptCheck(ctx context.Context) error {
	local := fmt.Sprintf("%x", s.id)
	// Hashing the whole store takes a minute at 10 GiB: not for a member
	// with no peer to compare with.
	if !slices.ContainsFunc(s.members.Members(), func(m membership.Member) bool { return m.ID != s.id && len(m.PeerURLs) > 0 }) {
		s.lg.Info("skipping initial corruption check: no peer to compare with", zap.String("local-member-id", local))
		return nil
	}
	s.lg.Info("starting initial corruption check",
		zap.String("local-member-id", local), zap.Duration("timeout", s.cfg.requestTimeout()))
	// Nothing applies before the check, so the revision to compare is
	// known now and the peers hash while this member does: the check
	// takes one pass over the history, not two in a row.
	rev := s.kv.Rev()
	start := time.Now()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peersc := make(chan []peerHashResult, 1)
	go func() { peersc <- s.peerHashes(pctx, rev, false, 0) }()
	h, err := s.localHash(rev)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", local, err)
	}
	took := time.Since(start)
	wait := s.peerHashWait(took)
	// etcd's start line gives the request timeout; the peers' real
	// deadline is known only now.
	s.lg.Info("hashed the local history for the initial corruption check; waiting for the peers'",
		zap.String("local-member-id", local), zap.Int64("revision", rev), zap.Duration("took", took),
		zap.Duration("peers-deadline", wait))
	deadline := time.AfterFunc(time.Until(start.Add(wait)), cancel)
	defer deadline.Stop()
	mismatch := 0
	for _, p := range <-peersc {
		fields := []zap.Field{
			zap.String("local-member-id", local),
			zap.Int64("local-member-revision", h.HashRevision),
			zap.Int64("local-member-compact-revision", h.CompactRevision),
			zap.Uint32("local-member-hash", h.Hash),
			zap.String("remote-peer-id", fmt.Sprintf("%x", p.id)),
			zap.Strings("remote-peer-endpoints", p.urls),
		}
		if p.resp != nil {
			fields = append(fields,
				zap.Int64("remote-peer-revision", p.resp.Revision),
				zap.Int64("remote-peer-compact-revision", p.resp.CompactRevision),
				zap.Uint32("remote-peer-hash", p.resp.Hash))
			switch {
			case p.resp.Hash == h.Hash:
			case p.resp.CompactRevision == h.CompactRevision:
				s.lg.Warn("found different hash values from remote peer", fields...)
				mismatch++
			default:
				s.lg.Warn("found different compact revision values from remote peer", fields...)
			}
			continue
		}
		fields = append(fields, zap.Error(p.err))
		switch {
		case errors.Is(p.err, mvcc.ErrFutureRev):
			s.lg.Warn("cannot fetch hash from slow remote peer", fields...)
		case errors.Is(p.err, mvcc.ErrCompacted):
			s.lg.Warn("cannot fetch hash from remote peer; local member is behind", fields...)
		case errors.Is(p.err, errClusterIDMismatch):
			s.lg.Warn("cluster ID mismatch", fields...)
		default:
			s.lg.Warn("cannot fetch hash from remote peer; skipping it", fields...)
		}
	}
	if mismatch > 0 {
		return fmt.Errorf("%s %w", local, ErrDataInconsistency)
	}
	s.lg.Info("initial corruption checking passed; no corruption", zap.String("local-member-id", local))
	return nil
}

// monitorCorruption runs the periodic and compact hash checks while this
// member leads.
func (s *Server) monitorCorruption() {
	c := &s.corrupt
	defer close(c.done)
	var periodic, compact <-chan time.Time
	if s.cfg.CorruptCheckTime > 0 {
		t := time.NewTicker(s.cfg.CorruptCheckTime)
		defer t.Stop()
		periodic = t.C
	}
	if !s.cfg.NoCompactHashCheck {
		t := time.NewTicker(s.cfg.CompactHashCheckTime)
		defer t.Stop()
		compact = t.C
	}
	if periodic == nil && compact == nil {
		return
	}
	s.lg.Info("enabled corruption checking", zap.String("local-member-id", fmt.Sprintf("%x", s.id)),
		zap.Duration("interval", max(s.cfg.CorruptCheckTime, 0)),
		zap.Bool("compact-hash-check", compact != nil), zap.Duration("compact-hash-check-interval", s.cfg.CompactHashCheckTime))
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-periodic:
			if s.node.Status().IsLeader {
				if err := s.periodicCorruptCheck(c.ctx); err != nil && c.ctx.Err() == nil {
					s.lg.Warn("failed to check hash KV", zap.Error(err))
				}
			}
		case <-compact:
			if s.node.Status().IsLeader {
				s.compactHashCheck(c.ctx)
			}
		}
	}
}

// periodicCorruptCheck is one periodic check (see the top of the file).
// A member alone in its cluster has no one to compare with, and skips the
// two passes over its history.
func (s *Server) periodicCorruptCheck(ctx context.Context) error {
	if len(s.members.Members()) < 2 {
		return nil
	}
	// The peers are asked after the hash, not during it as in the
	// initial check: a follower a few entries behind the leader would
	// answer a request at the leader's revision with ErrFutureRev.
	start := time.Now()
	h, err := s.localHash(0)
	if err != nil {
		return err
	}
	peers := s.peerHashes(ctx, h.HashRevision, false, s.peerHashWait(time.Since(start)))
	if err := s.LinearizableBarrier(ctx); err != nil {
		return err
	}
	h2, err := s.localHash(0)
	if err != nil {
		return err
	}
	suspects, compared := periodicSuspects(s.id, h, h2, peers)
	if compared > 0 {
		s.corrupt.periodicCompared.Add(1)
	}
	if len(suspects) > 0 {
		s.lg.Error("found hash mismatch in the periodic corruption check",
			zap.Int64("revision", h.HashRevision), zap.Int64("compact-revision", h.CompactRevision),
			zap.Uint32("hash", h.Hash), zap.Uint32("hash-after-barrier", h2.Hash),
			zap.Int64("revision-after-barrier", h2.Revision), zap.Any("peers", peerFields(peers)),
			zap.Strings("corrupt-member-ids", hexIDs(suspects)))
	}
	for _, id := range suspects {
		s.raiseCorrupt(ctx, id)
	}
	s.lg.Debug("finished peer corruption check", zap.Int("number-of-peers-checked", compared))
	return nil
}

// compactHashCheck is one compact hash check (see the top of the file).
func (s *Server) compactHashCheck(ctx context.Context) {
	c := &s.corrupt
	if len(s.members.Members()) < 2 {
		return
	}
	checked := 0
	latest := c.compactChecked.Load()
	for _, h := range s.kv.CompactHashes() {
		if h.Revision <= latest {
			break
		}
		peers := s.peerHashes(ctx, h.Revision, true, s.cfg.requestTimeout())
		if ctx.Err() != nil {
			return
		}
		checked++
		suspects, done, agreed := compactSuspects(s.id, h, peers)
		if agreed {
			c.compactChecked.Store(h.Revision)
		}
		if len(suspects) > 0 {
			s.lg.Error("detected compaction hash mismatch",
				zap.String("leader-id", fmt.Sprintf("%x", s.id)), zap.Int64("leader-revision", h.Revision),
				zap.Int64("leader-compact-revision", h.CompactRevision), zap.Uint32("leader-hash", h.Hash),
				zap.Any("peers", peerFields(peers)), zap.Strings("corrupt-member-ids", hexIDs(suspects)))
			for _, id := range suspects {
				s.raiseCorrupt(ctx, id)
			}
		}
		if done {
			break
		}
		s.lg.Debug("skipped revision in compaction hash check; was not able to check all peers", zap.Int64("revision", h.Revision))
	}
	s.lg.Debug("finished compaction hash check", zap.Int("number-of-hashes-checked", checked))
}

// raiseCorrupt proposes CORRUPT for member id (0: the whole cluster),
// unless it is active already.
func (s *Server) raiseCorrupt(ctx context.Context, id uint64) {
	if s.alarms.has(alarmKey{typ: pb.AlarmType_CORRUPT, member: id}) {
		return
	}
	req := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT}
	if _, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: req}); err != nil && ctx.Err() == nil {
		s.lg.Warn("raising the CORRUPT alarm failed", zap.String("member-id", fmt.Sprintf("%x", id)), zap.Error(err))
	}
}

// periodicSuspects decides a periodic check from the leader's hash
// before (h) and after (h2) its linearizable barrier and the peers' hashes
// at h's revision. It returns the members to raise CORRUPT for, in order,
// and how many peers' hashes were comparable with the leader's.
func periodicSuspects(self uint64, h, h2 peerHash, peers []peerHashResult) (suspects []uint64, compared int) {
	add := func(id uint64) {
		if !slices.Contains(suspects, id) {
			suspects = append(suspects, id)
		}
	}
	// The leader's state changed while its revisions did not.
	if h2.HashRevision == h.HashRevision && h2.CompactRevision == h.CompactRevision && h2.Hash != h.Hash {
		add(self)
	}
	hashes := map[uint64]uint32{self: h.Hash}
	for _, p := range peers {
		if p.resp == nil {
			continue
		}
		// The peer answered before the barrier, so it cannot have applied
		// more than the leader after it.
		if p.resp.Revision > h2.Revision || p.resp.CompactRevision > h2.CompactRevision {
			add(p.id)
		}
		if p.resp.CompactRevision == h.CompactRevision {
			hashes[p.id] = p.resp.Hash
			compared++
		}
	}
	for _, id := range hashSuspects(hashes, len(peers)+1) {
		add(id)
	}
	return suspects, compared
}

// compactSuspects decides a compact hash check of the leader's compaction
// hash h against the peers' answers at h's revision: the members to raise
// CORRUPT for; done when the check need not look at older compactions
// (every member was compared, or a mismatch was found); agreed when every
// member was compared and all agree.
func compactSuspects(self uint64, h mvcc.CompactHash, peers []peerHashResult) (suspects []uint64, done, agreed bool) {
	hashes := map[uint64]uint32{self: h.Hash}
	for _, p := range peers {
		// A peer that recorded no hash at this revision (it is still
		// hashing, restarted since, or is behind) did not answer; one at
		// another compact revision is not comparable: skipped, as etcd
		// does.
		if p.resp != nil && p.resp.CompactRevision == h.CompactRevision {
			hashes[p.id] = p.resp.Hash
		}
	}
	suspects = hashSuspects(hashes, len(peers)+1)
	if len(suspects) > 0 {
		return suspects, true, false
	}
	all := len(hashes) == len(peers)+1
	return nil, all, all
}

// hashSuspects groups the comparable members' hashes: when they disagree,
// it returns the members outside the group that holds a quorum of all
// members (sorted), or member 0 when no group does.
func hashSuspects(hashes map[uint64]uint32, members int) []uint64 {
	groups := map[uint32][]uint64{}
	for id, h := range hashes {
		groups[h] = append(groups[h], id)
	}
	if len(groups) <= 1 {
		return nil
	}
	var majority uint32
	found := false
	for h, ids := range groups {
		if len(ids) >= quorum(members) {
			majority, found = h, true
		}
	}
	if !found {
		return []uint64{0}
	}
	var out []uint64
	for id, h := range hashes {
		if h != majority {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func hexIDs(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf("%x", id)
	}
	return out
}

// peerFields summarizes the peers' answers for a log line.
func peerFields(peers []peerHashResult) []string {
	out := make([]string, 0, len(peers))
	for _, p := range slices.SortedFunc(slices.Values(peers), func(a, b peerHashResult) int { return cmp.Compare(a.id, b.id) }) {
		if p.resp == nil {
			out = append(out, fmt.Sprintf("%x: %v", p.id, p.err))
			continue
		}
		out = append(out, fmt.Sprintf("%x: hash %d at revision %d, compact revision %d, current revision %d",
			p.id, p.resp.Hash, p.resp.HashRevision, p.resp.CompactRevision, p.resp.Revision))
	}
	return out
}
