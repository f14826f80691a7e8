package differential

import (
	"context"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// normalizeStatus returns a copy of a StatusResponse in which the fields
// that describe one process rather than the protocol keep only their
// shape. Beyond the header fields normalized everywhere:
//
//   - version: the server's own release (Cairn is not etcd 3.7.3); kept
//     only as set or unset.
//   - dbSize, dbSizeInUse: bytes of the storage engine's files, bbolt's
//     on etcd and Pebble's on Cairn; kept as set or unset.
//   - raftIndex, raftAppliedIndex: depend on how many internal entries
//     (conf changes, cluster version) each implementation appends; kept as
//     "set, and applied <= committed".
//   - leader, raftTerm: IDs and terms differ between clusters; kept as
//     "equals the header's member_id / raft_term".
//   - storageVersion: etcd raises it asynchronously after start (a fresh
//     3.7.3 reports "3.5.0" first), so its value depends on timing; kept
//     as set or unset.
//
// Everything else (errors, isLearner, dbSizeQuota, downgradeInfo) is
// compared exactly. The raw values are logged for the report.
func normalizeStatus(s *pb.StatusResponse) *pb.StatusResponse {
	n := proto.Clone(s).(*pb.StatusResponse)
	h := s.GetHeader()
	if n.Version != "" {
		n.Version = "<set>"
	}
	if n.StorageVersion != "" {
		n.StorageVersion = "<set>"
	}
	n.DbSize = int64(setOrZero(uint64(n.DbSize)))
	n.DbSizeInUse = int64(setOrZero(uint64(n.DbSizeInUse)))
	n.RaftIndex = setOrZero(n.RaftIndex)
	switch {
	case n.RaftAppliedIndex == 0:
	case s.RaftAppliedIndex <= s.RaftIndex:
		n.RaftAppliedIndex = 1
	default:
		n.RaftAppliedIndex = 2 // applied past committed
	}
	n.Leader = sameOrNot(s.Leader, h.GetMemberId())
	n.RaftTerm = sameOrNot(s.RaftTerm, h.GetRaftTerm())
	return n
}

// sameOrNot is 0 when v is unset, 1 when it equals want, 2 otherwise.
func sameOrNot(v, want uint64) uint64 {
	switch {
	case v == 0:
		return 0
	case v == want:
		return 1
	}
	return 2
}

// TestStatus compares Maintenance.Status on a fresh store and after
// writes, and reports the raw values of the normalized fields.
func TestStatus(t *testing.T) {
	p := newPair(t, options{})
	status := func(name string) [2]*pb.StatusResponse {
		var raw [2]*pb.StatusResponse
		p.step(name, &pb.StatusRequest{}, func(ctx context.Context, s *side) (proto.Message, error) {
			r, err := s.maint.Status(ctx, &pb.StatusRequest{})
			if err != nil {
				return nil, err
			}
			raw[indexOf(p, s)] = r
			return normalizeStatus(r), nil
		})
		for i, r := range raw {
			if r != nil {
				p.t.Logf("%s: raw %s: %s", name, p.sides()[i].name, show(r))
			}
		}
		return raw
	}
	before := status("status of a fresh store")
	for i := 0; i < 10; i++ {
		p.put("write", put(fmt.Sprintf("k%d", i), "v"))
	}
	after := status("status after 10 puts")
	if before[0] != nil && before[1] != nil && after[0] != nil && after[1] != nil {
		de := after[0].RaftIndex - before[0].RaftIndex
		do := after[1].RaftIndex - before[1].RaftIndex
		if de != do {
			p.t.Logf("note: raftIndex advanced by %d on etcd and %d on %s over 10 puts", de, do, p.other.name)
		}
	}
}

func indexOf(p *pair, s *side) int {
	if s == p.etcd {
		return 0
	}
	return 1
}

// TestHashKV compares Maintenance.HashKV, the hash of the MVCC history up
// to a revision that members of one cluster compare to detect corruption.
// etcd defines it over its own storage encoding, so an identical hash
// means Cairn reproduces that encoding exactly.
func TestHashKV(t *testing.T) {
	p := newPair(t, options{})
	hashKV := func(rev int64) call {
		return func(ctx context.Context, s *side) (proto.Message, error) {
			return s.maint.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
		}
	}
	p.step("hash of a fresh store", &pb.HashKVRequest{}, hashKV(0))
	for i := 0; i < 5; i++ {
		p.put("write", put(fmt.Sprintf("h%d", i), fmt.Sprint(i)))
	}
	p.del("delete", del("h1", ""))
	p.step("hash at the current revision", &pb.HashKVRequest{}, hashKV(0))
	p.step("hash at revision 3", &pb.HashKVRequest{Revision: 3}, hashKV(3))
	p.step("hash at a future revision", &pb.HashKVRequest{Revision: 100}, hashKV(100))
	p.compact("compact at 4", &pb.CompactionRequest{Revision: 4, Physical: true})
	p.step("hash after compaction", &pb.HashKVRequest{}, hashKV(0))
	p.step("hash at the compact revision", &pb.HashKVRequest{Revision: 4}, hashKV(4))
	p.step("hash below the compact revision", &pb.HashKVRequest{Revision: 3}, hashKV(3))
}

// TestMaintenanceMisc compares Defragment and Downgrade. A Cairn cluster
// has no older version to go back to, so every downgrade answers as etcd
// does for a target it cannot downgrade to.
func TestMaintenanceMisc(t *testing.T) {
	p := newPair(t, options{})
	for i := 0; i < 20; i++ {
		p.put("write", put(fmt.Sprintf("d%d", i%5), fmt.Sprint(i)))
	}
	p.compact("compact", &pb.CompactionRequest{Revision: 15, Physical: true})
	df := &pb.DefragmentRequest{}
	p.step("defragment", df, func(ctx context.Context, s *side) (proto.Message, error) { return s.maint.Defragment(ctx, df) })
	p.rng("data intact after defragment", all())
	// Deliberate difference (docs/compatibility.md): etcd 3.7 can go back
	// to 3.6, Cairn refuses every target.
	for _, v := range []string{"3.6", "3.6.0"} {
		r := &pb.DowngradeRequest{Action: pb.DowngradeRequest_VALIDATE, Version: v}
		if _, err := p.other.maint.Downgrade(context.Background(), r); status.Convert(err).Message() != "etcdserver: invalid downgrade target version" {
			t.Errorf("%s: downgrade to %s: %v, want etcdserver: invalid downgrade target version", p.other.name, v, err)
		}
	}
	for _, r := range []*pb.DowngradeRequest{
		{Action: pb.DowngradeRequest_VALIDATE, Version: "3.7"},
		{Action: pb.DowngradeRequest_VALIDATE, Version: "3.5"},
		{Action: pb.DowngradeRequest_VALIDATE, Version: "4.0"},
		{Action: pb.DowngradeRequest_VALIDATE, Version: "not-a-version"},
		{Action: pb.DowngradeRequest_VALIDATE, Version: ""},
		{Action: pb.DowngradeRequest_ENABLE, Version: "3.5"},
		{Action: pb.DowngradeRequest_ENABLE, Version: "x"},
		{Action: pb.DowngradeRequest_CANCEL},
	} {
		p.step("downgrade "+r.Action.String()+" "+r.Version, r, func(ctx context.Context, s *side) (proto.Message, error) {
			return s.maint.Downgrade(ctx, r)
		})
	}
}
