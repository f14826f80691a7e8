package raftnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/wal"
)

var (
	// ErrStopped is returned by every call once the node has stopped.
	ErrStopped = errors.New("raftnode: stopped")
	// ErrNoLeader is returned when raft drops a proposal for want of a
	// leader: the leader it was known to be lost it just as the proposal
	// was made.
	ErrNoLeader = errors.New("raftnode: no leader")
	// ErrLeaderChanged is returned to ReadIndex callers whose round was
	// lost to a leadership change.
	ErrLeaderChanged = errors.New("raftnode: leader changed")
)

// Config configures a Node. Zero values take the defaults noted.
type Config struct {
	// ID is this member's raft ID; never 0. A member restarting from its
	// WAL takes its ID from the WAL's metadata through MetadataID instead,
	// when that is set.
	ID uint64
	// MetadataID, when set, decodes the member ID from WAL metadata.
	MetadataID func(metadata []byte) (uint64, error)
	// Peers are the voters of a new cluster, used only when Dir holds no WAL.
	Peers []uint64
	// Join starts a member that joins a running cluster: raft starts with
	// an empty log and no configuration, and learns both from the leader
	// (a snapshot). Peers is then ignored. A restart with Join set accepts
	// a WAL that never received anything.
	Join bool
	// Dir is the member directory; the WAL lives in Dir/wal (unless
	// WALDir says otherwise) and snapshots in Dir/snap.
	Dir string
	// WALDir, when set, is where the WAL lives instead (etcd's --wal-dir).
	WALDir string
	// FS is the filesystem seam; default vfs.Default.
	FS vfs.FS
	// Metadata is stored in a new WAL and returned by Metadata afterwards
	// (the member and cluster IDs).
	Metadata []byte
	// TickInterval is the heartbeat interval; default 100ms.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks; default 10.
	ElectionTicks int
	// SnapshotCount is how many applied entries trigger a raft snapshot and
	// log compaction; default 10000.
	SnapshotCount uint64
	// SnapshotCatchUpEntries are kept in the raft log after a compaction so
	// slow followers can catch up without a snapshot; default 5000.
	SnapshotCatchUpEntries uint64
	// MaxSnapshots bounds the snapshot files kept; default 5, negative
	// keeps all.
	MaxSnapshots int
	// WALSegmentSize is the size of WAL segment files; default
	// wal.DefaultSegmentSize (64 MiB).
	WALSegmentSize int64
	// WALSyncObserver, when set, is told the duration of every fsync of
	// the WAL tail (see wal.WithSyncObserver). It runs on the raft loop.
	WALSyncObserver func(time.Duration)
	// SnapSaveObserver, when set, is told how long each raft snapshot
	// file took to save (see snap.Snapshotter.ObserveSaves). It runs on
	// the raft loop.
	SnapSaveObserver func(encode, write, total time.Duration)
	// WALWriteObserver, when set, is told the size and duration of every
	// write of records to the WAL tail (see wal.WithWriteObserver). It
	// runs on the raft loop.
	WALWriteObserver func(bytes int, d time.Duration)
	// ForceNewCluster makes a restarting member the only member of its
	// cluster, keeping all its data (etcd's --force-new-cluster): entries
	// beyond the commit index are dropped, and conf changes removing every
	// other member (encoded by RemoveEntry) are appended and committed.
	ForceNewCluster bool
	// NoPreVote turns off raft's pre-vote (etcd's --pre-vote=false), with
	// which a member cut off from the others cannot disrupt the leader by
	// raising the term when it comes back.
	NoPreVote bool
	// RemoveEntry encodes the conf change entry data that removes member
	// id; required with ForceNewCluster.
	RemoveEntry func(id uint64) []byte
	// Transport sends messages and snapshots to peers; nil for a member
	// that will never have any (tests of a lone member).
	Transport Transport
	// SnapshotBody opens the state-machine snapshot sent with a MsgSnap to
	// a peer. Its state must be at least as new as the raft snapshot the
	// message carries; the apply loop's engine always is. Called off the
	// raft loop. Nil fails every snapshot send.
	SnapshotBody func() (io.ReadCloser, error)
	// StoreSnapshot durably stores the state-machine snapshot that came
	// with a MsgSnap, before raft sees the message. The apply loop installs
	// it when raft hands the snapshot over (Apply.Snapshot). Nil refuses
	// incoming snapshots.
	StoreSnapshot func(ctx context.Context, m *raftpb.Message, body io.Reader) error
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// Transport is what the node needs from the peer transport
// (transport.Transport). Neither method may block, and Send must not keep
// the slice it is given (raft's Ready owns it).
type Transport interface {
	Send(msgs []*raftpb.Message)
	SendSnapshot(m *raftpb.Message, body io.ReadCloser)
}

func (c *Config) ensureDefaults() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 10000
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = 5000
	}
	if c.MaxSnapshots == 0 {
		c.MaxSnapshots = 5
	}
	if c.WALSegmentSize == 0 {
		c.WALSegmentSize = wal.DefaultSegmentSize
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Apply is one hand-off of committed work to the apply loop, in log order.
type Apply struct {
	// Snapshot, when set, is a raft snapshot from the leader that this
	// member now starts from: the apply loop installs the state-machine
	// snapshot StoreSnapshot stored for it before applying Entries. It is
	// already durable in the WAL and snapshot directory.
	Snapshot *raftpb.Snapshot
	Entries  []*raftpb.Entry
}

// Status is a cheap snapshot of the node's raft state.
type Status struct {
	Term, Lead, Commit uint64
	IsLeader           bool
	// LeaderChanges counts the times this node learned of a new leader
	// since it started (etcd_server_leader_changes_seen_total).
	LeaderChanges uint64
	// LateHeartbeats counts the heartbeats this node, as leader, sent a
	// peer more than two heartbeat intervals after the previous one
	// (etcd_server_heartbeat_send_failures_total).
	LateHeartbeats uint64
	// FailedReadRounds counts the ReadIndex rounds a leader change failed
	// (etcd_server_read_indexes_failed_total); StaleReadStates the
	// ReadIndex answers that found their round already answered or failed
	// (part of etcd_server_slow_read_indexes_total).
	FailedReadRounds, StaleReadStates uint64
}

type proposal struct {
	ctx  context.Context // the caller's: a proposal it gave up on is not made
	data []byte
	cc   raftpb.ConfChangeI // a conf change instead of data
	errc chan error
}

type confChange struct {
	cc   raftpb.ConfChangeI
	resp chan *raftpb.ConfState
}

type snapRequest struct {
	index, term uint64
	cs          *raftpb.ConfState
}

// Node is a running raft member. Create it with Start.
type Node struct {
	cfg  Config
	lg   *zap.Logger
	rn   *raft.RawNode
	ms   *raft.MemoryStorage
	wal  *wal.WAL
	snap *snap.Snapshotter

	metadata  []byte
	confState *raftpb.ConfState // as of the raft snapshot, for restart
	snapIndex uint64            // raft loop only
	// alone is true while this member is the only voter and there are no
	// learners: no follower will ever need old log entries. Raft loop only.
	alone bool
	// transferring is set when a leadership transfer may be under way here
	// (this member asked for one, or a peer's request arrived) and cleared
	// once raft has none: raft drops proposals meanwhile, so they wait, as
	// they wait for a leader. Raft loop only.
	transferring bool
	// applied is the state machine's applied index, reported by SetApplied,
	// and appliedConf the configuration there.
	applied     atomic.Uint64
	appliedConf atomic.Pointer[appliedConf]

	recvc    chan *raftpb.Message
	reports  reports
	statusc  chan chan raft.Status
	transfer chan uint64
	advance  chan int
	propc    chan proposal
	readc    chan chan readResult
	confc    chan confChange
	snapc    chan snapRequest
	applyc   chan Apply
	stopc    chan struct{}
	donec    chan struct{}
	err      error // set before donec closes

	term, lead, commit atomic.Uint64
	leaderChanges      atomic.Uint64
	// lastHeartbeat is when the leader last sent each peer a heartbeat,
	// lateHeartbeats how many went out late (checkHeartbeats). The map is
	// the raft loop's.
	lastHeartbeat  map[uint64]time.Time
	lateHeartbeats atomic.Uint64
	// failedReadRounds counts the ReadIndex rounds a leader change
	// failed, staleReadStates the answers that came for no round in
	// flight.
	failedReadRounds, staleReadStates atomic.Uint64

	leaderMu      sync.Mutex
	leaderChanged chan struct{} // closed and replaced on every soft-state change

	// ReadIndex batching, raft loop only.
	readPending  []chan readResult
	readInflight map[uint64]*readRound
	readSeq      uint64
}

type readResult struct {
	index uint64
	err   error
}

// Start opens (or, when Dir holds no WAL, creates) the member's raft state and
// starts the loop.
func Start(cfg Config) (*Node, error) {
	cfg.ensureDefaults()
	n := &Node{
		cfg:           cfg,
		lg:            cfg.Logger,
		ms:            raft.NewMemoryStorage(),
		snap:          snap.New(cfg.FS, filepath.Join(cfg.Dir, "snap")),
		propc:         make(chan proposal, 1024),
		recvc:         make(chan *raftpb.Message, 4096),
		reports:       reports{wake: make(chan struct{}, 1)},
		statusc:       make(chan chan raft.Status),
		transfer:      make(chan uint64),
		advance:       make(chan int),
		readc:         make(chan chan readResult, 1024),
		confc:         make(chan confChange),
		snapc:         make(chan snapRequest, 1),
		applyc:        make(chan Apply, 64),
		stopc:         make(chan struct{}),
		donec:         make(chan struct{}),
		leaderChanged: make(chan struct{}),
		readInflight:  map[uint64]*readRound{},
	}
	if cfg.SnapSaveObserver != nil {
		n.snap.ObserveSaves(cfg.SnapSaveObserver)
	}
	walDir := WALDir(cfg.Dir, cfg.WALDir)
	var err error
	if !wal.Exist(cfg.FS, walDir) {
		err = n.bootstrap(walDir)
	} else {
		err = n.restart(walDir)
	}
	if err != nil {
		if n.wal != nil {
			n.wal.Close()
		}
		return nil, err
	}
	if cfg.MetadataID != nil {
		id, err := cfg.MetadataID(n.metadata)
		if err != nil {
			n.wal.Close()
			return nil, fmt.Errorf("raftnode: member ID from WAL metadata: %w", err)
		}
		n.cfg.ID = id
	}
	rc := &raft.Config{
		ID:                        n.cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             1,
		Storage:                   snapshotStorage{n.ms, n},
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  16 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   !cfg.NoPreVote,
		Logger:                    zapRaftLogger{cfg.Logger.Sugar()},
	}
	n.rn, err = raft.NewRawNode(rc)
	if err != nil {
		n.wal.Close()
		return nil, fmt.Errorf("raftnode: %w", err)
	}
	n.alone = isAlone(n.confState, n.cfg.ID)
	if n.alone {
		// A lone voter need not wait an election timeout to lead.
		if err := n.rn.Campaign(); err != nil {
			n.wal.Close()
			return nil, fmt.Errorf("raftnode: campaign: %w", err)
		}
	}
	go n.run()
	return n, nil
}

func (n *Node) walOptions() []wal.Option {
	return []wal.Option{wal.WithSegmentSize(n.cfg.WALSegmentSize), wal.WithSyncObserver(n.cfg.WALSyncObserver),
		wal.WithWriteObserver(n.cfg.WALWriteObserver)}
}

func (n *Node) bootstrap(walDir string) error {
	if n.cfg.Join {
		w, err := wal.Create(n.cfg.FS, walDir, n.cfg.Metadata, n.walOptions()...)
		if err != nil {
			return err
		}
		n.wal = w
		n.metadata = n.cfg.Metadata
		n.confState = &raftpb.ConfState{}
		return nil
	}
	if len(n.cfg.Peers) == 0 {
		return errors.New("raftnode: a new member needs its initial peers")
	}
	w, err := wal.Create(n.cfg.FS, walDir, n.cfg.Metadata, n.walOptions()...)
	if err != nil {
		return err
	}
	n.wal = w
	s, hs, err := writeFounding(n.snap, w, n.cfg.Peers)
	if err != nil {
		return err
	}
	n.confState = s.GetMetadata().GetConfState()
	if err := n.ms.ApplySnapshot(s); err != nil {
		return err
	}
	n.snapIndex = 1
	n.metadata = n.cfg.Metadata
	return n.ms.SetHardState(hs)
}

// writeFounding saves, through a new WAL and the snapshotter, the state
// every founding member of a new cluster starts from: the initial
// configuration (voters) as a raft snapshot at index 1, term 1, already
// committed. A snapshot rather than conf-change entries, so every founding
// member starts from the same state without applying anything.
func writeFounding(ss *snap.Snapshotter, w *wal.WAL, voters []uint64) (*raftpb.Snapshot, *raftpb.HardState, error) {
	s := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(1), Term: proto.Uint64(1), ConfState: &raftpb.ConfState{Voters: voters},
	}}
	if err := ss.SaveSnap(s); err != nil {
		return nil, nil, err
	}
	if err := w.SaveSnapshot(wal.Snapshot{Index: 1, Term: 1}); err != nil {
		return nil, nil, err
	}
	hs := &raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(1)}
	if err := w.Save(hs, nil); err != nil {
		return nil, nil, err
	}
	return s, hs, nil
}

