package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// grpcSeries is the value of every grpc_server_* series of a scrape, keyed
// "family{type service method[ code]}"; a histogram's value is its count.
func grpcSeries(mfs map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "grpc_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			key := seriesKey(name, l["grpc_type"], l["grpc_service"], l["grpc_method"], l["grpc_code"])
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			default:
				out[key] = -1 // no such type in etcd's grpc metrics
			}
		}
	}
	return out
}

func seriesKey(family, typ, service, method, code string) string {
	if code != "" {
		method += " " + code
	}
	return fmt.Sprintf("%s{%s %s %s}", family, typ, service, method)
}

// series names one series of grpcSeries; method is "service/method".
func series(family, typ, method, code string) string {
	service, name, _ := strings.Cut(method, "/")
	return seriesKey(family, typ, service, name, code)
}

// TestGRPCMetrics: the grpc_server_* counters and histogram move by exactly
// the calls made, under their method, type and code, whichever of the
// member's gRPC servers served them; the series exist before the first
// call.
func TestGRPCMetrics(t *testing.T) {
	m := startHTTPMember(t, func(c *server.Config) { c.Metrics = server.MetricsExtensive })
	base := "http://" + m.Addr
	// Two gRPC servers of the same member: startHTTPMember's, and the one
	// of the framework, which count into the same series.
	c, other := m.client(t), m.Member.Client()
	ctx := framework.Context(t, 30*time.Second)

	before := grpcSeries(scrapeMetrics(t, base))
	for _, want := range []string{
		series("grpc_server_started_total", "unary", "etcdserverpb.Lease/LeaseGrant", ""),
		series("grpc_server_handled_total", "unary", "etcdserverpb.Lease/LeaseGrant", "DataLoss"),
		series("grpc_server_msg_sent_total", "bidi_stream", "etcdserverpb.Watch/Watch", ""),
		series("grpc_server_handling_seconds", "server_stream", "etcdserverpb.Maintenance/Snapshot", ""),
		series("grpc_server_handled_total", "unary", "grpc.health.v1.Health/Check", "OK"),
	} {
		if v, ok := before[want]; !ok || v != 0 {
			t.Errorf("%s = %v (exists: %v) before any call, want 0", want, v, ok)
		}
	}

	if _, err := c.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, "k", clientv3.WithRev(1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("range at a compacted revision: %v", err)
	}
	if _, err := c.Revoke(ctx, 12345); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoke of no lease: %v", err)
	}
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	wc := c.Watch(wctx, "w", clientv3.WithCreatedNotify())
	if wr := <-wc; !wr.Created {
		t.Fatalf("watch: %+v", wr)
	}
	if _, err := c.Put(ctx, "w", "x"); err != nil {
		t.Fatal(err)
	}
	if wr := <-wc; len(wr.Events) != 1 {
		t.Fatalf("watch: %+v, want the put", wr)
	}

	const (
		unary = "unary"
		bidi  = "bidi_stream"
		put   = "etcdserverpb.KV/Put"
		rng   = "etcdserverpb.KV/Range"
		watch = "etcdserverpb.Watch/Watch"
	)
	want := map[string]float64{}
	// unaryCalls adds n unary calls of method that ended with code: each
	// counts one start, one message each way (a failed call too, as in
	// etcd), one end under its code, and one observation.
	unaryCalls := func(method, code string, n float64) {
		for _, f := range []string{"grpc_server_started_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total", "grpc_server_handling_seconds"} {
			want[series(f, unary, method, "")] += n
		}
		want[series("grpc_server_handled_total", unary, method, code)] += n
	}
	unaryCalls(put, "OK", 3)
	unaryCalls(rng, "OK", 1)
	unaryCalls(rng, "OutOfRange", 1)
	unaryCalls("etcdserverpb.KV/Compact", "OK", 1)
	unaryCalls("etcdserverpb.Lease/LeaseRevoke", "NotFound", 1)
	want[series("grpc_server_started_total", bidi, watch, "")] = 1
	want[series("grpc_server_msg_received_total", bidi, watch, "")] = 1 // the create request
	want[series("grpc_server_msg_sent_total", bidi, watch, "")] = 2     // created, then the event
	mid := grpcSeries(scrapeMetrics(t, base))
	checkDeltas(t, "after the calls", before, mid, want)

	// Closing its last watcher makes the client end the stream, without
	// a cancel request: the call ends, Canceled as in etcd, and the
	// server's pending receive fails, which counts as a received message
	// (go-grpc-middleware counts it so).
	cancelWatch()
	for range wc {
	}
	ended := series("grpc_server_handled_total", bidi, watch, "Canceled")
	received := series("grpc_server_msg_received_total", bidi, watch, "")
	var after map[string]float64
	framework.WaitUntil(ctx, t, "the watch stream's end in "+ended+" and "+received, func() bool {
		after = grpcSeries(scrapeMetrics(t, base))
		return after[ended] > before[ended] && after[received] >= before[received]+2
	})
	want[ended] = 1
	want[series("grpc_server_handling_seconds", bidi, watch, "")] = 1
	want[received] = 2
	checkDeltas(t, "after the watch ended", before, after, want)
}

