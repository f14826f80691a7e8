package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/internal/fsutil"
)

// Snapshot is a raft snapshot marker recorded in the WAL: the index and
// term of a snapshot the state machine holds.
type Snapshot struct{ Index, Term uint64 }

var (
	// ErrCorrupt is wrapped by every error that reports damaged log data.
	// The message names the file and the byte offset of the bad record.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrSnapshotNotFound means the snapshot given to Open has no marker in
	// the log.
	ErrSnapshotNotFound = errors.New("wal: snapshot marker not found")
	// ErrSnapshotMismatch means the log has a marker at the snapshot's index
	// but with another term.
	ErrSnapshotMismatch = errors.New("wal: snapshot marker term mismatch")

	errNotReady = errors.New("wal: ReadAll must complete before appending")
	errClosed   = errors.New("wal: closed")
)

// DefaultSegmentSize is the size (bytes) past which Save starts a new
// segment, and the size each segment is preallocated to.
const DefaultSegmentSize = 64 << 20

// Option adjusts Create and Open.
type Option func(*options)

type options struct {
	segmentSize int64
	// observeSync, when set, is told how long each fsync of the tail took.
	observeSync func(time.Duration)
	// observeWrite, when set, is told each write of records to the tail.
	observeWrite func(bytes int, d time.Duration)
}

// WithSegmentSize sets the segment size in bytes (default
// DefaultSegmentSize). Values below 4 KiB are raised to 4 KiB.
func WithSegmentSize(bytes int64) Option {
	return func(o *options) { o.segmentSize = max(bytes, 4<<10) }
}

// WithSyncObserver has observe called with the duration of every fsync of
// the tail segment, failed ones included: those of Save, SaveSnapshot,
// Close and of a segment cut, the fsyncs that writes wait for (etcd reports
// them as etcd_disk_wal_fsync_duration_seconds); the background
// preparation of the next segment is not counted. observe runs
// on the goroutine that owns the WAL, inside the write path: it must be
// cheap and must not block. A nil observe is ignored.
func WithSyncObserver(observe func(time.Duration)) Option {
	return func(o *options) { o.observeSync = observe }
}

// WithWriteObserver has observe called with the size and duration of every
// write of records to the tail segment, failed ones included: those of
// Save and SaveSnapshot (etcd reports them as
// etcd_disk_wal_write_bytes_total and etcd_disk_wal_write_duration_seconds).
// The head a segment cut writes into the next segment is not counted.
// observe runs on the goroutine that owns the WAL, inside the write path:
// it must be cheap and must not block. A nil observe is ignored.
func WithWriteObserver(observe func(bytes int, d time.Duration)) Option {
	return func(o *options) { o.observeWrite = observe }
}

