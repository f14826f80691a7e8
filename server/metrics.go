package server

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/mvcc"
)

// The member's Prometheus metrics, under etcd's names, types, help texts
// and labels so that dashboards and alerts written for etcd keep working.
//
// Almost everything is read from the member's state when it is scraped
// (metricsCollector); only what cannot be derived later is counted as it
// happens, in serverMetrics, whose zero value is ready and whose updates
// are single atomic adds. Nothing here is package-global: each Server has
// its own counters, and its collector goes into the registry of that
// member's HTTP API (server/httpapi), so several members in one process
// (tests) do not mix.

// serverMetrics is what the write path counts. The Server struct holds one.
type serverMetrics struct {
	// proposalsFailed counts proposals that raft refused or whose caller
	// gave up before the apply result came (etcd counts the same two cases).
	proposalsFailed atomic.Uint64
	// walFsync times the WAL's tail fsyncs; raftnode reports them.
	walFsync latencyHistogram
	// walWrite times the WAL's writes of records, walWriteBytes counts
	// their bytes; raftnode reports them.
	walWrite      latencyHistogram
	walWriteBytes atomic.Uint64
	// snapEncode, snapFsync and snapSave time the raft snapshot files'
	// encoding, write and fsync, and whole save; raftnode reports them.
	snapEncode, snapFsync, snapSave latencyHistogram
	// readIndexTimeouts counts the linearizable reads that waited in vain
	// for their ReadIndex round (part of
	// etcd_server_slow_read_indexes_total).
	readIndexTimeouts atomic.Uint64
	// backendCommit times the apply loop's storage commits, etcd's
	// backend commit.
	backendCommit latencyHistogram
	// snapshotApplying is set while the apply loop installs a snapshot
	// from the leader (etcd_server_snapshot_apply_in_progress_total).
	snapshotApplying atomic.Bool
	// ranges, puts, deletes and txns are etcd's etcd_mvcc_*_total
	// counters (opCounter).
	ranges, puts, deletes, txns atomic.Uint64
	// putBytes is the total size of the keys and values put
	// (etcd_debugging_mvcc_total_put_size_in_bytes).
	putBytes atomic.Uint64
	// watchEvents counts the watch events sent to clients.
	watchEvents atomic.Uint64
	// promotions counts the learners this member promoted as leader.
	promotions atomic.Uint64
	// leasesGranted and leasesRevoked count the leases this member's
	// apply loop granted and revoked; leasesRenewed the keep-alives its
	// lessor answered as the leader's; leasesExpired the expired leases it
	// revoked as the leader (etcd's etcd_debugging_lease_* and
	// etcd_debugging_server_lease_expired_total).
	leasesGranted, leasesRevoked, leasesRenewed, leasesExpired atomic.Uint64
}

// addOps adds one transaction's operations on the store to etcd's mvcc
// counters. etcd counts a transaction when it made more than one call.
func (m *serverMetrics) addOps(ranges, puts, deletes uint64) {
	m.ranges.Add(ranges)
	m.puts.Add(puts)
	m.deletes.Add(deletes)
	if ranges+puts+deletes > 1 {
		m.txns.Add(1)
	}
}

// opCounter counts the calls one request makes on its view of the store,
// for etcd_mvcc_{range,put,delete,txn}_total. etcd counts every Range,
// Put and DeleteRange call of each transaction on its mvcc store (a
// DeleteRange of many keys is one delete), so the request paths here make
// the calls etcd's make: a put with prev_kv reads its key once, a txn that
// may write counts its compares and checks apart from its execution, a
// lease revocation deletes its keys one by one.
type opCounter struct {
	kvView
	m                     *serverMetrics
	ranges, puts, deletes uint64
	putBytes              uint64
}

func (s *Server) countOps(v kvView) *opCounter { return &opCounter{kvView: v, m: &s.metrics} }

func (c *opCounter) Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	c.ranges++
	return c.kvView.Range(key, end, o)
}

func (c *opCounter) Put(key, value []byte, lease int64) {
	c.puts++
	c.putBytes += uint64(len(key) + len(value))
	c.kvView.Put(key, value, lease)
}

func (c *opCounter) DeleteRange(key, end []byte) int64 {
	c.deletes++
	return c.kvView.DeleteRange(key, end)
}

// done adds the counts to the member's counters; c is not used after.
func (c *opCounter) done() {
	c.m.addOps(c.ranges, c.puts, c.deletes)
	c.m.putBytes.Add(c.putBytes)
}

