package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/mvcc"
)

// histograms are the member's etcd histograms but for the disk latencies
// (serverMetrics), with etcd's buckets, and the metrics that go with them.
//
// How long requests take, as etcd reports it: every applied request is
// timed under its kind in etcd_server_apply_duration_seconds, range
// requests in etcd_server_request_duration_seconds and each read of the
// store for one in etcd_server_range_duration_seconds. An applied request
// or a read served locally (a range, a read-only txn) that takes longer
// than Config.WarningApplyDuration is logged as etcd logs it, "apply
// request took too long", and counted in etcd_server_slow_apply_total.
type histograms struct {
	apply       *prometheus.HistogramVec
	rng         *prometheus.HistogramVec
	request     *prometheus.HistogramVec
	slowApplies prometheus.Counter
	// leaseTTLs is etcd_debugging_lease_ttl_total, the TTLs of the leases
	// granted.
	leaseTTLs prometheus.Histogram
	// hash and hashKV time the Hash and HashKV of the store (HashKV for
	// the corruption checks too), defrag a defragmentation, snapshot
	// the life of a snapshot of the engine sent to a client or a
	// follower. defragsRunning counts the defragmentations under way;
	// etcd_disk_defrag_inflight is 1 while there is one.
	hash, hashKV, defrag, snapshot prometheus.Histogram
	defragsRunning                 atomic.Int32
	// compactions times the physical compactions of the store's history
	// (etcd_debugging_mvcc_db_compaction_total_duration_milliseconds);
	// compacted counts the versions they dropped, lastCompaction is when
	// the latest finished (unix seconds, 0 before one).
	compactions    prometheus.Histogram
	compacted      prometheus.Counter
	lastCompaction atomic.Int64
	// snapDBSave times the receipt of an engine snapshot from the leader
	// (etcd_snap_db_save_total_duration_seconds).
	snapDBSave prometheus.Histogram
	// promoteFailures counts the promotions this member refused as
	// leader, by error (etcd_server_learner_promote_failures).
	promoteFailures *prometheus.CounterVec
}

func newHistograms() *histograms {
	// etcd's buckets: 0.1 ms doubling to 52 s for applies and reads of the
	// store, 1 ms doubling to 8 s for requests.
	fine := prometheus.ExponentialBuckets(0.0001, 2, 20)
	return &histograms{
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "server", Name: "apply_duration_seconds",
			Help:    "The latency distributions of v2 apply called by backend.",
			Buckets: fine,
		}, []string{"version", "op", "success"}),
		rng: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "server", Name: "range_duration_seconds",
			Help:    "The latency distributions of txn.Range",
			Buckets: fine,
		}, []string{"success"}),
		request: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "server", Name: "request_duration_seconds",
			Help:    "Response latency distribution in seconds for each type.",
			Buckets: latencyBuckets,
		}, []string{"type", "success"}),
		slowApplies: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "slow_apply_total",
			Help: "The total number of slow apply requests (likely overloaded from slow disk).",
		}),
		leaseTTLs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd_debugging", Subsystem: "lease", Name: "ttl_total",
			Help: "Bucketed histogram of lease TTLs.",
			// etcd's: 1 s doubling to about 97 days.
			Buckets: prometheus.ExponentialBuckets(1, 2, 24),
		}),
		hash: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "mvcc", Name: "hash_duration_seconds",
			Help:    "The latency distribution of storage hash operation.",
			Buckets: prometheus.ExponentialBuckets(.01, 2, 15),
		}),
		hashKV: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "mvcc", Name: "hash_rev_duration_seconds",
			Help:    "The latency distribution of storage hash by revision operation.",
			Buckets: prometheus.ExponentialBuckets(.01, 2, 15),
		}),
		defrag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_defrag_duration_seconds",
			Help:    "The latency distribution of backend defragmentation.",
			Buckets: prometheus.ExponentialBuckets(.1, 2, 13),
		}),
		snapshot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_snapshot_duration_seconds",
			Help:    "The latency distribution of backend snapshots.",
			Buckets: prometheus.ExponentialBuckets(.01, 2, 17),
		}),
		compactions: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_total_duration_milliseconds",
			Help:    "Bucketed histogram of db compaction total duration.",
			Buckets: prometheus.ExponentialBuckets(100, 2, 14),
		}),
		compacted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_keys_total",
			Help: "Total number of db keys compacted.",
		}),
		snapDBSave: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "snap_db", Name: "save_total_duration_seconds",
			Help:    "The total latency distributions of v3 snapshot save",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 10),
		}),
		promoteFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "learner_promote_failures",
			Help: "The total number of failed learner promotions (likely learner not ready) while this member is leader.",
		}, []string{"Reason"}),
	}
}

