package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/internal/memberurl"
)

var (
	// errStalled tears down a stream that was not accepted in time or
	// whose ping failed (the peer hangs, or the link is black-holed).
	errStalled = errors.New("transport: peer stopped answering")
	// errReaderDone is the writer's way of saying the reader ended first.
	errReaderDone = errors.New("transport: stream reader ended")
	// errNotAccepted: the stream ended before the peer admitted it (the
	// peer is closing, or cut us off).
	errNotAccepted = errors.New("transport: stream ended before being accepted")
)

// maxBatch bounds the messages taken from the queue for one write.
const maxBatch = 512

// peer is the sending side of the link to one member: a bounded queue that
// Send fills without blocking, and one goroutine (run) that owns the stream
// and drains the queue into it.
type peer struct {
	t     *Transport
	id    uint64
	label string
	lg    *zap.Logger
	queue chan *raftpb.Message

	ctx    context.Context // cancelled by stop (RemovePeer, Close)
	cancel context.CancelFunc

	unreachable  atomic.Bool  // set by drops, cleared by the reporter
	active       atomic.Int64 // UnixNano when the current stream was accepted; 0 when none
	dropping     atomic.Bool  // a full-queue drop was logged; cleared by a successful write
	snapInflight atomic.Bool

	sentBytes    prometheus.Counter
	sentFailures prometheus.Counter
	rtt          prometheus.Observer

	mu struct {
		sync.Mutex
		urls []string
		next int // index into urls of the next one to dial
	}
	urlsChanged chan struct{} // capacity 1

	// Owned by the run goroutine (and the stream goroutines it waits for).
	enc     encoder
	batch   []*raftpb.Message
	sizes   []int
	refused rejectReason // last refusal logged since a stream was accepted
	failing bool         // a connection failure was logged since a stream was accepted
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	label := idLabel(id)
	p := &peer{
		t:            t,
		id:           id,
		label:        label,
		lg:           t.lg.With(zap.String("peer-id", label)),
		queue:        make(chan *raftpb.Message, t.cfg.QueueSize),
		urlsChanged:  make(chan struct{}, 1),
		sentBytes:    t.m.sentBytes.WithLabelValues(label),
		sentFailures: t.m.sentFailures.WithLabelValues(label),
		rtt:          t.m.rtt.WithLabelValues(label),
		enc:          encoder{frameSize: t.cfg.FrameSize},
	}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	p.mu.urls = slices.Clone(urls)
	return p
}

func (p *peer) stop() { p.cancel() }

func (p *peer) setURLs(urls []string) {
	p.mu.Lock()
	p.mu.urls = slices.Clone(urls)
	p.mu.next = 0
	p.mu.Unlock()
	select {
	case p.urlsChanged <- struct{}{}:
	default:
	}
}

func (p *peer) currentURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.urls[p.mu.next%len(p.mu.urls)]
}

// nextURL makes the next dial try the peer's next URL.
func (p *peer) nextURL() {
	p.mu.Lock()
	p.mu.next = (p.mu.next + 1) % len(p.mu.urls)
	p.mu.Unlock()
}

// enqueue never blocks: a message that finds the queue full is dropped.
func (p *peer) enqueue(m *raftpb.Message) {
	if p.t.faults.isCut(p.id, Outbound) {
		p.drop(1)
		return
	}
	select {
	case p.queue <- m:
	default:
		p.drop(1)
		if !p.dropping.Swap(true) {
			p.lg.Warn("dropped raft messages: the peer's send queue is full (slow or unreachable peer)",
				zap.Int("queue-size", cap(p.queue)))
		}
	}
}

// drop counts n lost messages and has the peer reported unreachable.
func (p *peer) drop(n int) {
	p.sentFailures.Add(float64(n))
	if !p.unreachable.Swap(true) {
		p.t.wakeReporter()
	}
}

