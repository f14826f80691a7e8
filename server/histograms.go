package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// histograms are the member's etcd metrics that are Prometheus collectors
// of their own: histograms with etcd's buckets (but for the disk
// latencies, serverMetrics' lock-free latencyHistogram), labeled counters,
// and the counters and gauges that go with them. They are registered in
// the member's componentMetrics, so MetricsCollector exports them.
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
	exp := prometheus.ExponentialBuckets
	return &histograms{
		apply: newHistogramVec("etcd_server_apply_duration_seconds", "The latency distributions of v2 apply called by backend.",
			fine, "version", "op", "success"),
		rng:         newHistogramVec("etcd_server_range_duration_seconds", "The latency distributions of txn.Range", fine, "success"),
		request:     newHistogramVec("etcd_server_request_duration_seconds", "Response latency distribution in seconds for each type.", latencyBuckets, "type", "success"),
		slowApplies: newCounter("etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk)."),
		// 1 s doubling to about 97 days.
		leaseTTLs: newHistogram("etcd_debugging_lease_ttl_total", "Bucketed histogram of lease TTLs.", exp(1, 2, 24)),
		hash:      newHistogram("etcd_mvcc_hash_duration_seconds", "The latency distribution of storage hash operation.", exp(.01, 2, 15)),
		hashKV:    newHistogram("etcd_mvcc_hash_rev_duration_seconds", "The latency distribution of storage hash by revision operation.", exp(.01, 2, 15)),
		defrag:    newHistogram("etcd_disk_backend_defrag_duration_seconds", "The latency distribution of backend defragmentation.", exp(.1, 2, 13)),
		snapshot:  newHistogram("etcd_disk_backend_snapshot_duration_seconds", "The latency distribution of backend snapshots.", exp(.01, 2, 17)),
		compactions: newHistogram("etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
			"Bucketed histogram of db compaction total duration.", exp(100, 2, 14)),
		compacted:  newCounter("etcd_debugging_mvcc_db_compaction_keys_total", "Total number of db keys compacted."),
		snapDBSave: newHistogram("etcd_snap_db_save_total_duration_seconds", "The total latency distributions of v3 snapshot save", exp(0.1, 2, 10)),
		promoteFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcd_server_learner_promote_failures",
			Help: "The total number of failed learner promotions (likely learner not ready) while this member is leader.",
		}, []string{"Reason"}),
	}
}

func newHistogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newGaugeFunc(name, help string, f func() float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}

func (m *histograms) collectors() []prometheus.Collector {
	inflight := newGaugeFunc("etcd_disk_defrag_inflight", "Whether or not defrag is active on the member. 1 means active, 0 means not.",
		func() float64 { return float64(min(m.defragsRunning.Load(), 1)) })
	last := newGaugeFunc("etcd_debugging_mvcc_db_compaction_last", "The unix time of the last db compaction. Resets to 0 on start.",
		func() float64 { return float64(m.lastCompaction.Load()) })
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
