package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/lease"
	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/mvcc/watch"
	"github.com/cairn-kv/cairn/raftnode"
	"github.com/cairn-kv/cairn/storage"
	"github.com/cairn-kv/cairn/transport"
	"github.com/cairn-kv/cairn/wal"
)

// EtcdAPIVersion is the etcd version Cairn reports in Status and /version
// so that clients' version checks pass.
const EtcdAPIVersion = "3.7.0"

// ClusterVersion is the etcd cluster version a Cairn cluster runs at:
// EtcdAPIVersion's major.minor, as etcd's cluster_version metric, Downgrade
// and /version (with a zero patch) show it.
const ClusterVersion = "3.7"

// Version is Cairn's own version.
const Version = "0.1.0"

// Server is one running member.
type Server struct {
	cfg       Config
	lg        *zap.Logger
	eng       *storage.Engine
	kv        *mvcc.Store
	node      *raftnode.Node
	id        uint64
	clusterID uint64
	memberDir string
	members   *membership.Cluster
	tr        *transport.Transport
	lateTr    lateTransport
	fwd       forwarder
	// componentMetrics holds the collectors of the member's components
	// that MetricsCollector exports along with its own: the peer
	// transport's etcd_network_* and, through RegisterMetrics, the gRPC
	// services' grpc_server_*.
	componentMetrics *prometheus.Registry
	// removedc closes when a peer refuses this member as removed.
	removedc    chan struct{}
	removedOnce sync.Once
	// bootPeers are the members a joining member was told of, its peers
	// until the cluster's state reaches it.
	bootPeers []membership.Member
	// peerURLs are the transport's peers; apply loop only after start.
	peerURLs map[uint64][]string

	reqID   atomic.Uint64
	w       waiters
	applied appliedWait
	// appliedIndex mirrors the apply loop's position for Status.
	appliedIndex atomic.Uint64
	// size and inUse cache the engine's sizes (storage.Engine.Sizes),
	// computed at sizeAt (unix ns).
	size, inUse, sizeAt atomic.Int64

	hub    *watch.Hub
	lessor *lease.Lessor
	// alarms are the cluster's active alarms (alarm.go).
	alarms *alarmSet
	// corrupt is the state of the corruption checks (corrupt.go).
	corrupt corruptionChecks
	// applyEvents collects the watch events of the group being applied;
	// apply loop only.
	applyEvents []*mvccpb.Event
	// metrics are the write path's counters for /metrics (metrics.go).
	metrics serverMetrics
	// leaderLoss ends the streams that require a leader (leaderloss.go).
	leaderLoss leaderLoss
	// hist are the member's histograms, and the metrics that go with them
	// (histograms.go).
	hist *histograms

	readyc   chan struct{}
	drainc   chan struct{}
	drain    sync.Once
	stopc    chan struct{}
	donec    chan struct{}
	stopOnce sync.Once
	errMu    sync.Mutex
	err      error
}

// walMetadata is what a member's WAL remembers about who it is.
type walMetadata struct {
	MemberID  uint64 `json:"member_id"`
	ClusterID uint64 `json:"cluster_id"`
	Name      string `json:"name"`
}

func decodeWALMetadata(b []byte) (walMetadata, error) {
	var meta walMetadata
	err := json.Unmarshal(b, &meta)
	return meta, err
}

