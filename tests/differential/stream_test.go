package differential

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// RangeStream answers are compared after merging the chunks with
// proto.Merge, which the API defines as equal to the Range answer
// (rpc.proto, RangeStreamResponse). Where one stream ends and the next
// begins is the server's flow-control choice, not part of that contract,
// so differing chunk boundaries are logged, not failed. What is compared
// exactly: the error (code and message), the merged answer, and the
// documented shape: header, more and count only on the final chunk.

// stream runs r as a RangeStream on both sides and compares the answers.
func (p *pair) stream(name string, r *pb.RangeRequest) {
	p.t.Helper()
	e := rangeStream(p.etcd, r)
	o := rangeStream(p.other, r)
	p.compareStreams(name, r, e, o)
}

// streamAndRange also runs r as a plain Range, whose answer the merged
// stream must equal. The other side is held to that only where etcd's own
// stream equals its own Range; etcd's deviations are logged (the stream
// comparison above already holds the other side to etcd's answer there).
func (p *pair) streamAndRange(name string, r *pb.RangeRequest) {
	p.t.Helper()
	p.stream(name+" (stream)", r)
	p.rng(name+" (range)", r)
	selfDiff := func(s *side) (outcome, outcome, []string) {
		st := rangeStream(s, r)
		ctx, cancel := reqCtx()
		defer cancel()
		rg, err := s.kv.Range(ctx, r)
		ro, so := outcome{resp: rg, err: err}, st.merged()
		return ro, so, compareOutcomes(ro, so)
	}
	if _, _, d := selfDiff(p.etcd); len(d) > 0 {
		p.t.Logf("note: %s: etcd's own merged RangeStream differs from its Range: %s", name, relabel(d))
		return
	}
	if _, _, d := selfDiff(p.other); len(d) > 0 {
		p.differ(name+": "+p.other.name+"'s merged RangeStream differs from its own Range (etcd's do not)",
			"request: "+show(r), relabel(d))
	}
}

// relabel names the two sides of a Range-vs-stream comparison.
func relabel(d []string) string {
	s := strings.Join(d, "; ")
	return strings.NewReplacer(": etcd ", ": range ", ", other ", ", stream ",
		"only etcd has", "only the range has", "only other has", "only the stream has").Replace(s)
}

// merged is the stream folded into one answer as a client would.
func (s streamResult) merged() outcome {
	if s.err != nil {
		return outcome{err: s.err}
	}
	m := &pb.RangeResponse{}
	for _, c := range s.chunks {
		proto.Merge(m, c.GetRangeResponse())
	}
	return outcome{resp: m}
}

// shape lists how the stream breaks the one-answer contract.
func (s streamResult) shape() []string {
	var d []string
	if s.err == nil && len(s.chunks) == 0 {
		d = append(d, "no chunk at all")
	}
	for i, c := range s.chunks {
		r := c.GetRangeResponse()
		if r == nil {
			d = append(d, fmt.Sprintf("chunk %d has no range_response", i))
			continue
		}
		last := i == len(s.chunks)-1
		switch {
		case last && s.err == nil && r.Header == nil:
			d = append(d, fmt.Sprintf("final chunk %d has no header", i))
		case !last && r.Header != nil:
			d = append(d, fmt.Sprintf("chunk %d of %d carries a header", i, len(s.chunks)))
		}
		if !last && (r.More || r.Count != 0) {
			d = append(d, fmt.Sprintf("chunk %d of %d carries more=%v count=%d", i, len(s.chunks), r.More, r.Count))
		}
	}
	return d
}

func (s streamResult) layout() string {
	var n []string
	for _, c := range s.chunks {
		n = append(n, fmt.Sprint(len(c.GetRangeResponse().GetKvs())))
	}
	return "[" + strings.Join(n, " ") + "]"
}

func (p *pair) compareStreams(name string, r *pb.RangeRequest, e, o streamResult) {
	p.t.Helper()
	eo, oo := e.merged(), o.merged()
	d := compareOutcomes(eo, oo)
	if e.err != nil && o.err != nil && len(e.chunks) != len(o.chunks) {
		d = append(d, fmt.Sprintf("chunks before the error: etcd %d, other %d", len(e.chunks), len(o.chunks)))
	}
	if es := e.shape(); len(es) > 0 {
		p.t.Logf("note: %s: etcd's stream shape: %s", name, strings.Join(es, "; "))
	}
	for _, s := range o.shape() {
		d = append(d, "other's stream shape: "+s)
	}
	p.report(name, r, eo, oo, d)
	if e.layout() != o.layout() {
		p.t.Logf("note: %s: chunk sizes (keys per chunk) differ: etcd %s, %s %s", name, e.layout(), p.other.name, o.layout())
	}
}

