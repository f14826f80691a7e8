package differential

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// verbose logs every step (CAIRN_DIFF_VERBOSE=1), to read a replayed
// randomized sequence.
var verbose = os.Getenv("CAIRN_DIFF_VERBOSE") != ""

// outcome is one side's answer to one request: a response or an error.
type outcome struct {
	resp proto.Message // nil when err is set
	err  error
}

func (o outcome) code() codes.Code { return status.Code(o.err) }

// errText is the message a client sees. status.Convert keeps a non-status
// error's text, so both sides are treated alike whatever the error is.
func (o outcome) errText() string { return status.Convert(o.err).Message() }

func (o outcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("error code=%s message=%q", o.code(), o.errText())
	}
	return show(o.resp)
}

// show prints a message on one line, shortened past a screenful.
func show(m proto.Message) string {
	if m == nil {
		return "<nil>"
	}
	s := prototext.MarshalOptions{EmitUnknown: true}.Format(m)
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		s = "{}"
	}
	const max = 1500
	if len(s) > max {
		s = s[:max] + fmt.Sprintf("… (%d more chars)", len(s)-max)
	}
	return s
}

// headered is every response with a top-level header.
type headered interface {
	proto.Message
	GetHeader() *pb.ResponseHeader
}

// normalize returns a copy of m whose top-level header has cluster_id,
// member_id and raft_term replaced by 1 when set: two independent clusters
// can never agree on them, but whether they are set must still agree.
//
// Nested headers (the responses inside a txn) are compared as they are:
// etcd leaves those fields zero there, and a client can see them.
func normalize(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	m = proto.Clone(m)
	var h *pb.ResponseHeader
	switch r := m.(type) {
	case *pb.RangeStreamResponse:
		h = r.GetRangeResponse().GetHeader()
	case headered:
		h = r.GetHeader()
	}
	if h != nil {
		h.ClusterId = setOrZero(h.ClusterId)
		h.MemberId = setOrZero(h.MemberId)
		h.RaftTerm = setOrZero(h.RaftTerm)
	}
	return m
}

func setOrZero(v uint64) uint64 {
	if v != 0 {
		return 1
	}
	return 0
}

// compareOutcomes lists the differences between etcd's and the other
// side's outcome, each as one line.
func compareOutcomes(e, o outcome) []string {
	switch {
	case e.err != nil && o.err != nil:
		var d []string
		if e.code() != o.code() {
			d = append(d, fmt.Sprintf("error code: etcd %s, other %s", e.code(), o.code()))
		}
		if e.errText() != o.errText() {
			d = append(d, fmt.Sprintf("error message: etcd %q, other %q", e.errText(), o.errText()))
		}
		return d
	case e.err != nil:
		return []string{fmt.Sprintf("etcd failed (%s %q), other succeeded", e.code(), e.errText())}
	case o.err != nil:
		return []string{fmt.Sprintf("etcd succeeded, other failed (%s %q)", o.code(), o.errText())}
	}
	var d []string
	diffMessage("", normalize(e.resp).ProtoReflect(), normalize(o.resp).ProtoReflect(), &d)
	return d
}

// diffMessage appends one line per differing field of a and b, named by
// its path (kvs[2].mod_revision).
func diffMessage(path string, a, b protoreflect.Message, out *[]string) {
	fields := a.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		p := string(fd.Name())
		if path != "" {
			p = path + "." + p
		}
		switch {
		case fd.IsList():
			diffList(p, fd, a.Get(fd).List(), b.Get(fd).List(), out)
		case fd.IsMap():
			if !a.Get(fd).Equal(b.Get(fd)) {
				*out = append(*out, fmt.Sprintf("%s: etcd %v, other %v", p, a.Get(fd), b.Get(fd)))
			}
		case fd.Message() != nil:
			switch ha, hb := a.Has(fd), b.Has(fd); {
			case ha && hb:
				diffMessage(p, a.Get(fd).Message(), b.Get(fd).Message(), out)
			case ha != hb:
				*out = append(*out, fmt.Sprintf("%s: etcd %s, other %s", p, showField(a, fd), showField(b, fd)))
			}
		default:
			if !a.Get(fd).Equal(b.Get(fd)) || a.Has(fd) != b.Has(fd) {
				*out = append(*out, fmt.Sprintf("%s: etcd %s, other %s", p, showField(a, fd), showField(b, fd)))
			}
		}
	}
	if !bytesEqual(a.GetUnknown(), b.GetUnknown()) {
		*out = append(*out, fmt.Sprintf("%s<unknown fields>: etcd %x, other %x", path, a.GetUnknown(), b.GetUnknown()))
	}
}

func diffList(p string, fd protoreflect.FieldDescriptor, a, b protoreflect.List, out *[]string) {
	if a.Len() != b.Len() {
		*out = append(*out, fmt.Sprintf("len(%s): etcd %d, other %d", p, a.Len(), b.Len()))
	}
	n := min(a.Len(), b.Len())
	for i := 0; i < n; i++ {
		ep := fmt.Sprintf("%s[%d]", p, i)
		if fd.Message() != nil {
			diffMessage(ep, a.Get(i).Message(), b.Get(i).Message(), out)
		} else if !a.Get(i).Equal(b.Get(i)) {
			*out = append(*out, fmt.Sprintf("%s: etcd %s, other %s", ep, showValue(fd, a.Get(i)), showValue(fd, b.Get(i))))
		}
	}
	for i := n; i < a.Len(); i++ {
		*out = append(*out, fmt.Sprintf("%s[%d]: only etcd has %s", p, i, showValue(fd, a.Get(i))))
	}
	for i := n; i < b.Len(); i++ {
		*out = append(*out, fmt.Sprintf("%s[%d]: only other has %s", p, i, showValue(fd, b.Get(i))))
	}
}

