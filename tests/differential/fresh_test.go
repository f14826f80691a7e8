package differential

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestFreshStore compares what an empty store answers.
func TestFreshStore(t *testing.T) {
	p := newPair(t, options{})
	p.rng("get missing key", &pb.RangeRequest{Key: []byte("a")})
	p.rng("serializable get", &pb.RangeRequest{Key: []byte("a"), Serializable: true})
	p.rng("full range", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	p.rng("count only full range", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	p.rng("range at revision 1", &pb.RangeRequest{Key: []byte("a"), Revision: 1})
	p.rng("range at future revision 2", &pb.RangeRequest{Key: []byte("a"), Revision: 2})
	p.del("delete missing key", &pb.DeleteRangeRequest{Key: []byte("a"), PrevKv: true})
	p.del("delete everything", &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	p.txn("empty txn", &pb.TxnRequest{})
	p.rng("revision after no-op writes", &pb.RangeRequest{Key: []byte("a")})
}
