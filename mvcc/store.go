package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-kv/cairn/storage"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

// Sentinel errors. The API layer maps them to etcd's messages.
var (
	// ErrCompacted: the requested revision is below the compact revision.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the requested revision is above the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("mvcc: store closed")
)

// RangeOptions selects what a Range returns.
type RangeOptions struct {
	Limit int64 // 0 means no limit
	Rev   int64 // 0 means the current revision
	Count bool  // count only: KVs stay nil, Count is set
	// KeysOnly leaves every KeyValue's Value nil; the values are then not
	// read at all.
	KeysOnly bool
}

// RangeResult is the answer of a Range. KVs and the slices they hold belong
// to the caller.
type RangeResult struct {
	KVs []*mvccpb.KeyValue
	// Rev is the store's revision when the read happened (what etcd puts in
	// the response header), not the revision read at.
	Rev int64
	// Count is the number of keys in the range at the read revision,
	// ignoring Limit.
	Count int
}

// Meta is the raft position the state machine has applied, committed in
// the same batch as the state it describes.
type Meta struct{ AppliedIndex, AppliedTerm uint64 }

// Store is a multi-version key-value store. See the package documentation.
type Store struct {
	db *pebble.DB
	lg *zap.Logger

	// Published state, read by any goroutine. Commit stores rev before
	// compactRev so a reader never sees compactRev > rev.
	rev        atomic.Int64
	compactRev atomic.Int64 // -1 until the first compaction
	meta       atomic.Pointer[Meta]
	keys       atomic.Int64 // live keys, see keycount.go
	closed     atomic.Bool

	// keysRev is the revision the key count record on disk is stamped
	// with; Commit rewrites the record when the revision it commits is
	// another. Apply goroutine only.
	keysRev int64

	// g is the open write group; owned by the apply goroutine.
	g group
	// broken is the error of a failed group; every later Commit returns it
	// (the apply loop's state no longer matches the disk). Apply goroutine
	// only.
	broken error

	comp compactor
	// compactionObserver is ObserveCompactions' function.
	compactionObserver atomic.Pointer[func(took time.Duration, dropped int)]
}

// group is the apply loop's unit of commit. Only the apply goroutine
// touches it.
type group struct {
	open  bool
	batch *pebble.Batch // indexed, so txns read their own group's writes
	// rev is the revision after every ended txn of the group (equal to the
	// published revision when the group has no change yet).
	rev int64
	// compactRev is the compact revision as the apply loop sees it: it
	// moves at Compact, the published one at Commit.
	compactRev int64
	// keys is the number of live keys after every write of the group so
	// far; the published count moves to it at Commit. Put and delete keep
	// it from the previous version they know anyway (no read of its own).
	keys int64
	txn  *TxnWrite
	// latest caches the newest state of every key written in this group, so
	// Put finds a key's previous version without reading the batch.
	latest map[string]keyState
	// dbIter reads committed state for keys the group has not written; the
	// DB only changes through this goroutine's commits (and compaction,
	// which never removes a key's newest live version), so one iterator
	// serves the whole group.
	dbIter  *pebble.Iterator
	seek    []byte
	waiters []waiter // compactions scheduled in this group
	// err is the first IO error met by a write; Commit returns it and the
	// group is never committed.
	err error
}

// keyState is what Put needs of a key's newest version.
type keyState struct {
	create, version, lease int64
	live                   bool
}

// Open loads the store kept in eng. A compaction that was scheduled but not
// finished resumes in the background.
func Open(eng *storage.Engine, lg *zap.Logger) (*Store, error) {
	return openPaced(eng, lg, defaultPacing)
}

