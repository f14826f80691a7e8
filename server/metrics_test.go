package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

func TestLatencyHistogram(t *testing.T) {
	var h latencyHistogram
	// Bounds are inclusive: 1ms lands in the first bucket, just above it
	// in the second; past 8.192s only +Inf counts it.
	for _, d := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 3 * time.Millisecond, 8192 * time.Millisecond, 10 * time.Second} {
		h.observe(d)
	}
	var m dto.Metric
	if err := h.metric(descWALFsync).Write(&m); err != nil {
		t.Fatal(err)
	}
	hist := m.GetHistogram()
	if hist.GetSampleCount() != 6 {
		t.Fatalf("count %d", hist.GetSampleCount())
	}
	if got, want := hist.GetSampleSum(), (2*time.Millisecond + 1 + 3*time.Millisecond + 8192*time.Millisecond + 10*time.Second).Seconds(); got != want {
		t.Fatalf("sum %v, want %v", got, want)
	}
	want := map[float64]uint64{0.001: 2, 0.002: 3, 0.004: 4, 0.008: 4, 4.096: 4, 8.192: 5}
	if len(hist.GetBucket()) != 14 {
		t.Fatalf("%d buckets, want etcd's 14", len(hist.GetBucket()))
	}
	for _, b := range hist.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
}

func startTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{
		Name:              "m0",
		DataDir:           t.TempDir(),
		HeartbeatInterval: 10 * time.Millisecond,
		ElectionTimeout:   100 * time.Millisecond,
		WALSegmentSize:    1 << 20,
		Logger:            zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	select {
	case <-s.ReadyNotify():
	case <-s.StopNotify():
		t.Fatalf("stopped: %v", s.Err())
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	return s
}

// gather collects the member's metrics through a pedantic registry, which
// also checks that what Collect sends matches what Describe announced.
func gather(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.MetricsCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestMetricsCollector(t *testing.T) {
	s := startTestServer(t)
	mfs := gather(t, s)
	// The collector's own families, and those of the member's histograms.
	hist := prometheus.NewPedanticRegistry()
	hist.MustRegister(s.hist.collectors()...)
	histFams, err := hist.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// A member configured without feature gates (this one) exports no
	// etcd_server_feature_enabled series.
	if want := len(allMetricsDescs) - 1 + len(histFams); len(mfs) != want {
		t.Fatalf("%d families, want %d", len(mfs), want)
	}
	one := func(name string) *dto.Metric {
		t.Helper()
		mf := mfs[name]
		if mf == nil || len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %v", name, mf)
		}
		return mf.GetMetric()[0]
	}
	if v := one("etcd_server_has_leader").GetGauge().GetValue(); v != 1 {
		t.Fatalf("has_leader %v", v)
	}
	if v := one("etcd_server_leader_changes_seen_total").GetCounter().GetValue(); v != 1 {
		t.Fatalf("leader changes %v", v)
	}
	if l := one("etcd_server_id").GetLabel(); len(l) != 1 || l[0].GetName() != "server_id" || l[0].GetValue() == "" {
		t.Fatalf("server id labels %v", l)
	}
	if v := one("etcd_server_quota_backend_bytes").GetGauge().GetValue(); v != DefaultQuotaBackendBytes {
		t.Fatalf("quota %v", v)
	}
	if v := one("etcd_debugging_mvcc_compact_revision").GetGauge().GetValue(); v != -1 {
		t.Fatalf("compact revision %v, want etcd's -1 before any compaction", v)
	}
	if n := one("etcd_disk_wal_fsync_duration_seconds").GetHistogram().GetSampleCount(); n == 0 {
		t.Fatal("no WAL fsync observed during bootstrap")
	}
}

// TestProposalsFailed: a proposal whose caller gives up counts as failed,
// once per failed request.
func TestProposalsFailed(t *testing.T) {
	s := startTestServer(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	failures := 0
	// A canceled context races the proposal inside (raft may take it
	// first); at least one of these attempts fails.
	for i := 0; i < 50 && failures < 3; i++ {
		if _, err := s.Put(canceled, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
			failures++
		}
	}
	if failures == 0 {
		t.Fatal("no put with a canceled context failed")
	}
	got := gather(t, s)["etcd_server_proposals_failed_total"].GetMetric()[0].GetCounter().GetValue()
	if got != float64(failures) {
		t.Fatalf("proposals_failed_total %v after %d failed puts", got, failures)
	}
	if pending := s.w.pending(); pending != 0 {
		t.Fatalf("%d proposals still pending", pending)
	}
}

func TestClusterVersionMatchesAPIVersion(t *testing.T) {
	if !strings.HasPrefix(EtcdAPIVersion, ClusterVersion+".") || strings.Count(ClusterVersion, ".") != 1 {
		t.Fatalf("ClusterVersion %q is not the major.minor of EtcdAPIVersion %q", ClusterVersion, EtcdAPIVersion)
	}
}

// TestFileDescriptorWarningThreshold: etcd's rule, four fifths of the
// limit (integer division first, as etcd computes it).
func TestFileDescriptorWarningThreshold(t *testing.T) {
	for _, c := range []struct {
		used, limit uint64
		high        bool
	}{
		{0, 1024, false}, {815, 1024, false}, {816, 1024, true}, {1024, 1024, true},
		{799, 1000, false}, {800, 1000, true}, {3, 4, true}, {0, 0, true},
	} {
		if got := fdsHigh(c.used, c.limit); got != c.high {
			t.Errorf("%d of %d: high %t, want %t", c.used, c.limit, got, c.high)
		}
	}
	used, limit, err := fdUsage()
	if err != nil || used == 0 || limit < used {
		t.Fatalf("fdUsage: %d of %d, %v", used, limit, err)
	}
}
