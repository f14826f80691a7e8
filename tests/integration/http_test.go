package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/internal/connmux"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/server/httpapi"
	"github.com/cairn-kv/cairn/server/v3rpc"
	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/reference"
)

// httpMember is a member served as cmd/cairn serves it: gRPC and HTTP on
// one port through connmux, and the metrics handler on a second port.
type httpMember struct {
	*framework.Member
	// Addr serves gRPC and HTTP; MetricsAddr serves the metrics handler.
	Addr, MetricsAddr string
}

func startHTTPMember(t *testing.T, edit ...func(*server.Config)) *httpMember {
	t.Helper()
	m := framework.StartMember(t, edit...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := connmux.New(ln, connmux.Options{})
	api := httpapi.New(m.Server, httpapi.Options{})
	g := v3rpc.NewServer(m.Server)
	hs := &http.Server{Handler: api.ClientHandler()}
	ms := &http.Server{Handler: api.MetricsHandler()}
	var wg sync.WaitGroup
	for _, f := range []func() error{
		func() error { return g.Serve(mux.GRPC()) },
		func() error { return hs.Serve(mux.HTTP()) },
		func() error { return ms.Serve(mln) },
		mux.Serve,
	} {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	t.Cleanup(func() {
		g.Stop()
		hs.Close()
		ms.Close()
		mux.Close()
		wg.Wait()
	})
	return &httpMember{Member: m, Addr: ln.Addr().String(), MetricsAddr: mln.Addr().String()}
}

// client returns a clientv3 client for the shared gRPC+HTTP port.
func (m *httpMember) client(t *testing.T) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// httpReply is one HTTP answer.
type httpReply struct {
	code int
	hdr  http.Header
	body string
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func httpDo(method, url string) (httpReply, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return httpReply{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpReply{resp.StatusCode, resp.Header, string(b)}, err
}

func httpGet(t *testing.T, url string) httpReply {
	t.Helper()
	r, err := httpDo(http.MethodGet, url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func expectHTTP(t *testing.T, url string, code int, body string) {
	t.Helper()
	if r := httpGet(t, url); r.code != code || r.body != body {
		t.Fatalf("GET %s: %d %q, want %d %q", url, r.code, r.body, code, body)
	}
}

const healthOK = `{"health":"true","reason":""}`

// TestHTTPHealthyMember: every endpoint of a healthy member, on the
// client port and the metrics port.
func TestHTTPHealthyMember(t *testing.T) {
	m := startHTTPMember(t)
	base, mbase := "http://"+m.Addr, "http://"+m.MetricsAddr
	for _, b := range []string{base, mbase} {
		expectHTTP(t, b+"/health", 200, healthOK)
		expectHTTP(t, b+"/health?serializable=true", 200, healthOK)
		expectHTTP(t, b+"/health?exclude=NOSPACE", 200, healthOK)
		expectHTTP(t, b+"/livez", 200, "ok\n")
		expectHTTP(t, b+"/livez?verbose", 200, "[+]serializable_read ok\nok\n")
		expectHTTP(t, b+"/livez/serializable_read", 200, "ok\n")
		expectHTTP(t, b+"/readyz", 200, "ok\n")
		expectHTTP(t, b+"/readyz?verbose", 200, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n")
		for _, c := range []string{"data_corruption", "serializable_read", "linearizable_read", "non_learner"} {
			expectHTTP(t, b+"/readyz/"+c, 200, "ok\n")
		}
	}
	r := httpGet(t, base+"/version")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || r.code != 200 {
		t.Fatalf("/version: %d %q %v", r.code, r.body, err)
	}
	if v["etcdserver"] != server.EtcdAPIVersion || v["etcdcluster"] != "3.7.0" || v["storage"] == "" || v["cairn"] != server.Version || len(v) != 4 {
		t.Fatalf("/version: %v", v)
	}
	expectHTTP(t, mbase+"/version", 404, "404 page not found\n")
	expectHTTP(t, base+"/debug/pprof/", 404, "404 page not found\n")
}

// TestHTTPNoSpace: a put past the quota fails as it does in etcd and
// raises the NOSPACE alarm, which /health then reports unless it is
// excluded, while /livez and /readyz stay ok.
func TestHTTPNoSpace(t *testing.T) {
	m := startHTTPMember(t, func(c *server.Config) { c.QuotaBackendBytes = 1 })
	base := "http://" + m.Addr
	// Over the quota is not yet an alarm: the first refused put raises it.
	expectHTTP(t, base+"/health", 200, healthOK)
	if _, err := m.client(t).Put(framework.Context(t, 30*time.Second), "k", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put over quota: %v", err)
	}
	noSpace := `{"health":"false","reason":"ALARM NOSPACE"}` + "\n"
	expectHTTP(t, base+"/health", 503, noSpace)
	expectHTTP(t, base+"/health?serializable=true", 503, noSpace)
	expectHTTP(t, base+"/health?exclude=NOSPACE", 200, healthOK)
	expectHTTP(t, base+"/health?exclude=NOSPACE&serializable=true", 200, healthOK)
	expectHTTP(t, base+"/health?exclude=CORRUPT", 503, noSpace)
	expectHTTP(t, "http://"+m.MetricsAddr+"/health", 503, noSpace)
	expectHTTP(t, base+"/readyz", 200, "ok\n")
	expectHTTP(t, base+"/readyz/data_corruption", 200, "ok\n")
	expectHTTP(t, base+"/livez", 200, "ok\n")
	mfs := scrapeMetrics(t, base)
	if v := metricValue(t, mfs, "etcd_server_health_failures"); v != 4 {
		t.Fatalf("health_failures %v, want 4", v)
	}
	if v := metricValue(t, mfs, "etcd_server_health_success"); v != 3 {
		t.Fatalf("health_success %v, want 3", v)
	}
}

// TestHTTPAndGRPCShareThePort: clientv3 puts and HTTP requests run
// concurrently on one port, while a connection that never sends a byte
// waits in classification.
func TestHTTPAndGRPCShareThePort(t *testing.T) {
	m := startHTTPMember(t)
	silent, err := net.Dial("tcp", m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c := m.client(t)
	ctx := framework.Context(t, 60*time.Second)
	const workers, each = 8, 20
	errc := make(chan error, 2*workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := c.Put(ctx, fmt.Sprintf("k%d-%d", w, i), "v")
				errc <- err
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				path := []string{"/health", "/metrics", "/readyz", "/version"}[i%4]
				r, err := httpDo(http.MethodGet, "http://"+m.Addr+path)
				if err == nil && r.code != 200 {
					err = fmt.Errorf("GET %s: %d %q", path, r.code, r.body)
				}
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	g, err := c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != workers*each {
		t.Fatalf("count %v, %v; want %d", g, err, workers*each)
	}
}

// scrapeMetrics reads /metrics with the Prometheus text parser.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	r := httpGet(t, base+"/metrics")
	if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %v", r.code, r.hdr)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// metricValue returns the value of an unlabeled gauge, counter or untyped
// metric, or a histogram's count.
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil || len(mf.GetMetric()) != 1 {
		t.Fatalf("%s: %v", name, mf)
	}
	m := mf.GetMetric()[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// wantMetrics are the families Cairn must export, with etcd's types and
// label names.
var wantMetrics = map[string]struct {
	typ    dto.MetricType
	labels string
}{
	"etcd_server_has_leader":                                        {dto.MetricType_GAUGE, ""},
	"etcd_server_is_leader":                                         {dto.MetricType_GAUGE, ""},
	"etcd_server_leader_changes_seen_total":                         {dto.MetricType_COUNTER, ""},
	"etcd_server_proposals_committed_total":                         {dto.MetricType_GAUGE, ""},
	"etcd_server_proposals_applied_total":                           {dto.MetricType_GAUGE, ""},
	"etcd_server_proposals_pending":                                 {dto.MetricType_GAUGE, ""},
	"etcd_server_proposals_failed_total":                            {dto.MetricType_COUNTER, ""},
	"etcd_disk_wal_fsync_duration_seconds":                          {dto.MetricType_HISTOGRAM, ""},
	"etcd_disk_backend_commit_duration_seconds":                     {dto.MetricType_HISTOGRAM, ""},
	"etcd_disk_wal_write_duration_seconds":                          {dto.MetricType_HISTOGRAM, ""},
	"etcd_disk_wal_write_bytes_total":                               {dto.MetricType_GAUGE, ""},
	"etcd_mvcc_db_total_size_in_bytes":                              {dto.MetricType_GAUGE, ""},
	"etcd_mvcc_db_total_size_in_use_in_bytes":                       {dto.MetricType_GAUGE, ""},
	"etcd_server_quota_backend_bytes":                               {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_watcher_total":                             {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_slow_watcher_total":                        {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_watch_stream_total":                        {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_current_revision":                          {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_compact_revision":                          {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_events_total":                              {dto.MetricType_COUNTER, ""},
	"etcd_debugging_mvcc_pending_events_total":                      {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_keys_total":                                {dto.MetricType_GAUGE, ""},
	"etcd_debugging_mvcc_total_put_size_in_bytes":                   {dto.MetricType_GAUGE, ""},
	"etcd_server_version":                                           {dto.MetricType_GAUGE, "server_version"},
	"etcd_cluster_version":                                          {dto.MetricType_GAUGE, "cluster_version"},
	"etcd_server_id":                                                {dto.MetricType_GAUGE, "server_id"},
	"etcd_server_go_version":                                        {dto.MetricType_GAUGE, "server_go_version"},
	"etcd_server_is_learner":                                        {dto.MetricType_GAUGE, ""},
	"etcd_server_snapshot_apply_in_progress_total":                  {dto.MetricType_GAUGE, ""},
	"etcd_server_health_success":                                    {dto.MetricType_COUNTER, ""},
	"etcd_server_health_failures":                                   {dto.MetricType_COUNTER, ""},
	"etcd_server_healthcheck":                                       {dto.MetricType_GAUGE, "name,type"},
	"etcd_server_healthchecks_total":                                {dto.MetricType_COUNTER, "name,status,type"},
	"etcd_network_client_grpc_sent_bytes_total":                     {dto.MetricType_COUNTER, ""},
	"etcd_network_client_grpc_received_bytes_total":                 {dto.MetricType_COUNTER, ""},
	"etcd_mvcc_range_total":                                         {dto.MetricType_COUNTER, ""},
	"etcd_mvcc_put_total":                                           {dto.MetricType_COUNTER, ""},
	"etcd_mvcc_delete_total":                                        {dto.MetricType_COUNTER, ""},
	"etcd_mvcc_txn_total":                                           {dto.MetricType_COUNTER, ""},
	"etcd_server_slow_apply_total":                                  {dto.MetricType_COUNTER, ""},
	"etcd_debugging_lease_granted_total":                            {dto.MetricType_COUNTER, ""},
	"etcd_debugging_lease_revoked_total":                            {dto.MetricType_COUNTER, ""},
	"etcd_debugging_lease_renewed_total":                            {dto.MetricType_COUNTER, ""},
	"etcd_debugging_lease_ttl_total":                                {dto.MetricType_HISTOGRAM, ""},
	"etcd_debugging_server_lease_expired_total":                     {dto.MetricType_COUNTER, ""},
	"etcd_mvcc_hash_duration_seconds":                               {dto.MetricType_HISTOGRAM, ""},
	"etcd_mvcc_hash_rev_duration_seconds":                           {dto.MetricType_HISTOGRAM, ""},
	"etcd_disk_backend_defrag_duration_seconds":                     {dto.MetricType_HISTOGRAM, ""},
	"etcd_disk_backend_snapshot_duration_seconds":                   {dto.MetricType_HISTOGRAM, ""},
	"etcd_disk_defrag_inflight":                                     {dto.MetricType_GAUGE, ""},
	"etcd_snap_fsync_duration_seconds":                              {dto.MetricType_HISTOGRAM, ""},
	"etcd_debugging_snap_save_total_duration_seconds":               {dto.MetricType_HISTOGRAM, ""},
	"etcd_debugging_snap_save_marshalling_duration_seconds":         {dto.MetricType_HISTOGRAM, ""},
	"etcd_snap_db_save_total_duration_seconds":                      {dto.MetricType_HISTOGRAM, ""},
	"etcd_debugging_mvcc_db_compaction_total_duration_milliseconds": {dto.MetricType_HISTOGRAM, ""},
	"etcd_debugging_mvcc_db_compaction_keys_total":                  {dto.MetricType_COUNTER, ""},
	"etcd_debugging_mvcc_db_compaction_last":                        {dto.MetricType_GAUGE, ""},
	"etcd_network_known_peers":                                      {dto.MetricType_GAUGE, "Local,Remote"},
	"etcd_server_apply_duration_seconds":                            {dto.MetricType_HISTOGRAM, "op,success,version"},
	"os_fd_used":                                                    {dto.MetricType_GAUGE, ""},
	"os_fd_limit":                                                   {dto.MetricType_GAUGE, ""},
	"cairn_storage_write_stalls_total":                              {dto.MetricType_COUNTER, ""},
	"cairn_storage_write_stall_seconds_total":                       {dto.MetricType_COUNTER, ""},
	"cairn_storage_compaction_debt_bytes":                           {dto.MetricType_GAUGE, ""},
	"cairn_storage_compactions_running":                             {dto.MetricType_GAUGE, ""},
	"cairn_storage_l0_sublevels":                                    {dto.MetricType_GAUGE, ""},
	"cairn_storage_l0_tables":                                       {dto.MetricType_GAUGE, ""},
	"cairn_storage_memtables":                                       {dto.MetricType_GAUGE, ""},
	"cairn_storage_block_cache_bytes":                               {dto.MetricType_GAUGE, ""},
	"cairn_storage_block_cache_hits_total":                          {dto.MetricType_COUNTER, ""},
	"cairn_storage_block_cache_misses_total":                        {dto.MetricType_COUNTER, ""},
	"go_goroutines":                                                 {dto.MetricType_GAUGE, ""},
	"go_gc_duration_seconds":                                        {dto.MetricType_SUMMARY, ""},
	"process_start_time_seconds":                                    {dto.MetricType_GAUGE, ""},
	"process_resident_memory_bytes":                                 {dto.MetricType_GAUGE, ""},
	"promhttp_metric_handler_requests_total":                        {dto.MetricType_COUNTER, "code"},
}

func metricLabelNames(m *dto.Metric) string {
	var names []string
	for _, l := range m.GetLabel() {
		names = append(names, l.GetName())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// TestHTTPMetrics: etcd's metric names, types and labels are there, and
// the counters move with puts and watches made through the same port.
func TestHTTPMetrics(t *testing.T) {
	// A raft snapshot every 5 entries, so that the puts below save one.
	m := startHTTPMember(t, func(c *server.Config) { c.SnapshotCount = 5 })
	base := "http://" + m.Addr
	expectHTTP(t, base+"/readyz", 200, "ok\n") // so the health check metrics exist
	before := scrapeMetrics(t, base)
	for name, want := range wantMetrics {
		mf := before[name]
		if mf == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if mf.GetType() != want.typ {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), want.typ)
		}
		if got := metricLabelNames(mf.GetMetric()[0]); got != want.labels && name != "go_gc_duration_seconds" {
			t.Errorf("%s labels %q, want %q", name, got, want.labels)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for name, want := range map[string]float64{
		"etcd_server_has_leader":                 1,
		"etcd_server_is_leader":                  1,
		"etcd_server_leader_changes_seen_total":  1,
		"etcd_server_quota_backend_bytes":        server.DefaultQuotaBackendBytes,
		"etcd_debugging_mvcc_current_revision":   1,
		"etcd_debugging_mvcc_compact_revision":   -1,
		"etcd_debugging_mvcc_watcher_total":      0,
		"etcd_debugging_mvcc_watch_stream_total": 0,
		"etcd_server_proposals_pending":          0,
		"etcd_server_is_learner":                 0,
		"cairn_storage_write_stalls_total":       0,
		"cairn_storage_memtables":                1,
	} {
		if v := metricValue(t, before, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if used, limit := metricValue(t, before, "os_fd_used"), metricValue(t, before, "os_fd_limit"); used < 1 || limit < used {
		t.Errorf("os_fd_used %v, os_fd_limit %v", used, limit)
	}
	id := before["etcd_server_id"].GetMetric()[0].GetLabel()[0].GetValue()
	if id != fmt.Sprintf("%x", m.Server.ID()) {
		t.Errorf("server_id %q, member %x", id, m.Server.ID())
	}
	if v := before["etcd_cluster_version"].GetMetric()[0].GetLabel()[0].GetValue(); v != "3.7" {
		t.Errorf("cluster_version %q", v)
	}
	if v := before["etcd_server_version"].GetMetric()[0].GetLabel()[0].GetValue(); v != server.EtcdAPIVersion {
		t.Errorf("server_version %q", v)
	}
	if b := before["etcd_disk_wal_fsync_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket(); len(b) != 15 || b[0].GetUpperBound() != 0.001 || b[13].GetUpperBound() != 8.192 || !math.IsInf(b[14].GetUpperBound(), 1) {
		t.Errorf("WAL fsync buckets %v, want etcd's 1ms..8.192s and +Inf", b)
	}

	c := m.client(t)
	ctx := framework.Context(t, 30*time.Second)
	const puts = 10
	for i := 0; i < puts; i++ {
		if _, err := c.Put(ctx, fmt.Sprint("k", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	wc := c.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if wr := <-wc; !wr.Created {
		t.Fatalf("watch: %+v", wr)
	}
	if _, err := c.Txn(ctx).Then(clientv3.OpPut("k-watched", "v"), clientv3.OpDelete("k0")).Commit(); err != nil {
		t.Fatal(err)
	}
	if wr := <-wc; len(wr.Events) != 2 {
		t.Fatalf("watch: %+v, want the txn's two events", wr)
	}
	expectHTTP(t, base+"/health", 200, healthOK)
	after := scrapeMetrics(t, base)
	grew := func(name string, by float64) {
		t.Helper()
		if b, a := metricValue(t, before, name), metricValue(t, after, name); a-b < by {
			t.Errorf("%s went from %v to %v after %d puts, want +%v at least", name, b, a, puts, by)
		}
	}
	grew("etcd_server_proposals_committed_total", puts)
	grew("etcd_server_proposals_applied_total", puts)
	grew("etcd_disk_wal_fsync_duration_seconds", 1)
	grew("etcd_disk_wal_write_duration_seconds", puts)
	grew("etcd_disk_wal_write_bytes_total", puts*5)
	grew("etcd_disk_backend_commit_duration_seconds", 1)
	grew("etcd_server_health_success", 1)
	// A put request holds at least its key ("k0"), its value ("v") and
	// their two tags; its response a header of IDs, term and revision.
	grew("etcd_network_client_grpc_received_bytes_total", puts*5)
	grew("etcd_network_client_grpc_sent_bytes_total", puts*10)
	for name, want := range map[string]float64{
		"etcd_debugging_mvcc_current_revision":     2 + puts,
		"etcd_debugging_mvcc_events_total":         2,
		"etcd_debugging_mvcc_pending_events_total": 0,
		"etcd_debugging_mvcc_keys_total":           puts, // k0 deleted, k-watched put
		"etcd_debugging_mvcc_watcher_total":        1,
		"etcd_debugging_mvcc_watch_stream_total":   1,
		"etcd_debugging_mvcc_slow_watcher_total":   0,
		"etcd_server_proposals_failed_total":       0,
	} {
		if v := metricValue(t, after, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if a, b := metricValue(t, after, "etcd_server_proposals_applied_total"), metricValue(t, after, "etcd_server_proposals_committed_total"); a > b {
		t.Errorf("applied %v > committed %v", a, b)
	}
	// clientv3 sends its API version with every call.
	calls := map[string]float64{}
	for _, s := range after["etcd_server_client_requests_total"].GetMetric() {
		calls[metricLabels(s)] = s.GetCounter().GetValue()
	}
	if n := calls["client_api_version=3.7,type=unary"]; n < puts {
		t.Errorf("etcd_server_client_requests_total %v, want at least the %d puts under clientv3's version 3.7", calls, puts)
	}
	if peers := after["etcd_network_known_peers"].GetMetric(); len(peers) != 1 || peers[0].GetGauge().GetValue() != 1 ||
		metricLabels(peers[0]) != "Local="+id+",Remote="+id {
		t.Errorf("etcd_network_known_peers %v, want this member alone, at 1", peers)
	}

	// The maintenance calls are timed, each once.
	if _, err := c.HashKV(ctx, m.Addr, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewMaintenanceClient(c.ActiveConnection()).Hash(ctx, &pb.HashRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Defragment(ctx, m.Addr); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	framework.WaitUntil(ctx, t, "a raft snapshot saved", func() bool {
		return metricValue(t, scrapeMetrics(t, base), "etcd_debugging_snap_save_total_duration_seconds") > 0
	})
	rev := metricValue(t, after, "etcd_debugging_mvcc_current_revision")
	if _, err := c.Compact(ctx, int64(rev), clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	last := after
	framework.WaitUntil(ctx, t, "the snapshot's end timed", func() bool {
		last = scrapeMetrics(t, base)
		return metricValue(t, last, "etcd_disk_backend_snapshot_duration_seconds") > 0
	})
	for name, want := range map[string]float64{
		"etcd_mvcc_hash_rev_duration_seconds":         1,
		"etcd_mvcc_hash_duration_seconds":             1,
		"etcd_disk_backend_defrag_duration_seconds":   1,
		"etcd_disk_backend_snapshot_duration_seconds": 1,
		"etcd_disk_defrag_inflight":                   0,
		"etcd_snap_fsync_duration_seconds":            metricValue(t, last, "etcd_debugging_snap_save_total_duration_seconds") - metricValue(t, after, "etcd_debugging_snap_save_total_duration_seconds"),
		// The physical compaction: k0's put is dropped, its tombstone at
		// the compact revision kept.
		"etcd_debugging_mvcc_db_compaction_total_duration_milliseconds": 1,
		"etcd_debugging_mvcc_db_compaction_keys_total":                  1,
	} {
		if d := metricValue(t, last, name) - metricValue(t, after, name); d != want {
			t.Errorf("%s moved by %v, want %v", name, d, want)
		}
	}
	if at := metricValue(t, last, "etcd_debugging_mvcc_db_compaction_last"); at < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("etcd_debugging_mvcc_db_compaction_last %v, want the compaction's time", at)
	}
}

// metricLabels shows a series' labels as "name=value,…".
func metricLabels(m *dto.Metric) string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(out, ",")
}

// refEtcd is a reference etcd v3.7.3 with a client and a metrics URL.
type refEtcd struct {
	client, metrics string // base URLs
	log             *framework.Output
}

// startRefEtcd starts the reference etcd with a 1-byte quota, so that the
// first put raises NOSPACE, and a metrics URL; it returns once it serves
// and the cluster and storage versions /version shows are settled.
func startRefEtcd(t *testing.T) *refEtcd {
	t.Helper()
	var metrics string
	client, log := startReference(t, func() []string {
		metrics = "http://" + freeHTTPAddr(t)
		return []string{"--listen-metrics-urls", metrics, "--quota-backend-bytes", "1"}
	}, "serving metrics", "updated storage version")
	return &refEtcd{client: client, metrics: metrics, log: log}
}

// startReference starts the reference etcd v3.7.3 as a fast single member
// on fresh ports with the flags extra returns (called per attempt, so it
// may pick ports of its own), waits until it serves clients and has
// logged every one of ready, and returns its client URL and log. It
// skips t without the binary, and tries again when a port chosen a moment
// before was taken meanwhile. The process is killed when t ends.
func startReference(t *testing.T, extra func() []string, ready ...string) (string, *framework.Output) {
	t.Helper()
	bin, _, err := reference.Binaries()
	if err != nil {
		t.Skipf("reference etcd unavailable: %v", err)
	}
	ready = append(ready, "serving client traffic insecurely")
	for attempt := 0; ; attempt++ {
		client, peer := "http://"+freeHTTPAddr(t), "http://"+freeHTTPAddr(t)
		cmd := exec.Command(bin, append([]string{
			"--name", "ref", "--data-dir", t.TempDir(),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "ref=" + peer,
			"--heartbeat-interval", "10", "--election-timeout", "100", "--unsafe-no-fsync",
		}, extra()...)...)
		log := framework.NewOutput()
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		err := log.Wait(exited, 30*time.Second, func(out string) bool {
			for _, r := range ready {
				if !strings.Contains(out, r) {
					return false
				}
			}
			return true
		})
		if err == nil {
			t.Cleanup(stop)
			return client, log
		}
		stop()
		if attempt == 2 || !strings.Contains(log.String(), "address already in use") {
			t.Fatalf("etcd: %v\n%s", err, log.String())
		}
	}
}

func freeHTTPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpCase is one request sent to both servers.
type httpCase struct {
	method, path string
	// statusOnly compares status and headers, not the body.
	statusOnly bool
}

var httpClientCases = []httpCase{
	{"GET", "/health", false},
	{"GET", "/health?serializable=true", false},
	{"GET", "/health?exclude=NOSPACE", false},
	{"GET", "/health?exclude=NOSPACE&serializable=true", false},
	{"GET", "/health?exclude=nospace", false},
	{"GET", "/livez", false},
	{"GET", "/livez?verbose", false},
	{"GET", "/livez/serializable_read", false},
	{"GET", "/livez/linearizable_read", false},
	{"GET", "/livez/", false},
	{"GET", "/readyz", false},
	{"GET", "/readyz?verbose", false},
	{"GET", "/readyz?verbose=0", false},
	{"GET", "/readyz?verbose&exclude=linearizable_read&exclude=non_learner", false},
	{"GET", "/readyz?verbose&exclude=no_such_check", false},
	{"GET", "/readyz/data_corruption", false},
	{"GET", "/readyz/serializable_read?verbose", false},
	{"GET", "/readyz/linearizable_read", false},
	{"GET", "/readyz/non_learner", false},
	{"GET", "/readyz/", false},
	{"GET", "/version", false},
	{"GET", "/version/", false},
	{"GET", "/", false},
	{"GET", "/no/such/path", false},
	{"GET", "/debug/pprof/", false},
	{"GET", "/debug/vars", true},
	{"GET", "/metrics", true},
	{"POST", "/health", false},
	{"PUT", "/livez", false},
	{"DELETE", "/readyz/non_learner", false},
	{"POST", "/version", false},
	{"HEAD", "/version", false},
	{"OPTIONS", "/health", false},
	{"OPTIONS", "/no/such/path", false},
}

var httpMetricsCases = []httpCase{
	{"GET", "/health", false},
	{"GET", "/health?exclude=NOSPACE", false},
	{"GET", "/livez?verbose", false},
	{"GET", "/readyz?verbose", false},
	{"GET", "/readyz/linearizable_read", false},
	{"GET", "/version", false},
	{"GET", "/debug/vars", false},
	{"GET", "/metrics", true},
	{"POST", "/health", false},
	{"OPTIONS", "/health", false},
}

// httpComparedHeaders are the headers that must match; Date and
// Content-Length (implied by the body) are not compared.
var httpComparedHeaders = []string{
	"Content-Type", "X-Content-Type-Options", "Allow",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
}

var etcdVersionRE = regexp.MustCompile(`^3\.7\.\d+$`)

// normalizeHTTP removes what may differ between two correct servers: the
// order of verbose check lines (etcd runs its checks in random order),
// and in /version the patch level of the etcd server version, the storage
// version (an etcd whose cluster version is not set yet reports none) and
// Cairn's extra "cairn" key.
func normalizeHTTP(path string, r httpReply) string {
	body := r.body
	if strings.HasPrefix(path, "/version") && r.code == 200 {
		var v map[string]string
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return "unparsable /version: " + body
		}
		if etcdVersionRE.MatchString(v["etcdserver"]) {
			v["etcdserver"] = "3.7.x"
		}
		if v["storage"] != "" {
			v["storage"] = "<set>"
		}
		delete(v, "cairn")
		b, _ := json.Marshal(v)
		return string(b)
	}
	if strings.HasPrefix(path, "/readyz") || strings.HasPrefix(path, "/livez") {
		lines := strings.SplitAfter(body, "\n")
		var checks []string
		for i, l := range lines {
			if strings.HasPrefix(l, "[") {
				checks = append(checks, l)
				lines[i] = ""
			}
		}
		sort.Strings(checks)
		return strings.Join(checks, "") + "|" + strings.Join(lines, "")
	}
	return body
}

// compareHTTP sends every case to etcd and Cairn and reports differences.
func compareHTTP(t *testing.T, state, etcdBase, cairnBase string, cases []httpCase) {
	t.Helper()
	for _, c := range cases {
		e, err := httpDo(c.method, etcdBase+c.path)
		if err != nil {
			t.Fatalf("etcd %s %s: %v", c.method, c.path, err)
		}
		g, err := httpDo(c.method, cairnBase+c.path)
		if err != nil {
			t.Fatalf("cairn %s %s: %v", c.method, c.path, err)
		}
		where := fmt.Sprintf("%s: %s %s", state, c.method, c.path)
		if e.code != g.code {
			t.Errorf("%s: status etcd %d, cairn %d (cairn body %q)", where, e.code, g.code, g.body)
			continue
		}
		for _, h := range httpComparedHeaders {
			if ev, gv := e.hdr.Values(h), g.hdr.Values(h); fmt.Sprint(ev) != fmt.Sprint(gv) {
				t.Errorf("%s: header %s etcd %q, cairn %q", where, h, ev, gv)
			}
		}
		if c.statusOnly {
			continue
		}
		if en, gn := normalizeHTTP(c.path, e), normalizeHTTP(c.path, g); en != gn {
			t.Errorf("%s: body\netcd  %q\ncairn %q", where, en, gn)
		}
	}
}

// metricFamilies describes a /metrics answer: family name → type, help
// and label names of its first sample.
func metricFamilies(t *testing.T, body string) map[string]string {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, mf := range mfs {
		out[name] = fmt.Sprintf("%v %q [%s]", mf.GetType(), mf.GetHelp(), metricLabelNames(mf.GetMetric()[0]))
	}
	return out
}

// TestHTTPDifferentialEtcd compares every HTTP endpoint with etcd v3.7.3:
// healthy, then with the NOSPACE alarm (each raises it at the first put
// over its 1-byte quota), on the client port and on the metrics port. For /metrics, every family
// Cairn exports must exist in etcd with the same type, help and labels,
// but for Cairn's own cairn_* families, which etcd cannot have.
func TestHTTPDifferentialEtcd(t *testing.T) {
	e := startRefEtcd(t)
	healthy := startHTTPMember(t)
	compareHTTP(t, "healthy", e.client, "http://"+healthy.Addr, httpClientCases)
	compareHTTP(t, "healthy metrics port", e.metrics, "http://"+healthy.MetricsAddr, httpMetricsCases)

	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{e.client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if _, err := ec.Put(framework.Context(t, 30*time.Second), "k", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("etcd put over a 1-byte quota: %v", err)
	}
	full := startHTTPMember(t, func(c *server.Config) {
		c.QuotaBackendBytes = 1
		// So that etcd_server_feature_enabled is compared too.
		c.FeatureGates = []server.FeatureGate{{Name: "AllAlpha", Stage: "ALPHA"}, {Name: "FastLeaseKeepAlive", Stage: "BETA", Enabled: true}}
	})
	if _, err := full.client(t).Put(framework.Context(t, 30*time.Second), "k", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("cairn put over a 1-byte quota: %v", err)
	}
	compareHTTP(t, "NOSPACE", e.client, "http://"+full.Addr, httpClientCases)
	compareHTTP(t, "NOSPACE metrics port", e.metrics, "http://"+full.MetricsAddr, httpMetricsCases)

	// Scrape after the health requests above, so the health metrics exist
	// on both sides.
	etcdFams := metricFamilies(t, httpGet(t, e.client+"/metrics").body)
	cairnFams := metricFamilies(t, httpGet(t, "http://"+full.Addr+"/metrics").body)
	for name, desc := range cairnFams {
		if strings.HasPrefix(name, "cairn_") {
			if etcdFams[name] != "" {
				t.Errorf("metric %s: Cairn's own name is etcd's too: %s", name, etcdFams[name])
			}
			continue
		}
		if etcdFams[name] != desc {
			t.Errorf("metric %s: cairn %s, etcd %q", name, desc, etcdFams[name])
		}
	}
	for name := range wantMetrics {
		if cairnFams[name] == "" {
			t.Errorf("metric %s missing from cairn", name)
		}
	}
}

// TestHTTPHealthLearnerAndNoLeader: the health endpoints of a learner
// (healthy, but not ready as a voter) and of a member that lost its
// leader (unhealthy and not ready, yet live and serving local reads).
func TestHTTPHealthLearnerAndNoLeader(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 60*time.Second)
	serve := func(m *framework.Member) string {
		hs := httptest.NewServer(httpapi.New(m.Server, httpapi.Options{}).ClientHandler())
		t.Cleanup(hs.Close)
		return hs.URL
	}

	learner := serve(c.AddMember(ctx, true))
	expectHTTP(t, learner+"/health", 200, healthOK)
	expectHTTP(t, learner+"/livez", 200, "ok\n")
	expectHTTP(t, learner+"/readyz/non_learner", 503, "[-]non_learner failed: not supported for learner\n\n")
	expectHTTP(t, learner+"/readyz?exclude=non_learner", 200, "ok\n")

	// A voter whose two voting peers are gone has no leader once its
	// election timeout passes.
	alone := c.Members[0]
	for _, m := range c.Members[1:3] {
		m.Stop()
	}
	base := serve(alone)
	noLeader := `{"health":"false","reason":"RAFT NO LEADER"}` + "\n"
	framework.WaitUntil(ctx, t, "/health to report no leader", func() bool {
		r := httpGet(t, base+"/health")
		if r.code != 200 && r.code != 503 {
			t.Fatalf("/health while losing the leader: %d %q", r.code, r.body)
		}
		return r.code == 503 && r.body == noLeader
	})
	expectHTTP(t, base+"/health?serializable=true", 200, healthOK)
	expectHTTP(t, base+"/livez", 200, "ok\n")
	expectHTTP(t, base+"/readyz/serializable_read", 200, "ok\n")
	r := httpGet(t, base+"/readyz?verbose")
	if want := "[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: "; r.code != 503 || !strings.HasPrefix(r.body, want) ||
		!strings.HasSuffix(r.body, "[+]non_learner ok\n\n") {
		t.Fatalf("/readyz?verbose without a leader: %d %q", r.code, r.body)
	}
}