// openPaced is Open with the compactor's pacing p (zero: defaultPacing).
func openPaced(eng *storage.Engine, lg *zap.Logger, p pacing) (*Store, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if p.rest == nil {
		p = defaultPacing
	}
	s := &Store{db: eng.DB(), lg: lg}
	s.comp.pacing = p
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// start loads the store from the engine's contents, upgraded to the
// current layout first, and starts the compactor, which must not be
// running; a compaction scheduled but not finished resumes. On an error
// the store's state did not change.
func (s *Store) start() error {
	if err := s.upgradeLayout(); err != nil {
		return err
	}
	m, rev, err := s.loadState()
	if err != nil {
		return err
	}
	keys, err := s.loadKeys(rev)
	if err != nil {
		return err
	}
	scheduled, err := loadInt(s.db, scheduledCompactKey)
	if err != nil {
		return err
	}
	finished, err := loadInt(s.db, finishedCompactKey)
	if err != nil {
		return err
	}
	s.broken = nil
	s.g = group{latest: make(map[string]keyState), compactRev: scheduled}
	s.keysRev = rev
	s.keys.Store(keys)
	s.rev.Store(max(rev, scheduled))
	s.compactRev.Store(scheduled)
	s.meta.Store(&m)
	s.comp.mu.Lock()
	// Compaction hashes of earlier contents describe another history.
	s.comp.mu.stopped, s.comp.mu.hashes, s.comp.mu.toHash = false, nil, nil
	s.comp.mu.Unlock()
	s.comp.init(s, finished, scheduled)
	if scheduled > finished {
		s.lg.Info("resuming unfinished compaction",
			zap.Int64("scheduled-compact-revision", scheduled),
			zap.Int64("finished-compact-revision", finished))
		s.comp.schedule(scheduled, nil, false)
	}
	return nil
}

// Restore replaces the store's contents: replace must atomically swap the
// engine's contents for another member's (storage.Engine.Restore), and the
// store then starts over from what the engine holds. Any open group is
// discarded, and the background compactor is stopped before replace runs,
// so no compaction computed from the old contents writes into the new;
// a compaction unfinished in the new contents resumes. Apply goroutine
// only. Readers see either the old or the new state.
func (s *Store) Restore(replace func() error) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.discardGroup()
	s.comp.close()
	if err := replace(); err != nil {
		return err
	}
	return s.start()
}

// encodeState is the record under stateKey: the applied position and the
// revision, loadState's input.
func encodeState(m Meta, rev int64) [24]byte {
	var st [24]byte
	binary.BigEndian.PutUint64(st[:], m.AppliedIndex)
	binary.BigEndian.PutUint64(st[8:], m.AppliedTerm)
	binary.BigEndian.PutUint64(st[16:], uint64(rev))
	return st
}

// loadState reads the applied position and revision; a fresh store is at
// revision 1, like etcd's.
func (s *Store) loadState() (Meta, int64, error) {
	v, c, err := s.db.Get(stateKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return Meta{}, 1, nil
	}
	if err != nil {
		return Meta{}, 0, fmt.Errorf("mvcc: read state: %w", err)
	}
	defer c.Close()
	if len(v) != 24 {
		return Meta{}, 0, fmt.Errorf("mvcc: state record of %d bytes: %w", len(v), errCorrupt)
	}
	m := Meta{AppliedIndex: binary.BigEndian.Uint64(v), AppliedTerm: binary.BigEndian.Uint64(v[8:])}
	return m, int64(binary.BigEndian.Uint64(v[16:])), nil
}

