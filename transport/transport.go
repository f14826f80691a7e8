package transport

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/internal/memberurl"
)

// Transport carries raft messages and snapshots between this member and its
// peers. Create it with New, register it on the peer gRPC server with
// Register, add peers, then Send. All methods are safe for concurrent use.
type Transport struct {
	cfg    Config
	lg     *zap.Logger
	m      *metrics
	faults *Faults
	local  string // idLabel(cfg.ID)

	// ctx is cancelled by Close; every goroutine and stream derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reportc chan struct{} // wakes the reporter; capacity 1
	removed sync.Once     // guards Config.OnRemoved

	mu struct {
		sync.RWMutex
		closed  bool
		peers   map[uint64]*peer
		removed map[uint64]bool
		// refusals remembers which (member, reason) refusals were logged,
		// so a refused member retrying is logged once, not per attempt.
		refusals map[refusal]bool
	}
}

type refusal struct {
	from   uint64
	reason rejectReason
}

// New returns a running Transport with no peers.
func New(cfg Config) (*Transport, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("transport: registering metrics: %w", err)
	}
	t := &Transport{
		cfg:     cfg,
		lg:      cfg.Logger.With(zap.String("local-member-id", idLabel(cfg.ID)), zap.String("local-cluster-id", idLabel(cfg.ClusterID))),
		m:       m,
		faults:  cfg.Faults,
		local:   idLabel(cfg.ID),
		reportc: make(chan struct{}, 1),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = map[uint64]*peer{}
	t.mu.removed = map[uint64]bool{}
	t.mu.refusals = map[refusal]bool{}
	t.goTracked(t.reportLoop)
	return t, nil
}

// Register adds the peer service to g, the gRPC server the caller serves on
// the peer listener. Register at most one Transport per server, before
// g.Serve. The server's MaxRecvMsgSize must exceed FrameSize (gRPC's
// default of 4 MiB does).
func (t *Transport) Register(g *grpc.Server) { g.RegisterService(&serviceDesc, t) }

// goTracked runs f on a goroutine that Close waits for, unless the transport
// is closing, in which case it reports false and f never runs.
func (t *Transport) goTracked(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// AddPeer starts sending to member id at urls ("http://host:port"; several
// URLs are tried in turn). Streams from id are accepted from now on.
func (t *Transport) AddPeer(id uint64, urls []string) error {
	if err := t.checkPeer(id, urls); err != nil {
		return err
	}
	p, err := t.addPeer(id, urls)
	if err != nil {
		return err
	}
	t.lg.Info("added peer", zap.String("peer-id", p.label), zap.Strings("peer-urls", urls))
	return nil
}

func (t *Transport) addPeer(id uint64, urls []string) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.mu.closed:
		return nil, ErrClosed
	case t.mu.removed[id]:
		return nil, fmt.Errorf("%w: %x", ErrPeerRemoved, id)
	case t.mu.peers[id] != nil:
		return nil, fmt.Errorf("%w: %x", ErrPeerExists, id)
	}
	p := newPeer(t, id, urls)
	t.mu.peers[id] = p
	t.wg.Add(1) // under t.mu, so Close cannot be waiting already
	go func() {
		defer t.wg.Done()
		p.run()
	}()
	return p, nil
}

// UpdatePeer changes the URLs of a peer; its stream reconnects to them.
func (t *Transport) UpdatePeer(id uint64, urls []string) error {
	if err := t.checkPeer(id, urls); err != nil {
		return err
	}
	t.mu.RLock()
	p := t.mu.peers[id]
	closed := t.mu.closed
	t.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if p == nil {
		return fmt.Errorf("%w: %x", ErrPeerNotFound, id)
	}
	p.setURLs(urls)
	t.lg.Info("updated peer", zap.String("peer-id", p.label), zap.Strings("peer-urls", urls))
	return nil
}

// RemovePeer stops sending to member id, drops its queued messages, and
// refuses its streams from now on (it learns that it was removed). A
// removed ID cannot be added again. It does not wait for the peer's
// goroutines; Close does.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.mu.peers[id]
	delete(t.mu.peers, id)
	t.mu.removed[id] = true
	t.mu.Unlock()
	if p != nil {
		p.stop()
		t.m.forget(id)
		t.lg.Info("removed peer", zap.String("peer-id", p.label))
	}
}

func (t *Transport) checkPeer(id uint64, urls []string) error {
	if id == 0 || id == t.cfg.ID {
		return fmt.Errorf("%w: member ID %x", ErrBadPeer, id)
	}
	if len(urls) == 0 {
		return fmt.Errorf("%w: %x has no URLs", ErrBadPeer, id)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || !memberurl.ValidScheme(u.Scheme) || u.Host == "" {
			return fmt.Errorf("%w: %x: %q is not an http(s)://host:port or unix(s)://host:port URL", ErrBadPeer, id, raw)
		}
	}
	return nil
}