// WALDir is where the WAL of member directory dir lives: walDir when
// given (etcd's --wal-dir), dir/wal otherwise.
func WALDir(dir, walDir string) string {
	if walDir != "" {
		return walDir
	}
	return filepath.Join(dir, "wal")
}

// WriteFounding writes into dir (what Config.Dir names) and walDir (what
// Config.WALDir names, "" for dir/wal) the raft state of a founding member
// of a new cluster of voters, with WAL metadata md: what Start writes for
// a new member with Peers, so that Start then restarts from it. cairnutl's
// snapshot restore builds data dirs this way.
func WriteFounding(fs vfs.FS, dir, walDir string, md []byte, voters []uint64) error {
	w, err := wal.Create(fs, WALDir(dir, walDir), md)
	if err != nil {
		return err
	}
	_, _, err = writeFounding(snap.New(fs, filepath.Join(dir, "snap")), w, voters)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

func (n *Node) restart(walDir string) error {
	markers, err := wal.ValidSnapshotEntries(n.cfg.FS, walDir)
	if err != nil {
		return err
	}
	s, err := n.snap.LoadNewestAvailable(markers)
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return err
	}
	var at wal.Snapshot
	if s != nil {
		at = wal.Snapshot{Index: s.GetMetadata().GetIndex(), Term: s.GetMetadata().GetTerm()}
	}
	w, err := wal.Open(n.cfg.FS, walDir, at, n.walOptions()...)
	if err != nil {
		return err
	}
	n.wal = w
	md, hs, ents, err := w.ReadAll()
	if err != nil {
		return err
	}
	n.metadata = md
	if s == nil && len(ents) == 0 && hs.GetCommit() == 0 && !n.cfg.Join {
		// A crash during the very first start, after the WAL was created
		// but before the initial configuration was recorded: there is no
		// configuration to start raft with and nothing was ever written.
		return fmt.Errorf("raftnode: %s holds a WAL from an unfinished first start and no data; remove %s and start again", walDir, n.cfg.Dir)
	}
	if s != nil {
		if err := n.ms.ApplySnapshot(s); err != nil {
			return err
		}
		n.confState = s.GetMetadata().GetConfState()
		n.snapIndex = at.Index
	}
	if n.confState == nil {
		n.confState = &raftpb.ConfState{}
	}
	if hs != nil {
		if err := n.ms.SetHardState(hs); err != nil {
			return err
		}
	}
	if n.cfg.ForceNewCluster {
		if ents, err = n.forceNewCluster(hs, ents, at.Index); err != nil {
			return err
		}
		if err := n.ms.SetHardState(hs); err != nil {
			return err
		}
	}
	n.lg.Info("restarting raft member",
		zap.Uint64("snapshot-index", at.Index), zap.Uint64("commit", hs.GetCommit()),
		zap.Int("wal-entries", len(ents)))
	return n.ms.Append(ents)
}

