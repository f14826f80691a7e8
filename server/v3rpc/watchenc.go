package v3rpc

import (
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Watch responses are the one message Cairn sends in bulk: a revision
// reaches every watcher of a key range, and each watcher's response carries
// the same events. Marshaled the usual way, every response encodes its
// events again. Instead, the send loop encodes each event once per batch
// (eventEncoder) and sends a watchFrame, which the server's codec passes to
// gRPC as the concatenation of the response's own fields and the shared
// event encodings, without copying them. The bytes are a WatchResponse as
// protobuf encodes it (fields in number order), so clients see no
// difference.

// Field numbers of etcdserverpb.WatchResponse.
const (
	watchRespHeaderField  = 1
	watchRespWatchIDField = 2
	watchRespEventsField  = 11
)

// watchFrame is a WatchResponse already encoded: head holds the fields
// before the events, events the encoded events field by field.
type watchFrame struct {
	head   []byte
	events [][]byte
}

// codec is the server's gRPC codec: protobuf, except that a watchFrame is
// sent as the bytes it holds. It counts the bytes of every message into
// sent and received (etcd's etcd_network_client_grpc_*_bytes_total, which
// etcd also counts in its codec).
type codec struct {
	proto          encoding.CodecV2
	sent, received prometheus.Counter
}

func newCodec(sent, received prometheus.Counter) codec {
	return codec{encoding.GetCodecV2(grpcproto.Name), sent, received}
}

func (c codec) Name() string { return c.proto.Name() }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.marshal(v)
	if err == nil {
		c.sent.Add(float64(out.Len()))
	}
	return out, err
}

func (c codec) marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*watchFrame)
	if !ok {
		return c.proto.Marshal(v)
	}
	out := make(mem.BufferSlice, 0, 1+len(f.events))
	out = append(out, mem.SliceBuffer(f.head))
	for _, e := range f.events {
		out = append(out, mem.SliceBuffer(e))
	}
	return out, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	c.received.Add(float64(data.Len()))
	return c.proto.Unmarshal(data, v)
}

// eventEncoder encodes events as fields of a WatchResponse, each event
// once however many responses carry it. Not safe for concurrent use.
type eventEncoder struct {
	cache map[*mvccpb.Event][]byte
	opts  proto.MarshalOptions
}

func (e *eventEncoder) event(ev *mvccpb.Event) ([]byte, error) {
	if b, ok := e.cache[ev]; ok {
		return b, nil
	}
	b := protowire.AppendTag(nil, watchRespEventsField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(e.opts.Size(ev)))
	b, err := e.opts.MarshalAppend(b, ev)
	if err != nil {
		return nil, err
	}
	if e.cache == nil {
		e.cache = map[*mvccpb.Event][]byte{}
	}
	e.cache[ev] = b
	return b, nil
}

// reset forgets the events encoded so far (the batch they belong to was
// sent).
func (e *eventEncoder) reset() { clear(e.cache) }

// frame encodes a response with only a header, a watch ID and events, the
// kind a watcher without prev_kv or fragmenting gets.
func (e *eventEncoder) frame(hdr *pb.ResponseHeader, watchID int64, evs []*mvccpb.Event) (*watchFrame, error) {
	f := &watchFrame{events: make([][]byte, len(evs))}
	head := protowire.AppendTag(nil, watchRespHeaderField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(e.opts.Size(hdr)))
	head, err := e.opts.MarshalAppend(head, hdr)
	if err != nil {
		return nil, err
	}
	if watchID != 0 {
		head = protowire.AppendTag(head, watchRespWatchIDField, protowire.VarintType)
		head = protowire.AppendVarint(head, uint64(watchID))
	}
	f.head = head
	for i, ev := range evs {
		if f.events[i], err = e.event(ev); err != nil {
			return nil, err
		}
	}
	return f, nil
}
