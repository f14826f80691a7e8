package differential

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
)

var (
	allTargets = []pb.Compare_CompareTarget{pb.Compare_VERSION, pb.Compare_CREATE, pb.Compare_MOD, pb.Compare_VALUE, pb.Compare_LEASE}
	allResults = []pb.Compare_CompareResult{pb.Compare_EQUAL, pb.Compare_GREATER, pb.Compare_LESS, pb.Compare_NOT_EQUAL}
)

// readOnlyTxn wraps compares in a txn whose branches only read, so that
// many compares can run without moving the revisions they test.
func readOnlyTxn(cmps ...*pb.Compare) *pb.TxnRequest {
	return &pb.TxnRequest{Compare: cmps, Success: ops(opGet(get("k"))), Failure: ops(opGet(get("k2")), opGet(get("k")))}
}

// TestTxnCompare covers every compare target against every result, on
// present keys, missing keys and ranges, plus malformed compares.
func TestTxnCompare(t *testing.T) {
	p := newPair(t, options{})
	create := p.put("create k", put("k", "l")).GetHeader().GetRevision()
	mod := p.put("update k", put("k", "m")).GetHeader().GetRevision()
	p.put("create k2", put("k2", "a"))
	p.put("create r/1", put("r/1", "x"))
	p.put("create r/2", put("r/2", "y"))
	p.put("update r/2", put("r/2", "y"))
	p.put("create e (empty value)", put("e", ""))

	p.run("single key", func(p *pair) {
		operands := map[pb.Compare_CompareTarget][]int64{
			pb.Compare_VERSION: {-1, 0, 1, 2, 3},
			pb.Compare_CREATE:  {0, create - 1, create, create + 1},
			pb.Compare_MOD:     {0, mod - 1, mod, mod + 1},
			pb.Compare_LEASE:   {-1, 0, 1},
		}
		values := []string{"", "l", "m", "m\x00", "n"}
		for _, tg := range allTargets {
			for _, res := range allResults {
				if tg == pb.Compare_VALUE {
					for _, v := range values {
						p.txn(fmt.Sprintf("k %s %s %q", tg, res, v), readOnlyTxn(cmpValue("k", res, v)))
					}
					continue
				}
				for _, n := range operands[tg] {
					p.txn(fmt.Sprintf("k %s %s %d", tg, res, n), readOnlyTxn(cmpAny("k", tg, res, n, "")))
				}
			}
		}
		for _, res := range allResults {
			p.txn(fmt.Sprintf("empty value %s \"\"", res), readOnlyTxn(cmpValue("e", res, "")))
		}
	})

	p.run("missing key", func(p *pair) {
		for _, tg := range allTargets {
			for _, res := range allResults {
				for _, n := range []int64{-1, 0, 1} {
					v := map[int64]string{-1: "", 0: "", 1: "a"}[n]
					p.txn(fmt.Sprintf("missing %s %s %d/%q", tg, res, n, v), readOnlyTxn(cmpAny("nope", tg, res, n, v)))
				}
			}
		}
		p.txn("deleted key compares like a missing one", readOnlyTxn(cmpVersion("gone", pb.Compare_EQUAL, 0)))
	})

	p.run("ranges", func(p *pair) {
		for _, end := range []string{"r0", "\x00", "r/2", "r/1", "q", "s"} {
			for _, tg := range allTargets {
				for _, res := range allResults {
					for _, n := range []int64{0, 1, 2, mod} {
						v := map[int64]string{0: "", 1: "x", 2: "y", mod: "z"}[n]
						c := withEnd(cmpAny("r/", tg, res, n, v), end)
						p.txn(fmt.Sprintf("[r/, %q) %s %s %d/%q", end, tg, res, n, v), readOnlyTxn(c))
					}
				}
			}
		}
		p.txn("empty range, version equal 0", readOnlyTxn(withEnd(cmpVersion("q/", pb.Compare_EQUAL, 0), "q0")))
		p.txn("empty range, value equal empty", readOnlyTxn(withEnd(cmpValue("q/", pb.Compare_EQUAL, ""), "q0")))
		p.txn("empty range, value not equal", readOnlyTxn(withEnd(cmpValue("q/", pb.Compare_NOT_EQUAL, "x"), "q0")))
		p.txn("key greater than end", readOnlyTxn(withEnd(cmpVersion("s", pb.Compare_EQUAL, 0), "a")))
		p.txn("key equal to end", readOnlyTxn(withEnd(cmpCreate("k", pb.Compare_GREATER, 0), "k")))
		p.txn("whole keyspace", readOnlyTxn(withEnd(cmpCreate("\x00", pb.Compare_GREATER, 0), "\x00")))
	})

	p.run("malformed compares", func(p *pair) {
		mk := func(tg pb.Compare_CompareTarget, res pb.Compare_CompareResult, u any) *pb.Compare {
			c := &pb.Compare{Key: b("k"), Target: tg, Result: res}
			switch u := u.(type) {
			case *pb.Compare_Value:
				c.TargetUnion = u
			case *pb.Compare_Version:
				c.TargetUnion = u
			case *pb.Compare_CreateRevision:
				c.TargetUnion = u
			case *pb.Compare_ModRevision:
				c.TargetUnion = u
			case *pb.Compare_Lease:
				c.TargetUnion = u
			}
			return c
		}
		cases := []struct {
			name string
			c    *pb.Compare
		}{
			{"version target with a value operand", mk(pb.Compare_VERSION, pb.Compare_GREATER, &pb.Compare_Value{Value: b("zzz")})},
			{"version target with a value operand, equal", mk(pb.Compare_VERSION, pb.Compare_EQUAL, &pb.Compare_Value{Value: b("m")})},
			{"value target with a version operand", mk(pb.Compare_VALUE, pb.Compare_GREATER, &pb.Compare_Version{Version: 1})},
			{"value target with no operand", mk(pb.Compare_VALUE, pb.Compare_GREATER, nil)},
			{"mod target with no operand", mk(pb.Compare_MOD, pb.Compare_GREATER, nil)},
			{"create target with a mod operand", mk(pb.Compare_CREATE, pb.Compare_EQUAL, &pb.Compare_ModRevision{ModRevision: create})},
			{"lease target with a create operand", mk(pb.Compare_LEASE, pb.Compare_LESS, &pb.Compare_CreateRevision{CreateRevision: 100})},
			{"invalid result 4", mk(pb.Compare_VERSION, 4, &pb.Compare_Version{Version: 100})},
			{"invalid result -1", mk(pb.Compare_VERSION, -1, &pb.Compare_Version{Version: 100})},
			{"invalid result on a value", mk(pb.Compare_VALUE, 42, &pb.Compare_Value{Value: b("x")})},
			{"invalid target 5, equal", mk(5, pb.Compare_EQUAL, &pb.Compare_Version{Version: 100})},
			{"invalid target 5, greater", mk(5, pb.Compare_GREATER, &pb.Compare_Version{Version: 100})},
			{"invalid target -1, not equal", mk(-1, pb.Compare_NOT_EQUAL, nil)},
		}
		for _, c := range cases {
			p.txn(c.name, readOnlyTxn(c.c))
			missing := c.c
			missing.Key = b("nope")
			p.txn(c.name+" on a missing key", readOnlyTxn(missing))
		}
	})

	p.run("several compares", func(p *pair) {
		yes := cmpVersion("k", pb.Compare_EQUAL, 2)
		no := cmpValue("k", pb.Compare_EQUAL, "other")
		p.txn("all true", readOnlyTxn(yes, yes, cmpCreate("k2", pb.Compare_GREATER, 0)))
		p.txn("last false", readOnlyTxn(yes, yes, no))
		p.txn("first false", readOnlyTxn(no, yes))
		p.txn("same key twice, contradictory", readOnlyTxn(cmpVersion("k", pb.Compare_GREATER, 1), cmpVersion("k", pb.Compare_LESS, 2)))
		var many []*pb.Compare
		for i := 0; i < 128; i++ {
			many = append(many, cmpVersion(fmt.Sprintf("m%03d", i), pb.Compare_EQUAL, 0))
		}
		p.txn("128 compares", readOnlyTxn(many...))
	})
	p.rng("no revision change from compares", get("k"))
}

