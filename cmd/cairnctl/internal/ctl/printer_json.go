package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// jsonPrinter marshals the response messages with encoding/json, not
// protojson: the generated structs' json tags give snake_case names, int64 as
// numbers, bytes as base64 and omitted zero values, which is the format
// etcdctl scripts parse.
type jsonPrinter struct {
	w, errw io.Writer
	hex     bool // only member responses honour it: IDs as hex strings
}

func (p *jsonPrinter) print(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(p.errw, "%v\n", err)
		return nil
	}
	fmt.Fprintln(p.w, string(b))
	return nil
}

func (p *jsonPrinter) Get(r *clientv3.GetResponse) error { return p.print((*pb.RangeResponse)(r)) }
func (p *jsonPrinter) Put(r *clientv3.PutResponse) error { return p.print((*pb.PutResponse)(r)) }
func (p *jsonPrinter) Del(r *clientv3.DeleteResponse) error {
	return p.print((*pb.DeleteRangeResponse)(r))
}

// Watch marshals the client's response struct itself, not the wire message:
// capitalized field names, as etcdctl prints; --hex changes nothing.
func (p *jsonPrinter) Watch(r *clientv3.WatchResponse) error { return p.print(r) }

// The lease responses are marshalled as the client's structs, not the wire
// messages: the header's fields sit at the top level ("cluster_id", ...), as
// the embedded header puts them, and the other names are the struct's ("ID",
// "TTL", or their json tags: "granted-ttl"). --hex changes nothing.
func (p *jsonPrinter) Grant(r *clientv3.LeaseGrantResponse) error { return p.print(r) }
func (p *jsonPrinter) Revoke(_ clientv3.LeaseID, r *clientv3.LeaseRevokeResponse) error {
	return p.print(r)
}
func (p *jsonPrinter) KeepAlive(r *clientv3.LeaseKeepAliveResponse) error { return p.print(r) }
func (p *jsonPrinter) TimeToLive(r *clientv3.LeaseTimeToLiveResponse, _ bool) error {
	return p.print(r)
}
func (p *jsonPrinter) Leases(r *clientv3.LeaseLeasesResponse) error { return p.print(r) }

func (p *jsonPrinter) EndpointHealth(hs []epHealth) error { return p.print(hs) }
func (p *jsonPrinter) EndpointStatus(l []epStatus) error  { return p.print(l) }
func (p *jsonPrinter) EndpointHashKV(l []epHashKV) error  { return p.print(l) }

// A txn's responses are a oneof, which encoding/json cannot see through;
// they are wrapped as {"Response":{"response_put":{...}}}.
type txnJSON struct {
	Header    *pb.ResponseHeader `json:"header,omitempty"`
	Succeeded bool               `json:"succeeded,omitempty"`
	Responses []opJSON           `json:"responses,omitempty"`
}

type opJSON struct {
	Response opUnionJSON `json:"Response"`
}

type opUnionJSON struct {
	Range  *pb.RangeResponse       `json:"response_range,omitempty"`
	Put    *pb.PutResponse         `json:"response_put,omitempty"`
	Delete *pb.DeleteRangeResponse `json:"response_delete_range,omitempty"`
	Txn    *txnJSON                `json:"response_txn,omitempty"`
}

func newTxnJSON(r *pb.TxnResponse) *txnJSON {
	t := &txnJSON{Header: r.GetHeader(), Succeeded: r.GetSucceeded()}
	for _, op := range r.GetResponses() {
		var u opUnionJSON
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			u.Range = v.ResponseRange
		case *pb.ResponseOp_ResponsePut:
			u.Put = v.ResponsePut
		case *pb.ResponseOp_ResponseDeleteRange:
			u.Delete = v.ResponseDeleteRange
		case *pb.ResponseOp_ResponseTxn:
			u.Txn = newTxnJSON(v.ResponseTxn)
		}
		t.Responses = append(t.Responses, opJSON{Response: u})
	}
	return t
}

func (p *jsonPrinter) Txn(r *clientv3.TxnResponse) error {
	return p.print(*newTxnJSON((*pb.TxnResponse)(r)))
}

// With --hex, member and cluster IDs become hex strings.
type hexHeaderJSON struct {
	ClusterID string `json:"cluster_id"`
	MemberID  string `json:"member_id"`
	Revision  int64  `json:"revision,omitempty"`
	RaftTerm  uint64 `json:"raft_term,omitempty"`
}

