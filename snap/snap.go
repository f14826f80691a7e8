package snap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/wal"
)

var (
	// ErrNoSnapshot means no valid snapshot file (matching the markers, for
	// LoadNewestAvailable) exists.
	ErrNoSnapshot = errors.New("snap: no available snapshot")
	// ErrCRCMismatch means a snapshot file's checksum does not match its
	// contents.
	ErrCRCMismatch = errors.New("snap: crc mismatch")

	// errMalformed covers every other way a file can fail to be a valid
	// snapshot. Like ErrCRCMismatch it makes Load set the file aside.
	errMalformed = errors.New("snap: malformed snapshot file")
)

const (
	snapExt   = ".snap"
	tmpExt    = ".tmp"
	brokenExt = ".broken"

	headerSize    = 24
	formatVersion = 1
)

var (
	magic    = [8]byte{'c', 'a', 'i', 'r', 'n', 's', 'n', 'p'}
	crcTable = crc32.MakeTable(crc32.Castagnoli)
)

// Snapshotter stores raft snapshots as files in one directory. It holds no
// state beyond its location and is safe for concurrent use; a Load racing
// with Purge skips files removed under it.
type Snapshotter struct {
	fs  vfs.FS
	dir string
	// err is the failure to create dir, reported by every method.
	err error
	// observe is ObserveSaves' function, or nil.
	observe func(encode, write, total time.Duration)
}

// ObserveSaves has f told of every snapshot SaveSnap saves: how long its
// encoding took, its file's write and fsync, and the whole save (etcd's
// etcd_debugging_snap_save_marshalling_duration_seconds,
// etcd_snap_fsync_duration_seconds and
// etcd_debugging_snap_save_total_duration_seconds). Call it before any
// other method; f runs on the caller of SaveSnap and must not block.
func (s *Snapshotter) ObserveSaves(f func(encode, write, total time.Duration)) { s.observe = f }

// New returns a Snapshotter for dir, creating dir (durably) if missing. A
// failure to create it is returned by every later call.
func New(fs vfs.FS, dir string) *Snapshotter {
	s := &Snapshotter{fs: fs, dir: dir}
	if err := mkdirAllDurable(fs, dir); err != nil {
		s.err = fmt.Errorf("snap: create %s: %w", dir, err)
	}
	return s
}

// mkdirAllDurable creates dir and any missing parents, syncing the parent
// of each directory it creates so that the new entries survive a crash.
func mkdirAllDurable(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if parent := fs.PathDir(dir); parent != dir {
		if err := mkdirAllDurable(fs, parent); err != nil {
			return err
		}
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return fsutil.SyncDir(fs, parent)
	}
	return fs.MkdirAll(dir, 0o755)
}

// id is what a snapshot file's name says it holds.
type id struct{ term, index uint64 }

func (i id) name() string { return fmt.Sprintf("%016x-%016x%s", i.term, i.index, snapExt) }

func parseName(name string) (id, bool) {
	const n = 16 + 1 + 16 + len(snapExt)
	if len(name) != n || name[16] != '-' || name[33:] != snapExt {
		return id{}, false
	}
	term, ok1 := parseHex16(name[:16])
	index, ok2 := parseHex16(name[17:33])
	return id{term: term, index: index}, ok1 && ok2
}

func parseHex16(s string) (uint64, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// encode frames a marshalled raftpb.Snapshot; see doc.go for the layout.
func encode(payload []byte) []byte {
	b := make([]byte, headerSize+len(payload))
	copy(b[0:8], magic[:])
	binary.LittleEndian.PutUint32(b[8:12], formatVersion)
	binary.LittleEndian.PutUint64(b[16:24], uint64(len(payload)))
	copy(b[headerSize:], payload)
	binary.LittleEndian.PutUint32(b[12:16], checksum(b))
	return b
}

// checksum covers the whole file except the CRC field itself.
func checksum(b []byte) uint32 {
	crc := crc32.Update(0, crcTable, b[0:12])
	return crc32.Update(crc, crcTable, b[16:])
}

// decode parses a snapshot file. It never panics on any input.
func decode(b []byte) (*raftpb.Snapshot, error) {
	if len(b) < headerSize || !bytes.Equal(b[0:8], magic[:]) {
		return nil, fmt.Errorf("%w: not a snapshot file", errMalformed)
	}
	if v := binary.LittleEndian.Uint32(b[8:12]); v != formatVersion {
		return nil, fmt.Errorf("%w: unsupported format version %d", errMalformed, v)
	}
	if n := binary.LittleEndian.Uint64(b[16:24]); n != uint64(len(b)-headerSize) {
		return nil, fmt.Errorf("%w: header says %d payload bytes, file has %d", errMalformed, n, len(b)-headerSize)
	}
	if want, got := binary.LittleEndian.Uint32(b[12:16]), checksum(b); want != got {
		return nil, fmt.Errorf("%w: stored %08x, computed %08x", ErrCRCMismatch, want, got)
	}
	snap := &raftpb.Snapshot{}
	if err := proto.Unmarshal(b[headerSize:], snap); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return snap, nil
}

// SaveSnap writes snap to "<term>-<index>.snap" durably: it is written to a
// temporary file, synced, renamed into place and the directory synced, so
// a crash leaves either no file or a complete one. A snapshot with index 0
// is not saved.
func (s *Snapshotter) SaveSnap(snap *raftpb.Snapshot) error {
	if s.err != nil {
		return s.err
	}
	if raft.IsEmptySnap(snap) {
		return nil
	}
	start := time.Now()
	payload, err := proto.Marshal(snap)
	if err != nil {
		return fmt.Errorf("snap: encode: %w", err)
	}
	file := encode(payload)
	encoded := time.Now()
	md := snap.GetMetadata()
	path := s.fs.PathJoin(s.dir, id{term: md.GetTerm(), index: md.GetIndex()}.name())
	tmp := path + tmpExt
	if err := writeFile(s.fs, tmp, file); err != nil {
		_ = s.fs.Remove(tmp)
		return err
	}
	written := time.Now()
	if err := s.fs.Rename(tmp, path); err != nil {
		_ = s.fs.Remove(tmp)
		return fmt.Errorf("snap: rename %s: %w", tmp, err)
	}
	if err := fsutil.SyncDir(s.fs, s.dir); err != nil {
		return fmt.Errorf("snap: sync %s: %w", s.dir, err)
	}
	if s.observe != nil {
		s.observe(encoded.Sub(start), written.Sub(encoded), time.Since(start))
	}
	return nil
}

func writeFile(fs vfs.FS, path string, data []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("snap: create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snap: write %s: %w", path, err)
	}
	return nil
}