// New opens or creates the member in cfg.DataDir and starts it. The member
// serves once ReadyNotify closes.
func New(cfg Config) (*Server, error) {
	cfg.ensureDefaults()
	s := &Server{
		cfg:              cfg,
		lg:               cfg.Logger,
		readyc:           make(chan struct{}),
		componentMetrics: prometheus.NewRegistry(),
		hist:             newHistograms(),
		removedc:         make(chan struct{}),
		drainc:           make(chan struct{}),
		stopc:            make(chan struct{}),
		donec:            make(chan struct{}),
	}
	s.componentMetrics.MustRegister(s.hist.collectors()...)
	s.lg.Info("starting a cairn member",
		zap.String("cairn-version", Version),
		zap.String("etcd-api-version", EtcdAPIVersion),
		zap.String("go-version", runtime.Version()),
		zap.String("go-os", runtime.GOOS),
		zap.String("go-arch", runtime.GOARCH),
		zap.Int("max-cpu-set", runtime.GOMAXPROCS(0)),
		zap.Int("max-cpu-available", runtime.NumCPU()),
		zap.String("name", cfg.Name),
		zap.String("data-dir", cfg.DataDir),
		zap.Strings("advertise-client-urls", cfg.ClientURLs),
		zap.Strings("initial-advertise-peer-urls", cfg.PeerURLs),
		zap.String("initial-cluster", cfg.InitialCluster),
		zap.String("initial-cluster-state", cfg.InitialClusterState),
		zap.Int64("quota-backend-bytes", cfg.QuotaBackendBytes),
		zap.Uint64("snapshot-count", cfg.SnapshotCount),
		zap.Duration("heartbeat-interval", cfg.HeartbeatInterval),
		zap.Duration("election-timeout", cfg.ElectionTimeout),
		zap.Bool("initial-corrupt-check", !cfg.NoInitialCorruptCheck),
	)
	s.corrupt.init(cfg.PeerDialTLS)
	initial, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return nil, err
	}
	self, err := initialSelf(initial, cfg.Name, cfg.InitialCluster)
	if err != nil {
		return nil, err
	}
	memberDir := filepath.Join(cfg.DataDir, "member")
	walDir := raftnode.WALDir(memberDir, cfg.WALDir)
	fresh := !wal.Exist(cfg.FS, walDir)
	if inDataDir := raftnode.WALDir(memberDir, ""); fresh && walDir != inDataDir && wal.Exist(cfg.FS, inDataDir) {
		// Starting afresh would found a new member over the data dir's.
		return nil, fmt.Errorf("--wal-dir %s holds no WAL, but the data dir has one in %s: move that directory to %s, or start without --wal-dir", walDir, inDataDir, walDir)
	}
	if fresh {
		if err := checkAdvertisedPeerURLs(self, cfg.PeerURLs); err != nil {
			return nil, err
		}
	}
	if err := cfg.FS.MkdirAll(memberDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir %s: %w", memberDir, err)
	}
	s.memberDir = memberDir
	join := fresh && cfg.InitialClusterState == "existing"
	clusterID, boot := membership.ClusterID(initial), initial
	if fresh {
		if clusterID, boot, err = s.bootstrapIdentity(initial, self); err != nil {
			return nil, err
		}
	}
	md, err := json.Marshal(walMetadata{MemberID: self.ID, ClusterID: clusterID, Name: cfg.Name})
	if err != nil {
		return nil, err
	}
	// The raft WAL is the member's log: the engine keeps none of its own,
	// and what a crash takes from it is applied again from the raft WAL.
	s.eng, err = storage.Open(filepath.Join(memberDir, "db"), storage.Options{FS: cfg.FS, DisableWAL: true, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	s.kv, err = mvcc.Open(s.eng, cfg.Logger)
	if err != nil {
		s.eng.Close()
		return nil, err
	}
	if applied := s.kv.Meta().AppliedIndex; fresh && applied > 0 {
		// A database that applied entries of a WAL that is not where the
		// options say: bootstrapping would start a new raft log under it.
		s.kv.Close()
		s.eng.Close()
		return nil, fmt.Errorf("the data dir's database has applied raft entries up to index %d, but %s holds no WAL: if this member ran with --wal-dir, start it with the same --wal-dir", applied, walDir)
	}
	s.kv.ObserveCompactions(s.hist.observeCompaction)
	s.hub = watch.NewHub(s.kv, watch.Config{Logger: cfg.Logger})
	s.lessor, err = lease.Open(lease.Config{
		CheckpointInterval: cfg.LeaseCheckpointInterval,
		TickInterval:       cfg.LeaseTickInterval,
		Clock:              cfg.LeaseClock,
		Logger:             cfg.Logger,
	}, s.eng, s.kv)
	if err != nil {
		s.closeStorage()
		return nil, err
	}
	if s.members, err = membership.Load(s.eng, s.kv, cfg.MaxLearners); err != nil {
		s.closeStorage()
		return nil, err
	}
	if s.alarms, err = loadAlarms(s.eng, s.kv); err != nil {
		s.closeStorage()
		return nil, err
	}
	if fresh && !join && len(s.members.Members()) == 0 {
		// The founding members, identical on each of them, as of the
		// initial raft snapshot at index 1. Names and client URLs come
		// later, when each member publishes its own.
		for _, m := range initial {
			s.members.Add(membership.Member{ID: m.ID, PeerURLs: m.PeerURLs})
		}
		if err := s.kv.Commit(mvcc.Meta{AppliedIndex: 1, AppliedTerm: 1}, true); err != nil {
			s.closeStorage()
			return nil, err
		}
	}
	var peers []uint64
	if !join {
		for _, m := range initial {
			peers = append(peers, m.ID)
		}
	}
	s.node, err = raftnode.Start(raftnode.Config{
		ID: self.ID,
		MetadataID: func(md []byte) (uint64, error) {
			meta, err := decodeWALMetadata(md)
			return meta.MemberID, err
		},
		Peers:                  peers,
		Join:                   cfg.InitialClusterState == "existing",
		ForceNewCluster:        cfg.ForceNewCluster && !fresh,
		NoPreVote:              cfg.NoPreVote,
		RemoveEntry:            encodeRemove,
		Dir:                    memberDir,
		WALDir:                 cfg.WALDir,
		FS:                     cfg.FS,
		Metadata:               md,
		TickInterval:           cfg.HeartbeatInterval,
		ElectionTicks:          int(cfg.ElectionTimeout / cfg.HeartbeatInterval),
		SnapshotCount:          cfg.SnapshotCount,
		SnapshotCatchUpEntries: cfg.SnapshotCatchUpEntries,
		MaxSnapshots:           cfg.MaxSnapshots,
		WALSegmentSize:         cfg.WALSegmentSize,
		Transport:              &s.lateTr,
		SnapshotBody:           s.snapshotBody,
		StoreSnapshot:          s.storeSnapshot,
		Logger:                 cfg.Logger,
		// Times the WAL fsyncs for /metrics.
		WALSyncObserver: s.metrics.walFsync.observe,
		SnapSaveObserver: func(encode, write, total time.Duration) {
			s.metrics.snapEncode.observe(encode)
			s.metrics.snapFsync.observe(write)
			s.metrics.snapSave.observe(total)
		},
		WALWriteObserver: func(n int, d time.Duration) {
			s.metrics.walWriteBytes.Add(uint64(n))
			s.metrics.walWrite.observe(d)
		},
	})
	if err != nil {
		s.closeStorage()
		return nil, err
	}
	meta, err := decodeWALMetadata(s.node.Metadata())
	if err != nil {
		s.node.Stop()
		s.closeStorage()
		return nil, fmt.Errorf("member WAL metadata in %s is unreadable: %w", memberDir, err)
	}
	if meta.MemberID != self.ID {
		s.lg.Warn("member ID in the data dir differs from the configured one; keeping the data dir's",
			zap.String("data-dir-member-id", fmt.Sprintf("%x", meta.MemberID)))
	}
	s.id, s.clusterID = meta.MemberID, meta.ClusterID
	if s.members.IsRemoved(s.id) || s.wasRemoved() {
		s.node.Stop()
		s.closeStorage()
		return nil, fmt.Errorf("member %x was removed from the cluster and cannot rejoin with data dir %s: remove the data dir, add the member again (member add), and start it with --initial-cluster-state=existing", s.id, cfg.DataDir)
	}
	// Before the transport starts, so before the member votes, leads or
	// sends its state to anyone. A new member has nothing to compare yet.
	if !fresh && !cfg.NoInitialCorruptCheck && !cfg.ForceNewCluster {
		if err := s.initialCorruptCheck(context.Background()); err != nil {
			s.node.Stop()
			s.closeStorage()
			return nil, err
		}
	}
	s.bootPeers = boot
	s.reqID.Store(s.id<<48 | (uint64(time.Now().UnixMilli())&(1<<40-1))<<8)
	if err := s.startTransport(); err != nil {
		s.node.Stop()
		s.closeStorage()
		return nil, err
	}

	// The member's directories must survive power loss before anything in
	// them is acknowledged: fsync each one's entry in its parent.
	if err := fsutil.SyncDir(cfg.FS, filepath.Dir(filepath.Clean(cfg.DataDir)), cfg.DataDir, memberDir); err != nil {
		s.tr.Close()
		s.node.Stop()
		s.closeStorage()
		return nil, err
	}
	snapIndex := s.node.SnapshotIndex()
	if s.kv.Meta().AppliedIndex < snapIndex && snapIndex > 1 {
		if err := s.recoverSnapshot(snapIndex); err != nil {
			s.tr.Close()
			s.node.Stop()
			s.closeStorage()
			return nil, err
		}
	}
	s.removeStaged(true)
	applied := s.kv.Meta().AppliedIndex
	if applied < snapIndex && snapIndex > 1 {
		s.tr.Close()
		s.node.Stop()
		s.closeStorage()
		return nil, fmt.Errorf("data dir %s is inconsistent: engine applied index %d is behind raft snapshot %d; restore the member from a snapshot", cfg.DataDir, applied, snapIndex)
	}
	applied = max(applied, snapIndex)
	s.applied.advance(applied)
	s.appliedIndex.Store(applied)
	s.lg.Info("member started",
		zap.String("name", cfg.Name), zap.String("data-dir", cfg.DataDir),
		zap.String("member-id", fmt.Sprintf("%x", s.id)), zap.String("cluster-id", fmt.Sprintf("%x", s.clusterID)),
		zap.Uint64("applied-index", applied), zap.Int64("revision", s.kv.Rev()))
	s.lessor.Start(leaseProposer{s})
	go s.monitorCorruption()
	go s.applyLoop(applied, snapIndex, s.node.ConfState())
	go s.waitReady()
	go s.followLeadership()
	go s.monitorFileDescriptors()
	go s.monitorLeaderLoss()
	go s.advanceElectionTicks()
	return s, nil
}

func (s *Server) closeStorage() {
	s.hub.Close()
	s.kv.Close()
	s.eng.Close()
}

// waitReady closes readyc once a leader exists and everything committed
// before start-up has been applied, so the first reads are not stale.
func (s *Server) waitReady() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.requestTimeout())
		err := s.LinearizableBarrier(ctx)
		if err == nil {
			err = s.publish(ctx)
		}
		cancel()
		if err == nil {
			close(s.readyc)
			return
		}
		select {
		case <-s.stopc:
			return
		default:
		}
	}
}

