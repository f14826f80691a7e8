package watch

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/mvcc"
)

// Errors with etcd's texts: the gRPC layer sends them as cancel reasons.
var (
	ErrDuplicateID  = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	ErrEmptyRange   = errors.New("mvcc: watcher range is empty")
	ErrNotExist     = errors.New("mvcc: watcher does not exist")
	ErrStreamClosed = errors.New("watch: stream closed")
)

// Source is what the hub reads history from: the MVCC store.
type Source interface {
	Rev() int64
	FirstRev() int64
	Events(ctx context.Context, from, to int64, maxEvents, maxBytes int) ([]*mvccpb.Event, int64, error)
}

// Response is one message for a watcher, or for a whole stream when
// WatchID is -1 (a progress notification answering RequestProgress).
type Response struct {
	WatchID int64
	// Gen identifies the watcher behind WatchID (see Stream.Watch); 0 for
	// stream-wide progress responses.
	Gen uint64
	// Events of one or more whole revisions, in order. Other responses
	// may share the slice and the events: read-only.
	Events []*mvccpb.Event
	// Revision is the header revision: the last revision notified when the
	// response was made; every event up to it that the watcher wants has
	// been delivered once this response is.
	Revision int64
	// CompactRevision, when set, cancels the watcher: the revisions it
	// needed are compacted.
	CompactRevision int64
	// Live marks the events of one revision delivered as it was
	// committed, rather than read back from storage in a catch-up batch
	// (whose grouping matches etcd's).
	Live bool
}

// Config tunes a hub; zero values take the defaults noted.
type Config struct {
	// QueueSize bounds the queue of each stream, in groups: a revision
	// delivered live (with the responses of every watcher of the stream it
	// reaches, which share its events) or one other response; default
	// 128.
	QueueSize int
	// CatchUpRevs bounds the revisions read for one catch-up response;
	// default 1000.
	CatchUpRevs int
	// CatchUpBytes bounds the keys and values read for one catch-up
	// response (a revision is never split, so one may exceed it); default
	// 1 MiB. It keeps catch-up memory and message sizes bounded.
	CatchUpBytes int
	// RetryInterval is how often the catch-up loop runs without being woken
	// (by Notify, a new watcher behind, or a reader making room); a safety
	// net, default 100ms.
	RetryInterval time.Duration
	Logger        *zap.Logger
}

// Hub fans committed events out to watchers.
type Hub struct {
	src    Source
	cfg    Config
	lg     *zap.Logger
	kick   chan struct{}
	stopc  chan struct{}
	donec  chan struct{}
	closed sync.Once

	gen    uint64                 // last watcher generation handed out; under mu
	groups map[*Stream][]Response // deliverLocked's scratch; under mu
	mu     struct {
		sync.Mutex
		rev      int64 // last notified revision
		synced   watcherSet
		unsynced map[*watcher]struct{}
		streams  map[*Stream]struct{}
	}
	metrics Metrics
	// pendingEvents counts the events queued in streams, not yet taken.
	pendingEvents atomic.Int64
}

// Metrics are the hub's gauges and counters, read by Stats.
type Metrics struct {
	Watchers, SlowWatchers, Streams int
	// Victims counts watchers that fell behind because their queue was full.
	Victims uint64
	// PendingEvents are the events queued for streams and not taken yet.
	PendingEvents int64
}

// NewHub starts a hub reading history from src, whose current revision is
// the starting point of notifications.
func NewHub(src Source, cfg Config) *Hub {
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 128
	}
	if cfg.CatchUpRevs == 0 {
		cfg.CatchUpRevs = 1000
	}
	if cfg.CatchUpBytes == 0 {
		cfg.CatchUpBytes = 1 << 20
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	h := &Hub{src: src, cfg: cfg, lg: cfg.Logger, kick: make(chan struct{}, 1), stopc: make(chan struct{}), donec: make(chan struct{})}
	h.mu.rev = src.Rev()
	h.mu.synced = newWatcherSet()
	h.mu.unsynced = map[*watcher]struct{}{}
	h.mu.streams = map[*Stream]struct{}{}
	h.groups = map[*Stream][]Response{}
	go h.catchUpLoop()
	return h
}

// Close stops the catch-up loop. Streams stay usable but get no more
// events.
func (h *Hub) Close() {
	h.closed.Do(func() { close(h.stopc) })
	<-h.donec
}