// TestRangeStream covers KV.RangeStream: chunked answers over values of
// mixed sizes, limits, revisions, and the requests it refuses.
func TestRangeStream(t *testing.T) {
	// A small request limit makes the chunk-size adaptation (aimed at
	// max-request-bytes per chunk) grow and shrink within a short run.
	p := newPair(t, options{maxRequestBytes: 16 << 10})
	var o []*pb.RequestOp
	flush := func() {
		if len(o) > 0 {
			p.txn("seed batch", &pb.TxnRequest{Success: o})
			o = nil
		}
	}
	for i := 0; i < 230; i++ {
		size := 10
		switch {
		case i >= 50 && i < 100:
			size = 5 << 10
		case i >= 100 && i < 110:
			size = 12 << 10
		}
		o = append(o, opPut(fmt.Sprintf("k/%03d", i), strings.Repeat(string(rune('a'+i%26)), size)))
		if len(o) >= 8 || size > 1000 {
			flush()
		}
	}
	flush()
	mid := p.rng("mid revision", get("k/000")).GetHeader().GetRevision()
	p.put("update one key", put("k/007", "updated"))
	p.del("delete one key", del("k/008", ""))
	cur := p.rng("current revision", get("k/000")).GetHeader().GetRevision()

	pre := func(r *pb.RangeRequest) *pb.RangeRequest {
		r.Key, r.RangeEnd = b("k/"), prefixEnd("k/")
		return r
	}
	p.run("shapes", func(p *pair) {
		p.streamAndRange("full range", all())
		p.streamAndRange("prefix", pre(&pb.RangeRequest{}))
		p.streamAndRange("single key", get("k/003"))
		p.streamAndRange("single missing key", get("k/008"))
		p.streamAndRange("empty range", rng("k/5", "k/4"))
		p.streamAndRange("from key", &pb.RangeRequest{Key: b("k/200"), RangeEnd: fromKey})
		p.streamAndRange("nothing past the end", &pb.RangeRequest{Key: b("z"), RangeEnd: fromKey})
	})
	p.run("limit", func(p *pair) {
		for _, l := range []int64{1, 5, 9, 10, 11, 25, 60, 100, 228, 229, 230, 1000, -1} {
			p.streamAndRange(fmt.Sprintf("limit %d", l), pre(&pb.RangeRequest{Limit: l}))
		}
	})
	p.run("options", func(p *pair) {
		p.streamAndRange("at the mid revision", pre(&pb.RangeRequest{Revision: mid}))
		p.streamAndRange("at the current revision", pre(&pb.RangeRequest{Revision: cur}))
		p.streamAndRange("at revision -1", pre(&pb.RangeRequest{Revision: -1}))
		p.streamAndRange("count_only", pre(&pb.RangeRequest{CountOnly: true}))
		p.streamAndRange("count_only with limit", pre(&pb.RangeRequest{CountOnly: true, Limit: 3}))
		p.streamAndRange("keys_only", pre(&pb.RangeRequest{KeysOnly: true}))
		p.streamAndRange("keys_only with limit", pre(&pb.RangeRequest{KeysOnly: true, Limit: 77}))
		p.streamAndRange("serializable", pre(&pb.RangeRequest{Serializable: true}))
		p.streamAndRange("sort key ascending", pre(&pb.RangeRequest{SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_ASCEND}))
		p.streamAndRange("sort target version, order none", pre(&pb.RangeRequest{SortTarget: pb.RangeRequest_VERSION}))
		p.streamAndRange("sort target value, order none, limit 30", pre(&pb.RangeRequest{SortTarget: pb.RangeRequest_VALUE, Limit: 30}))
	})
	p.run("refused", func(p *pair) {
		for _, c := range []struct {
			name string
			r    *pb.RangeRequest
			code codes.Code
		}{
			{"future revision", pre(&pb.RangeRequest{Revision: cur + 1}), codes.OutOfRange},
			{"empty key", &pb.RangeRequest{RangeEnd: fromKey}, codes.InvalidArgument},
			{"invalid sort order", pre(&pb.RangeRequest{SortOrder: 5}), codes.InvalidArgument},
			{"invalid sort target", pre(&pb.RangeRequest{SortTarget: 9}), codes.InvalidArgument},
			{"sort key descending", pre(&pb.RangeRequest{SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_DESCEND}), codes.Unimplemented},
			{"sort version ascending", pre(&pb.RangeRequest{SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_ASCEND}), codes.Unimplemented},
			{"min_mod_revision", pre(&pb.RangeRequest{MinModRevision: 2}), codes.Unimplemented},
			{"max_create_revision", pre(&pb.RangeRequest{MaxCreateRevision: 2}), codes.Unimplemented},
			{"sort and filter: sort reported first", pre(&pb.RangeRequest{SortOrder: pb.RangeRequest_DESCEND, MaxModRevision: 1}), codes.Unimplemented},
			{"filter and a future revision", pre(&pb.RangeRequest{MinCreateRevision: 1, Revision: cur + 1}), codes.Unimplemented},
		} {
			p.stream(c.name, c.r)
			e := rangeStream(p.etcd, c.r)
			if got := e.merged().code(); got != c.code {
				p.t.Errorf("harness: %s: etcd's stream answered %s, the case expects %s", c.name, e.merged(), c.code)
			}
		}
	})
}
