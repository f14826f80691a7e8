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

// checkTxn checks the requests on path, in execution order, and returns how
// many nested txns it consumed. dels collects the ranges deleted so far on
// the path: a put that needs its key's previous version (ignore_value,
// ignore_lease) after a delete of that key fails here with ErrKeyNotFound,
// before anything is written. (etcd crashes on such a txn: a "\x00" range
// end slips past its duplicate-key check.)
func (s *Server) checkTxn(v kvView, t *pb.TxnRequest, path txnPath, dels *[]deletedRange) (int, error) {
	nested := 0
	for _, op := range branch(t, path[0]) {
		var err error
		switch {
		case op.GetRequestRange() != nil:
			err = checkRangeRev(v, op.GetRequestRange().Revision)
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			if err = s.checkLease(p); err == nil {
				_, err = checkPrev(v, p)
			}
			if err == nil && (p.IgnoreValue || p.IgnoreLease) {
				for _, d := range *dels {
					if d.holds(p.Key) {
						err = ErrKeyNotFound
						break
					}
				}
			}
		case op.GetRequestDeleteRange() != nil:
			d := op.GetRequestDeleteRange()
			*dels = append(*dels, deletedRange{d.Key, d.RangeEnd})
		case op.GetRequestTxn() != nil:
			var n int
			n, err = s.checkTxn(v, op.GetRequestTxn(), path[1+nested:], dels)
			nested += n + 1
		}
		if err != nil {
			return 0, err
		}
	}
	return nested, nil
}

// deletedRange is a DeleteRange's [key, end) with etcd's conventions: an
// empty end is the single key, "\x00" means every key from key on.
type deletedRange struct{ key, end []byte }

func (d deletedRange) holds(k []byte) bool {
	switch {
	case len(d.end) == 0:
		return bytes.Equal(k, d.key)
	case len(d.end) == 1 && d.end[0] == 0:
		return bytes.Compare(k, d.key) >= 0
	}
	return bytes.Compare(k, d.key) >= 0 && bytes.Compare(k, d.end) < 0
}

// checkRangeRev fails a range at a revision that is in the future or below
// the first readable revision, before a txn writes anything. As in etcd,
// negative revisions read the current revision but are still checked
// against the compaction (-1 before any).
func checkRangeRev(v kvView, rev int64) error {
	switch {
	case rev == 0:
		return nil
	case rev > v.Rev():
		return mvcc.ErrFutureRev
	case rev < v.FirstRev():
		return mvcc.ErrCompacted
	}
	return nil
}

// execTxn evaluates and, when its checks pass, executes t on v. With
// skipRanges, the ranges on the chosen path answer with an empty response
// instead of reading: nobody will see the answer.
func (s *Server) execTxn(v kvView, t *pb.TxnRequest, skipRanges bool) (*pb.TxnResponse, error) {
	c := s.countOps(v)
	path := comparePath(c, t)
	var dels []deletedRange
	if _, err := s.checkTxn(c, t, path, &dels); err != nil {
		c.done()
		return nil, err
	}
	if !isTxnReadOnly(t) {
		// etcd counts the compares and checks of a txn that may write
		// apart from its execution, as two transactions.
		c.done()
		c = s.countOps(v)
	}
	defer c.done()
	resp, _, err := runTxn(c, t, path, skipRanges)
	if err != nil {
		return nil, err
	}
	resp.Header.Revision = v.Rev()
	return resp, nil
}

// runTxn executes the branch chosen by path[0]; nested txn responses keep
// an empty header, as etcd's do.
func runTxn(v kvView, t *pb.TxnRequest, path txnPath, skipRanges bool) (*pb.TxnResponse, int, error) {
	ops := branch(t, path[0])
	resp := &pb.TxnResponse{Succeeded: path[0], Header: &pb.ResponseHeader{}, Responses: make([]*pb.ResponseOp, len(ops))}
	nested := 0
	for i, op := range ops {
		var out *pb.ResponseOp
		switch {
		case op.GetRequestRange() != nil && skipRanges:
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: &pb.ResponseHeader{}}}}
		case op.GetRequestRange() != nil:
			r, err := execRange(v, op.GetRequestRange())
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}}
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			prev, err := checkPrev(v, p)
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: execPut(v, p, prev)}}
		case op.GetRequestDeleteRange() != nil:
			r, err := execDeleteRange(v, op.GetRequestDeleteRange())
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: r}}
		case op.GetRequestTxn() != nil:
			r, n, err := runTxn(v, op.GetRequestTxn(), path[1+nested:], skipRanges)
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
