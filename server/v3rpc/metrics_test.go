package v3rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// gathered is a scrape of one grpcMetrics: family name → series, each
// keyed by its label values in the order grpc_type, grpc_service,
// grpc_method[, grpc_code].
type gathered map[string]map[string]*dto.Metric

func gather(t testing.TB, m *grpcMetrics) gathered {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := gathered{}
	for _, mf := range mfs {
		series := map[string]*dto.Metric{}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			key := l["grpc_type"] + " " + l["grpc_service"] + " " + l["grpc_method"]
			if c, ok := l["grpc_code"]; ok {
				key += " " + c
			}
			series[key] = s
		}
		out[mf.GetName()] = series
	}
	return out
}

// counter is the value of a counter series, -1 when it does not exist.
func (g gathered) counter(name, key string) float64 {
	s := g[name][key]
	if s == nil {
		return -1
	}
	return s.GetCounter().GetValue()
}

// TestGRPCMetricsInitialized: as etcd's InitializeMetrics, every method of
// every registered service has its series at zero before any call, with
// etcd's labels, a handled_total series for each of the 17 codes, and the
// histogram only when extensive.
func TestGRPCMetricsInitialized(t *testing.T) {
	for _, extensive := range []bool{false, true} {
		m := newGRPCMetrics(extensive)
		g := grpc.NewServer()
		pb.RegisterKVServer(g, pb.UnimplementedKVServer{})
		pb.RegisterWatchServer(g, pb.UnimplementedWatchServer{})
		healthpb.RegisterHealthServer(g, health.NewServer())
		m.initialize(g)
		m.initialize(g) // idempotent: NewServer runs it once per gRPC server
		got := gather(t, m)

		var methods []string
		for service, info := range g.GetServiceInfo() {
			for _, mi := range info.Methods {
				methods = append(methods, callType(mi.IsClientStream, mi.IsServerStream)+" "+service+" "+mi.Name)
			}
		}
		for _, want := range []string{"unary etcdserverpb.KV Range", "bidi_stream etcdserverpb.Watch Watch", "server_stream grpc.health.v1.Health Watch"} {
			if !slices.Contains(methods, want) {
				t.Fatalf("%s not among the registered methods %q", want, methods)
			}
		}
		for _, name := range []string{"grpc_server_started_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"} {
			if len(got[name]) != len(methods) {
				t.Errorf("%s: %d series, want one for each of the %d methods", name, len(got[name]), len(methods))
			}
			for _, key := range methods {
				if v := got.counter(name, key); v != 0 {
					t.Errorf("%s{%s} = %v, want 0", name, key, v)
				}
			}
		}
		if n := len(got["grpc_server_handled_total"]); n != 17*len(methods) {
			t.Errorf("grpc_server_handled_total: %d series, want 17 codes × %d methods", n, len(methods))
		}
		for c := codes.OK; c <= codes.Unauthenticated; c++ {
			if v := got.counter("grpc_server_handled_total", "unary etcdserverpb.KV Range "+c.String()); v != 0 {
				t.Errorf("handled{Range %s} = %v, want 0", c, v)
			}
		}
		hist := got["grpc_server_handling_seconds"]
		if !extensive {
			if hist != nil {
				t.Errorf("basic metrics export the histogram")
			}
			continue
		}
		if len(hist) != len(methods) {
			t.Errorf("grpc_server_handling_seconds: %d series, want %d", len(hist), len(methods))
		}
		h := hist["unary etcdserverpb.KV Range"].GetHistogram()
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if !slices.Equal(bounds, prometheus.DefBuckets) || h.GetSampleCount() != 0 {
			t.Errorf("histogram buckets %v count %d, want %v and 0", bounds, h.GetSampleCount(), prometheus.DefBuckets)
		}
	}
}

// TestGRPCMetricsUnary: a unary call counts one start, one message each
// way (even when it fails, as in etcd) and one end under the code the
// client sees.
func TestGRPCMetricsUnary(t *testing.T) {
	m := newGRPCMetrics(true)
	unary := m.unaryInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}
	for _, err := range []error{
		nil, nil,
		rpctypes.ErrGRPCCompacted,
		fmt.Errorf("wrapped: %w", rpctypes.ErrGRPCCompacted),
		context.Canceled,
		context.DeadlineExceeded,
		errors.New("no status"),
		status.Error(codes.Code(20), "beyond the known codes"),
	} {
		if _, got := unary(context.Background(), &pb.RangeRequest{}, info, func(context.Context, any) (any, error) { return nil, err }); got != err {
			t.Fatalf("interceptor returned %v, want the handler's %v", got, err)
		}
	}
	got := gather(t, m)
	const key = "unary etcdserverpb.KV Range"
	for name, want := range map[string]float64{
		"grpc_server_started_total":      8,
		"grpc_server_msg_received_total": 8,
		"grpc_server_msg_sent_total":     8,
	} {
		if v := got.counter(name, key); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	for code, want := range map[string]float64{
		"OK": 2, "OutOfRange": 2, "Canceled": 1, "DeadlineExceeded": 1, "Unknown": 1, "Code(20)": 1, "NotFound": 0,
	} {
		if v := got.counter("grpc_server_handled_total", key+" "+code); v != want {
			t.Errorf("handled{%s} = %v, want %v", code, v, want)
		}
	}
	if n := got["grpc_server_handling_seconds"][key].GetHistogram().GetSampleCount(); n != 8 {
		t.Errorf("histogram count %d, want 8", n)
	}
}

