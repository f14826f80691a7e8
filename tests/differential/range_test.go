package differential

import (
	"fmt"
	"math"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// rangeFixture is the history the range tests read: revisions recorded
// from etcd's answers (the other side must agree, or the seeding steps
// already reported it).
type rangeFixture struct {
	beforeS   int64 // revision before any s/ key existed
	midS      int64 // revision halfway through writing s/
	afterDel  int64 // revision of the delete of a/2
	current   int64 // revision after seeding
	sKeys     []string
	midCreate int64 // a create revision in the middle of s/
	midMod    int64 // a mod revision in the middle of s/
}

// seedRanges writes a history with many ties for sorting: 40 keys under
// s/ whose values, versions, and create and mod revisions are each shared
// by several keys, and whose create order is not their key order.
func seedRanges(p *pair) rangeFixture {
	var f rangeFixture
	for _, kv := range [][2]string{{"a", "1"}, {"a/1", "x"}, {"a/2", "y"}, {"a/3", "z"}, {"b", "2"}, {"c", "3"}, {"a", "1b"}} {
		p.put("seed "+kv[0], put(kv[0], kv[1]))
	}
	f.afterDel = p.del("seed delete a/2", del("a/2", "")).GetHeader().GetRevision()
	f.beforeS = p.put("seed d", put("d", "4")).GetHeader().GetRevision()
	const n = 40
	for i := 0; i < n; i++ {
		// Stride 7 through 40 keys: creation order differs from key order.
		j := (i * 7) % n
		f.sKeys = append(f.sKeys, fmt.Sprintf("s/%03d", j))
	}
	// Txns of four puts: four keys share each create and mod revision.
	for i := 0; i < n; i += 4 {
		var o []*pb.RequestOp
		for _, k := range f.sKeys[i : i+4] {
			o = append(o, opPut(k, fmt.Sprintf("v%d", len(k)%3+i%5)))
		}
		r := p.txn(fmt.Sprintf("seed s/ batch %d", i/4), &pb.TxnRequest{Success: o})
		if i == n/2 {
			f.midS = r.GetHeader().GetRevision()
			f.midCreate = f.midS
		}
	}
	// Bump some keys to version 2 and 3, in batches again.
	for round := 0; round < 2; round++ {
		for i := round; i < n; i += 12 {
			var o []*pb.RequestOp
			for _, k := range f.sKeys[i : i+3] {
				o = append(o, opPut(k, fmt.Sprintf("w%d", (i+round)%4)))
			}
			r := p.txn(fmt.Sprintf("bump s/ round %d at %d", round, i), &pb.TxnRequest{Success: o})
			if round == 0 && i == 12 {
				f.midMod = r.GetHeader().GetRevision()
			}
		}
	}
	f.current = p.rng("current revision", get("a")).GetHeader().GetRevision()
	return f
}

// TestRange covers every RangeRequest field alone and in combination.
func TestRange(t *testing.T) {
	p := newPair(t, options{})
	f := seedRanges(p)

	p.run("shapes", func(p *pair) {
		p.rng("single existing key", get("a"))
		p.rng("single missing key", get("a/0"))
		p.rng("single deleted key", get("a/2"))
		p.rng("prefix a/", &pb.RangeRequest{Key: b("a/"), RangeEnd: prefixEnd("a/")})
		p.rng("prefix a", &pb.RangeRequest{Key: b("a"), RangeEnd: prefixEnd("a")})
		p.rng("half-open [a/1, a/3)", rng("a/1", "a/3"))
		p.rng("from key c", &pb.RangeRequest{Key: b("c"), RangeEnd: fromKey})
		p.rng("from key past the last key", &pb.RangeRequest{Key: b("zzz"), RangeEnd: fromKey})
		p.rng("key greater than end", rng("c", "a"))
		p.rng("key equal to end", rng("b", "b"))
		p.rng("full range \\x00..\\x00", all())
		p.rng("from \\x01", &pb.RangeRequest{Key: b("\x01"), RangeEnd: fromKey})
		p.rng("end is \\x00\\x00, not from-key", rng("a", "\x00\x00"))
		p.rng("end just after the key", rng("a", "a\x00"))
	})

	p.run("limit", func(p *pair) {
		s := &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/")}
		for _, l := range []int64{1, 2, 39, 40, 41, 1000, -1, -100} {
			r := clone(s)
			r.Limit = l
			p.rng(fmt.Sprintf("limit %d of 40", l), r)
		}
		for _, l := range []int64{math.MaxInt64, math.MaxInt64 - 1, 1 << 62, math.MinInt64} {
			r := clone(s)
			r.Limit = l
			p.rng(fmt.Sprintf("limit %d", l), r)
			r.SortTarget, r.SortOrder = pb.RangeRequest_MOD, pb.RangeRequest_DESCEND
			p.rng(fmt.Sprintf("limit %d sorted", l), r)
		}
		p.rng("limit 1 on a single key", &pb.RangeRequest{Key: b("a"), Limit: 1})
		p.rng("limit 1 on a missing key", &pb.RangeRequest{Key: b("nope"), Limit: 1})
		p.rng("limit 1 over a deleted key", &pb.RangeRequest{Key: b("a/"), RangeEnd: prefixEnd("a/"), Limit: 1})
		p.rng("limit with count_only", &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/"), Limit: 3, CountOnly: true})
		p.rng("limit with keys_only", &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/"), Limit: 3, KeysOnly: true})
		p.rng("limit at an old revision", &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/"), Limit: 3, Revision: f.midS})
		p.rng("limit on the full range", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Limit: 5})
	})

	p.run("revision", func(p *pair) {
		for _, rv := range []struct {
			name string
			rev  int64
		}{
			{"revision 1 (empty store)", 1},
			{"revision 2", 2},
			{"revision just before the delete", f.afterDel - 1},
			{"revision of the delete", f.afterDel},
			{"revision before s/", f.beforeS},
			{"revision mid s/", f.midS},
			{"current revision", f.current},
			{"future revision", f.current + 1},
			{"far future revision", 1 << 62},
			{"revision -1", -1},
			{"revision -100", -100},
			{"revision MaxInt64", math.MaxInt64},
			{"revision MinInt64", math.MinInt64},
		} {
			p.rng(rv.name+" full range", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: rv.rev})
			p.rng(rv.name+" single key a/2", &pb.RangeRequest{Key: b("a/2"), Revision: rv.rev})
			p.rng(rv.name+" count only", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Revision: rv.rev, CountOnly: true})
			p.rng(rv.name+" serializable", &pb.RangeRequest{Key: b("a"), Revision: rv.rev, Serializable: true})
		}
		p.wantErr("future revision is OutOfRange", &pb.RangeRequest{Key: b("a"), Revision: f.current + 1},
			callRange(&pb.RangeRequest{Key: b("a"), Revision: f.current + 1}), codes.OutOfRange)
	})

	p.run("count_only and keys_only", func(p *pair) {
		pre := func(r *pb.RangeRequest) *pb.RangeRequest {
			r.Key, r.RangeEnd = b("a"), prefixEnd("a")
			return r
		}
		p.rng("count_only prefix", pre(&pb.RangeRequest{CountOnly: true}))
		p.rng("count_only single key", &pb.RangeRequest{Key: b("a"), CountOnly: true})
		p.rng("count_only missing key", &pb.RangeRequest{Key: b("a/2"), CountOnly: true})
		p.rng("count_only and keys_only", pre(&pb.RangeRequest{CountOnly: true, KeysOnly: true}))
		p.rng("count_only with sort", pre(&pb.RangeRequest{CountOnly: true, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND}))
		p.rng("count_only with a filter that drops everything", pre(&pb.RangeRequest{CountOnly: true, MinModRevision: 1 << 40}))
		p.rng("keys_only prefix", pre(&pb.RangeRequest{KeysOnly: true}))
		p.rng("keys_only single key", &pb.RangeRequest{Key: b("a"), KeysOnly: true})
		p.rng("keys_only at an old revision", pre(&pb.RangeRequest{KeysOnly: true, Revision: f.afterDel - 1}))
		p.rng("keys_only sorted by value", pre(&pb.RangeRequest{KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND}))
		p.rng("keys_only sorted by value, order none", pre(&pb.RangeRequest{KeysOnly: true, SortTarget: pb.RangeRequest_VALUE}))
		p.rng("keys_only with a filter and limit", pre(&pb.RangeRequest{KeysOnly: true, MinCreateRevision: 3, Limit: 1}))
		p.rng("keys_only serializable", pre(&pb.RangeRequest{KeysOnly: true, Serializable: true}))
	})

	p.run("serializable", func(p *pair) {
		p.rng("serializable prefix", &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/"), Serializable: true, Limit: 4})
		p.rng("serializable at a past revision", &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/"), Serializable: true, Revision: f.midS})
		p.rng("serializable at a future revision", &pb.RangeRequest{Key: b("s/"), Serializable: true, Revision: f.current + 5})
	})

	p.run("sort", func(p *pair) {
		targets := []pb.RangeRequest_SortTarget{pb.RangeRequest_KEY, pb.RangeRequest_VERSION, pb.RangeRequest_CREATE, pb.RangeRequest_MOD, pb.RangeRequest_VALUE}
		orders := []pb.RangeRequest_SortOrder{pb.RangeRequest_NONE, pb.RangeRequest_ASCEND, pb.RangeRequest_DESCEND}
		for _, tg := range targets {
			for _, o := range orders {
				name := fmt.Sprintf("sort %s %s", tg, o)
				base := &pb.RangeRequest{Key: b("s/"), RangeEnd: prefixEnd("s/"), SortTarget: tg, SortOrder: o}
				p.rng(name+" (40 keys with ties)", base)
				r := clone(base)
				r.Limit = 7
				p.rng(name+" limit 7", r)
				r = clone(base)
				r.KeysOnly, r.Limit = true, 13
				p.rng(name+" keys_only limit 13", r)
				r = clone(base)
				r.Revision = f.midS
				p.rng(name+" at the mid revision", r)
				r = clone(base)
				r.Key, r.RangeEnd = fromKey, fromKey
				p.rng(name+" full range", r)
			}
		}
	})

	p.run("filters", func(p *pair) {
		type filt struct {
			name                       string
			minMod, maxMod, minC, maxC int64
		}
		fs := []filt{
			{name: "min_mod_revision", minMod: f.midMod},
			{name: "max_mod_revision", maxMod: f.midMod},
			{name: "min_create_revision", minC: f.midCreate},
			{name: "max_create_revision", maxC: f.midCreate},
			{name: "mod window", minMod: f.beforeS, maxMod: f.midMod},
			{name: "create window", minC: f.beforeS + 1, maxC: f.midCreate},
			{name: "min over max (empty)", minMod: f.midMod + 1, maxMod: f.midMod},
			{name: "all four", minMod: 2, maxMod: f.current, minC: 2, maxC: f.midCreate},
			{name: "negative bounds", minMod: -5, maxC: -1},
			{name: "bounds beyond the store", minC: f.current + 10},
			{name: "extreme bounds", minMod: math.MinInt64, maxMod: math.MaxInt64, minC: math.MinInt64, maxC: math.MaxInt64},
		}
		for _, fl := range fs {
			base := &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey,
				MinModRevision: fl.minMod, MaxModRevision: fl.maxMod, MinCreateRevision: fl.minC, MaxCreateRevision: fl.maxC}
			p.rng(fl.name, base)
			for _, l := range []int64{1, 3, 10} {
				r := clone(base)
				r.Limit = l
				p.rng(fmt.Sprintf("%s limit %d", fl.name, l), r)
			}
			r := clone(base)
			r.Limit, r.SortTarget, r.SortOrder = 4, pb.RangeRequest_CREATE, pb.RangeRequest_DESCEND
			p.rng(fl.name+" limit 4 sorted by create descending", r)
			r = clone(base)
			r.CountOnly = true
			p.rng(fl.name+" count_only", r)
			r = clone(base)
			r.Revision, r.Limit = f.midS, 2
			p.rng(fl.name+" at the mid revision limit 2", r)
		}
	})

	p.run("invalid sort options", func(p *pair) {
		for _, r := range []*pb.RangeRequest{
			{Key: b("a"), SortOrder: 3},
			{Key: b("a"), SortOrder: -1},
			{Key: b("a"), SortOrder: 1000},
			{Key: b("a"), SortTarget: 5},
			{Key: b("a"), SortTarget: -1},
			{Key: b("a"), SortTarget: 5, SortOrder: pb.RangeRequest_ASCEND},
			{Key: b("a"), SortTarget: pb.RangeRequest_VALUE, SortOrder: 9},
			{Key: b("a"), SortTarget: 77, SortOrder: 9, Revision: 1 << 40},
		} {
			p.wantErr("invalid sort option", r, callRange(r), codes.InvalidArgument)
			tx := &pb.TxnRequest{Success: ops(opGet(r))}
			p.wantErr("invalid sort option inside a txn", tx, callTxn(tx), codes.InvalidArgument)
			tx = &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", pb.Compare_LESS, 0)}, Success: ops(opGet(r))}
			p.wantErr("invalid sort option inside the txn branch not taken", tx, callTxn(tx), codes.InvalidArgument)
		}
	})
	p.rng("no revision change from reads", get("a"))
}

func clone(r *pb.RangeRequest) *pb.RangeRequest {
	return proto.Clone(r).(*pb.RangeRequest)
}