// TestTxnOps covers what txn branches do: writes and the reads after them
// in the same txn, nesting, revisions in headers, and checks that fail the
// whole txn before anything is written.
func TestTxnOps(t *testing.T) {
	p := newPair(t, options{})
	p.put("seed x", put("x", "old"))
	p.put("seed y", put("y", "1"))

	p.run("reads and revisions", func(p *pair) {
		p.txn("empty txn", &pb.TxnRequest{})
		p.txn("read-only txn", &pb.TxnRequest{Success: ops(opGet(get("x")), opGet(all()))})
		p.txn("read-only txn, failure branch", &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("x", pb.Compare_EQUAL, "no")}, Failure: ops(opGet(get("y")))})
		p.txn("serializable read-only txn", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Serializable: true}))})
		p.txn("compare only, no ops", &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("x", pb.Compare_EQUAL, "old")}})
		p.txn("delete of nothing does not bump the revision", &pb.TxnRequest{Success: ops(opDel("nothing", ""), opGet(get("x")))})
		p.txn("nested delete of nothing", &pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Success: ops(opDelReq(&pb.DeleteRangeRequest{Key: b("n/"), RangeEnd: prefixEnd("n/"), PrevKv: true}))}))})
		p.txn("ranges with options inside a txn", &pb.TxnRequest{Success: ops(
			opGet(&pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, Limit: 1}),
			opGet(&pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, CountOnly: true}),
			opGet(&pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND}),
			opGet(&pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, MinModRevision: 3}),
			opGet(&pb.RangeRequest{Key: b("x"), Revision: 2}),
		)})
	})

	p.run("writes then reads in one txn", func(p *pair) {
		p.txn("put then read it", &pb.TxnRequest{Success: ops(
			opGet(get("x")),
			opPutReq(&pb.PutRequest{Key: b("x"), Value: b("new"), PrevKv: true}),
			opGet(get("x")),
			opGet(&pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, CountOnly: true}),
		)})
		p.txn("delete then read it", &pb.TxnRequest{Success: ops(
			opDelReq(&pb.DeleteRangeRequest{Key: b("x"), PrevKv: true}),
			opGet(get("x")),
			opDelReq(&pb.DeleteRangeRequest{Key: b("x"), PrevKv: true}),
			opPut("z", "1"),
		)})
		p.txn("read at the current revision inside a write txn", &pb.TxnRequest{Success: ops(
			opPut("w", "1"),
			opGet(&pb.RangeRequest{Key: b("w"), Revision: p.rng("rev", get("y")).GetHeader().GetRevision()}),
			opGet(get("w")),
		)})
		p.txn("several puts share one revision", &pb.TxnRequest{Success: ops(opPut("p1", "a"), opPut("p2", "b"), opPut("p3", "c"), opGet(rng("p", "q")))})
		p.txn("delete range with prev_kv then put elsewhere", &pb.TxnRequest{Success: ops(
			opDelReq(&pb.DeleteRangeRequest{Key: b("p1"), RangeEnd: b("p3"), PrevKv: true}),
			opPut("q", "1"),
			opGet(&pb.RangeRequest{Key: b("p"), RangeEnd: b("r")}),
		)})
		p.txn("failure branch writes", &pb.TxnRequest{
			Compare: []*pb.Compare{cmpVersion("y", pb.Compare_EQUAL, 99)},
			Success: ops(opPut("s", "success")),
			Failure: ops(opPutReq(&pb.PutRequest{Key: b("f"), Value: b("failure"), PrevKv: true}), opGet(get("f"))),
		})
		p.rng("state", all())
	})

	p.run("nested", func(p *pair) {
		p.put("reset x", put("x", "old"))
		p.txn("nested compares see the state before the outer writes", &pb.TxnRequest{Success: ops(
			opPut("x", "new"),
			opTxn(&pb.TxnRequest{
				Compare: []*pb.Compare{cmpValue("x", pb.Compare_EQUAL, "old")},
				Success: ops(opPut("saw", "old"), opGet(get("x"))),
				Failure: ops(opPut("saw", "new"), opGet(get("x"))),
			}),
		)})
		p.rng("saw", get("saw"))
		p.txn("three levels, mixed branches", &pb.TxnRequest{
			Compare: []*pb.Compare{cmpValue("saw", pb.Compare_EQUAL, "old")},
			Success: ops(
				opGet(get("saw")),
				opTxn(&pb.TxnRequest{
					Compare: []*pb.Compare{cmpVersion("nope", pb.Compare_GREATER, 0)},
					Success: ops(opPut("l2", "s")),
					Failure: ops(
						opPut("l2", "f"),
						opTxn(&pb.TxnRequest{Success: ops(opPut("l3", "s"), opGet(rng("l", "m")))}),
						opDel("saw", ""),
					),
				}),
				opGet(rng("l", "m")),
				opTxn(&pb.TxnRequest{}),
			),
		})
		p.txn("nested read-only txn inside a read-only txn", &pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Success: ops(opGet(get("l2")))}))})
		p.txn("nested txn with only a compare", &pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("l2", pb.Compare_EQUAL, "f")}}))})
		p.rng("state", all())
	})

	p.run("checks that fail the whole txn", func(p *pair) {
		cur := p.rng("current revision", get("x")).GetHeader().GetRevision()
		cases := []struct {
			name string
			tx   *pb.TxnRequest
			code codes.Code
		}{
			{"range at a future revision after a put", &pb.TxnRequest{Success: ops(opPut("bad", "1"), opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 1}))}, codes.OutOfRange},
			{"range at the revision the put will create", &pb.TxnRequest{Success: ops(opPut("bad", "1"), opGet(&pb.RangeRequest{Key: b("bad"), Revision: cur + 1}))}, codes.OutOfRange},
			{"range at a future revision before a put", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 10}), opPut("bad", "1"))}, codes.OutOfRange},
			{"range at a future revision in the failure branch taken", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("x", pb.Compare_LESS, 0)}, Failure: ops(opPut("bad", "1"), opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 1}))}, codes.OutOfRange},
			{"range at a future revision in a nested branch taken", &pb.TxnRequest{Success: ops(opPut("bad", "1"), opTxn(&pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 1}))}))}, codes.OutOfRange},
			{"read-only txn at a future revision", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 1}))}, codes.OutOfRange},
		}
		for _, c := range cases {
			p.wantErr(c.name, c.tx, callTxn(c.tx), c.code)
		}
		p.rng("nothing written by failed txns", get("bad"))
		p.txn("future revision in the branch not taken", &pb.TxnRequest{
			Compare: []*pb.Compare{cmpVersion("x", pb.Compare_GREATER, 0)},
			Success: ops(opPut("ok", "1")),
			Failure: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 100})),
		})
		p.txn("future revision in a nested branch not taken", &pb.TxnRequest{Success: ops(
			opPut("ok2", "1"),
			opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("x", pb.Compare_LESS, 0)}, Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: cur + 100}))}),
		)})
	})

	p.run("empty request ops", func(p *pair) {
		empty := &pb.RequestOp{}
		nilRange := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{}}
		nilTxn := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{}}
		for _, c := range []struct {
			name string
			tx   *pb.TxnRequest
		}{
			{"empty op in success", &pb.TxnRequest{Success: ops(opPut("e1", "1"), empty)}},
			{"empty op in failure", &pb.TxnRequest{Success: ops(opPut("e1", "1")), Failure: ops(empty)}},
			{"empty op in a nested txn", &pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Failure: ops(empty)}))}},
			{"empty op after an empty key", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{}), empty)}},
			{"empty op before an empty key", &pb.TxnRequest{Success: ops(empty, opGet(&pb.RangeRequest{}))}},
			{"range op with no request", &pb.TxnRequest{Success: ops(nilRange)}},
		} {
			p.wantErr(c.name, c.tx, callTxn(c.tx), codes.InvalidArgument)
		}
		p.txn("txn op with no request", &pb.TxnRequest{Success: ops(nilTxn)})
		p.rng("nothing written", get("e1"))
	})
}