func makeOptions(opts []Option) options {
	o := options{segmentSize: DefaultSegmentSize}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WAL is a segmented write-ahead log for one raft member. It is owned by a
// single goroutine (the raft loop) and is not safe for concurrent use.
type WAL struct {
	fs   vfs.FS
	dir  string
	opts options
	lock io.Closer

	// start is the snapshot the log is read from; set by Open.
	start    Snapshot
	readDone bool // ReadAll was called (Create counts as having read)
	// ready means the WAL may append: after Create or a successful ReadAll.
	ready  bool
	closed bool

	segs []segment // live segments, oldest first; the last one is the tail

	tail vfs.File // the last segment, open for writing; nil until ready
	off  int64    // where the next record goes in tail
	crc  uint32   // chain value after the last record in the log

	metadata []byte            // repeated at the start of every segment
	state    *raftpb.HardState // last hard state written; never nil once ready
	// lastIndex is the index of the last entry written, raised to the index
	// of any later snapshot marker. The next segment is named lastIndex+1:
	// every entry of a segment is below the first index of its successor.
	lastIndex uint64
	// markers known to be in live segments, in log order. ReleaseTo uses
	// them to decide what Open will still need.
	markers []Snapshot

	// spare delivers the file for the next segment, zeroed in the
	// background by the one goroutine a WAL runs; nil when none is being
	// prepared. Close waits for it.
	spare chan spare

	enc encoder
	// err is the first write or sync failure. Once set every later write
	// returns it: what reached the disk is unknown, so the member must stop.
	err error
}

// Exist reports whether dir holds at least one WAL segment.
func Exist(fs vfs.FS, dir string) bool {
	segs, err := listSegments(fs, dir)
	return err == nil && len(segs) > 0
}

// Create makes a new WAL in dir, which must not exist or be empty. The first
// segment holds metadata and a snapshot marker {0,0}. The WAL is built in a
// temporary directory that is renamed into place once durable, so a crash
// never leaves a half-made WAL. The returned WAL is ready to append.
func Create(fs vfs.FS, dir string, metadata []byte, opts ...Option) (*WAL, error) {
	if Exist(fs, dir) {
		return nil, fmt.Errorf("wal: %s already holds a WAL: %w", dir, os.ErrExist)
	}
	// An empty dir is replaced; anything else in it is not ours to delete.
	dirExists := false
	switch names, err := fs.List(dir); {
	case err == nil && len(names) > 0:
		return nil, fmt.Errorf("wal: %s is not empty (%s)", dir, strings.Join(names, ", "))
	case err == nil:
		dirExists = true
	case !isNotExist(err):
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	o := makeOptions(opts)
	parent := fs.PathDir(dir)
	if err := mkdirAllDurable(fs, parent); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", parent, err)
	}
	tmp := dir + tmpExt
	if err := fs.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("wal: remove stale %s: %w", tmp, err)
	}
	if err := fs.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", tmp, err)
	}

	first := segment{seq: 0, first: 1}
	var enc encoder
	if err := enc.appendCarry(first, 0); err != nil {
		return nil, err
	}
	if err := enc.appendBytes(typeMetadata, metadata); err != nil {
		return nil, err
	}
	if err := enc.appendMarker(Snapshot{}); err != nil {
		return nil, err
	}
	f, err := createSegment(fs, fs.PathJoin(tmp, first.name()), enc.buf, o.segmentSize)
	if err != nil {
		_ = fs.RemoveAll(tmp)
		return nil, err
	}
	fail := func(err error) (*WAL, error) {
		_ = f.Close()
		_ = fs.RemoveAll(tmp)
		return nil, err
	}
	if err := fsutil.SyncDir(fs, tmp); err != nil {
		return fail(fmt.Errorf("wal: sync %s: %w", tmp, err))
	}
	if dirExists {
		if err := fs.Remove(dir); err != nil {
			return fail(fmt.Errorf("wal: remove empty %s: %w", dir, err))
		}
	}
	if err := fs.Rename(tmp, dir); err != nil {
		return fail(fmt.Errorf("wal: rename %s: %w", tmp, err))
	}
	if err := fsutil.SyncDir(fs, parent); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("wal: sync %s: %w", parent, err)
	}
	lock, err := fs.Lock(fs.PathJoin(dir, lockName))
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	w := &WAL{
		fs:       fs,
		dir:      dir,
		opts:     o,
		lock:     lock,
		readDone: true,
		ready:    true,
		segs:     []segment{first},
		tail:     f,
		off:      int64(len(enc.buf)),
		crc:      enc.crc,
		metadata: bytes.Clone(metadata),
		state:    &raftpb.HardState{},
		markers:  []Snapshot{{}},
	}
	return w, nil
}

// createSegment writes a new segment file at path holding head, durable
// before it returns, and leaves it open for appending.
func createSegment(fs vfs.FS, path string, head []byte, size int64) (vfs.File, error) {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", path, err)
	}
	if err := preallocate(f, size); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("wal: preallocate %s: %w", path, err)
	}
	if err := writeHead(f, path, head); err != nil {
		return nil, err
	}
	return f, nil
}

// writeHead writes the first records of a segment and makes them durable;
// on failure it closes f.
func writeHead(f vfs.File, path string, head []byte) error {
	_, err := f.WriteAt(head, 0)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("wal: write %s: %w", path, err)
	}
	return nil
}

// spare is a preallocated file waiting to become the next segment.
type spare struct {
	f    vfs.File
	path string
	err  error
}

