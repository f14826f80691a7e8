package ctl

import (
	"fmt"
	"io"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fieldsPrinter writes one `"Name" : value` line per field, strings quoted
// Go-style. --hex switches IDs and leases to hexadecimal, not keys. Member
// changes and move-leader have no fields form: they fail after the request.
type fieldsPrinter struct {
	unsupported
	w   io.Writer
	hex bool
}

func (p *fieldsPrinter) line(name string, v any) {
	fmt.Fprintf(p.w, "\"%s\" : %v\n", name, v)
}

func (p *fieldsPrinter) quoted(name, v string) {
	fmt.Fprintf(p.w, "\"%s\" : %q\n", name, v)
}

func (p *fieldsPrinter) id(v uint64) string {
	if p.hex {
		return strconv.FormatUint(v, 16)
	}
	return strconv.FormatUint(v, 10)
}

func (p *fieldsPrinter) header(h *pb.ResponseHeader) {
	p.line("ClusterID", p.id(h.GetClusterId()))
	p.line("MemberID", p.id(h.GetMemberId()))
	// Responses outside the KV space carry no revision; omit it there.
	if h.GetRevision() > 0 {
		p.line("Revision", h.GetRevision())
	}
	p.line("RaftTerm", h.GetRaftTerm())
}

func (p *fieldsPrinter) kv(prefix string, kv *mvccpb.KeyValue) {
	p.quoted(prefix+"Key", string(kv.GetKey()))
	p.line(prefix+"CreateRevision", kv.GetCreateRevision())
	p.line(prefix+"ModRevision", kv.GetModRevision())
	p.line(prefix+"Version", kv.GetVersion())
	p.quoted(prefix+"Value", string(kv.GetValue()))
	if p.hex {
		fmt.Fprintf(p.w, "\"%sLease\" : %016x\n", prefix, kv.GetLease())
	} else {
		p.line(prefix+"Lease", kv.GetLease())
	}
}

func (p *fieldsPrinter) Get(r *clientv3.GetResponse) error {
	p.header(r.Header)
	for _, kv := range r.Kvs {
		p.kv("", kv)
	}
	p.line("More", r.More)
	p.line("Count", r.Count)
	return nil
}

func (p *fieldsPrinter) Put(r *clientv3.PutResponse) error {
	p.header(r.Header)
	if r.PrevKv != nil {
		p.kv("Prev", r.PrevKv)
	}
	return nil
}

func (p *fieldsPrinter) Del(r *clientv3.DeleteResponse) error {
	p.header(r.Header)
	p.line("Deleted", r.Deleted)
	for _, kv := range r.PrevKvs {
		p.kv("Prev", kv)
	}
	return nil
}

func (p *fieldsPrinter) Txn(r *clientv3.TxnResponse) error {
	p.header(r.Header)
	p.line("Succeeded", r.Succeeded)
	for _, op := range r.Responses {
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			_ = p.Get((*clientv3.GetResponse)(v.ResponseRange))
		case *pb.ResponseOp_ResponsePut:
			_ = p.Put((*clientv3.PutResponse)(v.ResponsePut))
		case *pb.ResponseOp_ResponseDeleteRange:
			_ = p.Del((*clientv3.DeleteResponse)(v.ResponseDeleteRange))
		default:
			p.quoted("Unknown", fmt.Sprintf("%+v", v))
		}
	}
	return nil
}

func (p *fieldsPrinter) Watch(r *clientv3.WatchResponse) error {
	p.header(r.Header)
	for _, ev := range r.Events {
		p.line("Type", ev.GetType())
		if ev.GetPrevKv() != nil {
			p.kv("Prev", ev.GetPrevKv())
		}
		p.kv("", ev.GetKv())
	}
	return nil
}

func (p *fieldsPrinter) MemberList(r *clientv3.MemberListResponse) error {
	p.header(r.Header)
	for _, m := range r.Members {
		p.line("ID", p.id(m.GetID()))
		p.quoted("Name", m.GetName())
		for _, u := range m.GetPeerURLs() {
			p.quoted("PeerURL", u)
		}
		for _, u := range m.GetClientURLs() {
			p.quoted("ClientURL", u)
		}
		p.line("IsLearner", m.GetIsLearner())
		fmt.Fprintln(p.w)
	}
	return nil
}

