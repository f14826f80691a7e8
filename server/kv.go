package server

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/mvcc"
)

// The KV operations take requests that server/v3rpc already validated and
// return responses whose header carries only the revision; v3rpc fills in
// cluster ID, member ID and raft term.

// Range reads a key or range, linearizably unless r.Serializable.
func (s *Server) Range(ctx context.Context, r *pb.RangeRequest) (resp *pb.RangeResponse, err error) {
	defer func(start time.Time) { s.observeRange(r, start, resp, err) }(time.Now())
	if !r.Serializable {
		if err := s.LinearizableBarrier(ctx); err != nil {
			return nil, err
		}
	}
	return s.countedRange(s.readView(ctx), r)
}

// countedRange is execRange counted and timed as a read transaction of its
// own, as etcd counts each range request and each chunk of a range stream.
func (s *Server) countedRange(v kvView, r *pb.RangeRequest) (resp *pb.RangeResponse, err error) {
	defer func(start time.Time) {
		s.hist.rng.WithLabelValues(strconv.FormatBool(err == nil)).Observe(seconds(time.Since(start)))
	}(time.Now())
	c := s.countOps(v)
	defer c.done()
	return execRange(c, r)
}

// Put writes one key through raft.
func (s *Server) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Put: r})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.PutResponse), nil
}

// DeleteRange deletes a key or range through raft.
func (s *Server) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{DeleteRange: r})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.DeleteRangeResponse), nil
}

// Txn runs a transaction: through raft when it may write, locally after a
// ReadIndex barrier (or at once when serializable) when it only reads.
func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if isTxnReadOnly(r) {
		return s.serveReadOnlyTxn(ctx, r)
	}
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Txn: r})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.TxnResponse), nil
}

// serveReadOnlyTxn serves a read-only txn locally.
func (s *Server) serveReadOnlyTxn(ctx context.Context, r *pb.TxnRequest) (resp *pb.TxnResponse, err error) {
	defer func(start time.Time) { s.observeReadTxn(r, start, resp, err) }(time.Now())
	if !isTxnSerializable(r) {
		if err := s.LinearizableBarrier(ctx); err != nil {
			return nil, err
		}
	}
	return s.execTxn(s.readView(ctx), r, false)
}

// Compact compacts the revision history through raft; with r.Physical it
// returns only once the old versions are gone from storage.
func (s *Server) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if r.Physical && res.done != nil {
		select {
		case <-res.done:
		case <-ctx.Done():
			return nil, s.mapWaitErr(ctx, ctx.Err())
		case <-s.donec:
			return nil, ErrStopped
		}
	}
	resp := res.resp.(*pb.CompactionResponse)
	resp.Header.Revision = s.kv.Rev()
	return resp, nil
}

// initialStreamChunk is the key count of RangeStream's first chunk; later
// chunks double or halve to land near MaxRequestBytes per message.
const initialStreamChunk = 10

// RangeStream answers a range in chunks, etcd 3.7's RangeStream: every
// chunk carries a disjoint, ordered slice of the keys, and only the last
// carries the header (the revision the stream started at), More and Count.
// The whole stream reads at one revision.
func (s *Server) RangeStream(ctx context.Context, r *pb.RangeRequest, send func(*pb.RangeResponse) error) error {
	if !r.Serializable {
		if err := s.LinearizableBarrier(ctx); err != nil {
			return err
		}
	}
	r = proto.Clone(r).(*pb.RangeRequest)
	v := s.readView(ctx)
	if r.CountOnly {
		resp, err := s.countedRange(v, r)
		if err != nil {
			return err
		}
		return send(&pb.RangeResponse{Header: &pb.ResponseHeader{Revision: resp.Header.Revision}, Count: resp.Count})
	}
	total := r.Limit
	if total == 0 {
		total = math.MaxInt64
	}
	r.Limit = min(initialStreamChunk, total)
	var sent, headerRev int64
	for {
		resp, err := s.countedRange(v, r)
		if err != nil {
			return err
		}
		if headerRev == 0 {
			headerRev = resp.Header.Revision
			if r.Revision == 0 {
				r.Revision = headerRev
			}
		}
		sent += int64(len(resp.Kvs))
		var next []byte
		if resp.More {
			next = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		last := !resp.More || sent == total
		if last {
			out.Header = &pb.ResponseHeader{Revision: headerRev}
			out.More = resp.More
			out.Count = sent
			if resp.More {
				rest, err := s.countedRange(v, &pb.RangeRequest{Key: next, RangeEnd: r.RangeEnd, Revision: r.Revision, CountOnly: true})
				if err != nil {
					return err
				}
				out.Count += rest.Count
			}
		}
		if err := send(out); err != nil {
			return err
		}
		if last {
			return nil
		}
		r.Key = next
		r.Limit = nextChunkLimit(r.Limit, proto.Size(resp), int(s.cfg.MaxRequestBytes))
		r.Limit = min(r.Limit, total-sent)
	}
}

func nextChunkLimit(limit int64, size, target int) int64 {
	switch {
	case size < target/2:
		limit *= 2
	case size > target*2:
		limit /= 2
	}
	return max(limit, 1)
}

// readView reads committed state for requests served outside raft. All of
// one request's reads happen at the revision current when it began.
func (s *Server) readView(ctx context.Context) kvView {
	return &readTxn{ctx: ctx, kv: s.kv, rev: s.kv.Rev()}
}

type readTxn struct {
	ctx context.Context
	kv  *mvcc.Store
	rev int64
}

func (t *readTxn) Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	if o.Rev <= 0 {
		o.Rev = t.rev
	} else if o.Rev > t.rev {
		return nil, mvcc.ErrFutureRev
	}
	rr, err := t.kv.Range(t.ctx, key, end, o)
	if err != nil {
		return nil, err
	}
	rr.Rev = t.rev
	return rr, nil
}

func (t *readTxn) Rev() int64 { return t.rev }

func (t *readTxn) FirstRev() int64 { return t.kv.FirstRev() }

func (t *readTxn) Put([]byte, []byte, int64) {
	panic(fmt.Sprintf("server: write in a read-only transaction at revision %d", t.rev))
}

func (t *readTxn) DeleteRange([]byte, []byte) int64 {
	panic(fmt.Sprintf("server: delete in a read-only transaction at revision %d", t.rev))
}