// Stats returns the current metrics.
func (h *Hub) Stats() Metrics {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.metrics
	m.Watchers = h.mu.synced.len() + len(h.mu.unsynced)
	m.SlowWatchers = len(h.mu.unsynced)
	m.Streams = len(h.mu.streams)
	m.PendingEvents = h.pendingEvents.Load()
	return m
}

// Notify tells the hub that everything up to rev is committed; evs are the
// events of the revisions since the previous call, in order. It never
// blocks on a watcher. It keeps the events, which must not change, but not
// evs itself: the caller may reuse the slice.
func (h *Hub) Notify(rev int64, evs []*mvccpb.Event) {
	// Watchers share slices of this copy (watcherSet.match).
	evs = slices.Clone(evs)
	h.mu.Lock()
	defer h.mu.Unlock()
	for start := 0; start < len(evs); {
		r := evs[start].Kv.ModRevision
		end := start + 1
		for end < len(evs) && evs[end].Kv.ModRevision == r {
			end++
		}
		h.deliverLocked(r, evs[start:end])
		start = end
	}
	h.mu.rev = max(h.mu.rev, rev)
	// Watchers that wait for a future revision now reached stay synced;
	// nothing else to do. Wake the catch-up loop if someone is behind.
	if len(h.mu.unsynced) > 0 {
		h.wake()
	}
}

// deliverLocked sends the events of revision rev to each synced watcher
// that wants some of them: one queue group per stream, so a stream's queue
// bounds revisions, however many of its watchers each one reaches.
func (h *Hub) deliverLocked(rev int64, evs []*mvccpb.Event) {
	groups := h.groups
	h.mu.synced.match(evs, func(w *watcher, mine []*mvccpb.Event) {
		if rev < w.minRev {
			return // it starts at a later revision
		}
		rs := groups[w.stream]
		if rs == nil {
			rs = make([]Response, 0, len(w.stream.watchers)) // room for all: no regrowth
		}
		groups[w.stream] = append(rs, Response{WatchID: w.id, Gen: w.gen, Events: mine, Revision: rev, Live: true})
	})
	for s, rs := range groups {
		delete(groups, s)
		if s.offer(rs...) {
			for _, r := range rs {
				s.watchers[r.WatchID].minRev = rev + 1
			}
			continue
		}
		// Queue full: its watchers fall behind and read this revision
		// from storage.
		s.wantRoom.Store(true)
		for _, r := range rs {
			w := s.watchers[r.WatchID]
			h.mu.synced.remove(w)
			h.mu.unsynced[w] = struct{}{}
			h.metrics.Victims++
		}
	}
	// A watcher whose revision passed without matching events is still
	// synced; its minRev only matters while it waits for a future start.
}

// Resync tells the hub that the store's contents were replaced (by a
// snapshot from the leader) and now stand at rev. Every watcher then reads
// what it has not seen yet from the store, as a slow watcher does; one
// whose next revision is compacted in the new contents is canceled with
// the compact revision.
func (h *Hub) Resync(rev int64) {
	h.mu.Lock()
	for _, ws := range h.mu.synced.keys {
		for w := range ws {
			h.mu.unsynced[w] = struct{}{}
		}
	}
	for w := range h.mu.synced.ranges {
		h.mu.unsynced[w] = struct{}{}
	}
	h.mu.synced = newWatcherSet()
	h.mu.rev = max(h.mu.rev, rev)
	h.mu.Unlock()
	h.wake()
}

func (h *Hub) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// catchUpLoop brings unsynced watchers up to date from storage.
func (h *Hub) catchUpLoop() {
	defer close(h.donec)
	t := time.NewTicker(h.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stopc:
			return
		case <-h.kick:
		case <-t.C:
		}
		for h.catchUpRound() {
			select {
			case <-h.stopc:
				return
			default:
			}
		}
	}
}

// sharedReadBytes bounds the catch-up reads one round keeps for reuse.
const sharedReadBytes = 16 << 20