// run keeps one stream to the peer open until the peer is stopped:
// connect, write, and after a failure back off (dropping what is queued,
// since raft will resend anything still needed) and reconnect.
func (p *peer) run() {
	backoff := p.t.cfg.BackoffMin
	for p.ctx.Err() == nil {
		changed := p.t.faults.watch()
		if p.t.faults.isCut(p.id, Outbound) {
			p.idle(changed, 0)
			continue
		}
		accepted, err := p.stream()
		if p.ctx.Err() != nil {
			return
		}
		if accepted {
			backoff = p.t.cfg.BackoffMin
			p.refused, p.failing = 0, false
		}
		wait := backoff
		var rej *rejectedError
		switch {
		case err == nil:
			continue // closed on purpose (new URLs, a fault changed): reconnect now
		case errors.As(err, &rej):
			p.logRefusal(rej.r)
			wait = p.t.cfg.BackoffMax
		default:
			if accepted || !p.failing {
				p.lg.Warn("stream to peer failed; reconnecting with backoff", zap.String("url", p.currentURL()), zap.Error(err))
				p.failing = true
			} else {
				p.lg.Debug("stream to peer failed", zap.String("url", p.currentURL()), zap.Error(err))
			}
			p.nextURL()
		}
		// Whatever was in flight may be lost: let raft know.
		p.drop(0)
		p.idle(p.t.faults.watch(), wait)
		backoff = min(2*backoff, p.t.cfg.BackoffMax)
	}
}

// logRefusal logs a refusal once per reason until a stream is accepted, so a
// misconfigured member retrying forever fills no log.
func (p *peer) logRefusal(r rejection) {
	if r.reason == rejectRemovedMember && r.clusterID == p.t.cfg.ClusterID && p.t.cfg.OnRemoved != nil {
		p.t.removed.Do(func() { go p.t.cfg.OnRemoved() })
	}
	if p.refused == r.reason {
		p.lg.Debug("peer refused the stream again", zap.Stringer("reason", r.reason))
		return
	}
	p.refused = r.reason
	p.lg.Error("peer refused our raft stream; retrying every backoff-max, logged once",
		zap.Stringer("reason", r.reason),
		zap.String("detail", r.detail),
		zap.String("remote-member-id", idLabel(r.memberID)),
		zap.String("remote-cluster-id", idLabel(r.clusterID)),
		zap.Duration("backoff-max", p.t.cfg.BackoffMax))
}

// idle waits until wait passes (0: forever), the faults change, the URLs
// change or the peer stops, dropping every message queued meanwhile.
func (p *peer) idle(changed <-chan struct{}, wait time.Duration) {
	var timeout <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-timeout:
			return
		case <-changed:
			return
		case <-p.urlsChanged:
			return
		case <-p.queue:
			p.drop(1)
		}
	}
}

// stream opens one stream to the peer and writes to it until it fails or is
// closed on purpose (nil error). accepted tells whether the peer admitted it.
//
// Liveness comes from a prober beside the stream: a Ping call every
// PingInterval on the same connection. Pings do not queue behind the
// stream's data (HTTP/2 connection windows are replenished as the peer's
// transport reads, not as raft consumes), so a peer that is slow but alive
// keeps answering, while a hung peer or black-holed link fails a ping within
// PongTimeout and the stream is torn down, unblocking a stuck write.
func (p *peer) stream() (accepted bool, err error) {
	conn, err := p.t.dial(p.currentURL())
	if err != nil {
		return false, err
	}
	defer conn.Close()

	ctx, cancel := context.WithCancelCause(p.ctx)
	defer cancel(nil)
	acceptTimer := time.AfterFunc(p.t.cfg.DialTimeout+p.t.cfg.PongTimeout, func() {
		cancel(fmt.Errorf("%w: not accepted within %v", errStalled, p.t.cfg.DialTimeout+p.t.cfg.PongTimeout))
	})
	defer acceptTimer.Stop()

	cs, err := conn.NewStream(p.t.outgoing(ctx, p.id), messagesDesc, methodMessages, grpc.ForceCodecV2(codec{}))
	if err != nil {
		return false, causeOr(ctx, err)
	}
	var wasAccepted atomic.Bool
	readerDone := make(chan struct{})
	proberDone := make(chan struct{})
	var readErr error
	if !p.t.goTracked(func() {
		defer close(readerDone)
		readErr = p.readStream(cs, acceptTimer, &wasAccepted)
	}) {
		return false, nil
	}
	if !p.t.goTracked(func() {
		defer close(proberDone)
		p.probe(ctx, conn, cancel)
	}) {
		close(proberDone)
	}
	defer p.setInactive()

	writeErr := p.writeStream(ctx, cs, readerDone)
	cancel(nil)
	<-readerDone
	<-proberDone
	accepted = wasAccepted.Load()
	var rej *rejectedError
	switch {
	case errors.As(readErr, &rej):
		return accepted, readErr
	case writeErr == errReaderDone:
		return accepted, causeOr(ctx, readErr)
	case writeErr != nil:
		return accepted, causeOr(ctx, writeErr)
	}
	return accepted, nil
}