func (m *histograms) collectors() []prometheus.Collector {
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "defrag_inflight",
		Help: "Whether or not defrag is active on the member. 1 means active, 0 means not.",
	}, func() float64 { return float64(min(m.defragsRunning.Load(), 1)) })
	last := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_last",
		Help: "The unix time of the last db compaction. Resets to 0 on start.",
	}, func() float64 { return float64(m.lastCompaction.Load()) })
	return []prometheus.Collector{m.apply, m.rng, m.request, m.slowApplies, m.leaseTTLs,
		m.hash, m.hashKV, m.defrag, m.snapshot, inflight, m.compactions, m.compacted, last, m.promoteFailures,
		m.snapDBSave}
}

// observeCompaction records a physical compaction of the store's history
// that took took and dropped dropped versions (mvcc.Store.ObserveCompactions).
func (m *histograms) observeCompaction(took time.Duration, dropped int) {
	m.compactions.Observe(float64(took.Milliseconds()))
	m.compacted.Add(float64(dropped))
	m.lastCompaction.Store(time.Now().Unix())
}

// observeSnapshot times a snapshot of the engine opened at start.
func (m *histograms) observeSnapshot(start time.Time) {
	m.snapshot.Observe(time.Since(start).Seconds())
}

// seconds is d in seconds, to the microsecond as etcd observes durations.
func seconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1e6 }

// applyOp names r's kind as etcd's apply_duration_seconds "op" label does.
func applyOp(r *pb.InternalRaftRequest) string {
	switch {
	case r.Put != nil:
		return "Put"
	case r.DeleteRange != nil:
		return "DeleteRange"
	case r.Txn != nil:
		return "Txn"
	case r.Compaction != nil:
		return "Compaction"
	case r.LeaseGrant != nil:
		return "LeaseGrant"
	case r.LeaseRevoke != nil:
		return "LeaseRevoke"
	case r.LeaseCheckpoint != nil:
		return "LeaseCheckpoint"
	case r.Alarm != nil:
		return "Alarm"
	case r.ClusterMemberAttrSet != nil:
		return "ClusterMemberAttrSet"
	}
	return "unknown"
}

// observeApply times one applied request that began at start. A request
// that failed only because it read a compacted revision still counts as
// a success, as in etcd.
func (s *Server) observeApply(r *pb.InternalRaftRequest, start time.Time, res *result) {
	d := time.Since(start)
	ok := res.err == nil || errors.Is(res.err, mvcc.ErrCompacted)
	s.hist.apply.WithLabelValues("v3", applyOp(r), strconv.FormatBool(ok)).Observe(seconds(d))
	if d > s.cfg.WarningApplyDuration {
		var resp string
		if res.resp != nil {
			resp = fmt.Sprintf("size:%d", proto.Size(res.resp))
		}
		s.warnSlow(d, "", &pb.InternalRaftStringer{Request: r}, resp, res.err)
	}
}

// observeRange times a range request served locally, from its start to
// its answer (a linearizable read's wait included).
func (s *Server) observeRange(r *pb.RangeRequest, start time.Time, resp *pb.RangeResponse, err error) {
	d := time.Since(start)
	s.hist.request.WithLabelValues("Range", strconv.FormatBool(err == nil)).Observe(d.Seconds())
	if d > s.cfg.WarningApplyDuration {
		var out string
		if resp != nil {
			out = fmt.Sprintf("range_response_count:%d size:%d", len(resp.Kvs), proto.Size(resp))
		}
		s.warnSlow(d, "read-only range ", r, out, err)
	}
}

// observeReadTxn times a read-only txn served locally.
func (s *Server) observeReadTxn(r *pb.TxnRequest, start time.Time, resp *pb.TxnResponse, err error) {
	d := time.Since(start)
	if d <= s.cfg.WarningApplyDuration {
		return
	}
	var out string
	if resp != nil {
		var counts []string
		for _, op := range resp.Responses {
			if rr := op.GetResponseRange(); rr != nil {
				counts = append(counts, fmt.Sprintf("range_response_count:%d", len(rr.Kvs)))
			}
		}
		out = fmt.Sprintf("responses:<%s> size:%d", strings.Join(counts, " "), proto.Size(resp))
	}
	s.warnSlow(d, "read-only txn ", pb.NewLoggableTxnRequest(r), out, err)
}

// warnSlow logs and counts a request that took d, longer than
// Config.WarningApplyDuration, with etcd's message and fields.
func (s *Server) warnSlow(d time.Duration, prefix string, req fmt.Stringer, resp string, err error) {
	s.lg.Warn("apply request took too long",
		zap.Duration("took", d),
		zap.Duration("expected-duration", s.cfg.WarningApplyDuration),
		zap.String("prefix", prefix),
		zap.String("request", req.String()),
		zap.String("response", resp),
		zap.Error(err),
	)
	s.hist.slowApplies.Inc()
}
