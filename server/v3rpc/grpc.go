package v3rpc

import (
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-kv/cairn/server"
)

// grpcOverheadBytes is added to --max-request-bytes for gRPC's receive
// limit, as in etcd, so that a request just over the limit reaches the
// server's own check and gets etcd's "request is too large".
const grpcOverheadBytes = 512 * 1024

// NewServer returns a gRPC server with every etcd v3 service registered
// for s.
func NewServer(s *server.Server, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.MaxRequestBytes() + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.ChainUnaryInterceptor(learnerUnary(s)),
		grpc.ChainStreamInterceptor(learnerStream(s)),
	}, opts...)
	g := grpc.NewServer(opts...)
	h := header{s: s}
	pb.RegisterKVServer(g, &kvServer{s: s, hdr: h})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s, hdr: h})
	pb.RegisterClusterServer(g, &clusterServer{s: s, hdr: h})
	pb.RegisterWatchServer(g, &watchServer{s: s, hdr: h})
	pb.RegisterLeaseServer(g, &leaseServer{s: s, hdr: h})
	pb.RegisterAuthServer(g, pb.UnimplementedAuthServer{})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	return g
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