// forceNewCluster rewrites the log's tail so that this member alone forms
// the cluster: uncommitted entries go, and committed removals of every
// other member (as of the snapshot's configuration and the conf changes
// after it) follow the last committed entry. hs is updated in place.
func (n *Node) forceNewCluster(hs *raftpb.HardState, ents []*raftpb.Entry, snapIndex uint64) ([]*raftpb.Entry, error) {
	if hs == nil || n.cfg.RemoveEntry == nil {
		return nil, errors.New("raftnode: --force-new-cluster needs a member that has a raft state")
	}
	commit := hs.GetCommit()
	for i, e := range ents {
		if e.GetIndex() > commit {
			n.lg.Warn("force-new-cluster: discarding uncommitted entries", zap.Uint64("from", e.GetIndex()), zap.Int("count", len(ents)-i))
			ents = ents[:i]
			break
		}
	}
	members := map[uint64]bool{}
	for _, id := range n.confState.GetVoters() {
		members[id] = true
	}
	for _, id := range n.confState.GetLearners() {
		members[id] = true
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryConfChange {
			continue
		}
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, fmt.Errorf("raftnode: conf change at %d: %w", e.GetIndex(), err)
		}
		switch cc.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			members[cc.GetNodeId()] = true
		case raftpb.ConfChangeRemoveNode:
			delete(members, cc.GetNodeId())
		}
	}
	delete(members, n.cfg.ID)
	delete(members, raft.None)
	ids := make([]uint64, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	last := max(commit, snapIndex)
	var add []*raftpb.Entry
	for _, id := range ids {
		last++
		add = append(add, &raftpb.Entry{
			Type: raftpb.EntryConfChange.Enum(), Term: proto.Uint64(hs.GetTerm()),
			Index: proto.Uint64(last), Data: n.cfg.RemoveEntry(id),
		})
	}
	hs.Commit = proto.Uint64(last)
	if err := n.wal.Save(hs, add); err != nil {
		return nil, err
	}
	n.lg.Warn("force-new-cluster: removing every other member", zap.Int("members", len(ids)), zap.Uint64("commit", last))
	return append(ents, add...), nil
}