// prepareSpare starts zeroing the file for the next segment in the
// background once the tail is half full, so that a cut on the raft loop costs a small write, a rename
// and fsyncs rather than writing a whole segment. The goroutine touches
// nothing but its own file and delivers exactly one value on w.spare.
func (w *WAL) prepareSpare() {
	ch := make(chan spare, 1)
	w.spare = ch
	fs, size := w.fs, w.opts.segmentSize
	path := fs.PathJoin(w.dir, "spare"+segmentExt+tmpExt)
	go func() {
		f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
		if err == nil {
			if err = preallocate(f, size); err == nil {
				err = f.Sync()
			}
			if err != nil {
				_ = f.Close()
				f = nil
			}
		}
		ch <- spare{f: f, path: path, err: err}
	}()
}

// takeSpare waits for the spare being prepared, if any.
func (w *WAL) takeSpare() (spare, bool) {
	if w.spare == nil {
		return spare{}, false
	}
	s := <-w.spare
	w.spare = nil
	return s, true
}

// Open opens the WAL in dir for reading from snap, which must be a marker
// recorded with SaveSnapshot, or {0,0} to read from the oldest segment.
// ReadAll must be called before anything is appended.
func Open(fs vfs.FS, dir string, snap Snapshot, opts ...Option) (*WAL, error) {
	segs, err := listSegments(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("wal: no WAL in %s: %w", dir, os.ErrNotExist)
	}
	lock, err := fs.Lock(fs.PathJoin(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	return &WAL{
		fs:    fs,
		dir:   dir,
		opts:  makeOptions(opts),
		lock:  lock,
		start: snap,
		segs:  segs,
	}, nil
}

// ReadAll reads the log from the snapshot given to Open and returns the
// metadata, the last hard state (empty if none was saved) and the entries
// after the snapshot index. An entry whose index was already seen replaces
// it and everything after it, as raft rewrites uncommitted tails.
//
// A torn tail at the end of the last segment is cleared and the WAL becomes
// ready to append after the last valid record. Damage anywhere else returns
// an error wrapping ErrCorrupt. ReadAll may be called once.
func (w *WAL) ReadAll() (metadata []byte, st *raftpb.HardState, ents []*raftpb.Entry, err error) {
	switch {
	case w.closed:
		return nil, nil, nil, errClosed
	case w.readDone:
		return nil, nil, nil, errors.New("wal: ReadAll may be called only once, and not after Create")
	}
	w.readDone = true

	from := startSegment(w.segs, w.start.Index)
	segs := w.segs[from:]
	st = &raftpb.HardState{}
	var (
		metaSeen, found bool
		lastIndex       uint64
		markers         []Snapshot
	)
	if segs[0].first > 0 {
		lastIndex = segs[0].first - 1
	}
	visit := func(path string, _ segment, rec record) error {
		switch rec.typ {
		case typeMetadata:
			if metaSeen && !bytes.Equal(metadata, rec.payload) {
				return corruptf(path, rec.off, "metadata differs from earlier segments")
			}
			metadata, metaSeen = bytes.Clone(rec.payload), true
		case typeEntry:
			e := &raftpb.Entry{}
			if err := proto.Unmarshal(rec.payload, e); err != nil {
				return corruptf(path, rec.off, "decode entry: %v", err)
			}
			idx := e.GetIndex()
			lastIndex = idx
			if idx <= w.start.Index {
				return nil
			}
			if len(ents) == 0 {
				if w.start.Index > 0 && idx != w.start.Index+1 {
					return corruptf(path, rec.off, "entry %d does not follow snapshot index %d", idx, w.start.Index)
				}
			} else {
				first := ents[0].GetIndex()
				switch {
				case idx > first+uint64(len(ents)):
					return corruptf(path, rec.off, "entry %d leaves a gap after entry %d", idx, first+uint64(len(ents))-1)
				case idx < first:
					ents = ents[:0]
				default:
					ents = ents[:idx-first]
				}
			}
			ents = append(ents, e)
		case typeHardState:
			hs := &raftpb.HardState{}
			if err := proto.Unmarshal(rec.payload, hs); err != nil {
				return corruptf(path, rec.off, "decode hard state: %v", err)
			}
			st = hs
		case typeSnapshot:
			m, ok := decodeMarker(rec.payload)
			if !ok {
				return corruptf(path, rec.off, "snapshot marker of %d bytes", len(rec.payload))
			}
			if m.Index == w.start.Index {
				if m.Term != w.start.Term {
					return fmt.Errorf("%w: %s at offset %d records term %d at index %d, want term %d",
						ErrSnapshotMismatch, path, rec.off, m.Term, m.Index, w.start.Term)
				}
				found = true
			}
			markers = append(markers, m)
			lastIndex = max(lastIndex, m.Index)
		default:
			return corruptf(path, rec.off, "unknown record type %d", uint8(rec.typ))
		}
		return nil
	}
	res, err := scan(w.fs, w.dir, segs, visit)
	if err != nil {
		return nil, nil, nil, err
	}
	if !found && w.start != (Snapshot{}) {
		return nil, nil, nil, fmt.Errorf("%w: index %d term %d in %s", ErrSnapshotNotFound, w.start.Index, w.start.Term, w.dir)
	}
	if !metaSeen {
		return nil, nil, nil, fmt.Errorf("%w: %s: no metadata record", ErrCorrupt, w.dir)
	}
	if err := w.openTail(res.end); err != nil {
		w.err = err
		return nil, nil, nil, err
	}
	w.crc = res.crc
	w.metadata = metadata
	w.state = proto.Clone(st).(*raftpb.HardState)
	w.lastIndex = lastIndex
	if !found {
		markers = append([]Snapshot{w.start}, markers...)
	}
	w.markers = markers
	w.ready = true
	return metadata, st, ents, nil
}

// openTail prepares the last segment for appending at end, clearing
// whatever a crash left after it, and removes half-made segments.
func (w *WAL) openTail(end int64) error {
	path := w.fs.PathJoin(w.dir, w.segs[len(w.segs)-1].name())
	f, err := w.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	if err := clearFrom(f, end); err != nil {
		_ = f.Close()
		return fmt.Errorf("wal: clear tail of %s from offset %d: %w", path, end, err)
	}
	names, err := w.fs.List(w.dir)
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("wal: list %s: %w", w.dir, err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, segmentExt+tmpExt) {
			if err := w.fs.Remove(w.fs.PathJoin(w.dir, name)); err != nil && !isNotExist(err) {
				_ = f.Close()
				return fmt.Errorf("wal: remove %s: %w", name, err)
			}
		}
	}
	w.tail, w.off = f, end
	return nil
}

func (w *WAL) writable() error {
	switch {
	case w.closed:
		return errClosed
	case w.err != nil:
		return w.err
	case !w.ready:
		return errNotReady
	}
	return nil
}

// fail records the first write failure; see WAL.err.
func (w *WAL) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Save appends the hard state, unless it is empty, and the entries, which
// must be contiguous and start at most one past the last entry written (a
// lower start rewrites the tail). It fsyncs before returning when
// raft.MustSync requires it: whenever there are entries, or the term or
// vote changed. It starts a new segment once the current one reaches the
// segment size.
func (w *WAL) Save(st *raftpb.HardState, ents []*raftpb.Entry) error {
	if err := w.writable(); err != nil {
		return err
	}
	hasState := !raft.IsEmptyHardState(st)
	if !hasState && len(ents) == 0 {
		return nil
	}
	for i, e := range ents {
		switch {
		case e.GetIndex() == 0:
			return fmt.Errorf("wal: entry %d of the batch has index 0", i)
		case i == 0 && e.GetIndex() > w.lastIndex+1:
			return fmt.Errorf("wal: entry %d would leave a gap after entry %d", e.GetIndex(), w.lastIndex)
		case i > 0 && e.GetIndex() != ents[i-1].GetIndex()+1:
			return fmt.Errorf("wal: entries not contiguous: %d after %d", e.GetIndex(), ents[i-1].GetIndex())
		}
	}
	mustSync := len(ents) > 0
	if hasState {
		mustSync = raft.MustSync(st, w.state, len(ents))
	}

	// Entries go before the hard state: a torn write then keeps a prefix,
	// and a surviving commit index never points past surviving entries.
	w.enc.reset(w.crc)
	for _, e := range ents {
		if err := w.enc.appendProto(typeEntry, e); err != nil {
			return err
		}
	}
	if hasState {
		if err := w.enc.appendProto(typeHardState, st); err != nil {
			return err
		}
	}
	if err := w.write(); err != nil {
		return err
	}
	if len(ents) > 0 {
		w.lastIndex = ents[len(ents)-1].GetIndex()
	}
	if hasState {
		w.state = proto.Clone(st).(*raftpb.HardState)
	}
	if mustSync {
		if err := w.syncTail(); err != nil {
			return w.fail(fmt.Errorf("wal: sync %s: %w", w.tailName(), err))
		}
	}
	switch {
	case w.off >= w.opts.segmentSize:
		if err := w.cut(); err != nil {
			return w.fail(err)
		}
	case w.spare == nil && w.off >= w.opts.segmentSize/2:
		// Halfway through the tail: get the next segment ready.
		w.prepareSpare()
	}
	return nil
}

// SaveSnapshot records a snapshot marker and fsyncs. For a snapshot
// received from the leader, record the marker before saving the entries
// that follow it: Save refuses entries that leave a gap.
func (w *WAL) SaveSnapshot(s Snapshot) error {
	if err := w.writable(); err != nil {
		return err
	}
	w.enc.reset(w.crc)
	if err := w.enc.appendMarker(s); err != nil {
		return err
	}
	if err := w.write(); err != nil {
		return err
	}
	w.markers = append(w.markers, s)
	w.lastIndex = max(w.lastIndex, s.Index)
	if err := w.syncTail(); err != nil {
		return w.fail(fmt.Errorf("wal: sync %s: %w", w.tailName(), err))
	}
	return nil
}

// syncTail fsyncs the tail segment and reports the duration to the
// observer, if any.
func (w *WAL) syncTail() error {
	if w.opts.observeSync == nil {
		return w.tail.SyncData()
	}
	start := time.Now()
	err := w.tail.SyncData()
	w.opts.observeSync(time.Since(start))
	return err
}

// write appends the encoder's records to the tail.
func (w *WAL) write() error {
	start := time.Now()
	n, err := w.tail.WriteAt(w.enc.buf, w.off)
	if w.opts.observeWrite != nil {
		w.opts.observeWrite(n, time.Since(start))
	}
	if err != nil {
		return w.fail(fmt.Errorf("wal: write %s at offset %d: %w", w.tailName(), w.off, err))
	}
	w.off += int64(len(w.enc.buf))
	w.crc = w.enc.crc
	return nil
}

func (w *WAL) tailName() string {
	return w.fs.PathJoin(w.dir, w.segs[len(w.segs)-1].name())
}

// cut closes the tail segment and starts the next one. The old tail is
// synced first: a later segment existing implies every earlier one is
// complete, which is why only the last segment may have a torn tail.
func (w *WAL) cut() error {
	if err := w.syncTail(); err != nil {
		return fmt.Errorf("wal: sync %s: %w", w.tailName(), err)
	}
	next := segment{seq: w.segs[len(w.segs)-1].seq + 1, first: w.lastIndex + 1}
	w.enc.reset(0)
	if err := w.enc.appendCarry(next, w.crc); err != nil {
		return err
	}
	if err := w.enc.appendBytes(typeMetadata, w.metadata); err != nil {
		return err
	}
	// Repeat the hard state so that releasing older segments never loses it.
	if !raft.IsEmptyHardState(w.state) {
		if err := w.enc.appendProto(typeHardState, w.state); err != nil {
			return err
		}
	}
	path := w.fs.PathJoin(w.dir, next.name())
	tmp := path + tmpExt
	var f vfs.File
	if s, ok := w.takeSpare(); ok && s.err == nil {
		f, tmp = s.f, s.path
		if err := writeHead(f, tmp, w.enc.buf); err != nil {
			return err
		}
	} else {
		// No spare, or preparing it failed: do it here, where a failure
		// is reported.
		var err error
		if f, err = createSegment(w.fs, tmp, w.enc.buf, w.opts.segmentSize); err != nil {
			return err
		}
	}
	if err := w.fs.Rename(tmp, path); err != nil {
		_ = f.Close()
		return fmt.Errorf("wal: rename %s: %w", tmp, err)
	}
	if err := fsutil.SyncDir(w.fs, w.dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("wal: sync %s: %w", w.dir, err)
	}
	old := w.tail
	w.tail, w.off, w.crc = f, int64(len(w.enc.buf)), w.enc.crc
	w.segs = append(w.segs, next)
	if err := old.Close(); err != nil {
		return fmt.Errorf("wal: close segment %d: %w", next.seq-1, err)
	}
	return nil
}

// ReleaseTo removes the segments that Open at the latest snapshot marker
// at or below index no longer needs: those before the segment reading for
// that marker starts from (see startSegment). All their entries are below
// index. The tail segment is never removed. The caller must ensure the
// state up to that snapshot is durable elsewhere.
func (w *WAL) ReleaseTo(index uint64) error {
	if err := w.writable(); err != nil {
		return err
	}
	var (
		m  Snapshot
		ok bool
	)
	for _, s := range w.markers {
		if s.Index <= index && (!ok || s.Index >= m.Index) {
			m, ok = s, true
		}
	}
	if !ok {
		return nil
	}
	keep := startSegment(w.segs, m.Index)
	if keep == 0 {
		return nil
	}
	// Oldest first, so that a crash midway leaves a consecutive suffix.
	for i := 0; i < keep; i++ {
		path := w.fs.PathJoin(w.dir, w.segs[i].name())
		if err := w.fs.Remove(path); err != nil && !isNotExist(err) {
			w.segs = w.segs[i:]
			return fmt.Errorf("wal: remove %s: %w", path, err)
		}
	}
	w.segs = append([]segment(nil), w.segs[keep:]...)
	// Markers below m can no longer be used for ReleaseTo decisions that
	// keep more than m does, so they are dropped to bound the list.
	kept := w.markers[:0]
	for _, s := range w.markers {
		if s.Index >= m.Index {
			kept = append(kept, s)
		}
	}
	w.markers = kept
	if err := fsutil.SyncDir(w.fs, w.dir); err != nil {
		return fmt.Errorf("wal: sync %s: %w", w.dir, err)
	}
	return nil
}

// Close syncs the tail (unless a write already failed) and releases the
// directory lock. The WAL cannot be used afterwards.
func (w *WAL) Close() error {
	if w.closed {
		return errClosed
	}
	w.closed = true
	var err error
	if s, ok := w.takeSpare(); ok && s.f != nil {
		_ = s.f.Close()
		_ = w.fs.Remove(s.path)
	}
	if w.tail != nil {
		if w.err == nil {
			if serr := w.syncTail(); serr != nil {
				err = fmt.Errorf("wal: sync %s: %w", w.tailName(), serr)
			}
		}
		if cerr := w.tail.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("wal: close %s: %w", w.tailName(), cerr)
		}
		w.tail = nil
	}
	if w.lock != nil {
		if lerr := w.lock.Close(); lerr != nil && err == nil {
			err = fmt.Errorf("wal: unlock %s: %w", w.dir, lerr)
		}
	}
	return err
}

