package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// The gRPC service, described by hand (no protoc): two bidirectional
// streams and a unary probe, all carrying frames encoded by codec. See
// doc.go for the wire format.
const (
	serviceName    = "cairn.transport.v1.Peer"
	methodMessages = "/" + serviceName + "/Messages"
	methodSnapshot = "/" + serviceName + "/Snapshot"
	methodPing     = "/" + serviceName + "/Ping"

	// codecName is the gRPC content-subtype: requests travel as
	// "application/grpc+cairn-peer-v1", which selects codec on the server.
	codecName = "cairn-peer-v1"

	protocolVersion = "1"

	// Stream metadata, sent by the client on stream open.
	mdVersion = "cairn-peer-version"
	mdCluster = "cairn-cluster-id"
	mdFrom    = "cairn-from"
	mdTo      = "cairn-to"
)

// peerService is what serviceDesc's handlers call; Transport implements it.
type peerService interface {
	serveMessages(grpc.ServerStream) error
	serveSnapshot(grpc.ServerStream) error
	servePing(context.Context, frame) (frame, error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*peerService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Ping",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			var req frame
			if err := dec(&req); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(peerService).servePing(ctx, req)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: methodPing}
			return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
				return srv.(peerService).servePing(ctx, req.(frame))
			})
		},
	}},
	Streams: []grpc.StreamDesc{
		{
			StreamName:    "Messages",
			Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(peerService).serveMessages(ss) },
			ServerStreams: true,
			ClientStreams: true,
		},
		{
			StreamName:    "Snapshot",
			Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(peerService).serveSnapshot(ss) },
			ServerStreams: true,
			ClientStreams: true,
		},
	},
	Metadata: "transport/doc.go",
}

var (
	messagesDesc = &serviceDesc.Streams[0]
	snapshotDesc = &serviceDesc.Streams[1]
)

// frameKind is the first byte of every frame.
type frameKind byte

const (
	kindData   frameKind = 1 // client→server: the next bytes of the stream's byte sequence
	kindPing   frameKind = 2 // Ping request: 8 opaque bytes, echoed in the pong
	kindPong   frameKind = 3 // Ping response: the ping's 8 bytes
	kindAccept frameKind = 4 // server→client: the stream was admitted
	kindReject frameKind = 5 // server→client: the stream was refused, then it ends
	kindEnd    frameKind = 6 // client→server: snapshot body complete: length, CRC
	kindResult frameKind = 7 // server→client: snapshot verdict
)

