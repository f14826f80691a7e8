package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// errStreamClosed ends an inbound stream on purpose (Close, an inbound
// cut). The sender sees a broken stream and reconnects later.
var errStreamClosed = errors.New("transport: stream closed by receiver")

// refusedError ends an inbound stream whose sender was removed mid-stream.
type refusedError struct{ reason rejectReason }

func (e *refusedError) Error() string { return "transport: stream refused: " + e.reason.String() }

// admit checks the metadata a stream opened with. It returns the sender's
// member ID, or refuses the stream (logging once per sender and reason, and
// sending a reject frame) and returns false.
func (t *Transport) admit(ss grpc.ServerStream) (uint64, bool) {
	from, r, ok := t.check(ss.Context())
	if !ok && r.reason != 0 {
		t.refuse(ss, from, r)
	}
	return from, ok
}

// check checks a call's metadata: it returns the sender's member ID, or a
// rejection (with reason 0 when the transport is closed: the call just
// ends).
func (t *Transport) check(ctx context.Context) (uint64, rejection, bool) {
	r := rejection{clusterID: t.cfg.ClusterID, memberID: t.cfg.ID}
	if t.ctx.Err() != nil {
		return 0, r, false
	}
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	version := get(mdVersion)
	cluster, cerr := strconv.ParseUint(get(mdCluster), 16, 64)
	from, ferr := strconv.ParseUint(get(mdFrom), 16, 64)
	to, terr := strconv.ParseUint(get(mdTo), 16, 64)
	switch {
	case version != protocolVersion || cerr != nil || ferr != nil || terr != nil || from == 0:
		r.reason = rejectBadRequest
		r.detail = fmt.Sprintf("protocol version %q (want %q), cluster %q, from %q, to %q",
			version, protocolVersion, get(mdCluster), get(mdFrom), get(mdTo))
	case cluster != t.cfg.ClusterID:
		r.reason = rejectClusterMismatch
		r.detail = fmt.Sprintf("sender is in cluster %x, receiver in cluster %x", cluster, t.cfg.ClusterID)
	case to != t.cfg.ID:
		r.reason = rejectWrongRecipient
		r.detail = fmt.Sprintf("stream for member %x reached member %x", to, t.cfg.ID)
	default:
		reason, ok := t.admission(from)
		if ok {
			return from, r, true
		}
		r.reason = reason
		r.detail = fmt.Sprintf("member %x is not in this member's cluster configuration", from)
		if reason == rejectRemovedMember {
			r.detail = fmt.Sprintf("member %x was removed from cluster %x", from, t.cfg.ClusterID)
		}
	}
	r.senderCluster = cluster
	return from, r, false
}

// refuse logs a refusal (once per sender and reason until the sender is
// admitted) and tells the sender why.
func (t *Transport) refuse(ss grpc.ServerStream, from uint64, r rejection) {
	key := refusal{from: from, reason: r.reason}
	t.mu.Lock()
	logged := t.mu.refusals[key]
	if !logged {
		if len(t.mu.refusals) >= 1024 {
			clear(t.mu.refusals) // senders with made-up IDs must not grow it forever
		}
		t.mu.refusals[key] = true
	}
	t.mu.Unlock()
	log := t.lg.Warn
	if logged {
		log = t.lg.Debug
	}
	log("refused raft stream from peer",
		zap.Stringer("reason", r.reason),
		zap.String("detail", r.detail),
		zap.String("remote-member-id", idLabel(from)),
		zap.String("remote-cluster-id", idLabel(r.senderCluster)))
	_ = ss.SendMsg(r.frame()) // best effort: the stream ends anyway
}

func (t *Transport) forgetRefusals(from uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.mu.refusals {
		if k.from == from {
			delete(t.mu.refusals, k)
		}
	}
}

// servePing answers the Ping call that probes liveness and round trip
// time. It is refused like a stream, but silently: the sender's message
// stream gets the refusal and logs it. Pings are answered even while
// inbound traffic is paused (a stalled raft loop, not a dead link), not
// when it is cut.
func (t *Transport) servePing(ctx context.Context, req frame) (frame, error) {
	from, r, ok := t.check(ctx)
	switch {
	case !ok && r.reason == 0:
		return nil, errStreamClosed
	case !ok:
		return r.frame(), nil
	case t.faults.isCut(from, Inbound):
		return nil, errStreamClosed
	}
	if len(req) != 9 || req.kind() != kindPing {
		return nil, fmt.Errorf("%w: bad ping", errProtocol)
	}
	t.m.receivedBytes.WithLabelValues(idLabel(from)).Add(float64(len(req)))
	return newFrame(kindPong, req.payload()), nil
}

