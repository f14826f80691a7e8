package differential

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// TestClientv3 sends requests the way applications do, through clientv3's
// KV API and its option builders, and compares what the client returns.
// Errors reach the caller as clientv3 shapes them, which is what an
// application matches on.
func TestClientv3(t *testing.T) {
	p := newPair(t, options{})
	do := func(name string, op clientv3.Op) {
		p.t.Helper()
		p.step(name, nil, func(ctx context.Context, s *side) (proto.Message, error) {
			r, err := s.c.Do(ctx, op)
			if err != nil {
				return nil, err
			}
			switch {
			case r.Get() != nil:
				return (*pb.RangeResponse)(r.Get()), nil
			case r.Put() != nil:
				return (*pb.PutResponse)(r.Put()), nil
			case r.Del() != nil:
				return (*pb.DeleteRangeResponse)(r.Del()), nil
			case r.Txn() != nil:
				return (*pb.TxnResponse)(r.Txn()), nil
			}
			return nil, nil
		})
	}
	do("put", clientv3.OpPut("app/a", "1"))
	do("put with prev kv", clientv3.OpPut("app/a", "2", clientv3.WithPrevKV()))
	do("put b", clientv3.OpPut("app/b", "3"))
	do("put c", clientv3.OpPut("app/c", "0"))
	do("get prefix", clientv3.OpGet("app/", clientv3.WithPrefix()))
	do("get from key", clientv3.OpGet("app/b", clientv3.WithFromKey()))
	do("get first key", clientv3.OpGet("app/", clientv3.WithFirstKey()...))
	do("get last create", clientv3.OpGet("app/", clientv3.WithLastCreate()...))
	do("get last key", clientv3.OpGet("app/", clientv3.WithLastKey()...))
	do("get last value", clientv3.OpGet("app/", clientv3.WithLastRev()...))
	do("get sorted by value with limit", clientv3.OpGet("app/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend), clientv3.WithLimit(2)))
	do("get count only", clientv3.OpGet("", clientv3.WithFromKey(), clientv3.WithCountOnly()))
	do("get keys only", clientv3.OpGet("app/", clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	do("get at revision 2", clientv3.OpGet("app/a", clientv3.WithRev(2)))
	do("get at a future revision", clientv3.OpGet("app/a", clientv3.WithRev(100)))
	do("get with revision filters", clientv3.OpGet("app/", clientv3.WithPrefix(), clientv3.WithMinModRev(3), clientv3.WithMaxCreateRev(4)))
	do("get serializable", clientv3.OpGet("app/a", clientv3.WithSerializable()))
	do("put with ignore value on a missing key", clientv3.OpPut("app/none", "", clientv3.WithIgnoreValue()))
	do("put with a missing lease", clientv3.OpPut("app/l", "v", clientv3.WithLease(77)))
	do("txn", clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value("app/a"), "=", "2"), clientv3.Compare(clientv3.ModRevision("app/").WithPrefix(), ">", 0)},
		[]clientv3.Op{clientv3.OpPut("app/t", "yes"), clientv3.OpGet("app/", clientv3.WithPrefix(), clientv3.WithCountOnly())},
		[]clientv3.Op{clientv3.OpPut("app/t", "no")},
	))
	do("delete prefix with prev kv", clientv3.OpDelete("app/", clientv3.WithPrefix(), clientv3.WithPrevKV()))
	do("delete from key of nothing", clientv3.OpDelete("app/", clientv3.WithFromKey()))
	do("get everything", clientv3.OpGet("", clientv3.WithFromKey()))
	p.step("compact", nil, func(ctx context.Context, s *side) (proto.Message, error) {
		r, err := s.c.Compact(ctx, 3, clientv3.WithCompactPhysical())
		return (*pb.CompactionResponse)(r), err
	})
	do("get at a compacted revision", clientv3.OpGet("app/a", clientv3.WithRev(2)))
}
