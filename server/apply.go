package server

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-kv/cairn/mvcc"
)

// kvView is what request execution needs from a transaction: mvcc.TxnWrite
// for writes, readTxn for read-only requests served outside raft.
type kvView interface {
	Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error)
	Put(key, value []byte, lease int64)
	DeleteRange(key, end []byte) int64
	Rev() int64
	FirstRev() int64
}

// applyRequest applies one committed request. It runs on the apply loop.
// Without needResult (no proposer of this member waits for the answer),
// the ranges inside a txn are not executed, as in etcd: they change
// nothing, and only the answer needs them.
func (s *Server) applyRequest(r *pb.InternalRaftRequest, needResult bool) (res result) {
	defer s.observeApply(r, time.Now(), &res)
	if err := s.alarmRefusal(r); err != nil {
		return result{err: err}
	}
	switch {
	case r.Put != nil:
		if err := s.checkLease(r.Put); err != nil {
			return result{err: err}
		}
		t := s.kv.Write()
		defer s.endWrite(t)
		v := s.countOps(t)
		defer v.done()
		prev, err := checkPrev(v, r.Put)
		if err != nil {
			return result{err: err}
		}
		return result{resp: execPut(v, r.Put, prev)}
	case r.DeleteRange != nil:
		t := s.kv.Write()
		defer s.endWrite(t)
		v := s.countOps(t)
		defer v.done()
		resp, err := execDeleteRange(v, r.DeleteRange)
		return result{resp: resp, err: err}
	case r.Txn != nil:
		t := s.kv.Write()
		defer s.endWrite(t)
		resp, err := s.execTxn(t, r.Txn, !needResult)
		return result{resp: resp, err: err}
	case r.Compaction != nil:
		done, err := s.kv.Compact(r.Compaction.Revision)
		if err != nil {
			return result{err: err}
		}
		// etcd reads a key to learn the revision of its answer, and that
		// read counts in etcd_mvcc_range_total; Cairn counts it too, so
		// that the counters move as etcd's do.
		s.metrics.addOps(1, 0, 0)
		return result{resp: &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}}, done: done}
	case r.LeaseGrant != nil, r.LeaseRevoke != nil, r.LeaseCheckpoint != nil:
		return s.applyLease(r)
	case r.ClusterMemberAttrSet != nil:
		return s.applyMemberAttr(r.ClusterMemberAttrSet)
	case r.Alarm != nil:
		return s.applyAlarm(r.Alarm)
	}
	// Every member rejects the same unknown request the same way, so
	// apply stays deterministic.
	return result{err: fmt.Errorf("server: unsupported request %d in raft log", r.GetHeader().GetID())}
}

// endWrite ends a write transaction and keeps its changes as watch events
// for the hub, notified once the group commits.
func (s *Server) endWrite(t *mvcc.TxnWrite) {
	for _, kv := range t.Changes() {
		ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: kv}
		if kv.Version == 0 {
			ev.Type = mvccpb.DELETE
		}
		s.applyEvents = append(s.applyEvents, ev)
	}
	t.End()
}

// checkLease fails a put whose lease does not exist, etcd's first check
// of a put, made before the put reads anything.
func (s *Server) checkLease(p *pb.PutRequest) error {
	if p.Lease != 0 && !s.lessor.Exists(p.Lease) {
		return ErrLeaseNotFound
	}
	return nil
}

// checkPrev reads the key's previous version when p needs it (prev_kv,
// ignore_value, ignore_lease), and fails p with ErrKeyNotFound when
// ignore_value or ignore_lease has no previous version to take.
func checkPrev(v kvView, p *pb.PutRequest) (*mvccpb.KeyValue, error) {
	if !p.IgnoreValue && !p.IgnoreLease && !p.PrevKv {
		return nil, nil
	}
	prev, err := getOne(v, p.Key)
	if err != nil {
		return nil, err
	}
	if prev == nil && (p.IgnoreValue || p.IgnoreLease) {
		return nil, ErrKeyNotFound
	}
	return prev, nil
}

func getOne(v kvView, key []byte) (*mvccpb.KeyValue, error) {
	rr, err := v.Range(key, nil, mvcc.RangeOptions{})
	if err != nil || len(rr.KVs) == 0 {
		return nil, err
	}
	return rr.KVs[0], nil
}

// execPut writes p; prev is what checkPrev returned for it on v.
func execPut(v kvView, p *pb.PutRequest, prev *mvccpb.KeyValue) *pb.PutResponse {
	val, lease := p.Value, p.Lease
	if p.IgnoreValue {
		val = prev.Value
	}
	if p.IgnoreLease {
		lease = prev.Lease
	}
	v.Put(p.Key, val, lease)
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: v.Rev()}}
	if p.PrevKv {
		resp.PrevKv = prev
	}
	return resp
}

func execDeleteRange(v kvView, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := &pb.DeleteRangeResponse{}
	if d.PrevKv {
		rr, err := v.Range(d.Key, d.RangeEnd, mvcc.RangeOptions{})
		if err != nil {
			return nil, err
		}
		resp.PrevKvs = rr.KVs
	}
	resp.Deleted = v.DeleteRange(d.Key, d.RangeEnd)
	resp.Header = &pb.ResponseHeader{Revision: v.Rev()}
	return resp, nil
}

// execRange answers a range request the way etcd does: filters and custom
// sort orders need the whole range first, otherwise one extra key tells
// whether there are more; Count is the number of keys in the range before
// filters and limit.
func execRange(v kvView, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	defaultOrder := isDefaultOrder(r.SortTarget, r.SortOrder)
	filtered := hasRevisionFilters(r)
	limit := r.Limit
	if !defaultOrder || filtered {
		limit = 0
	} else if limit > 0 && limit < 1<<62 {
		limit++
	}
	rr, err := v.Range(r.Key, r.RangeEnd, mvcc.RangeOptions{
		Limit: limit, Rev: r.Revision, Count: r.CountOnly,
		// Values are read only when returned or sorted by.
		KeysOnly: r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE,
	})
	if err != nil {
		return nil, err
	}
	kvs := rr.KVs
	if filtered {
		kvs = slices.DeleteFunc(kvs, func(kv *mvccpb.KeyValue) bool {
			return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
				(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
				(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
				(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision)
		})
	}
	sortKVs(kvs, r.SortTarget, r.SortOrder)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: rr.Rev}, Count: int64(rr.Count)}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for i, kv := range kvs {
			if r.SortTarget != pb.RangeRequest_VALUE {
				// etcd answers keys-only ranges from its index, which
				// has no value and no lease.
				kvs[i] = &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
			} else {
				kv.Value = nil
			}
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func isDefaultOrder(target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) bool {
	return order == pb.RangeRequest_NONE || (target == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

func sortKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) {
	if order == pb.RangeRequest_NONE && target != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrder(target, order) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) bool
	switch target {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return // rejected by validation
	}
	// sort.Sort rather than a stable sort: ties then come out in the same
	// order as from etcd, which sorts the same key-ordered input this way.
	var data sort.Interface = kvSorter{kvs, less}
	if order == pb.RangeRequest_DESCEND {
		data = sort.Reverse(data)
	}
	sort.Sort(data)
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (k kvSorter) Len() int           { return len(k.kvs) }
func (k kvSorter) Less(i, j int) bool { return k.less(k.kvs[i], k.kvs[j]) }
func (k kvSorter) Swap(i, j int)      { k.kvs[i], k.kvs[j] = k.kvs[j], k.kvs[i] }

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