func (k frameKind) String() string {
	switch k {
	case kindData:
		return "data"
	case kindPing:
		return "ping"
	case kindPong:
		return "pong"
	case kindAccept:
		return "accept"
	case kindReject:
		return "reject"
	case kindEnd:
		return "end"
	case kindResult:
		return "result"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// frame is one gRPC message on the wire: a kind byte, then the payload.
// A frame handed to SendMsg is never modified afterwards (gRPC may still
// hold it), so every frame owns its bytes.
type frame []byte

func (f frame) kind() frameKind { return frameKind(f[0]) }
func (f frame) payload() []byte { return f[1:] }

func newFrame(k frameKind, payload []byte) frame {
	f := make(frame, 1+len(payload))
	f[0] = byte(k)
	copy(f[1:], payload)
	return f
}

// codec moves frames as they are: no protobuf, no copies on send.
type codec struct{}

func init() { encoding.RegisterCodecV2(codec{}) }

func (codec) Name() string { return codecName }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(frame)
	if !ok || len(f) == 0 {
		return nil, fmt.Errorf("transport: codec cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("transport: codec cannot unmarshal into %T", v)
	}
	if data.Len() == 0 {
		return errors.New("transport: empty frame")
	}
	// gRPC frees data when Unmarshal returns: keep a copy.
	*f = data.Materialize()
	return nil
}

// errProtocol marks a peer that broke the wire format.
var errProtocol = errors.New("transport: protocol error")

// rejectReason says why a stream was refused.
type rejectReason byte

const (
	rejectBadRequest      rejectReason = 1 // missing or malformed metadata, unknown protocol version
	rejectClusterMismatch rejectReason = 2 // the sender belongs to another cluster
	rejectWrongRecipient  rejectReason = 3 // the stream was meant for another member ID
	rejectUnknownMember   rejectReason = 4 // the sender is not a member this one knows
	rejectRemovedMember   rejectReason = 5 // the sender was removed from the cluster
)

func (r rejectReason) String() string {
	switch r {
	case rejectBadRequest:
		return "bad request"
	case rejectClusterMismatch:
		return "cluster ID mismatch"
	case rejectWrongRecipient:
		return "wrong recipient member ID"
	case rejectUnknownMember:
		return "unknown member"
	case rejectRemovedMember:
		return "member removed from the cluster"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// rejection is the payload of a reject frame: the reason, the refusing
// member's cluster and member IDs, and a human-readable detail.
type rejection struct {
	reason    rejectReason
	clusterID uint64
	memberID  uint64
	detail    string
	// senderCluster is the cluster the refused sender claimed; logged by
	// the refusing side, not sent.
	senderCluster uint64
}

func (r rejection) frame() frame {
	f := make(frame, 18, 18+len(r.detail))
	f[0] = byte(kindReject)
	f[1] = byte(r.reason)
	binary.BigEndian.PutUint64(f[2:], r.clusterID)
	binary.BigEndian.PutUint64(f[10:], r.memberID)
	return append(f, r.detail...)
}

func parseRejection(p []byte) (rejection, error) {
	if len(p) < 17 {
		return rejection{}, fmt.Errorf("%w: short reject frame", errProtocol)
	}
	return rejection{
		reason:    rejectReason(p[0]),
		clusterID: binary.BigEndian.Uint64(p[1:]),
		memberID:  binary.BigEndian.Uint64(p[9:]),
		detail:    string(p[17:]),
	}, nil
}

// rejectedError is how a refused stream ends on the sending side.
type rejectedError struct{ r rejection }

func (e *rejectedError) Error() string {
	return fmt.Sprintf("transport: stream refused by member %x of cluster %x: %s (%s)",
		e.r.memberID, e.r.clusterID, e.r.reason, e.r.detail)
}

// endFrame closes a snapshot body: its length and CRC-32C.
func endFrame(n uint64, crc uint32) frame {
	f := make(frame, 13)
	f[0] = byte(kindEnd)
	binary.BigEndian.PutUint64(f[1:], n)
	binary.BigEndian.PutUint32(f[9:], crc)
	return f
}

// resultFrame carries the receiver's verdict on a snapshot: status 0 is
// success, 1 failure, followed by a detail text.
func resultFrame(err error) frame {
	if err == nil {
		return frame{byte(kindResult), 0}
	}
	return append(frame{byte(kindResult), 1}, err.Error()...)
}

func pingFrame(seq uint64) frame {
	f := make(frame, 9)
	f[0] = byte(kindPing)
	binary.BigEndian.PutUint64(f[1:], seq)
	return f
}

// encoder turns batches of raft messages into data frames. Each message is
// a record: its proto.Marshal length as a uvarint, then the bytes. Records
// are concatenated into the stream's byte sequence, which is cut into frames
// of at most frameSize payload bytes, so one record may span frames.
type encoder struct {
	frameSize int
	spill     []byte
}

// encode returns the frames for msgs. sizes, when not nil, holds
// proto.Size of each message, just computed (so their cached sizes are
// fresh).
func (e *encoder) encode(msgs []*raftpb.Message, sizes []int) ([]frame, error) {
	if sizes == nil {
		sizes = make([]int, len(msgs))
		for i, m := range msgs {
			sizes[i] = proto.Size(m)
		}
	}
	total := 0
	for _, n := range sizes {
		total += varintLen(uint64(n)) + n
	}
	// Common case: the batch fits one frame; marshal straight into it.
	var b []byte
	if total <= e.frameSize {
		b = make([]byte, 1, 1+total)
		b[0] = byte(kindData)
	} else {
		b = e.spill[:0]
	}
	opts := proto.MarshalOptions{UseCachedSize: true}
	for i, m := range msgs {
		b = binary.AppendUvarint(b, uint64(sizes[i]))
		var err error
		if b, err = opts.MarshalAppend(b, m); err != nil {
			return nil, fmt.Errorf("transport: marshal %s: %w", m.GetType(), err)
		}
	}
	if total <= e.frameSize {
		return []frame{b}, nil
	}
	e.spill = b[:0]
	if cap(e.spill) > 4*e.frameSize {
		e.spill = nil // do not keep one huge message's buffer forever
	}
	frames := make([]frame, 0, (len(b)+e.frameSize-1)/e.frameSize)
	for off := 0; off < len(b); off += e.frameSize {
		end := min(off+e.frameSize, len(b))
		frames = append(frames, newFrame(kindData, b[off:end]))
	}
	return frames, nil
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// streamReader reads the byte sequence carried by a stream's data frames.
// Other frames go to control, which may mark the end of the sequence (a
// snapshot's end frame) or fail. It holds one frame at a time.
type streamReader struct {
	recv    func() (frame, error)
	control func(frame) (end bool, err error)
	cur     []byte
	ended   bool
	err     error
}

// fill makes cur non-empty, or returns why it cannot: io.EOF at the end of
// the sequence, or the stream's error.
func (r *streamReader) fill() error {
	for len(r.cur) == 0 {
		if r.err != nil {
			return r.err
		}
		if r.ended {
			return io.EOF
		}
		f, err := r.recv()
		if err != nil {
			r.err = err
			return err
		}
		if f.kind() == kindData {
			r.cur = f.payload()
			continue
		}
		end, err := r.control(f)
		if err != nil {
			r.err = err
			return err
		}
		r.ended = end
	}
	return nil
}

func (r *streamReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *streamReader) ReadByte() (byte, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	b := r.cur[0]
	r.cur = r.cur[1:]
	return b, nil
}

// recordReader decodes records from a streamReader.
type recordReader struct {
	r   *streamReader
	max int
	buf []byte
}

// next returns the next message, io.EOF at a clean end between records,
// io.ErrUnexpectedEOF inside one, ErrMessageTooLarge, or the stream's error.
func (rr *recordReader) next() (*raftpb.Message, error) {
	n, err := binary.ReadUvarint(rr.r)
	switch {
	case err == nil:
	case err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%w: stream ended inside a record", errProtocol)
	case rr.r.err != nil:
		return nil, err // the stream's own error, as is
	default:
		return nil, fmt.Errorf("%w: bad record length: %w", errProtocol, err)
	}
	if n > uint64(rr.max) {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrMessageTooLarge, n, rr.max)
	}
	if uint64(cap(rr.buf)) < n {
		rr.buf = make([]byte, n)
	}
	b := rr.buf[:n]
	if _, err := io.ReadFull(rr.r, b); err != nil {
		if rr.r.err != nil && rr.r.err != io.EOF {
			return nil, rr.r.err
		}
		return nil, fmt.Errorf("%w: stream ended inside a record", errProtocol)
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: bad message: %w", errProtocol, err)
	}
	if cap(rr.buf) > 4<<20 {
		rr.buf = nil // one huge message must not pin its buffer for the stream's life
	}
	return m, nil
}
