package recipes

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/api/v3electionpb"
	"github.com/cairn-kv/cairn/api/v3lockpb"
)

// errNoLeaderKey answers a Proclaim or Resign without a leader key, in
// etcd's words.
var errNoLeaderKey = errors.New(`"leader" field must be provided`)

// Register adds the Lock and Election services to g. Their requests run
// through self, a client connection to the member's own gRPC API (KV,
// Lease, Watch). Call close when the member drains, before g stops: it
// ends the client's lease and watch streams, which a graceful stop of g
// would wait for (self stays the caller's to close).
func Register(g *grpc.Server, self grpc.ClientConnInterface, lg *zap.Logger) (close func()) {
	c := clientv3.NewCtxClient(context.Background(), clientv3.WithZapLogger(lg))
	c.KV = clientv3.NewKVFromKVClient(pb.NewKVClient(self), c)
	c.Lease = clientv3.NewLeaseFromLeaseClient(pb.NewLeaseClient(self), c, 5*time.Second)
	c.Watcher = clientv3.NewWatchFromWatchClient(pb.NewWatchClient(self), c)
	v3lockpb.RegisterLockServer(g, &locks{c: c})
	v3electionpb.RegisterElectionServer(g, &elections{c: c})
	return func() { c.Close() }
}

// session runs the recipes under the caller's lease, which stays the
// caller's to keep alive: the session neither grants nor renews it.
func session(ctx context.Context, c *clientv3.Client, lease int64) (*concurrency.Session, error) {
	s, err := concurrency.NewSession(c, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	s.Orphan() // stops the session's keep-alive; the lease is left alone
	return s, nil
}

type locks struct {
	v3lockpb.UnimplementedLockServer
	c *clientv3.Client
}

func (l *locks) Lock(ctx context.Context, r *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	s, err := session(ctx, l.c, r.GetLease())
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(s, string(r.GetName()))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &v3lockpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

func (l *locks) Unlock(ctx context.Context, r *v3lockpb.UnlockRequest) (*v3lockpb.UnlockResponse, error) {
	resp, err := l.c.Delete(ctx, string(r.GetKey()))
	if err != nil {
		return nil, err
	}
	return &v3lockpb.UnlockResponse{Header: resp.Header}, nil
}

type elections struct {
	v3electionpb.UnimplementedElectionServer
	c *clientv3.Client
}

func (e *elections) Campaign(ctx context.Context, r *v3electionpb.CampaignRequest) (*v3electionpb.CampaignResponse, error) {
	s, err := session(ctx, e.c, r.GetLease())
	if err != nil {
		return nil, err
	}
	el := concurrency.NewElection(s, string(r.GetName()))
	if err := el.Campaign(ctx, string(r.GetValue())); err != nil {
		return nil, err
	}
	return &v3electionpb.CampaignResponse{
		Header: el.Header(),
		Leader: &v3electionpb.LeaderKey{Name: r.GetName(), Key: []byte(el.Key()), Rev: el.Rev(), Lease: int64(s.Lease())},
	}, nil
}

// resume is the election that leader (a Campaign's answer) leads.
func (e *elections) resume(ctx context.Context, leader *v3electionpb.LeaderKey) (*concurrency.Election, error) {
	if leader == nil {
		return nil, errNoLeaderKey
	}
	s, err := session(ctx, e.c, leader.GetLease())
	if err != nil {
		return nil, err
	}
	return concurrency.ResumeElection(s, string(leader.GetName()), string(leader.GetKey()), leader.GetRev()), nil
}

func (e *elections) Proclaim(ctx context.Context, r *v3electionpb.ProclaimRequest) (*v3electionpb.ProclaimResponse, error) {
	el, err := e.resume(ctx, r.GetLeader())
	if err != nil {
		return nil, err
	}
	if err := el.Proclaim(ctx, string(r.GetValue())); err != nil {
		return nil, err
	}
	return &v3electionpb.ProclaimResponse{Header: el.Header()}, nil
}

func (e *elections) Resign(ctx context.Context, r *v3electionpb.ResignRequest) (*v3electionpb.ResignResponse, error) {
	el, err := e.resume(ctx, r.GetLeader())
	if err != nil {
		return nil, err
	}
	if err := el.Resign(ctx); err != nil {
		return nil, err
	}
	return &v3electionpb.ResignResponse{Header: el.Header()}, nil
}

// observer is an election for reading its leader. Its session's lease is
// never used: -1, which no lease has (0 would make the session grant one).
func (e *elections) observer(ctx context.Context, name []byte) (*concurrency.Election, error) {
	s, err := session(ctx, e.c, -1)
	if err != nil {
		return nil, err
	}
	return concurrency.NewElection(s, string(name)), nil
}

func (e *elections) Leader(ctx context.Context, r *v3electionpb.LeaderRequest) (*v3electionpb.LeaderResponse, error) {
	el, err := e.observer(ctx, r.GetName())
	if err != nil {
		return nil, err
	}
	resp, err := el.Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &v3electionpb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}, nil
}

func (e *elections) Observe(r *v3electionpb.LeaderRequest, stream grpc.ServerStreamingServer[v3electionpb.LeaderResponse]) error {
	ctx := stream.Context()
	el, err := e.observer(ctx, r.GetName())
	if err != nil {
		return err
	}
	changes := el.Observe(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-changes:
			if !ok {
				return ctx.Err()
			}
			if err := stream.Send(&v3electionpb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
}