func (p *fieldsPrinter) EndpointHealth(hs []epHealth) error {
	for _, h := range hs {
		p.quoted("Endpoint", h.Ep)
		p.line("Health", h.Health)
		p.line("Took", h.Took)
		p.line("Error", h.Error)
		fmt.Fprintln(p.w)
	}
	return nil
}

func (p *fieldsPrinter) EndpointStatus(list []epStatus) error {
	for _, st := range list {
		r := (*pb.StatusResponse)(st.Resp)
		p.header(r.GetHeader())
		p.quoted("Version", r.GetVersion())
		p.quoted("StorageVersion", r.GetStorageVersion())
		p.line("DBSize", r.GetDbSize())
		p.line("DBSizeInUse", r.GetDbSizeInUse())
		p.line("DBSizeQuota", r.GetDbSizeQuota())
		p.line("Leader", r.GetLeader())
		p.line("IsLearner", r.GetIsLearner())
		p.line("RaftIndex", r.GetRaftIndex())
		p.line("RaftAppliedIndex", r.GetRaftAppliedIndex())
		p.line("Errors", r.GetErrors())
		p.quoted("Endpoint", st.Ep)
		p.quoted("DowngradeTargetVersion", r.GetDowngradeInfo().GetTargetVersion())
		p.line("DowngradeEnabled", r.GetDowngradeInfo().GetEnabled())
		fmt.Fprintln(p.w)
	}
	return nil
}

func (p *fieldsPrinter) EndpointHashKV(list []epHashKV) error {
	for _, h := range list {
		r := (*pb.HashKVResponse)(h.Resp)
		p.header(r.GetHeader())
		p.quoted("Endpoint", h.Ep)
		p.line("Hash", r.GetHash())
		p.line("HashRevision", r.GetHashRevision())
		fmt.Fprintln(p.w)
	}
	return nil
}

// Alarm writes the header (zeros for disarm's, which has none), then each
// alarm's member ID and type name, each alarm followed by an empty line.
func (p *fieldsPrinter) Alarm(r *clientv3.AlarmResponse) error {
	p.header(r.Header)
	for _, a := range r.Alarms {
		p.line("MemberID", p.id(a.GetMemberID()))
		p.line("AlarmType", a.GetAlarm())
		fmt.Fprintln(p.w)
	}
	return nil
}

// leaseID writes a lease ID, in decimal or with --hex as 16 hex digits.
func (p *fieldsPrinter) leaseID(id clientv3.LeaseID) {
	if p.hex {
		fmt.Fprintf(p.w, "\"ID\" : %016x\n", id)
	} else {
		p.line("ID", id)
	}
}

func (p *fieldsPrinter) Grant(r *clientv3.LeaseGrantResponse) error {
	p.header(r.ResponseHeader)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	return nil
}

func (p *fieldsPrinter) Revoke(_ clientv3.LeaseID, r *clientv3.LeaseRevokeResponse) error {
	p.header((*pb.LeaseRevokeResponse)(r).GetHeader())
	return nil
}

func (p *fieldsPrinter) KeepAlive(r *clientv3.LeaseKeepAliveResponse) error {
	p.header(r.ResponseHeader)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	return nil
}

// TimeToLive lists the keys the server returned, which it does only when
// they were asked for.
func (p *fieldsPrinter) TimeToLive(r *clientv3.LeaseTimeToLiveResponse, _ bool) error {
	p.header(r.ResponseHeader)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	p.line("GrantedTTL", r.GrantedTTL)
	for _, k := range r.Keys {
		p.quoted("Key", string(k))
	}
	return nil
}

func (p *fieldsPrinter) Leases(r *clientv3.LeaseLeasesResponse) error {
	p.header(r.ResponseHeader)
	for _, l := range r.Leases {
		p.leaseID(l.ID)
	}
	return nil
}
