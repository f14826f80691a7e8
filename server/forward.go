package server

import (
	"context"
	"errors"
	"net/url"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-kv/cairn/internal/memberurl"
)

// Some requests only the leader can answer: lease keep-alives and
// time-to-live (only the leader's lessor keeps deadlines) and learner
// promotion (only the leader knows how far the learner got). A follower
// forwards them to the leader's client URL over gRPC, as etcd forwards
// them over its peer port, so a client may send them to any member.

// errForward tells a caller that the leader, not this member, must answer.
var errForward = errors.New("server: forward to the leader")

// forwarder holds one connection to the current leader.
type forwarder struct {
	mu     sync.Mutex
	target string
	cc     *grpc.ClientConn
}

// leaderConn returns a connection to the leader's first client URL.
func (s *Server) leaderConn() (*grpc.ClientConn, error) {
	st := s.node.Status()
	if st.Lead == 0 {
		return nil, ErrNoLeader
	}
	m, ok := s.members.Member(st.Lead)
	if !ok || len(m.ClientURLs) == 0 {
		// The leader has not published its client URLs yet.
		return nil, ErrNoLeader
	}
	u, err := url.Parse(m.ClientURLs[0])
	if err != nil {
		return nil, err
	}
	s.fwd.mu.Lock()
	defer s.fwd.mu.Unlock()
	if s.fwd.cc != nil && s.fwd.target == u.String() {
		return s.fwd.cc, nil
	}
	if s.fwd.cc != nil {
		s.fwd.cc.Close()
	}
	creds := insecure.NewCredentials()
	if memberurl.IsTLS(u) {
		creds = credentials.NewTLS(s.cfg.ClientDialTLS)
	}
	target := u.Host
	if memberurl.IsUnix(u) {
		target = "unix:" + memberurl.Addr(u)
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	s.fwd.cc, s.fwd.target = cc, u.String()
	return cc, nil
}

func (s *Server) closeForwarder() {
	s.fwd.mu.Lock()
	defer s.fwd.mu.Unlock()
	if s.fwd.cc != nil {
		s.fwd.cc.Close()
		s.fwd.cc = nil
	}
}

// forwardRenew renews lease id on the leader.
func (s *Server) forwardRenew(ctx context.Context, id int64) (int64, error) {
	cc, err := s.leaderConn()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	stream, err := pb.NewLeaseClient(cc).LeaseKeepAlive(ctx)
	if err != nil {
		return 0, err
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return 0, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	if resp.TTL <= 0 {
		return 0, ErrLeaseNotFound
	}
	return resp.TTL, nil
}

// forwardTimeToLive asks the leader for a lease's time to live.
func (s *Server) forwardTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	cc, err := s.leaderConn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	return pb.NewLeaseClient(cc).LeaseTimeToLive(ctx, r)
}

// forwardPromote asks the leader to promote learner id.
func (s *Server) forwardPromote(ctx context.Context, id uint64) error {
	cc, err := s.leaderConn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
	defer cancel()
	_, err = pb.NewClusterClient(cc).MemberPromote(ctx, &pb.MemberPromoteRequest{ID: id})
	return err
}
