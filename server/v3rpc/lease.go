package v3rpc

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-kv/cairn/server"
)

// leaseServer serves etcd's Lease service.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s   *server.Server
	hdr header
}

func (l *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := l.s.LeaseGrant(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	l.hdr.fill(resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := l.s.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	l.hdr.fill(resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := l.s.LeaseTimeToLive(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	l.hdr.fill(resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := l.s.LeaseLeases(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	l.hdr.fill(resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers every request on the stream, in order: the
// lease's TTL after renewing it, or TTL 0 for a lease that does not exist
// (or has expired). The header is taken before the renewal, so a client
// never sees a successful keep-alive at a revision after the lease's
// revoke.
//
// The stream ends when its context does, even while a Recv waits: a client
// that requires a leader loses the stream when the member loses its leader
// (clientmd.go). The loop then ends at its next Recv or Send, which fail
// once the call is over (etcd ends its keep-alive streams the same way).
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	errc := make(chan error, 1)
	go func() { errc <- l.keepAlive(stream) }()
	select {
	case err := <-errc:
		return err
	case <-stream.Context().Done():
		return stream.Context().Err()
	case <-l.s.DrainNotify():
		// Shutting down, as for watch streams: the client renews through
		// another member (or this one, restarted) on this Unavailable
		// error, and the graceful stop does not wait for the stream.
		return rpctypes.ErrGRPCStopped
	}
}

func (l *leaseServer) keepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &pb.LeaseKeepAliveResponse{Header: l.hdr.new(), ID: req.ID}
		ttl, err := l.s.LeaseRenew(stream.Context(), req.ID)
		switch {
		case errors.Is(err, server.ErrLeaseNotFound):
			ttl = 0
		case err != nil:
			return toGRPC(err)
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