// TestTxnNegativeRevision covers ranges at negative revisions inside txns.
// A plain Range reads a revision <= 0 as the current one, but a txn first
// checks each range of the branch it takes against the compaction point,
// which is -1 on a store never compacted: -1 passes there, -2 does not,
// and after a compaction every negative revision is "compacted". It has
// its own pair because a write txn that one side runs and the other
// refuses moves the revisions apart for good.
func TestTxnNegativeRevision(t *testing.T) {
	p := newPair(t, options{})
	p.put("seed x", put("x", "1"))
	for _, rev := range []int64{-1, -2, -100} {
		p.rng(fmt.Sprintf("plain range at revision %d", rev), &pb.RangeRequest{Key: b("x"), Revision: rev})
		p.txn(fmt.Sprintf("read-only txn at revision %d before any compaction", rev), &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: rev}))})
		p.rng("stream comparison point", get("x"))
		p.stream(fmt.Sprintf("RangeStream at revision %d", rev), &pb.RangeRequest{Key: b("x"), Revision: rev})
	}
	p.compact("compact at 2", &pb.CompactionRequest{Revision: 2})
	for _, rev := range []int64{-1, -2} {
		p.rng(fmt.Sprintf("plain range at revision %d after compaction", rev), &pb.RangeRequest{Key: b("x"), Revision: rev})
		p.txn(fmt.Sprintf("read-only txn at revision %d after compaction", rev), &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("x"), Revision: rev}))})
	}
	// Last, since a side that runs it moves ahead of the other.
	p.txn("write txn at revision -2", &pb.TxnRequest{Success: ops(opPut("bad", "1"), opGet(&pb.RangeRequest{Key: b("x"), Revision: -2}))})
	p.rng("nothing written", get("bad"))
}

