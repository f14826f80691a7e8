package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-kv/cairn/server"
)

type kvServer struct {
	pb.UnimplementedKVServer
	s   *server.Server
	hdr header
}

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	resp, err := k.s.Range(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.hdr.fill(resp.Header)
	return resp, nil
}

func (k *kvServer) RangeStream(r *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	if err := checkRangeStream(r); err != nil {
		return err
	}
	err := k.s.RangeStream(stream.Context(), r, func(resp *pb.RangeResponse) error {
		if resp.Header != nil {
			rev := resp.Header.Revision
			k.hdr.fill(resp.Header)
			resp.Header.Revision = rev
		}
		return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
	})
	return toGRPC(err)
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := k.s.Put(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.hdr.fill(resp.Header)
	return resp, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDelete(r); err != nil {
		return nil, err
	}
	resp, err := k.s.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.hdr.fill(resp.Header)
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, k.s.MaxTxnOps()); err != nil {
		return nil, err
	}
	if _, _, err := checkDuplicates(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkDuplicates(r.Failure); err != nil {
		return nil, err
	}
	resp, err := k.s.Txn(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.hdr.fill(resp.Header)
	return resp, nil
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := k.s.Compact(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.hdr.fill(resp.Header)
	return resp, nil
}
