package v3rpc

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

func put(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
}

func del(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func txn(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

func TestCheckDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []*pb.RequestOp
		dup  bool
	}{
		{"distinct puts", []*pb.RequestOp{put("a"), put("b")}, false},
		{"same put twice", []*pb.RequestOp{put("a"), put("a")}, true},
		{"put inside deleted range", []*pb.RequestOp{del("a", "c"), put("b")}, true},
		{"put at deleted point", []*pb.RequestOp{put("a"), del("a", "")}, true},
		{"put at range end is outside", []*pb.RequestOp{del("a", "c"), put("c")}, false},
		{"from-key delete covers nothing", []*pb.RequestOp{del("a", "\x00"), put("b")}, false},
		{"nested branches may repeat a key", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, []*pb.RequestOp{put("a")})}, false},
		{"nested and outer put", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, nil), put("a")}, true},
		{"nested put in outer delete", []*pb.RequestOp{del("a", "z"), txn(nil, []*pb.RequestOp{put("m")})}, true},
		{"nested delete, outer put", []*pb.RequestOp{txn([]*pb.RequestOp{del("a", "z")}, nil), put("m")}, true},
	} {
		_, _, err := checkDuplicates(tc.ops)
		if got := errors.Is(err, rpctypes.ErrGRPCDuplicateKey); got != tc.dup {
			t.Errorf("%s: duplicate=%v (err %v), want %v", tc.name, got, err, tc.dup)
		}
	}
}

func TestCheckTxnWidth(t *testing.T) {
	ops := make([]*pb.RequestOp, 128)
	for i := range ops {
		ops[i] = put(string(rune('a' + i%26)))
	}
	if err := checkTxn(&pb.TxnRequest{Success: ops}, 128); err != nil {
		t.Fatalf("128 ops at limit 128: %v", err)
	}
	if err := checkTxn(&pb.TxnRequest{Success: append(ops, put("x"))}, 128); !errors.Is(err, rpctypes.ErrGRPCTooManyOps) {
		t.Fatalf("129 ops: %v", err)
	}
	if err := checkTxn(&pb.TxnRequest{Success: []*pb.RequestOp{{}}}, 128); !errors.Is(err, rpctypes.ErrGRPCKeyNotFound) {
		t.Fatalf("empty op: %v", err)
	}
}

// FuzzValidateTxn feeds arbitrary bytes decoded as a TxnRequest through
// every validator: they must never panic, whatever the nesting.
func FuzzValidateTxn(f *testing.F) {
	seed, _ := proto.Marshal(&pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("v")}}},
		Success: []*pb.RequestOp{put("a"), del("b", "c"), txn([]*pb.RequestOp{put("d")}, []*pb.RequestOp{{}})},
	})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pb.TxnRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		_ = checkTxn(&r, 128)
		_, _, _ = checkDuplicates(r.Success)
		_, _, _ = checkDuplicates(r.Failure)
		for _, op := range append(r.Success, r.Failure...) {
			if rr := op.GetRequestRange(); rr != nil {
				_ = checkRange(rr)
				_ = checkRangeStream(rr)
			}
		}
	})
}