// RegisterMetrics adds c to what MetricsCollector exports, for the layers
// built on the member (server/v3rpc's grpc_server_* metrics). It fails as
// prometheus.Registry.Register does: registering a collector with the same
// descriptions again returns a prometheus.AlreadyRegisteredError holding
// the first, so that the several gRPC servers of one member share theirs.
func (s *Server) RegisterMetrics(c prometheus.Collector) error {
	return s.componentMetrics.Register(c)
}

// Values of Config.Metrics, etcd's --metrics.
const (
	MetricsBasic     = "basic"
	MetricsExtensive = "extensive"
)

// ExtensiveMetrics reports whether Config.Metrics asks for etcd's
// "extensive" metrics.
func (s *Server) ExtensiveMetrics() bool { return s.cfg.Metrics == MetricsExtensive }

// latencyBuckets are the upper bounds, in seconds, that etcd gives its disk
// latency histograms: 1ms doubling up to 8.192s
// (prometheus.ExponentialBuckets(0.001, 2, 14)).
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, numLatencyBuckets)

const numLatencyBuckets = 14

// latencyHistogram is a lock-free histogram over latencyBuckets whose zero
// value is ready, so it needs no constructor in the Server's set-up. A
// scrape reads the bucket counts one by one while observations continue,
// so the sum may be a few observations ahead of or behind the counts;
// the count is always the sum of the buckets.
type latencyHistogram struct {
	// counts[i] is the number of observations in bucket i alone (not
	// cumulative); the last slot is the +Inf bucket.
	counts [numLatencyBuckets + 1]atomic.Uint64
	sumNs  atomic.Int64
}

func (h *latencyHistogram) observe(d time.Duration) {
	// SearchFloat64s finds the first bound >= the value: Prometheus
	// buckets are inclusive upper bounds.
	h.counts[sort.SearchFloat64s(latencyBuckets, d.Seconds())].Add(1)
	h.sumNs.Add(int64(d))
}

func (h *latencyHistogram) observeSince(start time.Time) { h.observe(time.Since(start)) }

func (h *latencyHistogram) metric(desc *prometheus.Desc) prometheus.Metric {
	buckets := make(map[float64]uint64, numLatencyBuckets)
	var n uint64
	for i, ub := range latencyBuckets {
		n += h.counts[i].Load()
		buckets[ub] = n
	}
	n += h.counts[numLatencyBuckets].Load()
	return prometheus.MustNewConstHistogram(desc, n, float64(h.sumNs.Load())/float64(time.Second), buckets)
}

// pending returns the number of proposals waiting for their apply result.
func (w *waiters) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// MetricsCollector returns a collector of this member's metrics. Register
// it in one registry per member (server/httpapi does).
func (s *Server) MetricsCollector() prometheus.Collector { return metricsCollector{s} }