// streamContext is the context of an inbound stream: done when the stream
// ends or the transport closes.
func (t *Transport) streamContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(t.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// recvFunc reads frames from an inbound stream, counting their bytes and
// ending the stream when the sender stops being admitted.
func (t *Transport) recvFunc(ss grpc.ServerStream, from uint64, received prometheus.Counter) func() (frame, error) {
	return func() (frame, error) {
		var f frame
		if err := ss.RecvMsg(&f); err != nil {
			return nil, err
		}
		received.Add(float64(len(f)))
		if t.ctx.Err() != nil || t.faults.isCut(from, Inbound) {
			return nil, errStreamClosed
		}
		if reason, ok := t.admission(from); !ok {
			return nil, &refusedError{reason}
		}
		return f, nil
	}
}

// serveMessages is the Messages handler: it decodes the sender's records
// and queues them for a delivery goroutine, so that reading the stream
// never waits for raft.
func (t *Transport) serveMessages(ss grpc.ServerStream) error {
	from, ok := t.admit(ss)
	if !ok || t.faults.isCut(from, Inbound) {
		return nil
	}
	t.forgetRefusals(from)
	if err := ss.SendMsg(frame{byte(kindAccept)}); err != nil {
		return err
	}
	label := idLabel(from)
	in := &inbound{
		t:        t,
		from:     from,
		lg:       t.lg.With(zap.String("peer-id", label)),
		q:        make(chan *raftpb.Message, t.cfg.RecvQueueSize),
		failures: t.m.recvFailures.WithLabelValues(label),
	}
	in.direct, _ = t.cfg.Receiver.(TryProcessor)
	ctx, cancel := t.streamContext(ss.Context())
	defer cancel()
	if !t.goTracked(func() { in.deliver(ctx) }) {
		return nil
	}
	sr := &streamReader{
		recv: t.recvFunc(ss, from, t.m.receivedBytes.WithLabelValues(label)),
		control: func(f frame) (bool, error) {
			return false, fmt.Errorf("%w: unexpected %s frame on a message stream", errProtocol, f.kind())
		},
	}
	rr := &recordReader{r: sr, max: t.cfg.MaxMessageBytes}
	for {
		m, err := rr.next()
		if err != nil {
			return in.end(ss, err)
		}
		in.receive(m)
	}
}

// inbound is the receiving side of one stream from one peer.
type inbound struct {
	t        *Transport
	from     uint64
	lg       *zap.Logger
	q        chan *raftpb.Message
	failures prometheus.Counter
	// Handler goroutine only: whether a drop was logged on this stream.
	loggedFull, loggedBad bool
	// direct is the Receiver when it is a TryProcessor.
	direct TryProcessor
	// pending counts messages queued or being delivered: added by the
	// handler goroutine, released by deliver once handed over.
	pending atomic.Int64
}

// receive queues one decoded message for delivery, or drops it.
func (in *inbound) receive(m *raftpb.Message) {
	if m.GetFrom() != in.from || m.GetTo() != in.t.cfg.ID || m.GetType() == raftpb.MsgSnap {
		// A MsgSnap is only valid with its body, on a Snapshot stream.
		in.failures.Inc()
		if !in.loggedBad {
			in.loggedBad = true
			in.lg.Warn("dropped invalid message from peer (logged once per stream)",
				zap.Stringer("type", m.GetType()), zap.String("from", idLabel(m.GetFrom())), zap.String("to", idLabel(m.GetTo())))
		}
		return
	}
	// Nothing queued or being delivered ahead of m (this goroutine is the
	// only one that adds to pending), and no fault for deliver to apply
	// (it drops a cut message and holds a paused one): m may skip the
	// queue. Without Faults (production) the check costs a nil test.
	if in.direct != nil && in.pending.Load() == 0 && !in.t.faults.blocked(in.from, Inbound) && in.direct.TryProcess(m) {
		return
	}
	select {
	case in.q <- m:
		in.pending.Add(1)
	default:
		in.failures.Inc()
		if !in.loggedFull {
			in.loggedFull = true
			in.lg.Warn("dropped messages from peer: receive queue full, raft is not keeping up (logged once per stream)",
				zap.Int("recv-queue-size", cap(in.q)))
		}
	}
}

// end finishes the handler after the stream's error err.
func (in *inbound) end(ss grpc.ServerStream, err error) error {
	var refused *refusedError
	switch {
	case errors.As(err, &refused):
		in.t.refuse(ss, in.from, rejection{
			reason: refused.reason, clusterID: in.t.cfg.ClusterID, memberID: in.t.cfg.ID,
			detail:        fmt.Sprintf("member %x is no longer a member of cluster %x", in.from, in.t.cfg.ClusterID),
			senderCluster: in.t.cfg.ClusterID,
		})
		return nil
	case err == io.EOF, errors.Is(err, errStreamClosed), ss.Context().Err() != nil:
		in.lg.Debug("inbound stream ended", zap.Error(err))
		return nil
	}
	in.failures.Inc()
	in.lg.Warn("inbound stream from peer failed", zap.Error(err))
	return err
}

// deliver hands queued messages to the Receiver in order, holding them
// while inbound traffic from the peer is paused.
func (in *inbound) deliver(ctx context.Context) {
	f := in.t.faults
	for {
		var m *raftpb.Message
		select {
		case <-ctx.Done():
			return
		case m = <-in.q:
		}
		for {
			changed := f.watch()
			if !f.isPaused(in.from, Inbound) {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
		if f.isCut(in.from, Inbound) {
			in.pending.Add(-1)
			continue
		}
		err := in.t.cfg.Receiver.Process(ctx, m)
		in.pending.Add(-1)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			in.lg.Debug("raft did not take a message", zap.Stringer("type", m.GetType()), zap.Error(err))
		}
	}
}
