package differential

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// Request builders, short so cases read like the request they send.

func b(s string) []byte { return []byte(s) }

// fromKey is the range end meaning "every key from Key on".
var fromKey = []byte{0}

// prefixEnd is the range end covering every key with prefix p.
func prefixEnd(p string) []byte {
	e := []byte(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return fromKey
}

func get(key string) *pb.RangeRequest { return &pb.RangeRequest{Key: b(key)} }

func rng(key, end string) *pb.RangeRequest { return &pb.RangeRequest{Key: b(key), RangeEnd: b(end)} }

func all() *pb.RangeRequest { return &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey} }

func put(key, val string) *pb.PutRequest { return &pb.PutRequest{Key: b(key), Value: b(val)} }

func del(key, end string) *pb.DeleteRangeRequest {
	return &pb.DeleteRangeRequest{Key: b(key), RangeEnd: b(end)}
}

func opGet(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func opPut(key, val string) *pb.RequestOp { return opPutReq(put(key, val)) }

func opPutReq(r *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}}
}

func opDel(key, end string) *pb.RequestOp { return opDelReq(del(key, end)) }

func opDelReq(r *pb.DeleteRangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}

func opTxn(r *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
}

func ops(o ...*pb.RequestOp) []*pb.RequestOp { return o }

func cmpValue(key string, res pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_VALUE, Result: res, TargetUnion: &pb.Compare_Value{Value: b(v)}}
}

func cmpVersion(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_VERSION, Result: res, TargetUnion: &pb.Compare_Version{Version: v}}
}

func cmpCreate(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_CREATE, Result: res, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: v}}
}

func cmpMod(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_MOD, Result: res, TargetUnion: &pb.Compare_ModRevision{ModRevision: v}}
}

func cmpLease(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_LEASE, Result: res, TargetUnion: &pb.Compare_Lease{Lease: v}}
}

// cmpAny builds a compare of target t against an integer or string
// operand, putting the operand in the union field that matches t.
func cmpAny(key string, t pb.Compare_CompareTarget, res pb.Compare_CompareResult, n int64, v string) *pb.Compare {
	switch t {
	case pb.Compare_VALUE:
		return cmpValue(key, res, v)
	case pb.Compare_VERSION:
		return cmpVersion(key, res, n)
	case pb.Compare_CREATE:
		return cmpCreate(key, res, n)
	case pb.Compare_MOD:
		return cmpMod(key, res, n)
	default:
		return cmpLease(key, res, n)
	}
}

func withEnd(c *pb.Compare, end string) *pb.Compare {
	c.RangeEnd = b(end)
	return c
}

// Calls for pair.wantErr and pair.step.

func callRange(r *pb.RangeRequest) call {
	return func(ctx context.Context, s *side) (proto.Message, error) { return s.kv.Range(ctx, r) }
}

func callPut(r *pb.PutRequest) call {
	return func(ctx context.Context, s *side) (proto.Message, error) { return s.kv.Put(ctx, r) }
}

func callDel(r *pb.DeleteRangeRequest) call {
	return func(ctx context.Context, s *side) (proto.Message, error) { return s.kv.DeleteRange(ctx, r) }
}

func callTxn(r *pb.TxnRequest) call {
	return func(ctx context.Context, s *side) (proto.Message, error) { return s.kv.Txn(ctx, r) }
}

func callCompact(r *pb.CompactionRequest) call {
	return func(ctx context.Context, s *side) (proto.Message, error) { return s.kv.Compact(ctx, r) }
}