// Descriptions: immutable, so sharing them between members is harmless.
var (
	descHasLeader      = etcdDesc("server", "has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")
	descIsLeader       = etcdDesc("server", "is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")
	descLeaderChanges  = etcdDesc("server", "leader_changes_seen_total", "The number of leader changes seen.")
	descCommitted      = etcdDesc("server", "proposals_committed_total", "The total number of consensus proposals committed.")
	descApplied        = etcdDesc("server", "proposals_applied_total", "The total number of consensus proposals applied.")
	descPending        = etcdDesc("server", "proposals_pending", "The current number of pending proposals to commit.")
	descFailed         = etcdDesc("server", "proposals_failed_total", "The total number of failed proposals seen.")
	descReadsFailed    = etcdDesc("server", "read_indexes_failed_total", "The total number of failed read indexes seen.")
	descReadsSlow      = etcdDesc("server", "slow_read_indexes_total", "The total number of pending read indexes not in sync with leader's or timed out read index requests.")
	descPromotions     = etcdDesc("server", "learner_promote_successes", "The total number of successful learner promotions while this member is leader.")
	descLateHeartbeats = etcdDesc("server", "heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk).")
	descSnapshotApply  = etcdDesc("server", "snapshot_apply_in_progress_total", "1 if the server is applying the incoming snapshot. 0 if none.")
	descIsLearner      = etcdDesc("server", "is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.")
	descQuota          = etcdDesc("server", "quota_backend_bytes", "Current backend storage quota size in bytes.")
	descServerID       = etcdDesc("server", "id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id")
	descServerVersion  = etcdDesc("server", "version", "Which version is running. 1 for 'server_version' label with current version.", "server_version")
	descGoVersion      = etcdDesc("server", "go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.", "server_go_version")
	descClusterVersion = etcdDesc("cluster", "version", "Which version is running. 1 for 'cluster_version' label with current cluster version", "cluster_version")
	descWALFsync       = etcdDesc("disk", "wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.")
	descBackendCommit  = etcdDesc("disk", "backend_commit_duration_seconds", "The latency distributions of commit called by backend.")
	descSnapEncode     = prometheus.NewDesc("etcd_debugging_snap_save_marshalling_duration_seconds", "The marshalling cost distributions of save called by snapshot.", nil, nil)
	descSnapSave       = prometheus.NewDesc("etcd_debugging_snap_save_total_duration_seconds", "The total latency distributions of save called by snapshot.", nil, nil)
	descSnapFsync      = etcdDesc("snap", "fsync_duration_seconds", "The latency distributions of fsync called by snap.")
	descWALWrite       = etcdDesc("disk", "wal_write_duration_seconds", "The latency distributions of write called by WAL.")
	descWALWriteBytes  = etcdDesc("disk", "wal_write_bytes_total", "Total number of bytes written in WAL.")
	descDBSize         = etcdDesc("mvcc", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.")
	descDBSizeInUse    = etcdDesc("mvcc", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.")
	descMVCCRanges     = etcdDesc("mvcc", "range_total", "Total number of ranges seen by this member.")
	descMVCCPuts       = etcdDesc("mvcc", "put_total", "Total number of puts seen by this member.")
	descMVCCDeletes    = etcdDesc("mvcc", "delete_total", "Total number of deletes seen by this member.")
	descMVCCTxns       = etcdDesc("mvcc", "txn_total", "Total number of txns seen by this member.")
	descPutBytes       = debuggingDesc("total_put_size_in_bytes", "The total size of put kv pairs seen by this member.")
	descLeasesGranted  = prometheus.NewDesc("etcd_debugging_lease_granted_total", "The total number of granted leases.", nil, nil)
	descLeasesRevoked  = prometheus.NewDesc("etcd_debugging_lease_revoked_total", "The total number of revoked leases.", nil, nil)
	descLeasesRenewed  = prometheus.NewDesc("etcd_debugging_lease_renewed_total", "The number of renewed leases seen by the leader.", nil, nil)
	descLeasesExpired  = prometheus.NewDesc("etcd_debugging_server_lease_expired_total", "The total number of expired leases.", nil, nil)
	descCurrentRev     = debuggingDesc("current_revision", "The current revision of store.")
	descCompactRev     = debuggingDesc("compact_revision", "The revision of the last compaction in store.")
	descKeys           = debuggingDesc("keys_total", "Total number of keys.")
	descWatchEvents    = debuggingDesc("events_total", "Total number of events sent by this member.")
	descPendingEvents  = debuggingDesc("pending_events_total", "Total number of pending events to be sent.")
	descWatchers       = debuggingDesc("watcher_total", "Total number of watchers.")
	descSlowWatchers   = debuggingDesc("slow_watcher_total", "Total number of unsynced slow watchers.")
	descWatchStreams   = debuggingDesc("watch_stream_total", "Total number of watch streams.")
	descFeatureEnabled = etcdDesc("server", "feature_enabled", "Whether or not a feature is enabled. 1 is enabled, 0 is not.", "name", "stage")
	descKnownPeers     = etcdDesc("network", "known_peers", "The current number of known peers.", "Local", "Remote")
	descFDUsed         = prometheus.NewDesc("os_fd_used", "The number of used file descriptors.", nil, nil)
	descFDLimit        = prometheus.NewDesc("os_fd_limit", "The file descriptor limit.", nil, nil)
	// Cairn's own: the storage engine's health (storage.Stats), which
	// etcd's bbolt has no counterpart of.
	descWriteStalls     = cairnDesc("storage", "write_stalls_total", "Times the storage engine held every write back until a flush or compaction caught up.")
	descWriteStalled    = cairnDesc("storage", "write_stall_seconds_total", "Total time the storage engine held writes back, a stall under way included.")
	descCompactionDebt  = cairnDesc("storage", "compaction_debt_bytes", "Bytes the storage engine estimates it must compact to bring every level within its target size.")
	descCompactions     = cairnDesc("storage", "compactions_running", "Storage engine compactions running now.")
	descL0Sublevels     = cairnDesc("storage", "l0_sublevels", "Depth of the storage engine's level 0; writes stall when it grows too deep.")
	descL0Tables        = cairnDesc("storage", "l0_tables", "Tables in the storage engine's level 0.")
	descMemTables       = cairnDesc("storage", "memtables", "Memtables in memory: the one taking writes and those waiting to be flushed.")
	descBlockCacheBytes = cairnDesc("storage", "block_cache_bytes", "Bytes held by the storage engine's block cache, memtables included.")
	descBlockCacheHits  = cairnDesc("storage", "block_cache_hits_total", "Block reads the storage engine's block cache answered.")
	descBlockCacheMiss  = cairnDesc("storage", "block_cache_misses_total", "Block reads the storage engine's block cache did not answer.")
)

var allMetricsDescs = []*prometheus.Desc{
	descHasLeader, descIsLeader, descLeaderChanges, descCommitted, descApplied, descPending, descFailed, descLateHeartbeats, descPromotions,
	descReadsFailed, descReadsSlow,
	descSnapshotApply, descIsLearner, descQuota, descServerID, descServerVersion, descGoVersion,
	descClusterVersion, descWALFsync, descWALWrite, descWALWriteBytes, descSnapEncode, descSnapSave, descSnapFsync, descBackendCommit, descDBSize, descDBSizeInUse,
	descMVCCRanges, descMVCCPuts, descMVCCDeletes, descMVCCTxns, descPutBytes,
	descLeasesGranted, descLeasesRevoked, descLeasesRenewed, descLeasesExpired, descCurrentRev,
	descCompactRev, descKeys, descWatchEvents, descPendingEvents, descWatchers, descSlowWatchers, descWatchStreams, descKnownPeers, descFeatureEnabled, descFDUsed, descFDLimit,
	descWriteStalls, descWriteStalled, descCompactionDebt, descCompactions, descL0Sublevels, descL0Tables,
	descMemTables, descBlockCacheBytes, descBlockCacheHits, descBlockCacheMiss,
}

func etcdDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("etcd", subsystem, name), help, labels, nil)
}

