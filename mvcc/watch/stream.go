package watch

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// Stream is one client stream's set of watchers and its bounded queue of
// responses. Create it with Hub.NewStream; Take responses whenever Ready
// fires, until Close.
type Stream struct {
	h *Hub
	// q is the queue: groups of responses, each group one revision's
	// responses to the stream's synced watchers (or one response), at most
	// QueueSize groups. ready has a token while q is not empty.
	qmu sync.Mutex
	q   [][]Response
	// qClosed is set, under qmu, when Close dropped the queue: offer
	// queues nothing after it, so the hub's pending count stays exact.
	qClosed   bool
	ready     chan struct{}
	closedc   chan struct{}
	closeOnce sync.Once
	// wantRoom is set when a watcher of this stream waits for room in its
	// queue; Took wakes the catch-up loop as soon as the reader makes some.
	wantRoom atomic.Bool

	// Guarded by h.mu.
	watchers        map[int64]*watcher
	nextID          int64
	progressPending bool
}

// NewStream registers a new stream.
func (h *Hub) NewStream() *Stream {
	s := &Stream{h: h, ready: make(chan struct{}, 1), closedc: make(chan struct{}), watchers: map[int64]*watcher{}}
	h.mu.Lock()
	h.mu.streams[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Ready fires when responses are queued; Take them then.
func (s *Stream) Ready() <-chan struct{} { return s.ready }

// Take appends up to max queued responses to buf, in order, and returns
// it (buf unchanged when nothing is queued). Taking makes room: a watcher
// that fell behind for lack of it catches up now rather than at the next
// retry tick.
func (s *Stream) Take(buf []Response, max int) []Response {
	s.qmu.Lock()
	from := len(buf)
	for len(buf) < max && len(s.q) > 0 {
		g := s.q[0]
		n := min(len(g), max-len(buf))
		buf = append(buf, g[:n]...)
		if n < len(g) {
			s.q[0] = g[n:]
			break
		}
		s.q[0] = nil
		s.q = s.q[1:]
	}
	if len(s.q) > 0 {
		s.signal()
	}
	s.h.pendingEvents.Add(-countEvents(buf[from:]))
	s.qmu.Unlock()
	if s.wantRoom.Load() && s.wantRoom.CompareAndSwap(true, false) {
		s.h.wake()
	}
	return buf
}

func (s *Stream) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Watch adds a watcher on [key, end) (end nil: key alone; end empty: every
// key ≥ key) from startRev (0: the next revision). id 0 asks for the
// lowest unused ID, as etcd's AutoWatchID; another ID already in use is
// ErrDuplicateID. The watcher gets no events until Announce: the caller
// first tells the client it exists (etcd's created response). gen tells
// this watcher's responses apart from those of an earlier watcher that had
// the same ID.
func (s *Stream) Watch(id int64, key, end []byte, startRev int64, noPut, noDelete bool) (wid int64, gen uint64, err error) {
	if len(end) != 0 && bytes.Compare(key, end) >= 0 {
		return -1, 0, ErrEmptyRange
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.isClosed() {
		return -1, 0, ErrStreamClosed
	}
	if id == 0 {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		return -1, 0, ErrDuplicateID
	}
	h.gen++
	w := &watcher{id: id, gen: h.gen, key: key, end: end, noPut: noPut, noDelete: noDelete, minRev: startRev, stream: s}
	if startRev == 0 {
		w.minRev = h.mu.rev + 1
	}
	s.watchers[id] = w
	return id, w.gen, nil
}

// Announce starts delivering events to watcher (id, gen) once the client
// knows about it. A watcher canceled meanwhile is ignored.
func (s *Stream) Announce(id int64, gen uint64) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil || w.gen != gen || w.announced {
		return
	}
	w.announced = true
	if w.minRev > h.mu.rev {
		h.mu.synced.add(w)
		return
	}
	h.mu.unsynced[w] = struct{}{}
	h.wake()
}

// Cancel removes a watcher; ErrNotExist when the stream has no such ID.
func (s *Stream) Cancel(id int64) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil {
		return ErrNotExist
	}
	s.removeLocked(w)
	return nil
}

func (s *Stream) removeLocked(w *watcher) {
	w.removed = true
	delete(s.watchers, w.id)
	s.h.mu.synced.remove(w)
	delete(s.h.mu.unsynced, w)
}

// retire stops a watcher the hub canceled (compaction). As in etcd it
// keeps its ID on the stream until the client cancels it: Cancel then
// answers, the ID stays taken, and stream-wide progress waits for it.
func (s *Stream) retire(w *watcher) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if !w.removed {
		w.retired = true
		s.h.mu.synced.remove(w)
		delete(s.h.mu.unsynced, w)
	}
}

// RequestProgress asks for a stream-wide progress response (WatchID -1):
// sent as soon as every watcher of the stream is synced, so its revision
// promises that all events up to it were delivered.
func (s *Stream) RequestProgress() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(s.watchers) == 0 {
		return // etcd answers nothing on a stream without watchers
	}
	if s.allSyncedLocked(h) && s.offer(Response{WatchID: -1, Revision: h.mu.rev}) {
		return
	}
	s.progressPending = true
	h.wake()
}

// NotifyProgress sends watcher id an empty response carrying the current
// revision, if it is synced (the periodic progress_notify).
func (s *Stream) NotifyProgress(id int64) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := s.watchers[id]; w != nil && h.mu.synced.has(w) {
		s.offer(Response{WatchID: id, Gen: w.gen, Revision: h.mu.rev})
	}
}

// allSyncedLocked: every watcher has had every notified event it wants
// queued (a watcher not yet announced counts when it starts later).
func (s *Stream) allSyncedLocked(h *Hub) bool {
	for _, w := range s.watchers {
		if _, behind := h.mu.unsynced[w]; behind || w.retired || (!w.announced && w.minRev <= h.mu.rev) {
			return false
		}
	}
	return true
}

// Close removes every watcher of the stream.
func (s *Stream) Close() {
	s.closeOnce.Do(func() { close(s.closedc) })
	s.qmu.Lock()
	for _, g := range s.q {
		s.h.pendingEvents.Add(-countEvents(g))
	}
	s.q, s.qClosed = nil, true
	s.qmu.Unlock()
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range s.watchers {
		s.removeLocked(w)
	}
	delete(h.mu.streams, s)
}

func (s *Stream) isClosed() bool {
	select {
	case <-s.closedc:
		return true
	default:
		return false
	}
}

// full reports whether the queue has no room left.
func (s *Stream) full() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.q) >= s.h.cfg.QueueSize
}

// offer queues rs, one group, without blocking; false when the queue is
// full or the stream closed. The stream keeps rs.
func (s *Stream) offer(rs ...Response) bool {
	if s.isClosed() {
		return false
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.qClosed || len(s.q) >= s.h.cfg.QueueSize {
		return false
	}
	s.q = append(s.q, rs)
	s.h.pendingEvents.Add(countEvents(rs))
	s.signal()
	return true
}

// countEvents is the number of events in rs.
func countEvents(rs []Response) int64 {
	n := 0
	for _, r := range rs {
		n += len(r.Events)
	}
	return int64(n)
}