// fakeStream is a server stream that receives n messages, then err.
type fakeStream struct {
	grpc.ServerStream
	n   int
	err error
}

func (s *fakeStream) Context() context.Context { return context.Background() }
func (s *fakeStream) SendMsg(any) error        { return nil }
func (s *fakeStream) RecvMsg(any) error {
	if s.n == 0 {
		return s.err
	}
	s.n--
	return nil
}

// TestGRPCMetricsStream: a stream counts each RecvMsg and SendMsg,
// whatever it returned (the client's io.EOF included, as in etcd), and
// its end under the handler's code.
func TestGRPCMetricsStream(t *testing.T) {
	m := newGRPCMetrics(false)
	stream := m.streamInterceptor()
	info := &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch", IsClientStream: true, IsServerStream: true}
	// Like a watch: three requests, two answers each, then the end of the
	// client's side.
	err := stream(nil, &fakeStream{n: 3, err: io.EOF}, info, func(_ any, ss grpc.ServerStream) error {
		for {
			if err := ss.RecvMsg(new(pb.WatchRequest)); err != nil {
				return nil
			}
			ss.SendMsg(&pb.WatchResponse{})
			ss.SendMsg(&pb.WatchResponse{})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	stream(nil, &fakeStream{err: context.Canceled}, info, func(_ any, ss grpc.ServerStream) error {
		return ss.RecvMsg(new(pb.WatchRequest))
	})
	got := gather(t, m)
	const key = "bidi_stream etcdserverpb.Watch Watch"
	for _, c := range []struct {
		name, key string
		want      float64
	}{
		{"grpc_server_started_total", key, 2},
		{"grpc_server_msg_received_total", key, 4 + 1},
		{"grpc_server_msg_sent_total", key, 6},
		{"grpc_server_handled_total", key + " OK", 1},
		{"grpc_server_handled_total", key + " Canceled", 1},
		{"grpc_server_handled_total", key + " Unavailable", 0},
	} {
		if v := got.counter(c.name, c.key); v != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.key, v, c.want)
		}
	}
}

func TestSplitMethod(t *testing.T) {
	for _, c := range []struct{ full, service, method string }{
		{"/etcdserverpb.KV/Range", "etcdserverpb.KV", "Range"},
		{"etcdserverpb.KV/Range", "etcdserverpb.KV", "Range"},
		{"/a/b/c", "a", "b/c"},
		{"/nomethod", "unknown", "unknown"},
		{"", "unknown", "unknown"},
	} {
		if s, m := splitMethod(c.full); s != c.service || m != c.method {
			t.Errorf("splitMethod(%q) = %q, %q; want %q, %q", c.full, s, m, c.service, c.method)
		}
	}
}

// The interceptor's cost on its own, against calling the handler
// directly.
func BenchmarkUnaryInterceptor(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}
	req := &pb.RangeRequest{}
	resp := &pb.RangeResponse{}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	ctx := context.Background()
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			handler(ctx, req)
		}
	})
	for _, extensive := range []bool{false, true} {
		name := map[bool]string{false: "basic", true: "extensive"}[extensive]
		b.Run(name, func(b *testing.B) {
			m := newGRPCMetrics(extensive)
			unary := m.unaryInterceptor()
			b.ReportAllocs()
			for b.Loop() {
				unary(ctx, req, info, handler)
			}
		})
		b.Run(name+"-error", func(b *testing.B) {
			m := newGRPCMetrics(extensive)
			unary := m.unaryInterceptor()
			failing := func(context.Context, any) (any, error) { return nil, rpctypes.ErrGRPCCompacted }
			b.ReportAllocs()
			for b.Loop() {
				unary(ctx, req, info, failing)
			}
		})
	}
}

// A whole unary call (grpc.health.v1.Health/Check) over an in-memory
// connection, with and without the metrics.
func BenchmarkUnaryCall(b *testing.B) {
	for _, level := range []string{"none", "basic", "extensive"} {
		b.Run(level, func(b *testing.B) {
			var opts []grpc.ServerOption
			if level != "none" {
				m := newGRPCMetrics(level == "extensive")
				opts = append(opts, grpc.ChainUnaryInterceptor(m.unaryInterceptor()), grpc.ChainStreamInterceptor(m.streamInterceptor()))
			}
			g := grpc.NewServer(opts...)
			healthpb.RegisterHealthServer(g, health.NewServer())
			ln := bufconn.Listen(1 << 20)
			go g.Serve(ln)
			defer g.Stop()
			conn, err := grpc.NewClient("passthrough:///bufconn",
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			c := healthpb.NewHealthClient(conn)
			ctx := context.Background()
			req := &healthpb.HealthCheckRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