func cairnDesc(subsystem, name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("cairn", subsystem, name), help, nil, nil)
}

// debuggingDesc describes one of etcd's etcd_debugging_mvcc_* metrics.
func debuggingDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("etcd_debugging", "mvcc", name), help, nil, nil)
}

// metricsCollector reads the member's state at scrape time.
type metricsCollector struct{ s *Server }

func (c metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allMetricsDescs {
		ch <- d
	}
	c.s.componentMetrics.Describe(ch)
}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.componentMetrics.Collect(ch)
	st := s.node.Status()
	status := s.Status()
	watch := s.hub.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descHasLeader, boolFloat(st.Lead != 0))
	gauge(descIsLeader, boolFloat(st.IsLeader))
	counter(descLeaderChanges, float64(st.LeaderChanges))
	// etcd reports the raft commit and applied indexes under these names.
	gauge(descCommitted, float64(st.Commit))
	gauge(descApplied, float64(s.appliedIndex.Load()))
	gauge(descPending, float64(s.w.pending()))
	counter(descFailed, float64(s.metrics.proposalsFailed.Load()))
	counter(descLateHeartbeats, float64(st.LateHeartbeats))
	counter(descPromotions, float64(s.metrics.promotions.Load()))
	counter(descReadsFailed, float64(st.FailedReadRounds))
	counter(descReadsSlow, float64(st.StaleReadStates+s.metrics.readIndexTimeouts.Load()))
	gauge(descSnapshotApply, boolFloat(s.metrics.snapshotApplying.Load()))
	gauge(descIsLearner, boolFloat(s.IsLearner()))
	// etcd reports the configured quota, negative (disabled) included.
	gauge(descQuota, float64(s.cfg.QuotaBackendBytes))
	gauge(descServerID, 1, fmt.Sprintf("%x", s.id))
	gauge(descServerVersion, 1, EtcdAPIVersion)
	gauge(descGoVersion, 1, runtime.Version())
	gauge(descClusterVersion, 1, ClusterVersion)
	ch <- s.metrics.walFsync.metric(descWALFsync)
	ch <- s.metrics.walWrite.metric(descWALWrite)
	ch <- s.metrics.snapEncode.metric(descSnapEncode)
	ch <- s.metrics.snapSave.metric(descSnapSave)
	ch <- s.metrics.snapFsync.metric(descSnapFsync)
	// A gauge in etcd despite its _total name.
	gauge(descWALWriteBytes, float64(s.metrics.walWriteBytes.Load()))
	ch <- s.metrics.backendCommit.metric(descBackendCommit)
	gauge(descDBSize, float64(status.DbSize))
	gauge(descDBSizeInUse, float64(status.DbSizeInUse))
	counter(descMVCCRanges, float64(s.metrics.ranges.Load()))
	counter(descMVCCPuts, float64(s.metrics.puts.Load()))
	counter(descMVCCDeletes, float64(s.metrics.deletes.Load()))
	counter(descMVCCTxns, float64(s.metrics.txns.Load()))
	// A gauge in etcd that only grows.
	gauge(descPutBytes, float64(s.metrics.putBytes.Load()))
	counter(descLeasesGranted, float64(s.metrics.leasesGranted.Load()))
	counter(descLeasesRevoked, float64(s.metrics.leasesRevoked.Load()))
	counter(descLeasesRenewed, float64(s.metrics.leasesRenewed.Load()))
	counter(descLeasesExpired, float64(s.metrics.leasesExpired.Load()))
	gauge(descCurrentRev, float64(s.kv.Rev()))
	// -1 before the first compaction, as in etcd.
	gauge(descCompactRev, float64(s.kv.FirstRev()))
	// etcd's watch metrics are gauges despite their _total names.
	gauge(descKeys, float64(s.kv.Keys()))
	counter(descWatchEvents, float64(s.metrics.watchEvents.Load()))
	gauge(descPendingEvents, float64(watch.PendingEvents))
	gauge(descWatchers, float64(watch.Watchers))
	gauge(descSlowWatchers, float64(watch.SlowWatchers))
	gauge(descWatchStreams, float64(watch.Streams))
	for _, g := range s.cfg.FeatureGates {
		gauge(descFeatureEnabled, boolFloat(g.Enabled), g.Name, g.Stage)
	}
	// etcd's known peers: 1 for every member, this one included, and 0
	// for every member removed.
	local := fmt.Sprintf("%x", s.id)
	for _, m := range s.members.Members() {
		gauge(descKnownPeers, 1, local, fmt.Sprintf("%x", m.ID))
	}
	for _, id := range s.members.Removed() {
		gauge(descKnownPeers, 0, local, fmt.Sprintf("%x", id))
	}
	// Counted at each scrape (etcd counts every 10 minutes): the engine
	// keeps thousands of sstables open on a large store.
	if used, limit, err := fdUsage(); err == nil {
		gauge(descFDUsed, float64(used))
		gauge(descFDLimit, float64(limit))
	}
	eng := s.eng.Stats()
	counter(descWriteStalls, float64(eng.WriteStalls))
	counter(descWriteStalled, eng.WriteStalled.Seconds())
	gauge(descCompactionDebt, float64(eng.CompactionDebt))
	gauge(descCompactions, float64(eng.CompactionsRunning))
	gauge(descL0Sublevels, float64(eng.L0Sublevels))
	gauge(descL0Tables, float64(eng.L0Tables))
	gauge(descMemTables, float64(eng.MemTables))
	gauge(descBlockCacheBytes, float64(eng.BlockCacheBytes))
	counter(descBlockCacheHits, float64(eng.BlockCacheHits))
	counter(descBlockCacheMiss, float64(eng.BlockCacheMisses))
}