// Load returns the newest valid snapshot. A newest file that is corrupt is
// renamed to "*.broken" and the next older one is tried. ErrNoSnapshot if
// none is valid.
func (s *Snapshotter) Load() (*raftpb.Snapshot, error) {
	return s.loadNewest(func(id) bool { return true })
}

// LoadNewestAvailable is Load restricted to snapshots whose term and index
// match one of markers, the snapshot markers the WAL holds (see
// wal.ValidSnapshotEntries): at restart the member needs a snapshot the WAL
// can continue from.
func (s *Snapshotter) LoadNewestAvailable(markers []wal.Snapshot) (*raftpb.Snapshot, error) {
	known := make(map[id]bool, len(markers))
	for _, m := range markers {
		known[id{term: m.Term, index: m.Index}] = true
	}
	return s.loadNewest(func(i id) bool { return known[i] })
}

func (s *Snapshotter) loadNewest(want func(id) bool) (*raftpb.Snapshot, error) {
	ids, err := s.list()
	if err != nil {
		return nil, err
	}
	for _, i := range ids {
		if !want(i) {
			continue
		}
		snap, err := s.read(i)
		switch {
		case err == nil:
			return snap, nil
		case errors.Is(err, os.ErrNotExist):
			continue // purged since it was listed
		case errors.Is(err, ErrCRCMismatch), errors.Is(err, errMalformed):
			path := s.fs.PathJoin(s.dir, i.name())
			if rerr := s.fs.Rename(path, path+brokenExt); rerr != nil {
				return nil, fmt.Errorf("snap: set aside %s (%v): %w", path, err, rerr)
			}
		default:
			return nil, err
		}
	}
	return nil, ErrNoSnapshot
}

// read loads and checks one snapshot file, including that it holds the
// snapshot its name says.
func (s *Snapshotter) read(i id) (*raftpb.Snapshot, error) {
	path := s.fs.PathJoin(s.dir, i.name())
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snap: open %s: %w", path, err)
	}
	b, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("snap: read %s: %w", path, err)
	}
	snap, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("snap: %s: %w", path, err)
	}
	md := snap.GetMetadata()
	if got := (id{term: md.GetTerm(), index: md.GetIndex()}); got != i {
		return nil, fmt.Errorf("%w: %s holds term %d index %d", errMalformed, path, got.term, got.index)
	}
	return snap, nil
}

// list returns the ids of the snapshot files in dir, newest first.
func (s *Snapshotter) list() ([]id, error) {
	if s.err != nil {
		return nil, s.err
	}
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snap: list %s: %w", s.dir, err)
	}
	var ids []id
	for _, name := range names {
		if i, ok := parseName(name); ok {
			ids = append(ids, i)
		}
	}
	slices.SortFunc(ids, func(a, b id) int {
		if a.index != b.index {
			return cmpDesc(a.index, b.index)
		}
		return cmpDesc(a.term, b.term)
	})
	return ids, nil
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// Purge keeps the newest max snapshot files and removes the older ones;
// max <= 0 keeps all. Files set aside as broken are left for an operator.
func (s *Snapshotter) Purge(max int) error {
	if max <= 0 {
		return nil
	}
	ids, err := s.list()
	if err != nil || len(ids) <= max {
		return err
	}
	for _, i := range ids[max:] {
		path := s.fs.PathJoin(s.dir, i.name())
		if err := s.fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("snap: remove %s: %w", path, err)
		}
	}
	if err := fsutil.SyncDir(s.fs, s.dir); err != nil {
		return fmt.Errorf("snap: sync %s: %w", s.dir, err)
	}
	return nil
}
