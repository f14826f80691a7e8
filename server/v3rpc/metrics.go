package v3rpc

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The grpc_server_* metrics etcd exports through go-grpc-middleware's
// Prometheus provider (providers/prometheus v1.1.0), which Cairn does not
// depend on: the same names, help texts, label names and buckets, counted
// at the same points, so that dashboards written for etcd keep working.
//
//   - started_total when a call begins, handled_total with its gRPC code
//     when it ends;
//   - msg_received_total and msg_sent_total: for a unary call, one each,
//     even when the call fails; for a stream, one per RecvMsg or SendMsg,
//     whatever it returned (the client's end of stream, io.EOF, counts
//     as a received message, as in etcd);
//   - with --metrics=extensive, handling_seconds, the time from the start
//     of a call to its end, in prometheus.DefBuckets.
//
// Every method of the services registered on the gRPC server has its
// series, at zero, before the first call (initialize), as etcd's
// InitializeMetrics does.
//
// The counting is on the path of every request, so each method's series
// are resolved once into a methodMetrics; a call costs a map lookup and a
// few atomic adds, and allocates nothing but a stream's wrapper.

// grpcCodes is the number of gRPC codes with a pre-resolved handled_total
// series per method: OK (0) to Unauthenticated (16), as etcd's
// InitializeMetrics creates them.
const grpcCodes = int(codes.Unauthenticated) + 1

// grpcMetrics is one member's grpc_server_* metrics, shared by all the
// gRPC servers of that member (see newServerMetrics).
type grpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	// handling is nil unless the metrics are extensive.
	handling *prometheus.HistogramVec
	// bytesSent and bytesReceived count the bytes of every message (the
	// codec, watchenc.go), etcd's etcd_network_client_grpc_*_bytes_total.
	bytesSent, bytesReceived prometheus.Counter
	// clientRequests counts calls by type and client API version
	// (etcd_server_client_requests_total, clientmd.go).
	clientRequests *prometheus.CounterVec
	// clientSeries caches clientRequests' series by clientKey.
	clientSeries sync.Map

	// methods maps a full method name ("/etcdserverpb.KV/Range") to its
	// series. Calls read it without a lock; a new method (initialize, or
	// one registered after it) copies it under mu.
	methods atomic.Pointer[map[string]*methodMetrics]
	mu      sync.Mutex
}

// methodMetrics are one method's series.
type methodMetrics struct {
	started, received, sent prometheus.Counter
	handled                 [grpcCodes]prometheus.Counter
	// handling is nil unless the metrics are extensive.
	handling prometheus.Observer
	// labels are grpc_type, grpc_service and grpc_method, for the codes
	// outside handled.
	labels [3]string
}

// Types of calls, etcd's grpc_type values.
const (
	typeUnary        = "unary"
	typeClientStream = "client_stream"
	typeServerStream = "server_stream"
	typeBidiStream   = "bidi_stream"
)

func newGRPCMetrics(extensive bool) *grpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &grpcMetrics{
		started:  counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled:  counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", append(labels, "grpc_code")),
		received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "client_grpc_sent_bytes_total", Help: "The total number of bytes sent to grpc clients."}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "client_grpc_received_bytes_total", Help: "The total number of bytes received from grpc clients."}),
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "server",
			Name: "client_requests_total", Help: "The total number of client requests per client version."},
			[]string{"type", "client_api_version"}),
	}
	if extensive {
		m.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, labels)
	}
	m.methods.Store(&map[string]*methodMetrics{})
	return m
}