// ReadyNotify closes when the member can serve requests.
func (s *Server) ReadyNotify() <-chan struct{} { return s.readyc }

// Drain announces a shutdown: long-lived streams (watches) end so that a
// graceful stop of the gRPC server need not wait for them. Unary requests
// keep working until Stop.
func (s *Server) Drain() { s.drain.Do(func() { close(s.drainc) }) }

// DrainNotify closes when Drain or Stop was called.
func (s *Server) DrainNotify() <-chan struct{} { return s.drainc }

// StopNotify closes when the member has stopped, by Stop or by a fatal error.
func (s *Server) StopNotify() <-chan struct{} { return s.donec }

// Err returns the fatal error that stopped the member, if any.
func (s *Server) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Stop stops the member: a leader records its leases' remaining TTLs and
// hands leadership to another voter first; then in-flight requests fail
// with ErrStopped, the raft loop and apply loop end, the WAL and engine
// close.
func (s *Server) Stop() {
	s.Drain()
	select {
	case <-s.stopc: // stopped already, or by a fatal error: no graceful steps
	default:
		s.checkpointLeases()
		s.transferLeadershipOnStop()
	}
	s.stopOnce.Do(func() { close(s.stopc) })
	<-s.donec
}

// ID returns this member's ID.
func (s *Server) ID() uint64 { return s.id }

