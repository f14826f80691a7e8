package ctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// simplePrinter is the default, line-oriented format: a key on one line, its
// value on the next.
type simplePrinter struct {
	w, errw   io.Writer
	hex       bool
	valueOnly bool // get --print-value-only
}

func (p *simplePrinter) kv(kv *mvccpb.KeyValue) {
	k, v := kvText(kv, p.hex)
	if !p.valueOnly {
		fmt.Fprintln(p.w, k)
	}
	fmt.Fprintln(p.w, v)
}

func (p *simplePrinter) Get(r *clientv3.GetResponse) error {
	for _, kv := range r.Kvs {
		p.kv(kv)
	}
	return nil
}

func (p *simplePrinter) Put(r *clientv3.PutResponse) error {
	fmt.Fprintln(p.w, "OK")
	if r.PrevKv != nil {
		p.kv(r.PrevKv)
	}
	return nil
}

func (p *simplePrinter) Del(r *clientv3.DeleteResponse) error {
	fmt.Fprintln(p.w, r.Deleted)
	for _, kv := range r.PrevKvs {
		p.kv(kv)
	}
	return nil
}

func (p *simplePrinter) Txn(r *clientv3.TxnResponse) error {
	if r.Succeeded {
		fmt.Fprintln(p.w, "SUCCESS")
	} else {
		fmt.Fprintln(p.w, "FAILURE")
	}
	for _, op := range r.Responses {
		fmt.Fprintln(p.w)
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			_ = p.Get((*clientv3.GetResponse)(v.ResponseRange))
		case *pb.ResponseOp_ResponsePut:
			_ = p.Put((*clientv3.PutResponse)(v.ResponsePut))
		case *pb.ResponseOp_ResponseDeleteRange:
			_ = p.Del((*clientv3.DeleteResponse)(v.ResponseDeleteRange))
		default:
			fmt.Fprintf(p.w, "unexpected response %+v\n", op)
		}
	}
	return nil
}

// Watch writes each event as its type, then the previous pair if the
// watch asked for it, then the pair after the event.
func (p *simplePrinter) Watch(r *clientv3.WatchResponse) error {
	for _, ev := range r.Events {
		fmt.Fprintln(p.w, ev.GetType())
		if ev.GetPrevKv() != nil {
			p.kv(ev.GetPrevKv())
		}
		p.kv(ev.GetKv())
	}
	return nil
}

func (p *simplePrinter) MemberList(r *clientv3.MemberListResponse) error {
	for _, row := range memberRows(r) {
		fmt.Fprintln(p.w, strings.Join(row, ", "))
	}
	return nil
}

// The member changes print IDs with %16x: an ID below 2^60 is padded with
// spaces, not zeros.

func (p *simplePrinter) MemberAdd(r *clientv3.MemberAddResponse, name, peerURLs string) error {
	as := " "
	if r.Member.GetIsLearner() {
		as = " as learner "
	}
	fmt.Fprintf(p.w, "Member %16x added%sto cluster %16x\n", r.Member.GetID(), as, r.Header.GetClusterId())
	fmt.Fprint(p.w, memberEnv(r, name, peerURLs))
	return nil
}

func (p *simplePrinter) MemberRemove(id uint64, r *clientv3.MemberRemoveResponse) error {
	fmt.Fprintf(p.w, "Member %16x removed from cluster %16x\n", id, r.Header.GetClusterId())
	return nil
}

func (p *simplePrinter) MemberUpdate(id uint64, r *clientv3.MemberUpdateResponse) error {
	fmt.Fprintf(p.w, "Member %16x updated in cluster %16x\n", id, r.Header.GetClusterId())
	return nil
}

func (p *simplePrinter) MemberPromote(id uint64, r *clientv3.MemberPromoteResponse) error {
	fmt.Fprintf(p.w, "Member %16x promoted in cluster %16x\n", id, r.Header.GetClusterId())
	return nil
}

// MoveLeader prints the IDs in hex without padding.
func (p *simplePrinter) MoveLeader(leader, target uint64, _ *clientv3.MoveLeaderResponse) error {
	fmt.Fprintf(p.w, "Leadership transferred from %s to %s\n", strconv.FormatUint(leader, 16), strconv.FormatUint(target, 16))
	return nil
}

func (p *simplePrinter) EndpointHealth(hs []epHealth) error {
	for _, h := range hs {
		if h.Error == "" {
			fmt.Fprintf(p.w, "%s is healthy: successfully committed proposal: took = %v\n", h.Ep, h.Took)
		} else {
			fmt.Fprintf(p.errw, "%s is unhealthy: failed to commit proposal: %v\n", h.Ep, h.Error)
		}
	}
	return nil
}

func (p *simplePrinter) EndpointStatus(list []epStatus) error {
	for _, row := range statusRows(list) {
		fmt.Fprintln(p.w, strings.Join(row, ", "))
	}
	return nil
}

func (p *simplePrinter) EndpointHashKV(list []epHashKV) error {
	for _, row := range hashKVRows(list) {
		fmt.Fprintln(p.w, strings.Join(row, ", "))
	}
	return nil
}

// Alarm writes one line per alarm in protobuf's text format, as etcdctl
// does (see alarmText).
func (p *simplePrinter) Alarm(r *clientv3.AlarmResponse) error {
	for _, a := range r.Alarms {
		fmt.Fprintln(p.w, alarmText(a))
	}
	return nil
}

func (p *simplePrinter) Grant(r *clientv3.LeaseGrantResponse) error {
	fmt.Fprintf(p.w, "lease %016x granted with TTL(%ds)\n", r.ID, r.TTL)
	return nil
}

func (p *simplePrinter) Revoke(id clientv3.LeaseID, _ *clientv3.LeaseRevokeResponse) error {
	fmt.Fprintf(p.w, "lease %016x revoked\n", id)
	return nil
}

func (p *simplePrinter) KeepAlive(r *clientv3.LeaseKeepAliveResponse) error {
	fmt.Fprintf(p.w, "lease %016x keepalived with TTL(%d)\n", r.ID, r.TTL)
	return nil
}

// TimeToLive reports a lease the server does not know (granted TTL 0,
// remaining -1) as expired. The attached keys are printed raw, space
// separated, whatever --hex says.
func (p *simplePrinter) TimeToLive(r *clientv3.LeaseTimeToLiveResponse, keys bool) error {
	if r.GrantedTTL == 0 && r.TTL == -1 {
		fmt.Fprintf(p.w, "lease %016x already expired\n", r.ID)
		return nil
	}
	fmt.Fprintf(p.w, "lease %016x granted with TTL(%ds), remaining(%ds)", r.ID, r.GrantedTTL, r.TTL)
	if keys {
		ks := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			ks[i] = string(k)
		}
		fmt.Fprintf(p.w, ", attached keys(%v)", ks)
	}
	fmt.Fprintln(p.w)
	return nil
}

func (p *simplePrinter) Leases(r *clientv3.LeaseLeasesResponse) error {
	fmt.Fprintf(p.w, "found %d leases\n", len(r.Leases))
	for _, l := range r.Leases {
		fmt.Fprintf(p.w, "%016x\n", l.ID)
	}
	return nil
}