// Send queues messages for their peers and returns at once; it never
// blocks. A message for a peer whose queue is full (or whose link is cut)
// is dropped, counted in etcd_network_peer_sent_failures_total and the peer
// reported unreachable; raft retries. Messages for unknown peers are
// dropped. A MsgSnap goes through SendSnapshot with an empty body.
//
// Send takes ownership of the messages: the caller must not modify them
// afterwards (raft's Ready messages are never modified).
func (t *Transport) Send(msgs []*raftpb.Message) {
	var p *peer
	for _, m := range msgs {
		to := m.GetTo()
		if p == nil || p.id != to {
			var closed bool
			if p, closed = t.lookup(to); closed {
				return
			}
		}
		switch {
		case p == nil:
			t.lg.Debug("dropped message for unknown peer", zap.String("peer-id", idLabel(to)), zap.Stringer("type", m.GetType()))
		case m.GetType() == raftpb.MsgSnap:
			t.SendSnapshot(m, nil)
		default:
			p.enqueue(m)
		}
	}
}

// lookup returns the peer with the given ID (nil if unknown) and whether
// the transport is closed.
func (t *Transport) lookup(id uint64) (*peer, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.peers[id], t.mu.closed
}

// SendSnapshot sends a MsgSnap and the state-machine snapshot body on a
// stream of its own, in FrameSize chunks, never holding the whole body in
// memory. It returns at once; the outcome reaches Receiver.ReportSnapshot.
// The transport closes body when done (or to interrupt a Read when the
// peer is removed or the transport closes, so Close may run concurrently
// with Read); a nil body is empty. One snapshot per peer is in flight at a
// time: a second one fails at once.
func (t *Transport) SendSnapshot(m *raftpb.Message, body io.ReadCloser) {
	if body == nil {
		body = io.NopCloser(eofReader{})
	}
	p, closed := t.lookup(m.GetTo())
	if closed {
		body.Close()
		return
	}
	if p == nil {
		body.Close()
		t.lg.Warn("cannot send snapshot to unknown peer", zap.String("peer-id", idLabel(m.GetTo())))
		// Report the failure so raft does not wait for the peer forever;
		// never from the caller's goroutine.
		t.goTracked(func() { t.reportSnapshot(m.GetTo(), false) })
		return
	}
	if !t.goTracked(func() { p.sendSnapshot(m, body) }) {
		body.Close()
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// ActiveSince returns when the current stream to peer id was accepted, or
// the zero time when there is none (the peer is unknown, unreachable,
// refusing us, or cut off).
func (t *Transport) ActiveSince(id uint64) time.Time {
	p, _ := t.lookup(id)
	if p == nil {
		return time.Time{}
	}
	if ns := p.active.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Close stops every stream and goroutine of the transport and waits for
// them. No Receiver method is called once it has returned. Inbound streams
// are handler goroutines of the caller's gRPC server: they stop delivering
// at once and return at their next frame (peers ping every PingInterval);
// stop the gRPC server to end them at once. Close is idempotent.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return
	}
	t.mu.closed = true
	peers := t.mu.peers
	t.mu.peers = map[uint64]*peer{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		p.stop()
	}
	t.wg.Wait()
	t.m.unregister(t.cfg.Metrics)
}

// reportLoop calls Receiver.ReportUnreachable for every peer marked
// unreachable, coalescing marks between calls. It is the only caller of
// ReportUnreachable, so the raft loop gets at most one call per peer per
// wake-up whatever the drop rate.
func (t *Transport) reportLoop() {
	var ids []uint64
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.reportc:
		}
		ids = ids[:0]
		t.mu.RLock()
		for id, p := range t.mu.peers {
			if p.unreachable.Swap(false) {
				ids = append(ids, id)
			}
		}
		t.mu.RUnlock()
		slices.Sort(ids)
		for _, id := range ids {
			if t.ctx.Err() != nil {
				return
			}
			t.cfg.Receiver.ReportUnreachable(id)
		}
	}
}

func (t *Transport) wakeReporter() {
	select {
	case t.reportc <- struct{}{}:
	default:
	}
}

// reportSnapshot tells raft how a snapshot send ended, unless the
// transport is closing (raft is going away too, and Close promises no
// Receiver calls after it returns).
func (t *Transport) reportSnapshot(id uint64, ok bool) {
	if t.ctx.Err() != nil {
		return
	}
	status := raft.SnapshotFailure
	if ok {
		status = raft.SnapshotFinish
	}
	t.cfg.Receiver.ReportSnapshot(id, status)
}

// admission reports whether streams from member from are admitted, and
// why not.
func (t *Transport) admission(from uint64) (rejectReason, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch {
	case t.mu.removed[from]:
		return rejectRemovedMember, false
	case t.mu.peers[from] == nil:
		return rejectUnknownMember, false
	}
	return 0, true
}