// ClusterID returns the cluster's ID.
func (s *Server) ClusterID() uint64 { return s.clusterID }

// Term returns the current raft term.
func (s *Server) Term() uint64 { return s.node.Status().Term }

// Rev returns the current (committed) revision.
func (s *Server) Rev() int64 { return s.kv.Rev() }

// Members returns the member list.
func (s *Server) Members() []membership.Member { return s.members.Members() }

// initialSelf returns the member called name in initial, the members
// that --initial-cluster (initialCluster) lists.
func initialSelf(initial []membership.Member, name, initialCluster string) (*membership.Member, error) {
	for i := range initial {
		if initial[i].Name == name {
			return &initial[i], nil
		}
	}
	return nil, fmt.Errorf("couldn't find local name %q in the initial cluster configuration %q", name, initialCluster)
}

// checkAdvertisedPeerURLs refuses --initial-advertise-peer-urls that are
// not self's URLs in --initial-cluster.
func checkAdvertisedPeerURLs(self *membership.Member, peerURLs []string) error {
	if samePeerURLs(self.PeerURLs, peerURLs) {
		return nil
	}
	return fmt.Errorf("--initial-cluster has %s=%s but --initial-advertise-peer-urls is %s: they must list the same URLs",
		self.Name, strings.Join(self.PeerURLs, ","), strings.Join(peerURLs, ","))
}