func showField(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if fd.Message() != nil && !m.Has(fd) {
		return "<unset>"
	}
	return showValue(fd, m.Get(fd))
}

func showValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case fd.Message() != nil:
		return "{" + show(v.Message().Interface()) + "}"
	case fd.Kind() == protoreflect.BytesKind:
		return fmt.Sprintf("%q", v.Bytes())
	case fd.Kind() == protoreflect.StringKind:
		return fmt.Sprintf("%q", v.String())
	case fd.Kind() == protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(int32(v.Enum()))
	}
	return fmt.Sprint(v.Interface())
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// call runs one request on a side.
type call func(ctx context.Context, s *side) (proto.Message, error)

// step runs req on etcd, then on the other side, reports any difference,
// and returns both outcomes.
func (p *pair) step(name string, req proto.Message, f call) (e, o outcome) {
	p.t.Helper()
	e = p.exec(p.etcd, f)
	o = p.exec(p.other, f)
	p.last = e
	if verbose {
		p.t.Logf("%s\n  request: %s\n  etcd: %s", name, show(req), e)
	}
	p.report(name, req, e, o, compareOutcomes(e, o))
	return e, o
}

func (p *pair) exec(s *side, f call) outcome {
	ctx, cancel := reqCtx()
	defer cancel()
	resp, err := f(ctx, s)
	if err != nil {
		return outcome{err: err}
	}
	return outcome{resp: resp}
}

// report fails the test with a self-contained description of a
// difference: the request and both whole answers, then field by field.
func (p *pair) report(name string, req proto.Message, e, o outcome, diffs []string) {
	p.t.Helper()
	if len(diffs) == 0 {
		return
	}
	*p.diffs++
	var b strings.Builder
	fmt.Fprintf(&b, "DIFFERENCE %s\n", name)
	if req != nil {
		fmt.Fprintf(&b, "  request (%s): %s\n", req.ProtoReflect().Descriptor().Name(), show(req))
	}
	fmt.Fprintf(&b, "  etcd:  %s\n", e)
	fmt.Fprintf(&b, "  %s: %s\n", p.other.name, o)
	for _, d := range diffs {
		fmt.Fprintf(&b, "    - %s\n", strings.Replace(d, "other", p.other.name, 1))
	}
	p.t.Error(b.String())
}

// differ reports a difference that is not one request's answer.
func (p *pair) differ(name string, lines ...string) {
	p.t.Helper()
	*p.diffs++
	p.t.Errorf("DIFFERENCE %s\n    - %s", name, strings.Join(lines, "\n    - "))
}

// ask runs r on both sides through m, a method of the gRPC client that svc
// picks of a side (a method expression such as pb.KVClient.Range), reports
// any difference, and returns etcd's answer (nil on error) so cases can
// build on it.
func ask[C any, Req, Resp proto.Message](p *pair, name string, r Req, svc func(*side) C, m func(C, context.Context, Req, ...grpc.CallOption) (Resp, error)) Resp {
	p.t.Helper()
	e, _ := p.step(name, r, func(ctx context.Context, s *side) (proto.Message, error) { return m(svc(s), ctx, r) })
	resp, _ := e.resp.(Resp)
	return resp
}

func kvOf(s *side) pb.KVClient       { return s.kv }
func leaseOf(s *side) pb.LeaseClient { return s.lease }

func (p *pair) rng(name string, r *pb.RangeRequest) *pb.RangeResponse {
	p.t.Helper()
	return ask(p, name, r, kvOf, pb.KVClient.Range)
}

func (p *pair) put(name string, r *pb.PutRequest) *pb.PutResponse {
	p.t.Helper()
	return ask(p, name, r, kvOf, pb.KVClient.Put)
}

func (p *pair) del(name string, r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	p.t.Helper()
	return ask(p, name, r, kvOf, pb.KVClient.DeleteRange)
}

func (p *pair) txn(name string, r *pb.TxnRequest) *pb.TxnResponse {
	p.t.Helper()
	return ask(p, name, r, kvOf, pb.KVClient.Txn)
}

func (p *pair) compact(name string, r *pb.CompactionRequest) *pb.CompactionResponse {
	p.t.Helper()
	return ask(p, name, r, kvOf, pb.KVClient.Compact)
}

func (p *pair) grant(name string, r *pb.LeaseGrantRequest) *pb.LeaseGrantResponse {
	p.t.Helper()
	return ask(p, name, r, leaseOf, pb.LeaseClient.LeaseGrant)
}

func (p *pair) revoke(name string, r *pb.LeaseRevokeRequest) *pb.LeaseRevokeResponse {
	p.t.Helper()
	return ask(p, name, r, leaseOf, pb.LeaseClient.LeaseRevoke)
}

// wantErr checks that etcd itself answered with code: it proves a case
// exercises the error path it is named after (a harness check, not a
// comparison).
func (p *pair) wantErr(name string, r proto.Message, f call, code codes.Code) {
	p.t.Helper()
	e, _ := p.step(name, r, f)
	if e.code() != code {
		p.t.Errorf("harness: %s: etcd answered %s, the case expects code %s", name, e, code)
	}
}

// streamResult is a RangeStream's whole answer.
type streamResult struct {
	chunks []*pb.RangeStreamResponse
	err    error
}

func rangeStream(s *side, r *pb.RangeRequest) streamResult {
	ctx, cancel := reqCtx()
	defer cancel()
	st, err := s.kv.RangeStream(ctx, r)
	if err != nil {
		return streamResult{err: err}
	}
	var res streamResult
	for {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		res.chunks = append(res.chunks, c)
	}
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
