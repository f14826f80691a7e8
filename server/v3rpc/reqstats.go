package v3rpc

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/server"
)

// requestStats is etcd's log of unary calls: a call slower than
// --warning-unary-request-duration is logged at warn level as "request
// stats", and every call is at debug level, with etcd's fields. A put's
// value is never logged, only its size.
func requestStats(s *server.Server) grpc.UnaryServerInterceptor {
	lg, slow := s.Logger(), s.WarningUnaryRequestDuration()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		took := time.Since(start)
		debug := lg.Core().Enabled(zap.DebugLevel)
		if took > slow || debug {
			log := lg.Warn
			if took <= slow {
				log = lg.Debug
			}
			log("request stats", callStats(ctx, info, start, took, req, resp)...)
		}
		return resp, err
	}
}

// callStats are etcd's fields for one call.
func callStats(ctx context.Context, info *grpc.UnaryServerInfo, start time.Time, took time.Duration, req, resp any) []zap.Field {
	remote := "No remote client info."
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	// As etcd: by the response's type, which a failed call has too (a nil
	// response of its method's type); other methods give -1.
	var reqCount, respCount int64
	var reqSize, respSize int
	var content string
	switch r := resp.(type) {
	case *pb.RangeResponse:
		if q, ok := req.(*pb.RangeRequest); ok {
			reqSize, content = proto.Size(q), q.String()
		}
		if r != nil {
			respCount, respSize = r.GetCount(), proto.Size(r)
		}
	case *pb.PutResponse:
		if q, ok := req.(*pb.PutRequest); ok {
			reqCount, reqSize, content = 1, proto.Size(q), pb.NewLoggablePutRequest(q).String()
		}
		if r != nil {
			respSize = proto.Size(r)
		}
	case *pb.DeleteRangeResponse:
		if q, ok := req.(*pb.DeleteRangeRequest); ok {
			reqSize, content = proto.Size(q), q.String()
		}
		if r != nil {
			respCount, respSize = r.GetDeleted(), proto.Size(r)
		}
	case *pb.TxnResponse:
		// The operations of the branch taken.
		if q, ok := req.(*pb.TxnRequest); ok && r != nil {
			ops := q.GetFailure()
			if r.GetSucceeded() {
				ops = q.GetSuccess()
			}
			reqCount = int64(len(ops))
			for _, op := range ops {
				reqSize += proto.Size(op)
			}
			content = pb.NewLoggableTxnRequest(q).String()
		}
		if r != nil {
			respSize = proto.Size(r)
		}
	default:
		reqCount, reqSize, respCount, respSize = -1, -1, -1, -1
	}
	return []zap.Field{
		zap.Time("start time", start),
		zap.Duration("time spent", took),
		zap.String("remote", remote),
		zap.String("response type", info.FullMethod),
		zap.Int64("request count", reqCount),
		zap.Int("request size", reqSize),
		zap.Int64("response count", respCount),
		zap.Int("response size", respSize),
		zap.String("request content", content),
	}
}