// checkDeltas compares after-before of every series with want, 0 for the
// series want does not name: nothing else calls the member meanwhile.
func checkDeltas(t *testing.T, when string, before, after, want map[string]float64) {
	t.Helper()
	for key, v := range after {
		if d, w := v-before[key], want[key]; d != w {
			t.Errorf("%s: %s grew by %v, want %v", when, key, d, w)
		}
	}
	for key := range want {
		if _, ok := after[key]; !ok {
			t.Errorf("%s: %s missing", when, key)
		}
	}
}

// grpcShape describes the grpc_* families of a scrape, values aside: each
// family's type, help, label names and histogram buckets, and the label
// values of its series.
func grpcShape(mfs map[string]*dto.MetricFamily) (families map[string]string, series []string) {
	families = map[string]string{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "grpc_") {
			continue
		}
		labels := map[string]bool{}
		var buckets []float64
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
			var b []float64
			for _, bk := range m.GetHistogram().GetBucket() {
				b = append(b, bk.GetUpperBound())
			}
			if buckets == nil {
				buckets = b
			} else if !slices.Equal(b, buckets) {
				buckets = append(buckets, -1) // series disagree: never etcd's
			}
		}
		var names []string
		for l := range labels {
			names = append(names, l)
		}
		sort.Strings(names)
		families[name] = fmt.Sprintf("%v %q labels %v buckets %v", mf.GetType(), mf.GetHelp(), names, buckets)
	}
	for key := range grpcSeries(mfs) {
		series = append(series, key)
	}
	sort.Strings(series)
	return families, series
}

// TestGRPCMetricsDifferentialEtcd: with --metrics=extensive, a fresh Cairn
// member exports the grpc_* families of a fresh etcd v3.7.3, with the same
// types, help, label names and histogram buckets, and the same series
// (every method of the same services, every code) before any call.
func TestGRPCMetricsDifferentialEtcd(t *testing.T) {
	etcdMetrics, _ := startReference(t, func() []string { return []string{"--metrics", "extensive"} })

	m := startHTTPMember(t, func(c *server.Config) { c.Metrics = server.MetricsExtensive })

	etcdFams, etcdSeries := grpcShape(scrapeMetrics(t, etcdMetrics))
	cairnFams, cairnSeries := grpcShape(scrapeMetrics(t, "http://"+m.Addr))
	if len(etcdFams) != 5 {
		t.Errorf("etcd exports %d grpc_* families, want 5: %v", len(etcdFams), etcdFams)
	}
	for name, e := range etcdFams {
		if c := cairnFams[name]; c != e {
			t.Errorf("%s:\netcd  %s\ncairn %s", name, e, c)
		}
	}
	for name, c := range cairnFams {
		if etcdFams[name] == "" {
			t.Errorf("%s exported by cairn only: %s", name, c)
		}
	}
	t.Logf("compared %d grpc_* families and %d series", len(etcdFams), len(etcdSeries))
	if !slices.Equal(etcdSeries, cairnSeries) {
		for _, s := range etcdSeries {
			if !slices.Contains(cairnSeries, s) {
				t.Errorf("series only in etcd: %s", s)
			}
		}
		for _, s := range cairnSeries {
			if !slices.Contains(etcdSeries, s) {
				t.Errorf("series only in cairn: %s", s)
			}
		}
	}
}