// Metadata returns what the WAL was created with.
func (n *Node) Metadata() []byte { return n.metadata }

// ConfState returns the configuration as of the newest raft snapshot; the
// apply loop tracks later changes itself.
func (n *Node) ConfState() *raftpb.ConfState { return n.confState }

// SnapshotIndex returns the index of the raft snapshot loaded at start.
func (n *Node) SnapshotIndex() uint64 { return n.snapIndex }

// Apply returns the channel of committed work for the apply loop.
func (n *Node) Apply() <-chan Apply { return n.applyc }

// Done closes when the loop has stopped; Err then tells why.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Err is the error that stopped the node, nil after a clean Stop.
func (n *Node) Err() error {
	select {
	case <-n.donec:
		return n.err
	default:
		return nil
	}
}

// Status returns the node's current term, leader and commit index.
func (n *Node) Status() Status {
	lead := n.lead.Load()
	return Status{Term: n.term.Load(), Lead: lead, Commit: n.commit.Load(), IsLeader: lead == n.cfg.ID,
		LeaderChanges: n.leaderChanges.Load(), LateHeartbeats: n.lateHeartbeats.Load(),
		FailedReadRounds: n.failedReadRounds.Load(), StaleReadStates: n.staleReadStates.Load()}
}

// LeaderChanged returns a channel that closes at the next leadership change.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderChanged
}

