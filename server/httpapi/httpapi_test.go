package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// member is a Member whose state a test sets: it produces the states a
// real single member cannot reach (no leader, failing reads, a CORRUPT
// alarm, a learner). tests/integration checks the reachable ones on real
// members, and against etcd.
type member struct {
	mu        sync.Mutex
	leader    uint64
	dbSize    int64
	quota     int64
	learner   bool
	alarms    []*pb.AlarmMember
	rangeErr  map[bool]error // by Serializable
	rangeSeen []bool         // Serializable of each Range
}

func (m *member) ID() uint64 { return 7 }

func (m *member) Status() *pb.StatusResponse {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &pb.StatusResponse{Leader: m.leader, DbSize: m.dbSize, DbSizeInUse: m.dbSize, DbSizeQuota: m.quota, StorageVersion: "3.6.0"}
}

func (m *member) Members() []membership.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []membership.Member{{ID: 9}, {ID: 7, IsLearner: m.learner}}
}

func (m *member) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !r.KeysOnly || r.Limit != 1 {
		return nil, fmt.Errorf("unexpected health read %v", r)
	}
	m.rangeSeen = append(m.rangeSeen, r.Serializable)
	return &pb.RangeResponse{}, m.rangeErr[r.Serializable]
}

func (m *member) MetricsCollector() prometheus.Collector { return prometheus.NewRegistry() }

func (m *member) set(f func(m *member)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *member) Alarms() []*pb.AlarmMember {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alarms
}

