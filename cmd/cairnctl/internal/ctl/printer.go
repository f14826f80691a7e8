package ctl

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/internal/table"
)

// printer renders command results in one --write-out format. A method
// returns an *exitError when the format does not support that result.
type printer interface {
	Get(*clientv3.GetResponse) error
	Put(*clientv3.PutResponse) error
	Del(*clientv3.DeleteResponse) error
	Txn(*clientv3.TxnResponse) error
	Watch(*clientv3.WatchResponse) error
	Grant(*clientv3.LeaseGrantResponse) error
	// Revoke gets the revoked ID: the response does not carry it.
	Revoke(clientv3.LeaseID, *clientv3.LeaseRevokeResponse) error
	KeepAlive(*clientv3.LeaseKeepAliveResponse) error
	// TimeToLive gets whether the attached keys were asked for: the
	// simple format then lists them, even when there are none.
	TimeToLive(r *clientv3.LeaseTimeToLiveResponse, keys bool) error
	Leases(*clientv3.LeaseLeasesResponse) error
	// MemberAdd gets the new member's name and --peer-urls as given: the
	// simple format prints the settings that start it.
	MemberAdd(r *clientv3.MemberAddResponse, name, peerURLs string) error
	// The other member changes get the ID from the command line: their
	// responses do not carry it.
	MemberRemove(id uint64, r *clientv3.MemberRemoveResponse) error
	MemberUpdate(id uint64, r *clientv3.MemberUpdateResponse) error
	MemberPromote(id uint64, r *clientv3.MemberPromoteResponse) error
	MemberList(*clientv3.MemberListResponse) error
	MoveLeader(leader, target uint64, r *clientv3.MoveLeaderResponse) error
	EndpointHealth([]epHealth) error
	EndpointStatus([]epStatus) error
	EndpointHashKV([]epHashKV) error
	// Alarm prints the alarms of alarm list and alarm disarm.
	Alarm(*clientv3.AlarmResponse) error
}

// epHealth is the result of probing one endpoint; the JSON names are part of
// the -w json output.
type epHealth struct {
	Ep     string `json:"endpoint"`
	Health bool   `json:"health"`
	Took   string `json:"took"`
	Error  string `json:"error,omitempty"`
}

// epStatus is the status of one endpoint; the JSON names are part of the
// -w json output.
type epStatus struct {
	Ep   string                   `json:"Endpoint"`
	Resp *clientv3.StatusResponse `json:"Status"`
}

// epHashKV is the KV hash of one endpoint; the JSON names are part of the
// -w json output.
type epHashKV struct {
	Ep   string                   `json:"Endpoint"`
	Resp *clientv3.HashKVResponse `json:"HashKV"`
}

func newPrinter(format string, isHex bool, out, errOut io.Writer) printer {
	switch format {
	case "simple":
		return &simplePrinter{w: out, errw: errOut, hex: isHex}
	case "fields":
		return &fieldsPrinter{unsupported: "fields", w: out, hex: isHex}
	case "json":
		return &jsonPrinter{w: out, errw: errOut, hex: isHex}
	case "protobuf":
		return &pbPrinter{unsupported: "protobuf", w: out, errw: errOut}
	case "table":
		return &tablePrinter{unsupported: "table", w: out}
	}
	return nil
}

// unsupported is embedded by printers to refuse what they cannot render.
type unsupported string

func (u unsupported) fail() error {
	return exitf(exitBadFeature, "%s not supported as output format", string(u))
}

func (u unsupported) Get(*clientv3.GetResponse) error               { return u.fail() }
func (u unsupported) Put(*clientv3.PutResponse) error               { return u.fail() }
func (u unsupported) Del(*clientv3.DeleteResponse) error            { return u.fail() }
func (u unsupported) Txn(*clientv3.TxnResponse) error               { return u.fail() }
func (u unsupported) Watch(*clientv3.WatchResponse) error           { return u.fail() }
func (u unsupported) MemberList(*clientv3.MemberListResponse) error { return u.fail() }
func (u unsupported) MemberAdd(*clientv3.MemberAddResponse, string, string) error {
	return u.fail()
}
func (u unsupported) MemberRemove(uint64, *clientv3.MemberRemoveResponse) error   { return u.fail() }
func (u unsupported) MemberUpdate(uint64, *clientv3.MemberUpdateResponse) error   { return u.fail() }
func (u unsupported) MemberPromote(uint64, *clientv3.MemberPromoteResponse) error { return u.fail() }
func (u unsupported) MoveLeader(uint64, uint64, *clientv3.MoveLeaderResponse) error {
	return u.fail()
}
func (u unsupported) Grant(*clientv3.LeaseGrantResponse) error { return u.fail() }
func (u unsupported) Revoke(clientv3.LeaseID, *clientv3.LeaseRevokeResponse) error {
	return u.fail()
}
func (u unsupported) KeepAlive(*clientv3.LeaseKeepAliveResponse) error         { return u.fail() }
func (u unsupported) TimeToLive(*clientv3.LeaseTimeToLiveResponse, bool) error { return u.fail() }
func (u unsupported) Leases(*clientv3.LeaseLeasesResponse) error               { return u.fail() }
func (u unsupported) EndpointHealth([]epHealth) error                          { return u.fail() }
func (u unsupported) EndpointStatus([]epStatus) error                          { return u.fail() }
func (u unsupported) EndpointHashKV([]epHashKV) error                          { return u.fail() }
func (u unsupported) Alarm(*clientv3.AlarmResponse) error                      { return u.fail() }

