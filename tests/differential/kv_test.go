package differential

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
)

// TestPutGetDelete covers the single-request write path: revisions,
// versions, prev_kv, no-op deletes, odd keys and values.
func TestPutGetDelete(t *testing.T) {
	p := newPair(t, options{})

	p.run("put", func(p *pair) {
		p.put("first put", put("a", "1"))
		p.put("overwrite with prev_kv", &pb.PutRequest{Key: b("a"), Value: b("2"), PrevKv: true})
		p.put("new key with prev_kv", &pb.PutRequest{Key: b("b"), Value: b("1"), PrevKv: true})
		p.put("same value again", &pb.PutRequest{Key: b("b"), Value: b("1"), PrevKv: true})
		p.put("empty value", &pb.PutRequest{Key: b("e"), PrevKv: true})
		p.put("empty value over empty value", &pb.PutRequest{Key: b("e"), PrevKv: true})
		p.rng("get a", get("a"))
		p.rng("get b", get("b"))
		p.rng("get empty value", get("e"))
		p.rng("get missing", get("zz"))
	})

	p.run("delete", func(p *pair) {
		p.del("delete with prev_kv", &pb.DeleteRangeRequest{Key: b("a"), PrevKv: true})
		p.del("delete again, nothing to delete", &pb.DeleteRangeRequest{Key: b("a"), PrevKv: true})
		p.rng("revision after no-op delete", get("a"))
		p.put("recreate after delete", &pb.PutRequest{Key: b("a"), Value: b("3"), PrevKv: true})
		p.rng("recreated key has a new create_revision and version 1", get("a"))
		p.del("delete without prev_kv", del("b", ""))
		p.del("delete missing key without prev_kv", del("b", ""))
	})

	p.run("delete ranges", func(p *pair) {
		for _, k := range []string{"r/a", "r/b", "r/c", "r/d", "s", "t"} {
			p.put("seed "+k, put(k, "v-"+k))
		}
		p.del("half-open range", &pb.DeleteRangeRequest{Key: b("r/a"), RangeEnd: b("r/c"), PrevKv: true})
		p.del("key greater than end", &pb.DeleteRangeRequest{Key: b("r/d"), RangeEnd: b("r/a"), PrevKv: true})
		p.del("key equal to end", &pb.DeleteRangeRequest{Key: b("r/c"), RangeEnd: b("r/c"), PrevKv: true})
		p.del("range over nothing", &pb.DeleteRangeRequest{Key: b("q"), RangeEnd: b("qz"), PrevKv: true})
		p.del("prefix", &pb.DeleteRangeRequest{Key: b("r/"), RangeEnd: prefixEnd("r/"), PrevKv: true})
		p.del("from key", &pb.DeleteRangeRequest{Key: b("t"), RangeEnd: fromKey, PrevKv: true})
		p.rng("what is left", all())
		p.del("everything", &pb.DeleteRangeRequest{Key: fromKey, RangeEnd: fromKey, PrevKv: true})
		p.del("everything again, nothing left", &pb.DeleteRangeRequest{Key: fromKey, RangeEnd: fromKey, PrevKv: true})
		p.rng("empty store after deletes", all())
	})

	p.run("binary keys and values", func(p *pair) {
		keys := []string{"\x00", "\x00\x00", "\x01", "a\x00", "a\x00b", "a\xff", "\xff", "\xff\xff", "\xfe\xff"}
		for _, k := range keys {
			p.put(fmt.Sprintf("put %q", k), &pb.PutRequest{Key: b(k), Value: b(k + "\x00\xff"), PrevKv: true})
		}
		for _, k := range keys {
			p.rng(fmt.Sprintf("get %q", k), get(k))
		}
		p.rng("full range sees every binary key", all())
		p.rng("from \\xff", &pb.RangeRequest{Key: b("\xff"), RangeEnd: fromKey})
		p.rng("prefix \\xff", &pb.RangeRequest{Key: b("\xff"), RangeEnd: prefixEnd("\xff")})
		p.rng("prefix a\\x00", &pb.RangeRequest{Key: b("a\x00"), RangeEnd: prefixEnd("a\x00")})
		p.rng("range [\\x00, \\x01)", rng("\x00", "\x01"))
		p.rng("range [\\x00\\x00, \\x00\\x00\\x00)", rng("\x00\x00", "\x00\x00\x00"))
		p.rng("range end \\x00\\x00 is not from-key", rng("\x00", "\x00\x00"))
		var all256 []byte
		for i := 0; i < 256; i++ {
			all256 = append(all256, byte(i))
		}
		p.put("every byte value as value", &pb.PutRequest{Key: b("bytes"), Value: all256})
		p.put("every byte value as key", &pb.PutRequest{Key: all256[1:], Value: b("k")})
		p.rng("get every byte value", get("bytes"))
		p.rng("get key of every byte value", &pb.RangeRequest{Key: all256[1:]})
		p.del("delete from \\xff on", &pb.DeleteRangeRequest{Key: b("\xff"), RangeEnd: fromKey, PrevKv: true})
		p.del("delete [\\x00, a)", &pb.DeleteRangeRequest{Key: b("\x00"), RangeEnd: b("a"), PrevKv: true})
		p.rng("binary keys left", all())
	})

	p.run("large keys and values", func(p *pair) {
		big := strings.Repeat("k", 10<<10)
		p.put("10 KiB key", put(big, "v"))
		p.rng("get 10 KiB key", get(big))
		p.put("512 KiB value", put("bigval", strings.Repeat("v", 512<<10)))
		p.rng("get 512 KiB value keys only", &pb.RangeRequest{Key: b("bigval"), KeysOnly: true})
		p.rng("count a 10 KiB key range", &pb.RangeRequest{Key: b(big), RangeEnd: fromKey, CountOnly: true})
		p.del("delete both", &pb.DeleteRangeRequest{Key: b("bigval"), RangeEnd: fromKey})
	})

	p.run("empty key", func(p *pair) {
		p.wantErr("range with empty key", &pb.RangeRequest{}, callRange(&pb.RangeRequest{}), codes.InvalidArgument)
		r := &pb.RangeRequest{RangeEnd: b("z")}
		p.wantErr("range with empty key and a range end", r, callRange(r), codes.InvalidArgument)
		r = &pb.RangeRequest{RangeEnd: fromKey}
		p.wantErr("range with empty key and from-key end", r, callRange(r), codes.InvalidArgument)
		r = &pb.RangeRequest{SortOrder: 7}
		p.wantErr("empty key reported before invalid sort order", r, callRange(r), codes.InvalidArgument)
		w := &pb.PutRequest{Value: b("v")}
		p.wantErr("put with empty key", w, callPut(w), codes.InvalidArgument)
		w = &pb.PutRequest{Value: b("v"), IgnoreValue: true, Lease: 5, IgnoreLease: true}
		p.wantErr("empty key reported before value and lease provided", w, callPut(w), codes.InvalidArgument)
		d := &pb.DeleteRangeRequest{RangeEnd: b("z")}
		p.wantErr("delete with empty key", d, callDel(d), codes.InvalidArgument)
		d = &pb.DeleteRangeRequest{RangeEnd: fromKey}
		p.wantErr("delete everything spelled with an empty key", d, callDel(d), codes.InvalidArgument)
		for _, tx := range []*pb.TxnRequest{
			{Compare: []*pb.Compare{{Target: pb.Compare_VERSION}}},
			{Compare: []*pb.Compare{{RangeEnd: fromKey, Target: pb.Compare_VERSION}}},
			{Success: ops(opGet(&pb.RangeRequest{}))},
			{Success: ops(opPutReq(&pb.PutRequest{Value: b("v")}))},
			{Failure: ops(opDelReq(&pb.DeleteRangeRequest{}))},
			{Success: ops(opTxn(&pb.TxnRequest{Failure: ops(opPutReq(&pb.PutRequest{}))}))},
			{Success: ops(opTxn(&pb.TxnRequest{Compare: []*pb.Compare{{Target: pb.Compare_VALUE}}}))},
		} {
			p.wantErr("txn with an empty key somewhere", tx, callTxn(tx), codes.InvalidArgument)
		}
		p.rng("no revision bump after rejected requests", get("a"))
	})
}

