package v3rpc

import (
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/cairn-kv/cairn/server"
)

// grpcOverheadBytes is added to --max-request-bytes for gRPC's receive
// limit, as in etcd, so that a request just over the limit reaches the
// server's own check and gets etcd's "request is too large".
const grpcOverheadBytes = 512 * 1024

// streamWorkers is how many goroutines serve incoming calls, each reused
// from one call to the next. Without them gRPC starts a goroutine per
// call, and each call grows that goroutine's small stack to the depth of
// a storage engine lookup, copying it at every doubling: under random
// reads at 10 M keys, 8.5% of the member's CPU went to runtime.newstack.
// A call that finds every worker busy gets its own goroutine, as before.
const streamWorkers = 128

// NewServer returns a gRPC server with every etcd v3 service registered
// for s, counted in s's grpc_server_* metrics (metrics.go).
func NewServer(s *server.Server, opts ...grpc.ServerOption) *grpc.Server {
	metrics := memberGRPCMetrics(s)
	opts = append(keepaliveOptions(s), opts...)
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.MaxRequestBytes() + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(s.MaxConcurrentStreams()),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.ForceServerCodecV2(newCodec(metrics.bytesSent, metrics.bytesReceived)), // watch responses encoded ahead (watchenc.go)
		// Metrics first, as in etcd, so that they count the calls the
		// other interceptors refuse.
		grpc.ChainUnaryInterceptor(metrics.unaryInterceptor(), requestStats(s), learnerUnary(s), clientUnary(s, metrics)),
		grpc.ChainStreamInterceptor(metrics.streamInterceptor(), learnerStream(s), clientStream(s, metrics)),
	}, opts...)
	g := grpc.NewServer(opts...)
	h := header{s: s}
	pb.RegisterKVServer(g, &kvServer{s: s, hdr: h})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s, hdr: h})
	pb.RegisterClusterServer(g, &clusterServer{s: s, hdr: h})
	pb.RegisterWatchServer(g, &watchServer{s: s, hdr: h})
	pb.RegisterLeaseServer(g, &leaseServer{s: s, hdr: h})
	pb.RegisterAuthServer(g, &authServer{hdr: h})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	metrics.initialize(g)
	return g
}

// keepaliveOptions are the member's gRPC keepalive settings, applied as
// etcd applies its --grpc-keepalive-* flags: the clients' ping policy when
// the minimum time is positive, the server's own pings when both the
// interval and the timeout are.
func keepaliveOptions(s *server.Server) []grpc.ServerOption {
	minTime, interval, timeout := s.GRPCKeepalive()
	var opts []grpc.ServerOption
	if minTime > 0 {
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minTime}))
	}
	if interval > 0 && timeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{Time: interval, Timeout: timeout}))
	}
	return opts
}

// memberGRPCMetrics returns the grpc_server_* metrics of s, registering
// them with the member the first time: every gRPC server of one member
// counts into the same series, as all of etcd's do.
func memberGRPCMetrics(s *server.Server) *grpcMetrics {
	m := newGRPCMetrics(s.ExtensiveMetrics())
	err := s.RegisterMetrics(m)
	var already prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
		return m
	case errors.As(err, &already):
		return already.ExistingCollector.(*grpcMetrics)
	}
	// Only a collector of the member already using these names with other
	// labels could collide: a programming error.
	panic(fmt.Sprintf("v3rpc: registering the gRPC metrics: %v", err))
}

// header fills response headers.
type header struct{ s *server.Server }

func (h header) fill(rh *pb.ResponseHeader) {
	rh.ClusterId = h.s.ClusterID()
	rh.MemberId = h.s.ID()
	rh.RaftTerm = h.s.Term()
	if rh.Revision == 0 {
		rh.Revision = h.s.Rev()
	}
}

// at returns a header whose revision is exactly rev.
func (h header) at(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: h.s.ClusterID(), MemberId: h.s.ID(), RaftTerm: h.s.Term(), Revision: rev}
}

func (h header) new() *pb.ResponseHeader {
	rh := &pb.ResponseHeader{}
	h.fill(rh)
	return rh
}