// catchUpRound gives every unsynced watcher one batch; it reports whether
// some watcher made progress and is still behind (worth another round now).
func (h *Hub) catchUpRound() bool {
	type item struct {
		w    *watcher
		from int64
	}
	h.mu.Lock()
	rev := h.mu.rev
	behind := make([]item, 0, len(h.mu.unsynced))
	for w := range h.mu.unsynced {
		behind = append(behind, item{w, w.minRev})
	}
	h.mu.Unlock()
	again := false
	first := h.src.FirstRev()
	// Watchers behind by the same amount (many created at one past
	// revision, or fallen behind together) share one storage read per
	// round, up to sharedReadBytes of cached reads.
	type read struct {
		evs  []*mvccpb.Event
		next int64
	}
	reads := map[int64]read{}
	cached := 0
	for _, it := range behind {
		w := it.w
		if it.from < first {
			// What it needs is gone: cancel it with the compaction.
			if w.stream.offer(Response{WatchID: w.id, Gen: w.gen, CompactRevision: first}) {
				w.stream.retire(w)
			}
			continue
		}
		if w.stream.full() {
			// Its client is not reading: reading history for it now
			// would be thrown away. Stream.Took wakes the loop once the
			// client reads again.
			w.stream.wantRoom.Store(true)
			continue
		}
		to := min(rev, it.from+int64(h.cfg.CatchUpRevs)-1)
		next := it.from
		var mine []*mvccpb.Event
		if it.from <= to {
			r, ok := reads[it.from]
			if !ok {
				evs, n, err := h.src.Events(context.Background(), it.from, to, 0, h.cfg.CatchUpBytes)
				if errors.Is(err, mvcc.ErrCompacted) {
					continue // the next round cancels it
				}
				if err != nil {
					h.lg.Error("watch catch-up read failed", zap.Int64("from", it.from), zap.Int64("to", to), zap.Error(err))
					continue
				}
				r = read{evs, n}
				if cached < sharedReadBytes {
					reads[it.from] = r
					for _, ev := range evs {
						cached += len(ev.Kv.Key) + len(ev.Kv.Value)
					}
				}
			}
			next = r.next
			mine = w.filter(r.evs)
		}
		// The header carries the revision notified when the batch was read,
		// as etcd's does, even when the batch stops short of it.
		if len(mine) > 0 && !w.stream.offer(Response{WatchID: w.id, Gen: w.gen, Events: mine, Revision: rev}) {
			w.stream.wantRoom.Store(true) // still no room: retried when the reader takes one
			continue
		}
		h.mu.Lock()
		if !w.removed {
			w.minRev = next
			if next > h.mu.rev {
				// Caught up with everything notified: Notify serves it
				// from now on. Decided under the lock, so no revision
				// slips between catch-up and Notify.
				delete(h.mu.unsynced, w)
				h.mu.synced.add(w)
			} else {
				again = true
			}
		}
		h.mu.Unlock()
	}
	h.flushProgress()
	return again
}

// flushProgress answers pending progress requests of streams whose
// watchers are all synced.
func (h *Hub) flushProgress() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.mu.streams {
		if s.progressPending && len(s.watchers) > 0 && s.allSyncedLocked(h) {
			if s.offer(Response{WatchID: -1, Revision: h.mu.rev}) {
				s.progressPending = false
			}
		}
	}
}

// watcher is one watch on a stream.
type watcher struct {
	id       int64
	gen      uint64
	key, end []byte // end nil: one key; end empty: every key ≥ key
	noPut    bool
	noDelete bool
	minRev   int64
	stream   *Stream
	// Under Hub.mu: announced once the client knows the watcher (events
	// flow only then); retired once canceled by compaction; removed once
	// canceled by the client.
	announced, retired, removed bool
}

func (w *watcher) contains(key []byte) bool {
	switch {
	case w.end == nil:
		return bytes.Equal(key, w.key)
	case len(w.end) == 0:
		return bytes.Compare(key, w.key) >= 0
	}
	return bytes.Compare(key, w.key) >= 0 && bytes.Compare(key, w.end) < 0
}

func (w *watcher) wants(ev *mvccpb.Event) bool {
	if (ev.Type == mvccpb.PUT && w.noPut) || (ev.Type == mvccpb.DELETE && w.noDelete) {
		return false
	}
	return w.contains(ev.Kv.Key)
}

// filter returns the events w wants.
func (w *watcher) filter(evs []*mvccpb.Event) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range evs {
		if w.wants(ev) {
			out = append(out, ev)
		}
	}
	return out
}
