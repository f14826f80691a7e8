package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/mvcc"
)

// How long requests take, as etcd reports it: every applied request is
// timed under its kind in etcd_server_apply_duration_seconds, range
// requests in etcd_server_request_duration_seconds and each read of the
// store for one in etcd_server_range_duration_seconds. An applied request
// or a read served locally (a range, a read-only txn) that takes longer
// than Config.WarningApplyDuration is logged as etcd logs it, "apply
// request took too long", and counted in etcd_server_slow_apply_total.

// seconds is d in seconds, to the microsecond as etcd observes durations.
func seconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1e6 }

// applyOp names r's kind as etcd's apply_duration_seconds "op" label does.
func applyOp(r *pb.InternalRaftRequest) string {
	switch {
	case r.Put != nil:
		return "Put"
	case r.DeleteRange != nil:
		return "DeleteRange"
	case r.Txn != nil:
		return "Txn"
	case r.Compaction != nil:
		return "Compaction"
	case r.LeaseGrant != nil:
		return "LeaseGrant"
	case r.LeaseRevoke != nil:
		return "LeaseRevoke"
	case r.LeaseCheckpoint != nil:
		return "LeaseCheckpoint"
	case r.Alarm != nil:
		return "Alarm"
	case r.ClusterMemberAttrSet != nil:
		return "ClusterMemberAttrSet"
	}
	return "unknown"
}

// observeApply times one applied request that began at start. A request
// that failed only because it read a compacted revision still counts as
// a success, as in etcd.
func (s *Server) observeApply(r *pb.InternalRaftRequest, start time.Time, res *result) {
	d := time.Since(start)
	ok := res.err == nil || errors.Is(res.err, mvcc.ErrCompacted)
	s.hist.apply.WithLabelValues("v3", applyOp(r), strconv.FormatBool(ok)).Observe(seconds(d))
	if d > s.cfg.WarningApplyDuration {
		var resp string
		if res.resp != nil {
			resp = fmt.Sprintf("size:%d", proto.Size(res.resp))
		}
		s.warnSlow(d, "", &pb.InternalRaftStringer{Request: r}, resp, res.err)
	}
}

// observeRange times a range request served locally, from its start to
// its answer (a linearizable read's wait included).
func (s *Server) observeRange(r *pb.RangeRequest, start time.Time, resp *pb.RangeResponse, err error) {
	d := time.Since(start)
	s.hist.request.WithLabelValues("Range", strconv.FormatBool(err == nil)).Observe(d.Seconds())
	if d > s.cfg.WarningApplyDuration {
		var out string
		if resp != nil {
			out = fmt.Sprintf("range_response_count:%d size:%d", len(resp.Kvs), proto.Size(resp))
		}
		s.warnSlow(d, "read-only range ", r, out, err)
	}
}

// observeReadTxn times a read-only txn served locally.
func (s *Server) observeReadTxn(r *pb.TxnRequest, start time.Time, resp *pb.TxnResponse, err error) {
	d := time.Since(start)
	if d <= s.cfg.WarningApplyDuration {
		return
	}
	var out string
	if resp != nil {
		var counts []string
		for _, op := range resp.Responses {
			if rr := op.GetResponseRange(); rr != nil {
				counts = append(counts, fmt.Sprintf("range_response_count:%d", len(rr.Kvs)))
			}
		}
		out = fmt.Sprintf("responses:<%s> size:%d", strings.Join(counts, " "), proto.Size(resp))
	}
	s.warnSlow(d, "read-only txn ", pb.NewLoggableTxnRequest(r), out, err)
}

// warnSlow logs and counts a request that took d, longer than
// Config.WarningApplyDuration, with etcd's message and fields.
func (s *Server) warnSlow(d time.Duration, prefix string, req fmt.Stringer, resp string, err error) {
	s.lg.Warn("apply request took too long",
		zap.Duration("took", d),
		zap.Duration("expected-duration", s.cfg.WarningApplyDuration),
		zap.String("prefix", prefix),
		zap.String("request", req.String()),
		zap.String("response", resp),
		zap.Error(err),
	)
	s.hist.slowApplies.Inc()
}