// loadInt reads the 8-byte meta entry under key from r; -1 when absent.
func loadInt(r pebble.Reader, key []byte) (int64, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mvcc: read %q: %w", key, err)
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("mvcc: meta %q of %d bytes: %w", key, len(v), errCorrupt)
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Close stops background compaction (it resumes at the next Open) and
// discards an uncommitted group. Waiters on unfinished compactions are
// released. It does not close the engine.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.comp.close()
	s.discardGroup()
	return nil
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Rev returns the revision of the last committed group.
func (s *Store) Rev() int64 { return s.rev.Load() }

// CompactRev returns the compact revision of the last committed group, 0
// when the store was never compacted.
func (s *Store) CompactRev() int64 { return max(s.compactRev.Load(), 0) }

// Keys returns the number of live keys (keys whose newest version is not a
// tombstone) at the published revision: the count of the last committed
// group, never of an open or discarded one. It is etcd's
// etcd_debugging_mvcc_keys_total, and costs an atomic load.
func (s *Store) Keys() int64 { return s.keys.Load() }

// FirstRev is etcd's lower bound for reads at an explicit revision: -1
// before any compaction, the compact revision after. Reads at a revision
// below it fail with ErrCompacted.
func (s *Store) FirstRev() int64 { return s.compactRev.Load() }

// Meta returns the applied position of the last committed group.
func (s *Store) Meta() Meta { return *s.meta.Load() }

// GetMeta returns the value committed under name through PutMeta, nil when
// absent.
func (s *Store) GetMeta(name string) ([]byte, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, c, err := s.db.Get(userMetaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mvcc: get meta %q: %w", name, err)
	}
	defer c.Close()
	return bytes.Clone(v), nil
}

// PutMeta writes an opaque metadata entry in the open group (opening one if
// needed); it becomes visible to GetMeta when the group commits.
func (s *Store) PutMeta(name string, value []byte) {
	s.openGroup()
	s.groupErr(s.g.batch.Set(userMetaKey(name), value, nil))
}

func (s *Store) openGroup() {
	if s.closed.Load() {
		panic("mvcc: write on a closed store")
	}
	if s.g.open {
		return
	}
	s.g.open = true
	s.g.batch = s.db.NewIndexedBatch()
	s.g.rev = s.rev.Load()
	s.g.keys = s.keys.Load()
}

func (s *Store) groupErr(err error) {
	if err != nil && s.g.err == nil {
		s.g.err = err
	}
}

// discardGroup drops the open group without committing it.
func (s *Store) discardGroup() {
	g := &s.g
	if g.dbIter != nil {
		g.dbIter.Close()
		g.dbIter = nil
	}
	if g.batch != nil {
		g.batch.Close()
		g.batch = nil
	}
	clear(g.latest)
	// Compactions of a group that never committed will not run; release
	// whoever waits on them rather than leak them.
	for _, w := range g.waiters {
		close(w.done)
	}
	g.open, g.txn, g.waiters, g.err = false, nil, nil, nil
}

// Commit writes the open group and m (and the live key count, when the
// revision moved since the count was last recorded) in one batch, made durable before it
// returns when sync is set (a flush of the engine's memtables, which works
// whether or not the engine keeps a WAL of its own), then publishes the
// group's revision and key count to readers and hands a compaction
// scheduled in the group to the background compactor.
// With no open group it records m alone. An error is final: the group is
// lost, every later Commit fails the same way, and the member must stop.
func (s *Store) Commit(m Meta, sync bool) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	g := &s.g
	if g.txn != nil {
		panic("mvcc: Commit with a transaction still open")
	}
	if s.broken == nil && g.err != nil {
		s.broken = fmt.Errorf("mvcc: group failed: %w", g.err)
	}
	if s.broken != nil {
		s.discardGroup()
		return s.broken
	}
	b := g.batch
	rev, keys := s.rev.Load(), s.keys.Load()
	if g.open {
		rev, keys = g.rev, g.keys
	} else {
		b = s.db.NewBatch()
	}
	st := encodeState(m, rev)
	err := b.Set(stateKey, st[:], nil)
	if err == nil && (rev != s.keysRev || keys != s.keys.Load()) {
		kc := encodeKeyCount(keys, rev)
		err = b.Set(keyCountKey, kc[:], nil)
	}
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	if !g.open {
		b.Close()
	}
	if err == nil && sync {
		err = s.db.Flush()
	}
	if err != nil {
		s.broken = fmt.Errorf("mvcc: commit: %w", err)
		s.discardGroup()
		return s.broken
	}
	s.keysRev = rev
	s.meta.Store(&m)
	s.keys.Store(keys)
	s.rev.Store(rev)
	if len(g.waiters) > 0 {
		s.compactRev.Store(g.compactRev)
		for _, w := range g.waiters {
			s.comp.schedule(w.rev, w.done, true)
		}
		g.waiters = nil
	}
	s.discardGroup()
	return nil
}

// compactor runs physical compaction on one background goroutine.
type compactor struct {
	s *Store
	// pacing is set before the first start and never changes.
	pacing pacing
	kick   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		target   int64 // highest revision scheduled
		finished int64 // highest revision physically compacted
		waiters  []waiter
		stopped  bool
		hashes   []CompactHash // the last compactions', oldest first
		// toHash are logical compactions whose hash is still to take;
		// lastLogical is the newest logical compact revision (-1: none).
		toHash      []CompactHash
		lastLogical int64
	}
}

type waiter struct {
	rev  int64
	done chan struct{}
}