// Propose hands data to raft. A nil error means raft accepted the proposal,
// not that it committed; the caller learns that from the apply loop. While
// no leader is known the proposal waits for one (or for ctx), as it does
// in etcd's raft.Node: an election does not fail the writes made during it.
// It also waits while this leader hands leadership over, which raft would
// answer by dropping it (etcd then fails the write), and goes to the new
// leader.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	return n.submit(ctx, proposal{data: data, errc: make(chan error, 1)})
}

// submit hands p to the raft loop and waits for raft's verdict on it.
func (n *Node) submit(ctx context.Context, p proposal) error {
	p.ctx = ctx
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
	select {
	case err := <-p.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
}

// ReadIndex returns a commit index that is at least the leader's commit
// index at some point after the call began: once the state machine has
// applied it, a local read is linearizable. Concurrent calls share a round.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	c := make(chan readResult, 1)
	select {
	case n.readc <- c:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.donec:
		return 0, ErrStopped
	}
	select {
	case r := <-c:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.donec:
		return 0, ErrStopped
	}
}

// ApplyConfChange applies a committed configuration change to raft and
// returns the new configuration. Only the apply loop calls it.
func (n *Node) ApplyConfChange(ctx context.Context, cc raftpb.ConfChangeI) (*raftpb.ConfState, error) {
	req := confChange{cc: cc, resp: make(chan *raftpb.ConfState, 1)}
	select {
	case n.confc <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.donec:
		return nil, ErrStopped
	}
	select {
	case cs := <-req.resp:
		return cs, nil
	case <-n.donec:
		return nil, ErrStopped
	}
}

// RequestSnapshot tells the loop that the state machine has durably applied
// everything up to index (whose entry has the given term) under
// configuration cs. When SnapshotCount entries
// have been applied since the last raft snapshot, the loop writes a new one,
// compacts the in-memory log and releases WAL segments. It never blocks; a
// request arriving while another is queued is dropped (the next one will do).
func (n *Node) RequestSnapshot(index, term uint64, cs *raftpb.ConfState) {
	select {
	case n.snapc <- snapRequest{index: index, term: term, cs: cs}:
	default:
	}
}

// ShouldSnapshot reports whether a snapshot at applied index would be taken;
// the apply loop uses it to sync the state machine only when needed.
func (n *Node) ShouldSnapshot(applied, lastSnap uint64) bool {
	return applied >= lastSnap+n.cfg.SnapshotCount
}

// Stop stops the loop and closes the WAL.
func (n *Node) Stop() {
	select {
	case <-n.stopc:
	default:
		close(n.stopc)
	}
	<-n.donec
}

