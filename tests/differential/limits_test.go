package differential

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// limitBytes is --max-request-bytes for TestRequestTooLarge: small, so
// requests just over it stay cheap. gRPC's own receive limit is this plus
// 512 KiB on etcd.
const limitBytes = 32 << 10

// TestRequestTooLarge covers the request size limits: the server's check
// on proposals (InvalidArgument "etcdserver: request is too large") and
// gRPC's receive limit further out.
func TestRequestTooLarge(t *testing.T) {
	p := newPair(t, options{maxRequestBytes: limitBytes})
	over := strings.Repeat("x", limitBytes+1)

	p.run("under the limit", func(p *pair) {
		p.put("value of limit-128 bytes", put("v", strings.Repeat("v", limitBytes-128)))
		p.rng("read it back", &pb.RangeRequest{Key: b("v"), KeysOnly: true})
		var o []*pb.RequestOp
		for i := 0; i < 30; i++ {
			o = append(o, opPut(fmt.Sprintf("t/%02d", i), strings.Repeat("t", 1000)))
		}
		p.txn("txn of 30 KB", &pb.TxnRequest{Success: o})
	})

	p.run("over the limit", func(p *pair) {
		for _, c := range []struct {
			name string
			req  proto.Message
			f    call
		}{
			{"put value of limit+1 bytes", put("big", over), callPut(put("big", over))},
			{"put key of limit+1 bytes", put(over, "v"), callPut(put(over, "v"))},
			{"delete with a key of limit+1 bytes", del(over, ""), callDel(del(over, ""))},
			{"delete range with an end of limit+1 bytes", del("a", over), callDel(del("a", over))},
		} {
			p.wantErr(c.name, c.req, c.f, codes.InvalidArgument)
		}
		var o []*pb.RequestOp
		for i := 0; i < 40; i++ {
			o = append(o, opPut(fmt.Sprintf("t/%02d", i), strings.Repeat("t", 1000)))
		}
		tx := &pb.TxnRequest{Success: o}
		p.wantErr("txn of 40 KB", tx, callTxn(tx), codes.InvalidArgument)
		tx = &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("v", pb.Compare_EQUAL, over)}, Success: ops(opPut("c", "1"))}
		p.wantErr("write txn whose compare is over the limit", tx, callTxn(tx), codes.InvalidArgument)
		for _, c := range []struct {
			name string
			req  proto.Message
			f    call
		}{
			{"empty key with an oversized value", &pb.PutRequest{Value: b(over)}, callPut(&pb.PutRequest{Value: b(over)})},
			{"ignore_value with an oversized value", &pb.PutRequest{Key: b("k"), Value: b(over), IgnoreValue: true}, callPut(&pb.PutRequest{Key: b("k"), Value: b(over), IgnoreValue: true})},
			{"oversized put of a missing key with ignore_lease", &pb.PutRequest{Key: b("missing"), Value: b(over), IgnoreLease: true}, callPut(&pb.PutRequest{Key: b("missing"), Value: b(over), IgnoreLease: true})},
			{"oversized put with a nonexistent lease", &pb.PutRequest{Key: b("k"), Value: b(over), Lease: 77}, callPut(&pb.PutRequest{Key: b("k"), Value: b(over), Lease: 77})},
		} {
			p.step(c.name, c.req, c.f)
		}
		dupBig := &pb.TxnRequest{Success: ops(opPut("d", over), opPut("d", "2"))}
		p.step("oversized txn with a duplicate key", dupBig, callTxn(dupBig))
		futBig := &pb.TxnRequest{Success: ops(opPut("d", over), opGet(&pb.RangeRequest{Key: b("d"), Revision: 1 << 40}))}
		p.step("oversized txn with a future revision", futBig, callTxn(futBig))
		tx = &pb.TxnRequest{Success: ops(opGet(get(over)))}
		p.txn("read-only txn over the limit (served without a proposal)", tx)
		p.rng("range with a key over the limit", get(over))
		p.rng("nothing written", &pb.RangeRequest{Key: fromKey, RangeEnd: fromKey, KeysOnly: true})
	})

	p.run("over gRPC's receive limit", func(p *pair) {
		huge := strings.Repeat("h", limitBytes+512<<10+1)
		p.wantErr("put over max-request-bytes + 512 KiB", put("h", huge), callPut(put("h", huge)), codes.ResourceExhausted)
		p.wantErr("range over max-request-bytes + 512 KiB", get(huge), callRange(get(huge)), codes.ResourceExhausted)
		just := strings.Repeat("h", limitBytes+512<<10-64)
		p.wantErr("put just under gRPC's limit", put("h", just), callPut(put("h", just)), codes.InvalidArgument)
	})

	// The exact size at which a put becomes too large. etcd measures the
	// proposal it wraps around the request, and that wrapper holds a
	// request ID built from the low 16 bits of the member ID over a
	// millisecond clock, so etcd's own threshold moves by up to three
	// bytes with the member ID. The comparison therefore adjusts etcd's
	// measured threshold to the ID length etcd would use with the other
	// side's member ID, and requires exactly that. It runs last: the
	// probes succeed a different number of times on each side, so the
	// revisions part ways afterwards.
	p.run("threshold", func(p *pair) {
		var th [2]int
		var idLen [2]int
		for i, s := range p.sides() {
			th[i] = largestPut(p, s)
			idLen[i] = etcdRequestIDLen(p, s)
		}
		want := th[0] + idLen[0] - idLen[1]
		p.t.Logf("largest accepted value for a 1-byte key with max-request-bytes %d: etcd %d (request IDs of %d bytes), %s %d; etcd with %s's member ID would accept %d",
			limitBytes, th[0], idLen[0], p.other.name, th[1], p.other.name, want)
		if th[1] != want {
			p.differ("largest accepted put (key \"z\", max-request-bytes 32768)",
				fmt.Sprintf("etcd accepts values up to %d bytes (%d with %s's member ID) and answers InvalidArgument \"etcdserver: request is too large\" above; %s accepts up to %d bytes",
					th[0], want, p.other.name, p.other.name, th[1]))
		}
	})
}

// etcdRequestIDLen is the varint length of the request IDs etcd would put
// in its proposals on a member with s's member ID: the ID's low 16 bits
// in the top two bytes, then the low 40 bits of the clock in
// milliseconds, then an 8-bit counter.
func etcdRequestIDLen(p *pair, s *side) int {
	ctx, cancel := reqCtx()
	defer cancel()
	r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: b("z"), Serializable: true})
	if err != nil {
		p.t.Fatalf("member ID of %s: %v", s.name, err)
	}
	id := uint64(uint16(r.Header.MemberId))<<48 | (uint64(time.Now().UnixMilli())&(1<<40-1))<<8
	return protowire.SizeVarint(id)
}

// largestPut bisects the largest value a put of key "z" may carry on s.
func largestPut(p *pair, s *side) int {
	ok := func(n int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := s.kv.Put(ctx, put("z", strings.Repeat("z", n)))
		return err == nil
	}
	lo, hi := limitBytes-256, limitBytes+1 // ok(lo) holds, ok(hi) does not
	if !ok(lo) || ok(hi) {
		p.t.Errorf("harness: %s: threshold outside [%d, %d]", s.name, lo, hi)
		return 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}