// alarmed is a healthy member with alarms of the given types active, for
// member 7 (itself).
func alarmed(types ...pb.AlarmType) *member {
	m := healthy()
	for _, t := range types {
		m.alarms = append(m.alarms, &pb.AlarmMember{MemberID: 7, Alarm: t})
	}
	return m
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func healthy() *member { return &member{leader: 7, dbSize: 100, quota: 1000} }

type answer struct {
	code int
	body string
	hdr  http.Header
}

func do(t *testing.T, h http.Handler, method, path string) answer {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	code, body := framework.ResponseBody(t, resp, err)
	return answer{code, body, resp.Header}
}

const (
	okHealth = `{"health":"true","reason":""}`
	plain    = "text/plain; charset=utf-8"
)

// TestHealthStates: /health in every state, with etcd's exact status and
// body (a failure ends with http.Error's newline, a success does not).
func TestHealthStates(t *testing.T) {
	timeout := server.ErrTimeout
	for _, tc := range []struct {
		name string
		m    Member
		path string
		code int
		body string
		// serializable reads the health check must have made
		reads []bool
	}{
		{"healthy", healthy(), "/health", 200, okHealth, []bool{false}},
		{"healthy serializable", healthy(), "/health?serializable=true", 200, okHealth, []bool{true}},
		{"serializable=1 is not true", healthy(), "/health?serializable=1", 200, okHealth, []bool{false}},
		{"nospace", alarmed(pb.AlarmType_NOSPACE), "/health", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n", nil},
		{"nospace serializable", alarmed(pb.AlarmType_NOSPACE), "/health?serializable=true", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n", nil},
		{"nospace excluded", alarmed(pb.AlarmType_NOSPACE), "/health?exclude=NOSPACE", 200, okHealth, []bool{false}},
		{"exclude is case sensitive", alarmed(pb.AlarmType_NOSPACE), "/health?exclude=nospace", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n", nil},
		{"another member's alarm", &member{leader: 7, alarms: []*pb.AlarmMember{{MemberID: 9, Alarm: pb.AlarmType_NOSPACE}}}, "/health", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n", nil},
		{"unknown alarm type", alarmed(pb.AlarmType(5)), "/health", 503, `{"health":"false","reason":"ALARM UNKNOWN"}` + "\n", nil},
		{"over quota without an alarm", &member{leader: 7, dbSize: 1001, quota: 1000}, "/health", 200, okHealth, []bool{false}},
		{"no leader", &member{dbSize: 1, quota: 10}, "/health", 503, `{"health":"false","reason":"RAFT NO LEADER"}` + "\n", nil},
		{"no leader serializable", &member{dbSize: 1, quota: 10}, "/health?serializable=true", 200, okHealth, []bool{true}},
		{"read fails", &member{leader: 7, rangeErr: map[bool]error{false: fmt.Errorf("wrapped: %w", timeout)}}, "/health", 503, `{"health":"false","reason":"RANGE ERROR:etcdserver: request timed out"}` + "\n", []bool{false}},
		{"other read error", &member{leader: 7, rangeErr: map[bool]error{true: errors.New("disk on fire")}}, "/health?serializable=true", 503, `{"health":"false","reason":"RANGE ERROR:disk on fire"}` + "\n", []bool{true}},
		{"corrupt", alarmed(pb.AlarmType_CORRUPT), "/health?exclude=NOSPACE", 503, `{"health":"false","reason":"ALARM CORRUPT"}` + "\n", nil},
		{"both alarms, both excluded", alarmed(pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT), "/health?exclude=NOSPACE&exclude=CORRUPT", 200, okHealth, []bool{false}},
		{"first alarm reported", alarmed(pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT), "/health", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.m, Options{})
			got := do(t, a.ClientHandler(), http.MethodGet, tc.path)
			if got.code != tc.code || got.body != tc.body {
				t.Fatalf("%s: %d %q, want %d %q", tc.path, got.code, got.body, tc.code, tc.body)
			}
			if ct := got.hdr.Get("Content-Type"); ct != plain {
				t.Fatalf("Content-Type %q", ct)
			}
			if nosniff := got.hdr.Get("X-Content-Type-Options") == "nosniff"; nosniff != (tc.code != 200) {
				t.Fatalf("X-Content-Type-Options %q on a %d answer", got.hdr.Get("X-Content-Type-Options"), tc.code)
			}
			m := tc.m.(*member)
			if fmt.Sprint(m.rangeSeen) != fmt.Sprint(tc.reads) {
				t.Fatalf("reads (serializable) %v, want %v", m.rangeSeen, tc.reads)
			}
			ok, failed := value(t, a.healthSuccess), value(t, a.healthFailures)
			if (tc.code == 200) != (ok == 1 && failed == 0) || (tc.code != 200) != (ok == 0 && failed == 1) {
				t.Fatalf("health counters success %v failures %v after a %d", ok, failed, tc.code)
			}
		})
	}
}

// TestLivezReadyz: the check endpoints, healthy and failing, verbose or
// not, whole or one check, with and without exclusions.
func TestLivezReadyz(t *testing.T) {
	readFails := func(serializable bool) *member {
		m := healthy()
		m.rangeErr = map[bool]error{serializable: server.ErrTimeout}
		return m
	}
	allOK := "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\n"
	for _, tc := range []struct {
		name string
		m    Member
		path string
		code int
		body string
	}{
		{"livez", healthy(), "/livez", 200, "ok\n"},
		{"livez verbose", healthy(), "/livez?verbose", 200, "[+]serializable_read ok\nok\n"},
		{"livez check", healthy(), "/livez/serializable_read", 200, "ok\n"},
		{"readyz", healthy(), "/readyz", 200, "ok\n"},
		{"readyz verbose", healthy(), "/readyz?verbose", 200, allOK + "ok\n"},
		{"verbose=false is verbose", healthy(), "/readyz?verbose=false", 200, allOK + "ok\n"},
		{"readyz exclude", healthy(), "/readyz?verbose&exclude=linearizable_read&exclude=non_learner", 200, "[+]data_corruption ok\n[+]serializable_read ok\nok\n"},
		{"unknown exclude ignored", healthy(), "/readyz?verbose&exclude=nope", 200, allOK + "ok\n"},
		{"one check verbose", healthy(), "/readyz/non_learner?verbose", 200, "[+]non_learner ok\nok\n"},
		{"no leader is not checked", &member{}, "/readyz", 200, "ok\n"},
		{"linearizable read fails", readFails(false), "/readyz", 503,
			"[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: etcdserver: request timed out\n[+]non_learner ok\n\n"},
		{"excluded failure", readFails(false), "/readyz?exclude=linearizable_read", 200, "ok\n"},
		{"failing check alone", readFails(false), "/readyz/linearizable_read", 503, "[-]linearizable_read failed: etcdserver: request timed out\n\n"},
		{"other checks pass alone", readFails(false), "/readyz/serializable_read", 200, "ok\n"},
		{"livez serializable read fails", readFails(true), "/livez", 503, "[-]serializable_read failed: etcdserver: request timed out\n\n"},
		{"livez ignores linearizable failure", readFails(false), "/livez", 200, "ok\n"},
		{"corrupt", alarmed(pb.AlarmType_CORRUPT), "/readyz/data_corruption", 503, "[-]data_corruption failed: alarm activated: CORRUPT\n\n"},
		{"nospace is not corruption", alarmed(pb.AlarmType_NOSPACE), "/readyz", 200, "ok\n"},
		{"learner", &member{leader: 9, learner: true}, "/readyz?verbose", 503, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[-]non_learner failed: not supported for learner\n\n"},
		{"learner is live", &member{leader: 9, learner: true}, "/livez", 200, "ok\n"},
		{"livez has no such check", healthy(), "/livez/linearizable_read", 404, "404 page not found\n"},
		{"trailing slash", healthy(), "/readyz/", 404, "404 page not found\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := do(t, New(tc.m, Options{}).ClientHandler(), http.MethodGet, tc.path)
			if got.code != tc.code || got.body != tc.body {
				t.Fatalf("%s: %d %q, want %d %q", tc.path, got.code, got.body, tc.code, tc.body)
			}
			if got.hdr.Get("Content-Type") != plain || got.hdr.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("headers %v", got.hdr)
			}
		})
	}
}

func TestCheckMetrics(t *testing.T) {
	m := healthy()
	a := New(m, Options{})
	h := a.ClientHandler()
	do(t, h, http.MethodGet, "/readyz")
	m.set(func(m *member) { m.rangeErr = map[bool]error{false: server.ErrNoLeader} })
	do(t, h, http.MethodGet, "/readyz/linearizable_read")
	do(t, h, http.MethodGet, "/livez")
	for _, c := range []struct {
		kind, name string
		result     float64
		ok, failed float64
	}{
		{"readyz", "linearizable_read", 0, 1, 1},
		{"readyz", "serializable_read", 1, 1, 0},
		{"readyz", "non_learner", 1, 1, 0},
		{"livez", "serializable_read", 1, 1, 0},
	} {
		if v := value(t, a.checkResult.WithLabelValues(c.kind, c.name)); v != c.result {
			t.Errorf("healthcheck{%s,%s} = %v, want %v", c.kind, c.name, v, c.result)
		}
		if v := value(t, a.checkTotal.WithLabelValues(c.kind, c.name, "success")); v != c.ok {
			t.Errorf("healthchecks_total{%s,%s,success} = %v, want %v", c.kind, c.name, v, c.ok)
		}
		if v := value(t, a.checkTotal.WithLabelValues(c.kind, c.name, "error")); v != c.failed {
			t.Errorf("healthchecks_total{%s,%s,error} = %v, want %v", c.kind, c.name, v, c.failed)
		}
	}
}

func TestVersion(t *testing.T) {
	got := do(t, New(healthy(), Options{}).ClientHandler(), http.MethodGet, "/version")
	want := fmt.Sprintf(`{"etcdserver":%q,"etcdcluster":"3.7.0","storage":"3.6.0","cairn":%q}`, server.EtcdAPIVersion, server.Version)
	if got.code != 200 || got.body != want || got.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %v, want %q", got.code, got.body, got.hdr, want)
	}
}

// TestMethodsAndPaths: what each handler serves, 405 for other methods,
// CORS on the client handler only.
func TestMethodsAndPaths(t *testing.T) {
	a := New(healthy(), Options{EnablePprof: true})
	noPprof := New(healthy(), Options{})
	type want struct {
		code  int
		allow string
	}
	for _, tc := range []struct {
		h      http.Handler
		name   string
		method string
		path   string
		want   want
		cors   bool
	}{
		{a.ClientHandler(), "client", "POST", "/health", want{405, "GET"}, true},
		{a.ClientHandler(), "client", "HEAD", "/version", want{405, "GET"}, true},
		{a.ClientHandler(), "client", "PUT", "/readyz", want{405, "GET"}, true},
		{a.ClientHandler(), "client", "DELETE", "/livez/serializable_read", want{405, "GET"}, true},
		{a.ClientHandler(), "client", "POST", "/debug/vars", want{405, "GET"}, true},
		{a.ClientHandler(), "client", "OPTIONS", "/anything", want{200, ""}, true},
		{a.ClientHandler(), "client", "GET", "/debug/vars", want{200, ""}, true},
		{a.ClientHandler(), "client", "GET", "/debug/pprof/", want{200, ""}, true},
		{a.ClientHandler(), "client", "GET", "/debug/pprof/heap?debug=1", want{200, ""}, true},
		{noPprof.ClientHandler(), "client without pprof", "GET", "/debug/pprof/", want{404, ""}, true},
		{a.ClientHandler(), "client", "GET", "/", want{404, ""}, true},
		{a.ClientHandler(), "client", "GET", "/v2/keys", want{404, ""}, true},
		{a.MetricsHandler(), "metrics", "GET", "/health", want{200, ""}, false},
		{a.MetricsHandler(), "metrics", "GET", "/readyz/linearizable_read", want{200, ""}, false},
		{a.MetricsHandler(), "metrics", "POST", "/livez", want{405, "GET"}, false},
		{a.MetricsHandler(), "metrics", "GET", "/version", want{404, ""}, false},
		{a.MetricsHandler(), "metrics", "GET", "/debug/vars", want{404, ""}, false},
		{a.MetricsHandler(), "metrics", "GET", "/debug/pprof/", want{404, ""}, false},
		{a.MetricsHandler(), "metrics", "OPTIONS", "/health", want{405, "GET"}, false},
	} {
		got := do(t, tc.h, tc.method, tc.path)
		if got.code != tc.want.code || got.hdr.Get("Allow") != tc.want.allow {
			t.Errorf("%s %s %s: %d Allow=%q, want %d Allow=%q", tc.name, tc.method, tc.path, got.code, got.hdr.Get("Allow"), tc.want.code, tc.want.allow)
		}
		if tc.want.code == 405 && tc.method != "HEAD" && got.body != "Method Not Allowed\n" {
			t.Errorf("%s %s %s: body %q", tc.name, tc.method, tc.path, got.body)
		}
		cors := got.hdr.Get("Access-Control-Allow-Origin") == "*" &&
			got.hdr.Get("Access-Control-Allow-Methods") == "POST, GET, OPTIONS, PUT, DELETE" &&
			got.hdr.Get("Access-Control-Allow-Headers") == "accept, content-type, authorization"
		if cors != tc.cors {
			t.Errorf("%s %s %s: CORS headers %v, want %v", tc.name, tc.method, tc.path, cors, tc.cors)
		}
	}
}

func TestDebugVarsIsJSON(t *testing.T) {
	got := do(t, New(healthy(), Options{}).ClientHandler(), http.MethodGet, "/debug/vars")
	if got.hdr.Get("Content-Type") != "application/json; charset=utf-8" || !strings.HasPrefix(got.body, "{\n") || !strings.Contains(got.body, `"memstats": {`) || !strings.HasSuffix(got.body, "\n}\n") {
		t.Fatalf("%v %q", got.hdr, got.body[:min(len(got.body), 200)])
	}
}

// TestRegistryPerAPI: two APIs in one process keep separate health
// counters and both register the go and process collectors.
func TestRegistryPerAPI(t *testing.T) {
	a, b := New(healthy(), Options{}), New(healthy(), Options{})
	do(t, a.ClientHandler(), http.MethodGet, "/health")
	if value(t, a.healthSuccess) != 1 || value(t, b.healthSuccess) != 0 {
		t.Fatal("health counters shared between APIs")
	}
	for _, api := range []*API{a, b} {
		mfs, err := api.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		for _, n := range []string{"go_goroutines", "process_start_time_seconds", "etcd_server_health_success", "etcd_server_health_failures"} {
			if !names[n] {
				t.Fatalf("%s missing from the registry", n)
			}
		}
	}
}