// TestTxnValidation covers the request checks done before a txn runs:
// duplicate keys, too many operations and the order of the checks.
func TestTxnValidation(t *testing.T) {
	p := newPair(t, options{})
	p.put("seed a", put("a", "1"))
	p.put("seed b", put("b", "1"))

	nested := func(succ, fail []*pb.RequestOp) *pb.RequestOp {
		return opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", pb.Compare_GREATER, 0)}, Success: succ, Failure: fail})
	}
	p.run("duplicate keys", func(p *pair) {
		for _, c := range []struct {
			name string
			ops  []*pb.RequestOp
		}{
			{"put, put", ops(opPut("a", "1"), opPut("a", "2"))},
			{"put, put with a range between", ops(opPut("a", "1"), opGet(get("a")), opPut("a", "2"))},
			{"put inside a deleted range", ops(opDel("a", "c"), opPut("b", "2"))},
			{"put before the delete covering it", ops(opPut("b", "2"), opDel("a", "c"))},
			{"put and point delete", ops(opPut("a", "2"), opDel("a", ""))},
			{"put at the start of a deleted range", ops(opDel("a", "b"), opPut("a", "2"))},
			{"put in a prefix delete", ops(opDelReq(&pb.DeleteRangeRequest{Key: b("a"), RangeEnd: prefixEnd("a")}), opPut("a/x", "2"))},
			{"outer put, nested put", ops(opPut("a", "1"), nested(ops(opPut("a", "2")), nil))},
			{"nested put, outer put", ops(nested(nil, ops(opPut("a", "2"))), opPut("a", "1"))},
			{"two nested txns put the same key", ops(nested(ops(opPut("a", "1")), nil), nested(ops(opPut("a", "2")), nil))},
			{"nested else put, earlier nested then put", ops(nested(ops(opPut("a", "1")), nil), nested(nil, ops(opPut("a", "2"))))},
			{"outer delete, nested put", ops(opDel("a", ""), nested(ops(opPut("a", "2")), nil))},
			{"nested delete, outer put", ops(nested(ops(opDel("a", "z")), nil), opPut("b", "2"))},
			{"nested else delete, outer put", ops(nested(nil, ops(opDel("a", ""))), opPut("a", "2"))},
			{"nested delete, later nested put", ops(nested(ops(opDel("a", "c")), nil), nested(nil, ops(opPut("b", "1"))))},
			{"duplicate two levels down", ops(nested(ops(nested(ops(opPut("a", "1"), opPut("a", "2")), nil)), nil))},
			{"duplicate inside one nested branch", ops(nested(nil, ops(opPut("b", "1"), opDel("b", ""))))},
			{"put with \\x00 byte keys", ops(opPut("a\x00", "1"), opPut("a\x00", "2"))},
		} {
			succ := &pb.TxnRequest{Success: c.ops}
			p.wantErr(c.name+" in success", succ, callTxn(succ), codes.InvalidArgument)
			fail := &pb.TxnRequest{Success: ops(opGet(get("a"))), Failure: c.ops}
			p.wantErr(c.name+" in failure (not taken)", fail, callTxn(fail), codes.InvalidArgument)
		}
		p.rng("nothing written", all())
		for _, c := range []struct {
			name string
			ops  []*pb.RequestOp
		}{
			{"then and else put the same key", ops(nested(ops(opPut("a", "then")), ops(opPut("a", "else"))))},
			{"then and else put the same key, then a different outer put", ops(nested(ops(opPut("a", "t")), ops(opPut("a", "e"))), opPut("b", "o"))},
			{"delete, delete", ops(opDel("a", ""), opDel("a", "c"))},
			{"put then range of the same key", ops(opPut("a", "2"), opGet(get("a")))},
			{"put next to a deleted range", ops(opDel("a", "b"), opPut("b", "3"))},
			{"put outside an inverted range", ops(opDel("c", "a"), opPut("b", "4"))},
			{"put at the start of an empty range", ops(opDel("b", "b"), opPut("b", "5"))},
			{"put after a from-key delete", ops(opDelReq(&pb.DeleteRangeRequest{Key: b("a"), RangeEnd: fromKey}), opPut("b", "6"))},
			{"put after a delete of everything", ops(opDelReq(&pb.DeleteRangeRequest{Key: fromKey, RangeEnd: fromKey}), opPut("a", "7"))},
			{"put of the key just after a point delete", ops(opDel("a", ""), opPut("a\x00", "8"))},
			{"nested puts in sibling txns, different keys", ops(nested(ops(opPut("n1", "1")), nil), nested(ops(opPut("n2", "1")), nil))},
			{"else put after then put of the same key, one txn", ops(nested(ops(opPut("a", "t2")), ops(opPut("a", "e2"), opPut("b", "e2"))))},
		} {
			p.txn(c.name, &pb.TxnRequest{Success: c.ops})
			p.rng("state after "+c.name, all())
		}
	})

	p.run("too many operations", func(p *pair) {
		puts := func(n int, prefix string) []*pb.RequestOp {
			var o []*pb.RequestOp
			for i := 0; i < n; i++ {
				o = append(o, opPut(fmt.Sprintf("%s%03d", prefix, i), "v"))
			}
			return o
		}
		cmps := func(n int) []*pb.Compare {
			var c []*pb.Compare
			for i := 0; i < n; i++ {
				c = append(c, cmpVersion(fmt.Sprintf("c%03d", i), pb.Compare_EQUAL, 0))
			}
			return c
		}
		p.txn("128 puts", &pb.TxnRequest{Success: puts(128, "ok/")})
		p.txn("128 compares, 128 success, 128 failure", &pb.TxnRequest{Compare: cmps(128), Success: puts(128, "ok2/"), Failure: puts(128, "f/")})
		for _, c := range []struct {
			name string
			tx   *pb.TxnRequest
		}{
			{"129 puts", &pb.TxnRequest{Success: puts(129, "no/")}},
			{"129 failure ops", &pb.TxnRequest{Failure: puts(129, "no/")}},
			{"129 compares", &pb.TxnRequest{Compare: cmps(129)}},
			{"129 compares with an empty key among them", &pb.TxnRequest{Compare: append(cmps(128), &pb.Compare{Target: pb.Compare_VERSION})}},
			{"nested txn over what is left (100 + 29)", &pb.TxnRequest{Compare: cmps(100), Success: ops(opTxn(&pb.TxnRequest{Success: puts(29, "no/")}))}},
			{"nested compares over what is left (100 + 29)", &pb.TxnRequest{Success: append(puts(99, "no/"), opTxn(&pb.TxnRequest{Compare: cmps(29)}))}},
			{"two levels of nesting over the limit", &pb.TxnRequest{Success: append(puts(64, "no/"), opTxn(&pb.TxnRequest{Success: append(puts(32, "nn/"), opTxn(&pb.TxnRequest{Success: puts(33, "nnn/")}))}))}},
			{"nested width 128 under width 1", &pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Success: puts(128, "no/")}))}},
		} {
			p.wantErr(c.name, c.tx, callTxn(c.tx), codes.InvalidArgument)
		}
		p.txn("nested txn using exactly what is left (100 + 28)", &pb.TxnRequest{Compare: cmps(100), Success: ops(opTxn(&pb.TxnRequest{Success: puts(28, "n28/")}))})
		p.txn("two levels of nesting at the limit (64 + 32 + 32)", &pb.TxnRequest{Success: append(puts(64, "l1/"), opTxn(&pb.TxnRequest{Success: append(puts(32, "l2/"), opTxn(&pb.TxnRequest{Success: puts(32, "l3/")}))}))})
		deep := func(depth int) *pb.TxnRequest {
			tx := &pb.TxnRequest{Success: ops(opGet(get("a")))}
			for i := 1; i < depth; i++ {
				tx = &pb.TxnRequest{Success: ops(opTxn(tx))}
			}
			return tx
		}
		for _, d := range []int{100, 127, 128, 129, 200} {
			p.step(fmt.Sprintf("txn nested %d deep", d), deep(d), callTxn(deep(d)))
		}
		p.txn("nested width 127 under width 1", &pb.TxnRequest{Success: ops(opTxn(&pb.TxnRequest{Success: puts(127, "w127/")}))})
		p.txn("nested width 126 under width 2", &pb.TxnRequest{Success: ops(opGet(get("a")), opTxn(&pb.TxnRequest{Success: puts(126, "w126/")}))})
		p.rng("count after the limit cases", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, CountOnly: true})
	})

	p.run("order of checks", func(p *pair) {
		big := make([]*pb.RequestOp, 129)
		for i := range big {
			big[i] = opPut("dup", "v")
		}
		for _, c := range []struct {
			name string
			tx   *pb.TxnRequest
		}{
			{"too many ops before duplicates", &pb.TxnRequest{Success: big}},
			{"empty key in failure before a duplicate in success", &pb.TxnRequest{Success: ops(opPut("a", "1"), opPut("a", "2")), Failure: ops(opPutReq(&pb.PutRequest{}))}},
			{"invalid sort in failure before a duplicate in success", &pb.TxnRequest{Success: ops(opPut("a", "1"), opPut("a", "2")), Failure: ops(opGet(&pb.RangeRequest{Key: b("a"), SortOrder: 9}))}},
			{"value provided before a duplicate", &pb.TxnRequest{Success: ops(opPut("a", "1"), opPut("a", "2"), opPutReq(&pb.PutRequest{Key: b("v"), Value: b("x"), IgnoreValue: true}))}},
			{"empty op before a duplicate", &pb.TxnRequest{Success: ops(opPut("a", "1"), opPut("a", "2")), Failure: ops(&pb.RequestOp{})}},
			{"duplicate in success before a duplicate in failure", &pb.TxnRequest{Success: ops(opPut("a", "1"), opPut("a", "2")), Failure: ops(opDel("a", "c"), opPut("b", "1"))}},
			{"duplicate before a nonexistent lease", &pb.TxnRequest{Success: ops(opPutReq(&pb.PutRequest{Key: b("l"), Lease: 5}), opPut("l", "2"))}},
			{"duplicate before a future revision", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("a"), Revision: 1 << 40}), opPut("a", "1"), opPut("a", "2"))}},
			{"nonexistent lease before a future revision", &pb.TxnRequest{Success: ops(opPutReq(&pb.PutRequest{Key: b("l"), Lease: 5}), opGet(&pb.RangeRequest{Key: b("a"), Revision: 1 << 40}))}},
			{"future revision before a nonexistent lease", &pb.TxnRequest{Success: ops(opGet(&pb.RangeRequest{Key: b("a"), Revision: 1 << 40}), opPutReq(&pb.PutRequest{Key: b("l"), Lease: 5}))}},
			{"ignore_value on a missing key before a nonexistent lease", &pb.TxnRequest{Success: ops(opPutReq(&pb.PutRequest{Key: b("missing"), IgnoreValue: true}), opPutReq(&pb.PutRequest{Key: b("l"), Lease: 5}))}},
		} {
			p.step(c.name, c.tx, callTxn(c.tx))
		}
	})
}