func (n *Node) run() {
	var err error
	defer func() {
		if cerr := n.wal.Close(); err == nil && cerr != nil {
			err = cerr
		}
		n.err = err
		n.failReads(ErrStopped)
		close(n.donec)
		if err != nil {
			n.lg.Error("raft loop stopped", zap.Error(err))
		}
	}()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		// Proposals wait in propc while no leader is known, and while this
		// leader hands leadership over: they then go to the new one.
		if n.transferring && n.rn.BasicStatus().LeadTransferee == raft.None {
			n.transferring = false
		}
		propc := n.propc
		if n.lead.Load() == raft.None || n.transferring {
			propc = nil
		}
		select {
		case <-ticker.C:
			n.rn.Tick()
			n.retryReads()
		case p := <-propc:
			n.propose(p)
			for drained := 0; drained < 1024; drained++ {
				select {
				case p := <-n.propc:
					n.propose(p)
					continue
				default:
				}
				break
			}
		case m := <-n.recvc:
			n.step(m)
			for drained := 0; drained < 4096; drained++ {
				select {
				case m := <-n.recvc:
					n.step(m)
					continue
				default:
				}
				break
			}
		case <-n.reports.wake:
			n.reports.deliver(n.rn)
		case c := <-n.statusc:
			c <- n.rn.Status()
		case to := <-n.transfer:
			n.transferring = true
			n.rn.TransferLeader(to)
		case k := <-n.advance:
			for range k {
				n.rn.Tick()
			}
		case c := <-n.readc:
			n.readPending = append(n.readPending, c)
		case cc := <-n.confc:
			n.applyConfChange(cc)
		case r := <-n.snapc:
			if err = n.snapshot(r); err != nil {
				return
			}
		case <-n.stopc:
			return
		}
		if len(n.readPending) > 0 && n.lead.Load() != raft.None {
			n.readSeq++
			n.readInflight[n.readSeq] = &readRound{waiters: n.readPending}
			n.readPending = nil
			n.sendReadIndex(n.readSeq)
		}
		for n.rn.HasReady() {
			if err = n.handleReady(); err != nil {
				return
			}
		}
		if err = n.trimLog(); err != nil {
			return
		}
	}
}

func (n *Node) applyConfChange(cc confChange) {
	cs := n.rn.ApplyConfChange(cc.cc)
	n.alone = isAlone(cs, n.cfg.ID)
	cc.resp <- cs
}

// step hands a peer's message to raft.
func (n *Node) step(m *raftpb.Message) {
	if m.GetType() == raftpb.MessageType_MsgTransferLeader {
		n.transferring = true
	}
	if err := n.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		n.lg.Debug("raft refused a peer message", zap.Stringer("type", m.GetType()), zap.Uint64("from", m.GetFrom()), zap.Error(err))
	}
}

func isAlone(cs *raftpb.ConfState, id uint64) bool {
	return len(cs.GetVoters()) == 1 && cs.GetVoters()[0] == id &&
		len(cs.GetLearners()) == 0 && len(cs.GetVotersOutgoing()) == 0
}

// trimStep is how many applied entries accumulate before trimLog drops them.
const trimStep = 1024

// trimLog bounds the in-memory raft log, which otherwise grows until the
// next snapshot (--snapshot-count entries, whatever their size). Entries up
// to the applied index are never read again except to catch up followers,
// so it keeps only SnapshotCatchUpEntries of them, or none when this member
// is alone. The WAL, not this log, is what restarts read.
func (n *Node) trimLog() error {
	keep := n.cfg.SnapshotCatchUpEntries
	if n.alone {
		keep = 0
	}
	applied := n.applied.Load()
	if applied <= keep {
		return nil
	}
	// Nothing trimmed is lost to followers: one behind the log's start is
	// sent a snapshot at the applied index (snapshotStorage).
	to := applied - keep
	first, err := n.ms.FirstIndex()
	if err != nil {
		return err
	}
	if to < first+trimStep {
		return nil
	}
	if err := n.ms.Compact(to); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("raftnode: trimming the in-memory log to %d: %w", to, err)
	}
	return nil
}

// SetApplied tells the node how far in raft's log the state machine has
// applied, and the configuration cs as of there, so the in-memory log can
// drop what no one will read again and a member behind the log can be
// sent a snapshot at that index.
func (n *Node) SetApplied(index uint64, cs *raftpb.ConfState) {
	n.appliedConf.Store(&appliedConf{index: index, cs: cs})
	n.applied.Store(index)
}

type appliedConf struct {
	index uint64
	cs    *raftpb.ConfState
}