type hexMemberJSON struct {
	ID         string   `json:"ID"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// hexHeader and hexMember return nil for nil, which marshals as null.
func hexHeader(h *pb.ResponseHeader) *hexHeaderJSON {
	if h == nil {
		return nil
	}
	return &hexHeaderJSON{
		ClusterID: strconv.FormatUint(h.ClusterId, 16),
		MemberID:  strconv.FormatUint(h.MemberId, 16),
		Revision:  h.Revision,
		RaftTerm:  h.RaftTerm,
	}
}

func hexMember(m *pb.Member) *hexMemberJSON {
	if m == nil {
		return nil
	}
	return &hexMemberJSON{
		ID:         strconv.FormatUint(m.ID, 16),
		Name:       m.Name,
		PeerURLs:   m.PeerURLs,
		ClientURLs: m.ClientURLs,
		IsLearner:  m.IsLearner,
	}
}

// hexMembers is never nil: no members marshal as [], not null.
func hexMembers(ms []*pb.Member) []*hexMemberJSON {
	out := make([]*hexMemberJSON, len(ms))
	for i, m := range ms {
		out[i] = hexMember(m)
	}
	return out
}

// hexMembersJSON is the --hex form of every member response but add's.
type hexMembersJSON struct {
	Header  *hexHeaderJSON   `json:"header"`
	Members []*hexMemberJSON `json:"members"`
}

type hexMemberAddJSON struct {
	Header  *hexHeaderJSON   `json:"header"`
	Member  *hexMemberJSON   `json:"member"`
	Members []*hexMemberJSON `json:"members"`
}

// members prints a member response: as the client's struct, or with --hex
// in the hex form of its header and members.
func (p *jsonPrinter) members(r any, h *pb.ResponseHeader, ms []*pb.Member) error {
	if !p.hex {
		return p.print(r)
	}
	return p.print(hexMembersJSON{Header: hexHeader(h), Members: hexMembers(ms)})
}

func (p *jsonPrinter) MemberList(r *clientv3.MemberListResponse) error {
	return p.members(r, r.Header, r.Members)
}

func (p *jsonPrinter) MemberAdd(r *clientv3.MemberAddResponse, _, _ string) error {
	if !p.hex {
		return p.print(r)
	}
	return p.print(hexMemberAddJSON{Header: hexHeader(r.Header), Member: hexMember(r.Member), Members: hexMembers(r.Members)})
}

func (p *jsonPrinter) MemberRemove(_ uint64, r *clientv3.MemberRemoveResponse) error {
	return p.members(r, r.Header, r.Members)
}

func (p *jsonPrinter) MemberUpdate(_ uint64, r *clientv3.MemberUpdateResponse) error {
	return p.members(r, r.Header, r.Members)
}

func (p *jsonPrinter) MemberPromote(_ uint64, r *clientv3.MemberPromoteResponse) error {
	return p.members(r, r.Header, r.Members)
}

// Alarm prints the response message; --hex changes nothing. The alarm
// type is a number. Disarm's answer, put together by the client from one
// request per alarm, has no header.
func (p *jsonPrinter) Alarm(r *clientv3.AlarmResponse) error {
	return p.print((*pb.AlarmResponse)(r))
}

// MoveLeader prints the response message; --hex changes nothing.
func (p *jsonPrinter) MoveLeader(_, _ uint64, r *clientv3.MoveLeaderResponse) error {
	return p.print((*pb.MoveLeaderResponse)(r))
}

// pbPrinter writes the binary protobuf encoding of the response message,
// unframed, for the formats that have one.
type pbPrinter struct {
	unsupported
	w, errw io.Writer
}

func (p *pbPrinter) print(m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		fmt.Fprintf(p.errw, "%v\n", err)
		return nil
	}
	_, _ = p.w.Write(b)
	return nil
}

func (p *pbPrinter) Get(r *clientv3.GetResponse) error { return p.print((*pb.RangeResponse)(r)) }
func (p *pbPrinter) Put(r *clientv3.PutResponse) error { return p.print((*pb.PutResponse)(r)) }
func (p *pbPrinter) Del(r *clientv3.DeleteResponse) error {
	return p.print((*pb.DeleteRangeResponse)(r))
}

// Watch rebuilds the wire message from the fields etcdctl keeps: no watch ID,
// cancel reason or fragment count.
func (p *pbPrinter) Watch(r *clientv3.WatchResponse) error {
	return p.print(&pb.WatchResponse{
		Header:          r.Header,
		Events:          r.Events,
		CompactRevision: r.CompactRevision,
		Canceled:        r.Canceled,
		Created:         r.Created,
	})
}

func (p *pbPrinter) Txn(r *clientv3.TxnResponse) error { return p.print((*pb.TxnResponse)(r)) }

// The lease responses other than revoke are the client's structs, whose
// only protobuf message is the embedded header: etcdctl encodes that alone,
// so the ID and TTLs are not in the output.
func (p *pbPrinter) Grant(r *clientv3.LeaseGrantResponse) error { return p.print(r.ResponseHeader) }
func (p *pbPrinter) KeepAlive(r *clientv3.LeaseKeepAliveResponse) error {
	return p.print(r.ResponseHeader)
}
func (p *pbPrinter) TimeToLive(r *clientv3.LeaseTimeToLiveResponse, _ bool) error {
	return p.print(r.ResponseHeader)
}
func (p *pbPrinter) Leases(r *clientv3.LeaseLeasesResponse) error { return p.print(r.ResponseHeader) }

// Revoke fails after the lease was revoked: the client's revoke response is
// no protobuf message at all. The error shows the response with %v, as
// etcdctl's does (a pointer and protobuf's text format included).
func (p *pbPrinter) Revoke(_ clientv3.LeaseID, r *clientv3.LeaseRevokeResponse) error {
	return exitf(exitBadFeature, "marshal unsupported for type %T (%v)", r, r)
}
func (p *pbPrinter) MemberList(r *clientv3.MemberListResponse) error {
	return p.print((*pb.MemberListResponse)(r))
}

func (p *pbPrinter) MemberAdd(r *clientv3.MemberAddResponse, _, _ string) error {
	return p.print((*pb.MemberAddResponse)(r))
}

func (p *pbPrinter) MemberRemove(_ uint64, r *clientv3.MemberRemoveResponse) error {
	return p.print((*pb.MemberRemoveResponse)(r))
}

func (p *pbPrinter) MemberUpdate(_ uint64, r *clientv3.MemberUpdateResponse) error {
	return p.print((*pb.MemberUpdateResponse)(r))
}

func (p *pbPrinter) MemberPromote(_ uint64, r *clientv3.MemberPromoteResponse) error {
	return p.print((*pb.MemberPromoteResponse)(r))
}

func (p *pbPrinter) MoveLeader(_, _ uint64, r *clientv3.MoveLeaderResponse) error {
	return p.print((*pb.MoveLeaderResponse)(r))
}

func (p *pbPrinter) Alarm(r *clientv3.AlarmResponse) error {
	return p.print((*pb.AlarmResponse)(r))
}
