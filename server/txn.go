package server

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-kv/cairn/mvcc"
)

// A txn runs in three passes, as in etcd: every compare along the chosen
// branches (nested txns included) is evaluated first on the state before the
// txn; then the requests on that path are checked (range revisions, leases,
// keys required by ignore_value/ignore_lease); only then are they executed.
// A txn that fails a check changes nothing.

// txnPath records, depth first, whether each txn on the chosen path took its
// success branch: the outer txn first, then each nested txn in order.
type txnPath []bool

func comparePath(v kvView, t *pb.TxnRequest) txnPath {
	ok := compareAll(v, t.Compare)
	path := txnPath{ok}
	for _, op := range branch(t, ok) {
		if nt := op.GetRequestTxn(); nt != nil {
			path = append(path, comparePath(v, nt)...)
		}
	}
	return path
}

func branch(t *pb.TxnRequest, success bool) []*pb.RequestOp {
	if success {
		return t.Success
	}
	return t.Failure
}

func compareAll(v kvView, cs []*pb.Compare) bool {
	for _, c := range cs {
		if !compareOne(v, c) {
			return false
		}
	}
	return true
}

// compareOne holds when every key in the compare's range satisfies it; an
// empty range compares as one absent key (zero revisions, version and
// lease), except that a value compare against an absent key fails.
func compareOne(v kvView, c *pb.Compare) bool {
	rr, err := v.Range(c.Key, c.RangeEnd, mvcc.RangeOptions{})
	if err != nil {
		return false
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range rr.KVs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		r = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		r = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		r = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		r = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		r = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_NOT_EQUAL:
		return r != 0
	case pb.Compare_GREATER:
		return r > 0
	case pb.Compare_LESS:
		return r < 0
	}
	return true
}

// checkTxn checks the requests on path and returns how many nested txns
// it consumed.
func (s *Server) checkTxn(v kvView, t *pb.TxnRequest, path txnPath) (int, error) {
	nested := 0
	for _, op := range branch(t, path[0]) {
		var err error
		switch {
		case op.GetRequestRange() != nil:
			err = checkRangeRev(v, op.GetRequestRange().Revision)
		case op.GetRequestPut() != nil:
			err = s.checkPut(v, op.GetRequestPut())
		case op.GetRequestTxn() != nil:
			var n int
			n, err = s.checkTxn(v, op.GetRequestTxn(), path[1+nested:])
			nested += n + 1
		}
		if err != nil {
			return 0, err
		}
	}
	return nested, nil
}

// checkRangeRev fails a range at a revision that is compacted or in the
// future, before a txn writes anything.
func checkRangeRev(v kvView, rev int64) error {
	if rev == 0 {
		return nil
	}
	_, err := v.Range(nil, nil, mvcc.RangeOptions{Rev: rev, Count: true})
	return err
}

// execTxn evaluates and, when its checks pass, executes t on v.
func (s *Server) execTxn(v kvView, t *pb.TxnRequest) (*pb.TxnResponse, error) {
	path := comparePath(v, t)
	if _, err := s.checkTxn(v, t, path); err != nil {
		return nil, err
	}
	resp, _, err := runTxn(v, t, path)
	if err != nil {
		return nil, err
	}
	resp.Header.Revision = v.Rev()
	return resp, nil
}

// runTxn executes the branch chosen by path[0]; nested txn responses keep
// an empty header, as etcd's do.
func runTxn(v kvView, t *pb.TxnRequest, path txnPath) (*pb.TxnResponse, int, error) {
	ops := branch(t, path[0])
	resp := &pb.TxnResponse{Succeeded: path[0], Header: &pb.ResponseHeader{}, Responses: make([]*pb.ResponseOp, len(ops))}
	nested := 0
	for i, op := range ops {
		var out *pb.ResponseOp
		switch {
		case op.GetRequestRange() != nil:
			r, err := execRange(v, op.GetRequestRange())
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}}
		case op.GetRequestPut() != nil:
			r, err := execPut(v, op.GetRequestPut())
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: r}}
		case op.GetRequestDeleteRange() != nil:
			r, err := execDeleteRange(v, op.GetRequestDeleteRange())
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: r}}
		case op.GetRequestTxn() != nil:
			r, n, err := runTxn(v, op.GetRequestTxn(), path[1+nested:])
			if err != nil {
				return nil, 0, err
			}
			nested += n + 1
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: r}}
		default:
			out = &pb.ResponseOp{}
		}
		resp.Responses[i] = out
	}
	return resp, nested, nil
}

// isTxnReadOnly reports whether t's top-level operations are all ranges
// (etcd's rule: a nested txn makes it a write txn).
func isTxnReadOnly(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

// isTxnSerializable reports whether every top-level op is a serializable range.
func isTxnSerializable(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if r := op.GetRequestRange(); r == nil || !r.Serializable {
				return false
			}
		}
	}
	return true
}