// ValidSnapshotEntries scans every segment in dir and returns the snapshot
// markers whose index is at most the commit index of the last hard state:
// a marker above it may belong to a snapshot whose hard state never reached
// the disk, and raft cannot restart from a snapshot beyond its commit
// index. The scan stops at a torn tail and modifies nothing. {0,0} is
// included while the first segment is still present.
func ValidSnapshotEntries(fs vfs.FS, dir string) ([]Snapshot, error) {
	segs, err := listSegments(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("wal: no WAL in %s: %w", dir, os.ErrNotExist)
	}
	var (
		markers []Snapshot
		commit  uint64
	)
	visit := func(path string, _ segment, rec record) error {
		switch rec.typ {
		case typeSnapshot:
			m, ok := decodeMarker(rec.payload)
			if !ok {
				return corruptf(path, rec.off, "snapshot marker of %d bytes", len(rec.payload))
			}
			markers = append(markers, m)
		case typeHardState:
			hs := &raftpb.HardState{}
			if err := proto.Unmarshal(rec.payload, hs); err != nil {
				return corruptf(path, rec.off, "decode hard state: %v", err)
			}
			commit = hs.GetCommit()
		}
		return nil
	}
	if _, err := scan(fs, dir, segs, visit); err != nil {
		return nil, err
	}
	valid := markers[:0]
	for _, m := range markers {
		if m.Index <= commit {
			valid = append(valid, m)
		}
	}
	return valid, nil
}