// Describe implements prometheus.Collector.
func (m *grpcMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.started.Describe(ch)
	m.handled.Describe(ch)
	m.received.Describe(ch)
	m.sent.Describe(ch)
	m.bytesSent.Describe(ch)
	m.bytesReceived.Describe(ch)
	m.clientRequests.Describe(ch)
	if m.handling != nil {
		m.handling.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *grpcMetrics) Collect(ch chan<- prometheus.Metric) {
	m.started.Collect(ch)
	m.handled.Collect(ch)
	m.received.Collect(ch)
	m.sent.Collect(ch)
	m.bytesSent.Collect(ch)
	m.bytesReceived.Collect(ch)
	m.clientRequests.Collect(ch)
	if m.handling != nil {
		m.handling.Collect(ch)
	}
}

// initialize creates the series of every method registered on g, at zero.
func (m *grpcMetrics) initialize(g *grpc.Server) {
	for service, info := range g.GetServiceInfo() {
		for _, mi := range info.Methods {
			m.method("/"+service+"/"+mi.Name, callType(mi.IsClientStream, mi.IsServerStream))
		}
	}
}

// method returns the series of fullMethod, creating them the first time:
// all at once, at zero, where etcd's library creates a method it did not
// initialise one series at a time, as calls touch them. Only a service
// registered after initialize would show the difference.
func (m *grpcMetrics) method(fullMethod, typ string) *methodMetrics {
	if mm := (*m.methods.Load())[fullMethod]; mm != nil {
		return mm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.methods.Load()
	if mm := old[fullMethod]; mm != nil {
		return mm
	}
	service, name := splitMethod(fullMethod)
	mm := &methodMetrics{
		started:  m.started.WithLabelValues(typ, service, name),
		received: m.received.WithLabelValues(typ, service, name),
		sent:     m.sent.WithLabelValues(typ, service, name),
		labels:   [3]string{typ, service, name},
	}
	for c := range mm.handled {
		mm.handled[c] = m.handled.WithLabelValues(typ, service, name, codes.Code(c).String())
	}
	if m.handling != nil {
		mm.handling = m.handling.WithLabelValues(typ, service, name)
	}
	next := make(map[string]*methodMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[fullMethod] = mm
	m.methods.Store(&next)
	return mm
}

// splitMethod splits "/package.Service/Method" as etcd's library does,
// into "unknown", "unknown" when there is no second slash.
func splitMethod(fullMethod string) (service, method string) {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return "unknown", "unknown"
	}
	return service, method
}

func callType(clientStream, serverStream bool) string {
	switch {
	case clientStream && serverStream:
		return typeBidiStream
	case clientStream:
		return typeClientStream
	case serverStream:
		return typeServerStream
	}
	return typeUnary
}

// begin counts a call that starts, and returns its start time when the
// handling histogram needs it.
func (m *grpcMetrics) begin(mm *methodMetrics) time.Time {
	mm.started.Inc()
	if mm.handling == nil {
		return time.Time{}
	}
	return time.Now()
}

// end counts a call that ended with err, started at start (begin).
func (m *grpcMetrics) end(mm *methodMetrics, start time.Time, err error) {
	if c := errorCode(err); int(c) < grpcCodes {
		mm.handled[c].Inc()
	} else {
		m.handled.WithLabelValues(mm.labels[0], mm.labels[1], mm.labels[2], c.String()).Inc()
	}
	if mm.handling != nil {
		mm.handling.Observe(time.Since(start).Seconds())
	}
}

// errorCode is the code the client sees for a handler's err: its gRPC
// status, or, for a bare context error, Canceled or DeadlineExceeded.
func errorCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}

func (m *grpcMetrics) unaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mm := m.method(info.FullMethod, typeUnary)
		start := m.begin(mm)
		mm.received.Inc()
		resp, err := h(ctx, req)
		mm.sent.Inc()
		m.end(mm, start, err)
		return resp, err
	}
}

func (m *grpcMetrics) streamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		mm := m.method(info.FullMethod, callType(info.IsClientStream, info.IsServerStream))
		start := m.begin(mm)
		err := h(srv, &countingStream{ServerStream: ss, mm: mm})
		m.end(mm, start, err)
		return err
	}
}

// countingStream counts a stream's messages.
type countingStream struct {
	grpc.ServerStream
	mm *methodMetrics
}

func (s *countingStream) SendMsg(msg any) error {
	err := s.ServerStream.SendMsg(msg)
	s.mm.sent.Inc()
	return err
}

func (s *countingStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	s.mm.received.Inc()
	return err
}
