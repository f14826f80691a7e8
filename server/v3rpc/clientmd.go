package v3rpc

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-kv/cairn/server"
)

// The metadata etcd's clients send with every call, acted on as etcd does:
//
//   - client-api-version: counted per call type in
//     etcd_server_client_requests_total; a version that is not valid
//     UTF-8 is refused with ErrGRPCInvalidClientAPIVersion.
//   - hasleader (clientv3.WithRequireLeader): a call made while the
//     member has no leader fails with ErrGRPCNoLeader, and a stream ends
//     with it once the member has had no leader for three election
//     timeouts (server.LeaderLost), so that the client moves to a member
//     that has one. Kubernetes watches this way.

// clientUnary is the unary interceptor for client metadata.
func clientUnary(s *server.Server, m *grpcMetrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		requireLeader, err := m.clientCall(ctx, typeUnary)
		if err != nil {
			return nil, err
		}
		if requireLeader && !s.HasLeader() {
			return nil, rpctypes.ErrGRPCNoLeader
		}
		return h(ctx, req)
	}
}

// clientStream is the stream interceptor for client metadata.
func clientStream(s *server.Server, m *grpcMetrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		lost := s.LeaderLost() // before the check: a loss after it still counts
		requireLeader, err := m.clientCall(ss.Context(), "stream")
		if err != nil {
			return err
		}
		if !requireLeader {
			return h(srv, ss)
		}
		if !s.HasLeader() {
			return rpctypes.ErrGRPCNoLeader
		}
		ctx, cancel := context.WithCancelCause(ss.Context())
		defer cancel(nil)
		stop := context.AfterFunc(lost, func() { cancel(rpctypes.ErrGRPCNoLeader) })
		defer stop()
		return h(srv, leaderStream{ServerStream: ss, ctx: noLeaderContext{ctx}})
	}
}

// clientCall counts a call of type typ ("unary" or "stream") under its
// client's API version and reports whether the client requires a leader.
// It reads the two keys without copying the call's metadata, and finds
// the counter in a cache: it runs on every call.
func (m *grpcMetrics) clientCall(ctx context.Context, typ string) (requireLeader bool, err error) {
	ver := "unknown"
	if vs := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataClientAPIVersionKey); len(vs) > 0 {
		ver = vs[0]
	}
	if !utf8.ValidString(ver) {
		return false, rpctypes.ErrGRPCInvalidClientAPIVersion
	}
	m.clientCounter(typ, ver).Inc()
	ks := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(ks) > 0 && ks[0] == rpctypes.MetadataHasLeader, nil
}

// clientCounter is clientRequests' series for typ and ver, resolved once.
func (m *grpcMetrics) clientCounter(typ, ver string) prometheus.Counter {
	key := clientKey{typ, ver}
	if c, ok := m.clientSeries.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.clientSeries.LoadOrStore(key, m.clientRequests.WithLabelValues(typ, ver))
	return c.(prometheus.Counter)
}

type clientKey struct{ typ, ver string }

// leaderStream is a stream whose context ends when the member loses its
// leader.
type leaderStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (l leaderStream) Context() context.Context { return l.ctx }

// noLeaderContext reports ErrGRPCNoLeader as its error once it ended for
// that reason, so that a handler that returns its stream's Context().Err()
// answers "etcdserver: no leader", as etcd's do.
type noLeaderContext struct{ context.Context }

func (c noLeaderContext) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), rpctypes.ErrGRPCNoLeader) {
		return rpctypes.ErrGRPCNoLeader
	}
	return err
}
