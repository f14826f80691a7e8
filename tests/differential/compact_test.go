package differential

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// TestCompactFresh covers compaction bounds on a store that has never been
// compacted: revision 0, negative revisions, the current revision.
func TestCompactFresh(t *testing.T) {
	p := newPair(t, options{})
	p.compact("compact 0 on a fresh store", &pb.CompactionRequest{Revision: 0})
	p.compact("compact 0 again", &pb.CompactionRequest{Revision: 0})
	p.compact("compact -1", &pb.CompactionRequest{Revision: -1})
	p.compact("compact 1 (the current revision)", &pb.CompactionRequest{Revision: 1})
	p.compact("compact 1 again", &pb.CompactionRequest{Revision: 1, Physical: true})
	p.wantErr("compact 2 (future)", &pb.CompactionRequest{Revision: 2}, callCompact(&pb.CompactionRequest{Revision: 2}), codes.OutOfRange)
	p.rng("range at revision 1 after compacting 1", &pb.RangeRequest{Key: b("a"), Revision: 1})
	p.rng("range at revision 0 after compacting 1", &pb.RangeRequest{Key: b("a"), Revision: 0})
	p.put("put after compaction", put("a", "1"))
	p.compact("compact 2 physical", &pb.CompactionRequest{Revision: 2, Physical: true})
	p.rng("range at revision 1 after compacting 2", &pb.RangeRequest{Key: b("a"), Revision: 1})
	p.rng("range at revision 2 after compacting 2", &pb.RangeRequest{Key: b("a"), Revision: 2})
	p.txn("txn range at revision -1 after compacting", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("a"), Revision: -1}))})
	p.txn("txn range at revision 1 after compacting 2", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("a"), Revision: 1}))})
}

// TestCompaction covers reads around a compacted revision, tombstones,
// physical and logical compaction, and the errors of each.
func TestCompaction(t *testing.T) {
	p := newPair(t, options{})
	revs := map[string]int64{}
	for _, s := range []struct {
		name string
		req  proto.Message
	}{
		{"a1", put("a", "1")},
		{"a2", put("a", "2")},
		{"b1", put("b", "1")},
		{"del a", del("a", "")},
		{"c1", put("c", "1")},
		{"a3", put("a", "3")},
		{"d1", put("d", "1")},
		{"del d", del("d", "")},
		{"e1", put("e", "1")},
		{"b2", put("b", "2")},
	} {
		var rev int64
		switch r := s.req.(type) {
		case *pb.PutRequest:
			rev = p.put("history "+s.name, r).GetHeader().GetRevision()
		case *pb.DeleteRangeRequest:
			rev = p.del("history "+s.name, r).GetHeader().GetRevision()
		}
		revs[s.name] = rev
	}
	cur := revs["b2"]

	// reads is the set of reads made around each compaction point.
	reads := func(p *pair, label string, at int64) {
		for _, r := range []struct {
			name string
			rev  int64
		}{{"one before", at - 1}, {"exactly at", at}, {"one after", at + 1}} {
			if r.rev > cur {
				continue
			}
			n := fmt.Sprintf("%s: range %s the compact revision", label, r.name)
			p.rng(n, &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: r.rev})
			p.rng(n+", count_only", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: r.rev, CountOnly: true})
			p.rng(n+", keys_only", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: r.rev, KeysOnly: true})
			p.rng(n+", single key a", &pb.RangeRequest{Key: b("a"), Revision: r.rev})
			p.rng(n+", serializable", &pb.RangeRequest{Key: b("b"), Revision: r.rev, Serializable: true})
			p.rng(n+", sorted with limit", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: r.rev, Limit: 1, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND})
			p.txn(n+", in a txn", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: r.rev}))})
			p.txn(n+", in a write txn", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("a"), Revision: r.rev}), opDel("nothing", ""))})
			sr := &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: r.rev}
			p.stream(n+", RangeStream", sr)
		}
	}

	p.run("logical compaction", func(p *pair) {
		at := revs["c1"]
		p.compact("compact at c1", &pb.CompactionRequest{Revision: at})
		reads(p, "after compacting c1", at)
		p.txn("txn range at revision -1 after compaction", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("a"), Revision: -1}))})
		p.rng("plain range at revision -1 after compaction", &pb.RangeRequest{Key: b("a"), Revision: -1})
		for _, c := range []struct {
			name string
			rev  int64
			code codes.Code
		}{
			{"compact the same revision again", at, codes.OutOfRange},
			{"compact an older revision", at - 1, codes.OutOfRange},
			{"compact 0", 0, codes.OutOfRange},
			{"compact -1", -1, codes.OutOfRange},
			{"compact a future revision", cur + 1, codes.OutOfRange},
			{"compact a far future revision", 1 << 50, codes.OutOfRange},
		} {
			for _, phys := range []bool{false, true} {
				r := &pb.CompactionRequest{Revision: c.rev, Physical: phys}
				p.wantErr(fmt.Sprintf("%s (physical %v)", c.name, phys), r, callCompact(r), c.code)
			}
		}
	})

	p.run("physical compaction drops tombstones", func(p *pair) {
		at := revs["del d"]
		p.compact("physical compact at the delete of d", &pb.CompactionRequest{Revision: at, Physical: true})
		reads(p, "after compacting del d", at)
		p.rng("history of d is gone", &pb.RangeRequest{Key: b("d"), Revision: at})
	})

	p.run("compact the current revision", func(p *pair) {
		p.compact("compact at the current revision", &pb.CompactionRequest{Revision: cur})
		reads(p, "after compacting the current revision", cur)
		p.put("write after compacting everything", &pb.PutRequest{Key: b("a"), Value: b("4"), PrevKv: true})
		p.rng("versions continue after compaction", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey})
		p.del("delete after compaction", &pb.DeleteRangeRequest{Key: fromKey, RangeEnd: fromKey, PrevKv: true})
		p.compact("compact the delete-everything revision, physical", &pb.CompactionRequest{Revision: cur + 2, Physical: true})
		p.rng("empty after compaction", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: cur + 2})
		p.rng("count after compaction", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, CountOnly: true})
		p.put("recreate a deleted and compacted key", put("d", "again"))
		p.rng("recreated key starts at version 1", get("d"))
	})
}