// hexEscape renders every byte as \xNN, the --hex form of keys and values.
func hexEscape(b []byte) string {
	var sb strings.Builder
	sb.Grow(4 * len(b))
	enc := hex.EncodeToString(b)
	for i := 0; i < len(enc); i += 2 {
		sb.WriteString(`\x`)
		sb.WriteString(enc[i : i+2])
	}
	return sb.String()
}

// Rows of the member list, shared by the simple and table formats.
var memberHeader = []string{"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"}

func memberRows(r *clientv3.MemberListResponse) [][]string {
	var rows [][]string
	if r == nil {
		return nil
	}
	for _, m := range r.Members {
		status := "started"
		if m.Name == "" {
			status = "unstarted"
		}
		rows = append(rows, []string{
			strconv.FormatUint(m.ID, 16),
			status,
			m.Name,
			strings.Join(m.PeerURLs, ","),
			strings.Join(m.ClientURLs, ","),
			strconv.FormatBool(m.IsLearner),
		})
	}
	return rows
}

var healthHeader = []string{"endpoint", "health", "took", "error"}

func healthRows(hs []epHealth) [][]string {
	var rows [][]string
	for _, h := range hs {
		rows = append(rows, []string{h.Ep, strconv.FormatBool(h.Health), h.Took, h.Error})
	}
	return rows
}

var statusHeader = []string{
	"endpoint", "ID", "version", "storage version", "db size", "in use",
	"percentage not in use", "quota", "is leader", "is learner", "raft term",
	"raft index", "raft applied index", "errors", "downgrade target version",
	"downgrade enabled",
}

func statusRows(list []epStatus) [][]string {
	var rows [][]string
	for _, st := range list {
		r := (*pb.StatusResponse)(st.Resp)
		// Integer arithmetic as in etcdctl: a zero db size panics there
		// too, which a live server never reports.
		notInUse := 100 - r.GetDbSizeInUse()*100/r.GetDbSize()
		rows = append(rows, []string{
			st.Ep,
			strconv.FormatUint(r.GetHeader().GetMemberId(), 16),
			r.GetVersion(),
			r.GetStorageVersion(),
			table.Bytes(uint64(r.GetDbSize())),
			table.Bytes(uint64(r.GetDbSizeInUse())),
			fmt.Sprintf("%d%%", notInUse),
			table.Bytes(uint64(r.GetDbSizeQuota())),
			strconv.FormatBool(r.GetLeader() == r.GetHeader().GetMemberId()),
			strconv.FormatBool(r.GetIsLearner()),
			strconv.FormatUint(r.GetRaftTerm(), 10),
			strconv.FormatUint(r.GetRaftIndex(), 10),
			strconv.FormatUint(r.GetRaftAppliedIndex(), 10),
			strings.Join(r.GetErrors(), ", "),
			r.GetDowngradeInfo().GetTargetVersion(),
			strconv.FormatBool(r.GetDowngradeInfo().GetEnabled()),
		})
	}
	return rows
}

// The table header is upper-cased with '_' as a space: HASH REVISION.
var hashKVHeader = []string{"endpoint", "hash", "hash revision"}

func hashKVRows(list []epHashKV) [][]string {
	var rows [][]string
	for _, h := range list {
		r := (*pb.HashKVResponse)(h.Resp)
		rows = append(rows, []string{h.Ep, strconv.FormatUint(uint64(r.GetHash()), 10), strconv.FormatInt(r.GetHashRevision(), 10)})
	}
	return rows
}

// kvText returns key and value as printed by the simple format.
func kvText(kv *mvccpb.KeyValue, isHex bool) (string, string) {
	if isHex {
		return hexEscape(kv.Key), hexEscape(kv.Value)
	}
	return string(kv.Key), string(kv.Value)
}