// causeOr prefers the reason ctx was cancelled for (errStalled) over the
// error it caused.
func causeOr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && c != context.Canceled {
		return c
	}
	return err
}

// readStream waits for the peer's verdict on the stream: accept (after
// which nothing more comes) or a refusal.
func (p *peer) readStream(cs grpc.ClientStream, acceptTimer *time.Timer, accepted *atomic.Bool) error {
	for {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			if !accepted.Load() {
				return fmt.Errorf("%w: %w", errNotAccepted, err)
			}
			return err
		}
		switch f.kind() {
		case kindAccept:
			acceptTimer.Stop()
			accepted.Store(true)
			p.setActive()
		case kindReject:
			r, err := parseRejection(f.payload())
			if err != nil {
				return err
			}
			return &rejectedError{r}
		default:
			return fmt.Errorf("%w: unexpected %s frame on a message stream", errProtocol, f.kind())
		}
	}
}

// probe pings the peer every PingInterval, recording round trip times,
// and cancels the stream when a ping fails or gets no answer within
// PongTimeout. It sends nothing while outbound traffic is paused.
func (p *peer) probe(ctx context.Context, conn *grpc.ClientConn, cancel context.CancelCauseFunc) {
	ticker := time.NewTicker(p.t.cfg.PingInterval)
	defer ticker.Stop()
	for seq := uint64(1); ; seq++ {
		if !p.t.faults.isPaused(p.id, Outbound) {
			pctx, pcancel := context.WithTimeout(ctx, p.t.cfg.PongTimeout)
			start := time.Now()
			req := pingFrame(seq)
			var resp frame
			err := conn.Invoke(p.t.outgoing(pctx, p.id), methodPing, req, &resp, grpc.ForceCodecV2(codec{}))
			rtt := time.Since(start)
			pcancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil:
				cancel(fmt.Errorf("%w: ping: %w", errStalled, err))
				return
			case resp.kind() == kindPong && bytes.Equal(resp.payload(), req.payload()):
				p.sentBytes.Add(float64(len(req)))
				p.rtt.Observe(rtt.Seconds())
			}
			// A reject frame: the message stream gets refused too and
			// reports why.
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// writeStream drains the queue into the stream until the stream or the
// peer ends, the URLs change or an outbound cut is injected.
func (p *peer) writeStream(ctx context.Context, cs grpc.ClientStream, readerDone <-chan struct{}) error {
	// held is a batch taken from the queue just as a pause began: it is
	// written first when the pause ends, so Pause holds every message sent
	// after it returns, in order.
	var held []*raftpb.Message
	defer func() { p.drop(len(held)) }()
	// An idle stream gets an empty data frame every PingInterval, so the
	// receiver re-checks that the sender is still admitted (not removed)
	// and is still wanted (not closed) even when raft is quiet.
	idle := time.NewTicker(p.t.cfg.PingInterval)
	defer idle.Stop()
	wrote := false
	for {
		changed := p.t.faults.watch()
		if p.t.faults.isCut(p.id, Outbound) {
			return nil
		}
		paused := p.t.faults.isPaused(p.id, Outbound)
		if !paused && held != nil {
			batch := held
			held = nil
			if err := p.writeBatch(cs, batch, nil); err != nil {
				return err
			}
		}
		var queue <-chan *raftpb.Message
		var tick <-chan time.Time
		if !paused {
			queue, tick = p.queue, idle.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-readerDone:
			return errReaderDone
		case <-p.urlsChanged:
			return nil
		case <-changed:
		case <-tick:
			if !wrote {
				if err := p.write(cs, frame{byte(kindData)}); err != nil {
					return err
				}
			}
			wrote = false
		case m := <-queue:
			wrote = true
			batch, sizes := p.collect(m)
			// The select may have been armed before a fault began: a
			// message sent after Pause or Cut returned must not go out.
			if p.t.faults.isPaused(p.id, Outbound) || p.t.faults.isCut(p.id, Outbound) {
				held = slices.Clone(batch)
				clear(batch)
				continue
			}
			if err := p.writeBatch(cs, batch, sizes); err != nil {
				return err
			}
		}
	}
}

// collect returns first and whatever else is queued, up to about one
// frame's worth, and their sizes, in buffers reused by the next call.
func (p *peer) collect(first *raftpb.Message) ([]*raftpb.Message, []int) {
	batch := append(p.batch[:0], first)
	sizes := append(p.sizes[:0], proto.Size(first))
	bytes := sizes[0]
	for len(batch) < maxBatch && bytes < p.t.cfg.FrameSize {
		select {
		case m := <-p.queue:
			batch = append(batch, m)
			sizes = append(sizes, proto.Size(m))
			bytes += sizes[len(sizes)-1]
			continue
		default:
		}
		break
	}
	p.batch, p.sizes = batch, sizes
	return batch, sizes
}

// writeBatch writes a batch in as few frames as possible. sizes are the
// messages' proto sizes, or nil.
func (p *peer) writeBatch(cs grpc.ClientStream, batch []*raftpb.Message, sizes []int) error {
	defer clear(batch) // do not pin sent messages
	frames, err := p.enc.encode(batch, sizes)
	if err != nil {
		// Not a stream problem: drop the batch and go on.
		p.drop(len(batch))
		p.lg.Error("cannot encode raft messages; dropped", zap.Error(err))
		return nil
	}
	for _, f := range frames {
		if err := p.write(cs, f); err != nil {
			p.drop(len(batch))
			return err
		}
	}
	p.dropping.Store(false)
	return nil
}

func (p *peer) write(cs grpc.ClientStream, f frame) error {
	if err := cs.SendMsg(f); err != nil {
		return err
	}
	p.sentBytes.Add(float64(len(f)))
	return nil
}

func (p *peer) setActive() {
	p.active.Store(time.Now().UnixNano())
	p.t.m.activePeers.WithLabelValues(p.t.local, p.label).Set(1)
	p.lg.Info("peer became active")
}

func (p *peer) setInactive() {
	if p.active.Swap(0) == 0 || p.ctx.Err() != nil {
		return // never active, or removed: its series are gone
	}
	p.t.m.activePeers.WithLabelValues(p.t.local, p.label).Set(0)
	p.t.m.disconnected.WithLabelValues(p.t.local, p.label).Inc()
	p.lg.Warn("peer became inactive")
}

// dial returns a client connection to the peer URL; it connects lazily,
// on the first stream, within DialTimeout.
func (t *Transport) dial(rawURL string) (*grpc.ClientConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: t.cfg.DialTimeout}
	creds := insecure.NewCredentials()
	if memberurl.IsTLS(u) {
		creds = credentials.NewTLS(t.cfg.TLS)
	}
	network := memberurl.Network(u)
	return grpc.NewClient("passthrough:///"+memberurl.Addr(u),
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: t.cfg.BackoffMin, Multiplier: 2, MaxDelay: t.cfg.BackoffMax},
			MinConnectTimeout: t.cfg.DialTimeout,
		}),
	)
}

// outgoing adds the stream metadata every stream opens with.
func (t *Transport) outgoing(ctx context.Context, to uint64) context.Context {
	return metadata.AppendToOutgoingContext(ctx,
		mdVersion, protocolVersion,
		mdCluster, idLabel(t.cfg.ClusterID),
		mdFrom, t.local,
		mdTo, idLabel(to))
}