// snapshotStorage is raft's storage, with one change: the snapshot raft
// sends a member behind the log is as new as the state machine's applied
// index, not the last periodic one. A member added after the periodic
// snapshot must find itself in the snapshot's configuration, or raft
// refuses it; and a newer snapshot leaves it less log to replay.
type snapshotStorage struct {
	*raft.MemoryStorage
	n *Node
}

func (s snapshotStorage) Snapshot() (*raftpb.Snapshot, error) {
	cur, err := s.MemoryStorage.Snapshot()
	if err != nil {
		return cur, err
	}
	if a := s.n.appliedConf.Load(); a != nil && a.index > cur.GetMetadata().GetIndex() {
		if fresh, err := s.MemoryStorage.CreateSnapshot(a.index, a.cs, nil); err == nil {
			return fresh, nil
		}
	}
	return cur, nil
}

func (n *Node) propose(p proposal) {
	if err := p.ctx.Err(); err != nil {
		p.errc <- err // its caller has gone: nobody waits for the outcome
		return
	}
	var err error
	if p.cc != nil {
		err = n.rn.ProposeConfChange(p.cc)
	} else {
		err = n.rn.Propose(p.data)
	}
	if errors.Is(err, raft.ErrProposalDropped) {
		err = ErrNoLeader
	}
	p.errc <- err
}

// checkHeartbeats warns of and counts, as etcd does, a heartbeat that the
// leader sends a peer more than two heartbeat intervals after the previous
// one: the raft loop fell behind (a slow disk, an overloaded machine), and
// the peer may time out and start an election. Raft loop only.
func (n *Node) checkHeartbeats(msgs []*raftpb.Message) {
	now := time.Now()
	for _, m := range msgs {
		if m.GetType() != raftpb.MessageType_MsgHeartbeat {
			continue
		}
		if n.lastHeartbeat == nil {
			n.lastHeartbeat = map[uint64]time.Time{}
		}
		to := m.GetTo()
		if last, ok := n.lastHeartbeat[to]; ok {
			if gap, limit := now.Sub(last), 2*n.cfg.TickInterval; gap > limit {
				n.lateHeartbeats.Add(1)
				n.lg.Warn("leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
					zap.String("to", fmt.Sprintf("%x", to)),
					zap.Duration("heartbeat-interval", n.cfg.TickInterval),
					zap.Duration("expected-duration", limit),
					zap.Duration("exceeded-duration", gap-limit))
			}
		}
		n.lastHeartbeat[to] = now
	}
}