func samePeerURLs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Watchable returns the member's watch hub.
func (s *Server) Watchable() *watch.Hub { return s.hub }

// WatchEventsSent counts n watch events sent to a client
// (etcd_debugging_mvcc_events_total).
func (s *Server) WatchEventsSent(n int) { s.metrics.watchEvents.Add(uint64(n)) }

// PrevKV returns key's version just before revision rev, or nil: the
// prev_kv of a watch event at rev.
func (s *Server) PrevKV(key []byte, rev int64) *mvccpb.KeyValue {
	rr, err := s.kv.Range(context.Background(), key, nil, mvcc.RangeOptions{Rev: rev - 1})
	if err != nil || len(rr.KVs) == 0 {
		return nil
	}
	return rr.KVs[0]
}

// WatchProgressNotifyInterval returns the period of watch progress
// notifications.
func (s *Server) WatchProgressNotifyInterval() time.Duration {
	return s.cfg.WatchProgressNotifyInterval
}

// MaxTxnOps returns the configured limit of operations per txn.
func (s *Server) MaxTxnOps() int { return int(s.cfg.MaxTxnOps) }

// Logger returns the member's logger.
func (s *Server) Logger() *zap.Logger { return s.lg }

// WarningUnaryRequestDuration is Config.WarningUnaryRequestDuration.
func (s *Server) WarningUnaryRequestDuration() time.Duration {
	return s.cfg.WarningUnaryRequestDuration
}

// MaxConcurrentStreams returns the gRPC streams a client connection may
// have open at once.
func (s *Server) MaxConcurrentStreams() uint32 {
	if s.cfg.MaxConcurrentStreams == 0 {
		return math.MaxUint32
	}
	return s.cfg.MaxConcurrentStreams
}

// MaxRequestBytes returns the configured request size limit.
func (s *Server) MaxRequestBytes() int { return int(s.cfg.MaxRequestBytes) }

// GRPCKeepalive returns the member's gRPC keepalive settings (Config's
// GRPCKeepalive*; a negative one is off).
func (s *Server) GRPCKeepalive() (minTime, interval, timeout time.Duration) {
	return s.cfg.GRPCKeepaliveMinTime, s.cfg.GRPCKeepaliveInterval, s.cfg.GRPCKeepaliveTimeout
}

// Status reports the member's state as Maintenance.Status does.
func (s *Server) Status() *pb.StatusResponse {
	// Applied first: read the other way round, an entry committed and
	// applied in between would show applied past committed.
	applied := s.appliedIndex.Load()
	st := s.node.Status()
	size, inUse := s.dbSizes()
	var errs []string
	for _, a := range s.Alarms() {
		errs = append(errs, alarmText(a))
	}
	return &pb.StatusResponse{
		Header:           &pb.ResponseHeader{},
		Version:          EtcdAPIVersion,
		DbSize:           size,
		DbSizeInUse:      inUse,
		Leader:           st.Lead,
		RaftIndex:        st.Commit,
		RaftTerm:         st.Term,
		RaftAppliedIndex: applied,
		DbSizeQuota:      max(s.cfg.QuotaBackendBytes, 0),
		StorageVersion:   StorageVersion,
		IsLearner:        s.IsLearner(),
		DowngradeInfo:    &pb.DowngradeInfo{},
		Errors:           errs,
	}
}

func (s *Server) nextID() uint64 { return s.reqID.Add(1) }

// dbSizeMaxAge bounds how stale the sizes used for the quota and Status
// may be. Computing them walks the engine's metrics, too costly for every
// write.
const dbSizeMaxAge = 100 * time.Millisecond

// dbSizes returns the engine's size on disk and the part of it in use
// (storage.Engine.Sizes), recomputed at most every dbSizeMaxAge.
func (s *Server) dbSizes() (size, inUse int64) {
	now := time.Now().UnixNano()
	if at := s.sizeAt.Load(); at != 0 && now-at < int64(dbSizeMaxAge) {
		return s.size.Load(), s.inUse.Load()
	}
	size, inUse = s.eng.Sizes()
	s.size.Store(size)
	s.inUse.Store(inUse)
	s.sizeAt.Store(now)
	return size, inUse
}