// TestIgnoreValueLease covers put's ignore_value / ignore_lease flags and
// leases that do not exist.
func TestIgnoreValueLease(t *testing.T) {
	p := newPair(t, options{})
	// missingOnly cases succeed once the key exists.
	cases := []struct {
		name        string
		req         *pb.PutRequest
		code        codes.Code
		missingOnly bool
	}{
		{"ignore_value", &pb.PutRequest{Key: b("k"), IgnoreValue: true}, codes.InvalidArgument, true},
		{"ignore_lease", &pb.PutRequest{Key: b("k"), Value: b("v"), IgnoreLease: true}, codes.InvalidArgument, true},
		{"ignore_value and ignore_lease", &pb.PutRequest{Key: b("k"), IgnoreValue: true, IgnoreLease: true}, codes.InvalidArgument, true},
		{"ignore_value with a value given", &pb.PutRequest{Key: b("k"), Value: b("v"), IgnoreValue: true}, codes.InvalidArgument, false},
		{"ignore_lease with a lease given", &pb.PutRequest{Key: b("k"), Lease: 7, IgnoreLease: true}, codes.InvalidArgument, false},
		{"both flags with both given", &pb.PutRequest{Key: b("k"), Value: b("v"), Lease: 7, IgnoreValue: true, IgnoreLease: true}, codes.InvalidArgument, false},
		{"nonexistent lease", &pb.PutRequest{Key: b("k"), Value: b("v"), Lease: 0x1234}, codes.NotFound, false},
		{"negative lease", &pb.PutRequest{Key: b("k"), Value: b("v"), Lease: -1}, codes.NotFound, false},
		{"nonexistent lease and ignore_value", &pb.PutRequest{Key: b("k"), Lease: 0x1234, IgnoreValue: true}, codes.NotFound, false},
		{"nonexistent lease with prev_kv", &pb.PutRequest{Key: b("k"), Value: b("v"), Lease: 0x1234, PrevKv: true}, codes.NotFound, false},
	}
	p.run("missing key", func(p *pair) {
		for _, c := range cases {
			p.wantErr(c.name+" on a missing key", c.req, callPut(c.req), c.code)
		}
		p.rng("nothing written", get("k"))
	})
	p.run("existing key", func(p *pair) {
		p.put("create k", put("k", "orig"))
		for _, c := range cases {
			if !c.missingOnly {
				p.wantErr(c.name+" on an existing key", c.req, callPut(c.req), c.code)
			}
		}
		p.put("ignore_value keeps the value", &pb.PutRequest{Key: b("k"), IgnoreValue: true, PrevKv: true})
		p.rng("after ignore_value", get("k"))
		p.put("ignore_lease keeps no lease", &pb.PutRequest{Key: b("k"), Value: b("new"), IgnoreLease: true, PrevKv: true})
		p.rng("after ignore_lease", get("k"))
		p.put("both flags: a pure version bump", &pb.PutRequest{Key: b("k"), IgnoreValue: true, IgnoreLease: true, PrevKv: true})
		p.rng("after both flags", get("k"))
		p.put("empty value", put("k", ""))
		p.put("ignore_value on an empty value", &pb.PutRequest{Key: b("k"), IgnoreValue: true, PrevKv: true})
		p.del("delete k", del("k", ""))
		p.wantErr("ignore_value on a deleted key", &pb.PutRequest{Key: b("k"), IgnoreValue: true},
			callPut(&pb.PutRequest{Key: b("k"), IgnoreValue: true}), codes.InvalidArgument)
	})
	p.run("in txn", func(p *pair) {
		p.put("create t", put("t", "orig"))
		for _, tc := range []struct {
			name string
			tx   *pb.TxnRequest
			code codes.Code
		}{
			{"ignore_value on a missing key in the taken branch",
				&pb.TxnRequest{Success: ops(opPut("x", "1"), opPutReq(&pb.PutRequest{Key: b("missing"), IgnoreValue: true}))}, codes.InvalidArgument},
			{"ignore_lease on a missing key in the taken branch",
				&pb.TxnRequest{Success: ops(opPutReq(&pb.PutRequest{Key: b("missing"), Value: b("v"), IgnoreLease: true}), opPut("x", "1"))}, codes.InvalidArgument},
			{"nonexistent lease in the taken branch",
				&pb.TxnRequest{Success: ops(opPut("x", "1"), opPutReq(&pb.PutRequest{Key: b("y"), Value: b("v"), Lease: 99}))}, codes.NotFound},
			{"nonexistent lease in a nested taken branch",
				&pb.TxnRequest{Success: ops(opPut("x", "1"), opTxn(&pb.TxnRequest{Success: ops(opPutReq(&pb.PutRequest{Key: b("y"), Lease: 99}))}))}, codes.NotFound},
			{"value provided with ignore_value, branch not taken",
				&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("t", pb.Compare_EQUAL, 0)}, Success: ops(opPutReq(&pb.PutRequest{Key: b("t"), Value: b("v"), IgnoreValue: true}))}, codes.InvalidArgument},
		} {
			p.wantErr(tc.name, tc.tx, callTxn(tc.tx), tc.code)
		}
		p.rng("nothing written by failed txns", &pb.RangeRequest{Key: b("x"), RangeEnd: fromKey})
		for _, tc := range []struct {
			name string
			tx   *pb.TxnRequest
		}{
			{"ignore_value on a missing key in the branch not taken",
				&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("t", pb.Compare_EQUAL, 0)},
					Success: ops(opPutReq(&pb.PutRequest{Key: b("missing"), IgnoreValue: true})),
					Failure: ops(opPut("x", "f"))}},
			{"nonexistent lease in the branch not taken",
				&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("t", pb.Compare_GREATER, 0)},
					Success: ops(opPut("x", "s")),
					Failure: ops(opPutReq(&pb.PutRequest{Key: b("y"), Value: b("v"), Lease: 99}))}},
			{"ignore_value and ignore_lease with prev_kv in a txn",
				&pb.TxnRequest{Success: ops(opPutReq(&pb.PutRequest{Key: b("t"), IgnoreValue: true, IgnoreLease: true, PrevKv: true}), opGet(get("t")))}},
		} {
			p.txn(tc.name, tc.tx)
		}
		p.rng("state after txns", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey})
	})
}
