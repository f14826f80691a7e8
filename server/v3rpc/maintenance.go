package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-kv/cairn/membership"
	"github.com/cairn-kv/cairn/server"
)

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s   *server.Server
	hdr header
}

func (m *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp := m.s.Status()
	m.hdr.fill(resp.Header)
	return resp, nil
}

func (m *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	resp, err := m.s.Hash(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	m.hdr.fill(resp.Header)
	return resp, nil
}

func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	resp, err := m.s.HashKV(ctx, r.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	m.hdr.fill(resp.Header)
	return resp, nil
}

func (m *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	// etcd's answer carries no header.
	resp, err := m.s.Defragment(ctx)
	return resp, toGRPC(err)
}

func (m *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	resp, err := m.s.Downgrade(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	m.hdr.fill(resp.Header)
	return resp, nil
}

func (m *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := m.s.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, toGRPC(err)
	}
	// etcd answers MoveLeader without a header.
	return &pb.MoveLeaderResponse{}, nil
}

// Alarm gets, activates or deactivates alarms through raft (see
// server.Server.Alarm for what the answer lists).
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := m.s.Alarm(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	resp.Header = m.hdr.new()
	return resp, nil
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	s   *server.Server
	hdr header
}

// The Cluster service's headers carry no revision, as etcd's: at(0).

func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := c.s.LinearizableBarrier(ctx); err != nil {
			return nil, toGRPC(err)
		}
	}
	return &pb.MemberListResponse{Header: c.hdr.at(0), Members: c.members()}, nil
}

func (c *clusterServer) members() []*pb.Member {
	var ms []*pb.Member
	for _, m := range c.s.Members() {
		ms = append(ms, toPBMember(m))
	}
	return ms
}

func toPBMember(m membership.Member) *pb.Member {
	return &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
}

func (c *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	m, err := c.s.AddMember(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberAddResponse{Header: c.hdr.at(0), Member: toPBMember(m), Members: c.members()}, nil
}

func (c *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := c.s.RemoveMember(ctx, r.ID); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberRemoveResponse{Header: c.hdr.at(0), Members: c.members()}, nil
}

func (c *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := c.s.UpdateMember(ctx, r.ID, r.PeerURLs); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberUpdateResponse{Header: c.hdr.at(0), Members: c.members()}, nil
}

func (c *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := c.s.PromoteMember(ctx, r.ID); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberPromoteResponse{Header: c.hdr.at(0), Members: c.members()}, nil
}