// overQuota reports whether the bytes the engine has in use exceed
// --quota-backend-bytes: what it occupies on disk, less the space Pebble
// frees or reuses by itself (storage.Engine.Sizes), which compaction and
// defragmentation could never give back. Writes still in memtables count
// once flushed.
func (s *Server) overQuota() bool {
	if s.cfg.QuotaBackendBytes <= 0 {
		return false
	}
	_, inUse := s.dbSizes()
	return inUse > s.cfg.QuotaBackendBytes
}

// propose sends r through raft and waits for its apply result.
func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (result, error) {
	// The ID travels in the header, as etcd's does, so a request's encoded
	// size (and so the --max-request-bytes threshold) is the same as in etcd.
	id := s.nextID()
	r.Header = &pb.RequestHeader{ID: id}
	data, err := proto.Marshal(r)
	if err != nil {
		return result{}, err
	}
	if len(data) > int(s.cfg.MaxRequestBytes) {
		return result{}, ErrRequestTooLarge
	}
	if needsQuota(r) && s.overQuota() {
		s.raiseNoSpace(ctx)
		return result{}, ErrNoSpace
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	c := s.w.register(id)
	if err := s.node.Propose(ctx, data); err != nil {
		s.w.cancel(id)
		s.metrics.proposalsFailed.Add(1)
		return result{}, s.mapWaitErr(ctx, err)
	}
	select {
	case res := <-c:
		return res, res.err
	case <-ctx.Done():
		s.w.cancel(id)
		s.metrics.proposalsFailed.Add(1)
		return result{}, s.mapWaitErr(ctx, ctx.Err())
	case <-s.donec:
		return result{}, ErrStopped
	}
}

// mapWaitErr turns raft and context errors into what etcd clients expect.
func (s *Server) mapWaitErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raftnode.ErrStopped):
		return ErrStopped
	case errors.Is(err, raftnode.ErrNoLeader):
		return ErrNoLeader
	case errors.Is(err, raftnode.ErrLeaderChanged):
		return ErrLeaderChanged
	case errors.Is(err, context.Canceled):
		return ErrCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	}
	return err
}

// LinearizableBarrier returns once this member has applied everything
// committed when it was called.
func (s *Server) LinearizableBarrier(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, s.cfg.requestTimeout())
	defer cancel()
	idx, err := s.node.ReadIndex(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			s.lg.Warn("timed out waiting for read index response (local node might have slow network)",
				zap.Duration("timeout", s.cfg.requestTimeout()))
			s.metrics.readIndexTimeouts.Add(1)
		}
		return s.mapWaitErr(ctx, err)
	}
	select {
	case <-s.applied.wait(idx):
		return nil
	case <-ctx.Done():
		return s.mapWaitErr(ctx, ctx.Err())
	case <-s.donec:
		return ErrStopped
	}
}

// needsQuota reports whether r may grow the database: what the space quota
// and the NOSPACE alarm refuse.
func needsQuota(r *pb.InternalRaftRequest) bool {
	switch {
	case r.Put != nil, r.LeaseGrant != nil:
		return true
	case r.Txn != nil:
		return txnHasPut(r.Txn)
	}
	return false
}

func txnHasPut(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if op.GetRequestPut() != nil {
				return true
			}
			if nt := op.GetRequestTxn(); nt != nil && txnHasPut(nt) {
				return true
			}
		}
	}
	return false
}