func (n *Node) handleReady() error {
	rd := n.rn.Ready()
	if ss := rd.SoftState; ss != nil {
		if old := n.lead.Swap(ss.Lead); old != ss.Lead {
			if ss.Lead != raft.None {
				n.leaderChanges.Add(1)
			}
			n.failReads(ErrLeaderChanged)
			clear(n.lastHeartbeat) // a new term: no heartbeat is late yet
			n.lg.Info("raft leader changed", zap.Uint64("leader", ss.Lead), zap.Uint64("term", n.rn.BasicStatus().GetTerm()))
		}
		n.leaderMu.Lock()
		close(n.leaderChanged)
		n.leaderChanged = make(chan struct{})
		n.leaderMu.Unlock()
	}
	// A leader may send while it persists: raft only needs its HardState
	// (term and vote) durable before messages go out, and a leader's was
	// saved when it campaigned. Followers answer only once durable.
	leader := n.lead.Load() == n.cfg.ID
	if leader {
		n.checkHeartbeats(rd.Messages)
		n.send(rd.Messages)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	// Committed entries that an earlier Ready already made durable go to
	// the apply loop before this Ready's fsync, so applying one batch
	// overlaps with persisting the next. Any committed entry that arrives in
	// this very Ready (a follower learning entry and commit together) waits
	// until it is saved.
	durable, rest := splitPersisted(rd.CommittedEntries, rd.Entries)
	// Publish the commit index before handing out entries up to it, so
	// Status never shows the state machine applied past the commit index.
	if c := rd.HardState.GetCommit(); c > n.commit.Load() {
		n.commit.Store(c)
	}
	if len(durable) > 0 {
		if err := n.deliver(Apply{Entries: durable}); err != nil {
			return err
		}
	}
	hs := rd.HardState
	if hs != nil && raft.IsEmptyHardState(hs) {
		hs = nil
	}
	if err := n.wal.Save(hs, rd.Entries); err != nil {
		return fmt.Errorf("raftnode: WAL save: %w", err)
	}
	if hs != nil {
		if err := n.ms.SetHardState(hs); err != nil {
			return err
		}
		n.term.Store(hs.GetTerm())
	}
	if err := n.ms.Append(rd.Entries); err != nil {
		return err
	}
	if !leader {
		n.send(rd.Messages)
	}
	if len(rest) > 0 {
		if err := n.deliver(Apply{Entries: rest}); err != nil {
			return err
		}
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(rs.RequestCtx)
		r := n.readInflight[seq]
		if r == nil {
			// The answer to a request sent again (retryReads), or to a
			// round a leader change failed: its readers are gone.
			n.staleReadStates.Add(1)
			continue
		}
		for _, c := range r.waiters {
			c <- readResult{index: rs.Index}
		}
		delete(n.readInflight, seq)
	}
	n.rn.Advance(rd)
	return nil
}

// splitPersisted splits committed entries into those before the first entry
// this Ready is about to persist, and the rest.
func splitPersisted(committed, unsaved []*raftpb.Entry) (durable, rest []*raftpb.Entry) {
	if len(unsaved) == 0 {
		return committed, nil
	}
	first := unsaved[0].GetIndex()
	i := 0
	for i < len(committed) && committed[i].GetIndex() < first {
		i++
	}
	return committed[:i], committed[i:]
}

// deliver hands committed entries to the apply loop. While it waits, it keeps
// serving the calls the apply loop itself may be blocked on.
func (n *Node) deliver(a Apply) error {
	for {
		select {
		case n.applyc <- a:
			return nil
		case cc := <-n.confc:
			n.applyConfChange(cc)
		case r := <-n.snapc:
			if err := n.snapshot(r); err != nil {
				return err
			}
		case <-n.stopc:
			return ErrStopped
		}
	}
}

func (n *Node) snapshot(r snapRequest) error {
	if !n.ShouldSnapshot(r.index, n.snapIndex) {
		return nil
	}
	// The raft loop waits for all of this (two fsyncs and the WAL
	// release), so its length is logged: a slow disk here stalls writes.
	start := time.Now()
	// The file records where the state machine is; raft's in-memory
	// snapshot, the one followers are sent, is made when raft asks for it
	// (snapshotStorage).
	s := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(r.index), Term: proto.Uint64(r.term), ConfState: r.cs,
	}}
	if err := n.snap.SaveSnap(s); err != nil {
		return err
	}
	if err := n.wal.SaveSnapshot(wal.Snapshot{Index: r.index, Term: r.term}); err != nil {
		return err
	}
	n.snapIndex = r.index
	if r.index > n.cfg.SnapshotCatchUpEntries {
		if err := n.ms.Compact(r.index - n.cfg.SnapshotCatchUpEntries); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	if err := n.wal.ReleaseTo(r.index); err != nil {
		return err
	}
	if err := n.snap.Purge(n.cfg.MaxSnapshots); err != nil {
		n.lg.Warn("purging old snapshots failed", zap.Error(err))
	}
	n.lg.Info("saved raft snapshot", zap.Uint64("index", r.index), zap.Uint64("term", r.term), zap.Duration("took", time.Since(start)))
	return nil
}

// readRound is one ReadIndex request in flight and the callers sharing it.
type readRound struct {
	waiters []chan readResult
	ticks   int // since it was last sent
}

func (n *Node) sendReadIndex(seq uint64) {
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], seq)
	n.rn.ReadIndex(ctx[:])
}

// retryReads sends again the ReadIndex requests unanswered for half an
// election timeout. Raft does not retransmit them: a request or answer
// lost between a follower and the leader would otherwise hold its readers
// until they time out. A late duplicate answer finds its round gone.
func (n *Node) retryReads() {
	if n.lead.Load() == raft.None {
		return
	}
	for seq, r := range n.readInflight {
		if r.ticks++; r.ticks >= max(n.cfg.ElectionTicks/2, 1) {
			r.ticks = 0
			n.sendReadIndex(seq)
		}
	}
}

func (n *Node) failReads(err error) {
	if err != ErrStopped {
		n.failedReadRounds.Add(uint64(len(n.readInflight)))
	}
	for seq, r := range n.readInflight {
		for _, c := range r.waiters {
			c <- readResult{err: err}
		}
		delete(n.readInflight, seq)
	}
	if err == ErrStopped {
		for _, c := range n.readPending {
			c <- readResult{err: err}
		}
		n.readPending = nil
	}
}

// zapRaftLogger adapts zap to raft.Logger.
type zapRaftLogger struct{ *zap.SugaredLogger }

func (l zapRaftLogger) Warning(v ...interface{})                 { l.Warn(v...) }
func (l zapRaftLogger) Warningf(format string, v ...interface{}) { l.Warnf(format, v...) }