// fdUsage returns the file descriptors the process has open and its limit.
func fdUsage() (used, limit uint64, err error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0, err
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	return uint64(len(fds)), lim.Cur, nil
}

// fdCheckInterval is how often monitorFileDescriptors looks, etcd's.
const fdCheckInterval = 10 * time.Minute

// monitorFileDescriptors warns, as etcd does, when the process uses 80% of
// its file descriptors or more: at start and every fdCheckInterval. The
// storage engine's open tables are most of them on a large store; it
// keeps their number under a share of the limit, so a warning means
// descriptors leak elsewhere (client connections, say) or the limit is
// too low for the store.
func (s *Server) monitorFileDescriptors() {
	t := time.NewTicker(fdCheckInterval)
	defer t.Stop()
	for {
		used, limit, err := fdUsage()
		if err != nil {
			s.lg.Warn("failed to get file descriptor usage", zap.Error(err))
			return
		}
		if fdsHigh(used, limit) {
			s.lg.Warn("80% of file descriptors are used", zap.Uint64("used", used), zap.Uint64("limit", limit))
		}
		select {
		case <-t.C:
		case <-s.stopc:
			return
		}
	}
}

// fdsHigh is etcd's rule: used is at least four fifths of limit.
func fdsHigh(used, limit uint64) bool { return used >= limit/5*4 }

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