// applyLoop applies committed entries in order. It is the only writer of
// the MVCC store.
func (s *Server) applyLoop(applied, lastSnap uint64, cs *raftpb.ConfState) {
	var fatal error
	defer func() {
		s.stopCorruptionChecks()
		s.lessor.Stop()
		s.closeForwarder()
		s.tr.Close()
		s.node.Stop()
		if fatal == nil {
			fatal = s.node.Err()
		}
		s.hub.Close()
		if err := s.kv.Close(); fatal == nil && err != nil {
			fatal = err
		}
		if err := s.eng.Close(); fatal == nil && err != nil {
			fatal = err
		}
		if errors.Is(fatal, ErrRemoved) {
			s.markRemoved()
		}
		s.errMu.Lock()
		s.err = fatal
		s.errMu.Unlock()
		if fatal != nil {
			s.lg.Error("member stopped on a fatal error", zap.Error(fatal))
		}
		s.Drain()
		s.stopOnce.Do(func() { close(s.stopc) })
		close(s.donec)
	}()
	var appliedTerm uint64
	// pos is the last entry handed over by raft, applied or replayed; cs
	// is the configuration as of pos.
	pos, posTerm := lastSnap, uint64(0)
	for {
		var a raftnode.Apply
		select {
		case a = <-s.node.Apply():
		case <-s.node.Done():
			return
		case <-s.removedc:
			fatal = ErrRemoved
			return
		case <-s.stopc:
			return
		}
		if s.cfg.BeforeApply != nil {
			s.cfg.BeforeApply()
		}
		if a.Snapshot != nil {
			if fatal = s.installSnapshot(a.Snapshot); fatal != nil {
				return
			}
			m := s.kv.Meta()
			applied, appliedTerm = m.AppliedIndex, m.AppliedTerm
			md := a.Snapshot.GetMetadata()
			pos, posTerm, lastSnap, cs = md.GetIndex(), md.GetTerm(), md.GetIndex(), md.GetConfState()
			s.appliedIndex.Store(applied)
			s.applied.advance(applied)
			s.node.SetApplied(pos, cs)
		}
		var done []pendingResult
		removed := false
		for _, e := range a.Entries {
			pos, posTerm = e.GetIndex(), e.GetTerm()
			if e.GetIndex() <= applied {
				if e.GetType() == raftpb.EntryConfChange {
					if _, _, cs, fatal = s.applyConfChange(e, true); fatal != nil {
						return
					}
				}
				continue
			}
			switch e.GetType() {
			case raftpb.EntryNormal:
				if len(e.GetData()) > 0 {
					var r pb.InternalRaftRequest
					if err := proto.Unmarshal(e.GetData(), &r); err != nil {
						fatal = fmt.Errorf("apply: entry %d does not decode: %w", e.GetIndex(), err)
						return
					}
					id := r.GetHeader().GetID()
					done = append(done, pendingResult{id: id, res: s.applyRequest(&r, s.w.registered(id))})
				}
			case raftpb.EntryConfChange:
				var res pendingResult
				var removedSelf bool
				if res, removedSelf, cs, fatal = s.applyConfChange(e, false); fatal != nil {
					return
				}
				done = append(done, res)
				removed = removed || removedSelf
			case raftpb.EntryConfChangeV2:
				fatal = fmt.Errorf("apply: entry %d is a joint configuration change, which Cairn never proposes", e.GetIndex())
				return
			}
			applied, appliedTerm = e.GetIndex(), e.GetTerm()
		}
		snapshot := s.node.ShouldSnapshot(pos, lastSnap)
		commitStart := time.Now()
		if err := s.kv.Commit(mvcc.Meta{AppliedIndex: applied, AppliedTerm: appliedTerm}, false); err != nil {
			fatal = fmt.Errorf("apply: commit at index %d: %w", applied, err)
			return
		}
		s.metrics.backendCommit.observeSince(commitStart)
		if len(s.applyEvents) > 0 {
			s.hub.Notify(s.kv.Rev(), s.applyEvents)
			clear(s.applyEvents)
			s.applyEvents = s.applyEvents[:0]
		}
		for _, d := range done {
			s.w.trigger(d.id, d.res)
		}
		s.appliedIndex.Store(applied)
		s.applied.advance(applied)
		// Raft learns the position in its own log, with the configuration
		// there: while entries the state already held replay (after a
		// restart or a snapshot whose state was newer than its index), pos
		// trails applied, and cs is right only for pos.
		s.node.SetApplied(pos, cs)
		if snapshot {
			if fatal = s.snapshotWhenDurable(pos, posTerm, cs); fatal != nil {
				return
			}
			lastSnap = pos
		}
		if removed {
			fatal = ErrRemoved
			return
		}
	}
}

// snapshotWhenDurable asks raft for a snapshot at pos once the engine
// holds everything applied so far durably: the snapshot lets raft release
// the WAL before it, which the engine (without a log of its own) must no
// longer need. The memtables are flushed in the background, so the apply
// loop does not wait for the flush.
func (s *Server) snapshotWhenDurable(pos, term uint64, cs *raftpb.ConfState) error {
	flushed, err := s.eng.DB().AsyncFlush()
	if err != nil {
		return fmt.Errorf("apply: flush the engine for a snapshot at %d: %w", pos, err)
	}
	go func() {
		select {
		case <-flushed:
			s.node.RequestSnapshot(pos, term, cs)
		case <-s.stopc:
		}
	}()
	return nil
}

type pendingResult struct {
	id  uint64
	res result
}
