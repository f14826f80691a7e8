package snap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/storage"
)

// Errors of engine snapshot bodies. Every error ReceiveEngineSnapshot and
// VerifyEngineSnapshot return for a bad body wraps exactly one of them; an
// error of the underlying reader is wrapped instead (as is).
var (
	// ErrBodyTruncated means the body ended before its trailer.
	ErrBodyTruncated = errors.New("snap: engine snapshot truncated")
	// ErrBodyCorrupt means the body is not a well-formed engine snapshot:
	// wrong magic or version, an unknown record, a bad or out-of-order file
	// name, a wrong file count, or bytes after the trailer.
	ErrBodyCorrupt = errors.New("snap: engine snapshot corrupt")
	// ErrBodyChecksum means the body is well formed but its SHA-256 trailer
	// does not match the bytes before it.
	ErrBodyChecksum = errors.New("snap: engine snapshot checksum mismatch")
)

// Engine snapshot body layout; see doc.go.
const (
	bodyVersion    = 1
	bodyHeaderSize = 8 + 4
	recFile        = 1
	recEnd         = 2
	fileRecSize    = 1 + 2 // + name + 8, see fileRecordSize
	endRecSize     = 1 + 8
	trailerSize    = sha256.Size
	maxNameLen     = 255

	// copyBufSize bounds the memory of one transfer: file contents move in
	// chunks of at most this many bytes.
	copyBufSize = 1 << 20

	// checkpointPrefix names the checkpoint directories under scratchDir.
	checkpointPrefix = "engine-snapshot-"
	// partialExt marks a directory ReceiveEngineSnapshot is still filling.
	partialExt = ".partial"
)

var bodyMagic = [8]byte{'c', 'a', 'i', 'r', 'n', 'e', 'n', 'g'}

func fileRecordSize(name string) int64 { return fileRecSize + int64(len(name)) + 8 }

// validName reports whether name may appear in a body: a plain file name
// of 1 to 255 bytes from [A-Za-z0-9._-] (every name Pebble uses), without
// "..", so that joining it to a directory can never leave that directory
// on any OS.
func validName(name string) bool {
	if len(name) == 0 || len(name) > maxNameLen || name == "." || strings.Contains(name, "..") {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

type bodyFile struct {
	name string
	size int64
}

// EngineSnapshot streams a point-in-time copy of a storage engine as an
// engine snapshot body (format in doc.go). It reads from a Pebble
// checkpoint it owns; Close removes the checkpoint.
//
// Read and WriteTo must not be called concurrently with each other. Close
// may be called at any time, also while a Read runs on another goroutine
// (the transport does so to interrupt a send); that Read then returns
// os.ErrClosed and removes the checkpoint as it returns.
type EngineSnapshot struct {
	fs    vfs.FS
	dir   string
	files []bodyFile // sorted by name
	size  int64

	// Reader state, owned by the goroutine calling Read.
	h       hash.Hash
	pending []byte   // framing bytes not yet returned
	scratch []byte   // backing array for pending
	next    int      // index in files of the next file to start
	cur     vfs.File // file whose contents are being returned, or nil
	left    int64    // bytes of cur still to return
	stage   int      // stageFiles, stageTrailer, stageDone
	err     error    // sticky

	mu struct {
		sync.Mutex
		reading bool // a Read is running (it cleans up if closed meanwhile)
		closed  bool
	}
}

const (
	stageFiles   = iota // header, then file records; end record next
	stageTrailer        // end record queued; trailer next
	stageDone           // trailer queued; EOF next
)

// IsCheckpointDir reports whether name, a directory under an
// OpenEngineSnapshot scratch directory, is one of its checkpoints.
func IsCheckpointDir(name string) bool { return strings.HasPrefix(name, checkpointPrefix) }

// OpenEngineSnapshot takes a consistent point-in-time checkpoint of eng
// into a fresh directory under scratchDir (on eng.FS(); created if
// missing) and returns a reader for it. The checkpoint
// (storage.Engine.Checkpoint) holds every write committed before the call
// and nothing committed after it returns; it hard-links sstables, so it is
// cheap when scratchDir is on the engine's filesystem (elsewhere Pebble
// copies them), but it copies the WAL and MANIFEST. The snapshot stays
// valid if the engine compacts, deletes its files or closes meanwhile.
//
// The caller must Close the snapshot. Checkpoints left by a crash are
// the directories under scratchDir that IsCheckpointDir names; a member
// may remove them at startup.
func OpenEngineSnapshot(eng *storage.Engine, scratchDir string) (*EngineSnapshot, error) {
	fs := eng.FS()
	dir := fs.PathJoin(scratchDir, fmt.Sprintf("%s%016x", checkpointPrefix, rand.Uint64()))
	if err := eng.Checkpoint(dir); err != nil {
		return nil, fmt.Errorf("snap: %w", err)
	}
	s, err := newEngineSnapshot(fs, dir)
	if err != nil {
		_ = fs.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// newEngineSnapshot returns a reader streaming the files of dir, which it
// owns from now on.
func newEngineSnapshot(fs vfs.FS, dir string) (*EngineSnapshot, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("snap: list checkpoint %s: %w", dir, err)
	}
	slices.Sort(names)
	s := &EngineSnapshot{fs: fs, dir: dir, h: sha256.New()}
	s.size = bodyHeaderSize + endRecSize + trailerSize
	for _, name := range names {
		if !validName(name) {
			return nil, fmt.Errorf("snap: checkpoint %s holds %q, a name engine snapshots cannot carry", dir, name)
		}
		fi, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			return nil, fmt.Errorf("snap: stat checkpoint file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("snap: checkpoint %s holds %q, which is not a regular file", dir, name)
		}
		s.files = append(s.files, bodyFile{name: name, size: fi.Size()})
		s.size += fileRecordSize(name) + fi.Size()
	}
	s.scratch = make([]byte, 0, max(bodyHeaderSize, fileRecSize+maxNameLen+8, endRecSize, trailerSize))
	s.pending = append(append(s.scratch[:0], bodyMagic[:]...), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(s.pending[8:], bodyVersion)
	s.h.Write(s.pending)
	return s, nil
}

// Size returns the exact length of the body in bytes, known before the
// first Read.
func (s *EngineSnapshot) Size() int64 { return s.size }

// Read reads the next bytes of the body. It returns io.EOF after exactly
// Size bytes, and os.ErrClosed after Close.
func (s *EngineSnapshot) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return 0, fmt.Errorf("snap: read engine snapshot: %w", os.ErrClosed)
	}
	s.mu.reading = true
	s.mu.Unlock()

	n, err := s.fill(p)

	s.mu.Lock()
	s.mu.reading = false
	closed := s.mu.closed
	s.mu.Unlock()
	if closed {
		// Close ran meanwhile and left the cleanup to us.
		_ = s.cleanup()
		return 0, fmt.Errorf("snap: read engine snapshot: %w", os.ErrClosed)
	}
	return n, err
}

// WriteTo writes the rest of the body to w in chunks of up to 1 MiB; io.Copy
// uses it.
func (s *EngineSnapshot) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, copyBufSize)
	var total int64
	for {
		n, err := s.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// fill copies body bytes into p until p is full, the body ends or an error
// occurs.
func (s *EngineSnapshot) fill(p []byte) (int, error) {
	n := 0
	for n < len(p) && s.err == nil {
		if len(s.pending) > 0 {
			c := copy(p[n:], s.pending)
			s.pending = s.pending[c:]
			n += c
			continue
		}
		if s.left > 0 {
			k, err := s.cur.Read(p[n : n+int(min(int64(len(p)-n), s.left))])
			s.h.Write(p[n : n+k])
			n += k
			s.left -= int64(k)
			switch {
			case s.left > 0 && err == io.EOF:
				s.err = fmt.Errorf("snap: checkpoint file %s shrank while being read", s.files[s.next-1].name)
			case err != nil && err != io.EOF:
				s.err = fmt.Errorf("snap: read checkpoint file %s: %w", s.files[s.next-1].name, err)
			}
			continue
		}
		if s.cur != nil {
			err := s.cur.Close()
			s.cur = nil
			if err != nil {
				s.err = fmt.Errorf("snap: close checkpoint file: %w", err)
				continue
			}
		}
		s.err = s.advance()
	}
	if n > 0 {
		return n, nil
	}
	return 0, s.err
}

// advance queues the next framing bytes and opens the next file, if any.
// It returns io.EOF when the whole body was returned.
func (s *EngineSnapshot) advance() error {
	b := s.scratch[:0]
	switch {
	case s.stage == stageFiles && s.next < len(s.files):
		f := s.files[s.next]
		s.next++
		if f.size > 0 {
			var err error
			if s.cur, err = s.fs.Open(s.fs.PathJoin(s.dir, f.name)); err != nil {
				return fmt.Errorf("snap: open checkpoint file: %w", err)
			}
			s.left = f.size
		}
		b = append(b, recFile)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(f.name)))
		b = append(b, f.name...)
		b = binary.LittleEndian.AppendUint64(b, uint64(f.size))
		s.h.Write(b)
	case s.stage == stageFiles:
		s.stage = stageTrailer
		b = append(b, recEnd)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(s.files)))
		s.h.Write(b)
	case s.stage == stageTrailer:
		s.stage = stageDone
		b = s.h.Sum(b)
	default:
		return io.EOF
	}
	s.pending = b
	return nil
}

// Close removes the checkpoint. It is safe to call more than once and
// concurrently with Read; see EngineSnapshot.
func (s *EngineSnapshot) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	reading := s.mu.reading
	s.mu.Unlock()
	if reading {
		return nil
	}
	return s.cleanup()
}

// cleanup runs once, on the goroutine that owns the reader state.
func (s *EngineSnapshot) cleanup() error {
	var err error
	if s.cur != nil {
		err = s.cur.Close()
		s.cur = nil
	}
	if rerr := s.fs.RemoveAll(s.dir); rerr != nil {
		err = fmt.Errorf("snap: remove checkpoint %s: %w", s.dir, rerr)
	}
	return err
}

// Info describes a verified engine snapshot body.
type Info struct {
	// Files is the number of files in the body.
	Files int64
	// FileBytes is the total size of those files.
	FileBytes int64
	// Size is the length of the body, trailer included.
	Size int64
	// SHA256 is the body's trailer: the SHA-256 of everything before it.
	SHA256 [sha256.Size]byte
}

// VerifyEngineSnapshot reads one body from r to its end, checking its
// format, names, sizes and checksum without writing anything. r must end
// right after the trailer.
func VerifyEngineSnapshot(ctx context.Context, r io.Reader) (Info, error) {
	d := newBodyDecoder(r)
	if err := d.header(); err != nil {
		return Info{}, err
	}
	for {
		_, _, more, err := d.next()
		if err != nil {
			return Info{}, err
		}
		if !more {
			return d.info, nil
		}
		if err := d.copyTo(ctx, io.Discard); err != nil {
			return Info{}, err
		}
	}
}

// ReceiveEngineSnapshot reads one body from r into the new directory dir,
// which must not exist, and returns the number of body bytes read. r must
// end right after the trailer (it is read to io.EOF, as the transport's
// Receiver.ReceiveSnapshot requires).
//
// The files are written into dir+".partial" (any such leftover of a crashed
// receive is removed first), each fsynced, and once the whole body was
// verified that directory is synced, renamed to dir and dir's parent
// synced: after a crash dir either holds the complete snapshot or does not
// exist. On any error nothing is left behind and the error says what was
// wrong (ErrBodyTruncated, ErrBodyCorrupt, ErrBodyChecksum, or r's own
// error). storage.Open(dir, …) then opens the checkpointed engine.
func ReceiveEngineSnapshot(ctx context.Context, fs vfs.FS, r io.Reader, dir string) (int64, error) {
	info, err := receiveEngineSnapshot(ctx, fs, r, dir)
	return info.Size, err
}

// receiveEngineSnapshot is ReceiveEngineSnapshot; it returns what it read
// of the body (all of Info once the body was received whole).
func receiveEngineSnapshot(ctx context.Context, fs vfs.FS, r io.Reader, dir string) (Info, error) {
	if _, err := fs.Stat(dir); err == nil {
		return Info{}, fmt.Errorf("snap: receive engine snapshot into %s: %w", dir, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("snap: receive engine snapshot: %w", err)
	}
	tmp := dir + partialExt
	if err := fs.RemoveAll(tmp); err != nil {
		return Info{}, fmt.Errorf("snap: remove leftover %s: %w", tmp, err)
	}
	if err := mkdirAllDurable(fs, tmp); err != nil {
		return Info{}, fmt.Errorf("snap: create %s: %w", tmp, err)
	}
	d := newBodyDecoder(r)
	err := receive(ctx, fs, d, tmp)
	if err == nil {
		err = fs.Rename(tmp, dir)
	}
	if err == nil {
		err = fsutil.SyncDir(fs, fs.PathDir(dir))
	}
	if err != nil {
		// dir did not exist: a failed sync of its parent must not leave it.
		_ = fs.RemoveAll(tmp)
		_ = fs.RemoveAll(dir)
		return d.info, fmt.Errorf("snap: receive engine snapshot into %s: %w", dir, err)
	}
	return d.info, nil
}

func receive(ctx context.Context, fs vfs.FS, d *bodyDecoder, dir string) error {
	if err := d.header(); err != nil {
		return err
	}
	for {
		name, _, more, err := d.next()
		if err != nil {
			return err
		}
		if !more {
			return fsutil.SyncDir(fs, dir)
		}
		f, err := fs.Create(fs.PathJoin(dir, name), vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		err = d.copyTo(ctx, f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}

// bodyDecoder parses a body; info accumulates what was read so far.
type bodyDecoder struct {
	r    *bufio.Reader
	h    hash.Hash
	buf  []byte // copy buffer, grown on demand up to copyBufSize
	info Info
	prev string // name of the previous file; names strictly increase
	left int64  // content bytes of the current file not yet consumed
}

func newBodyDecoder(r io.Reader) *bodyDecoder {
	return &bodyDecoder{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
}

// read fills p from the body, hashing it unless it is the trailer. what
// names the part being read for a truncation error.
func (d *bodyDecoder) read(p []byte, hashed bool, what string) error {
	n, err := io.ReadFull(d.r, p)
	d.info.Size += int64(n)
	if hashed {
		d.h.Write(p[:n])
	}
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: body ends in %s at byte %d", ErrBodyTruncated, what, d.info.Size)
	case err != nil:
		return fmt.Errorf("snap: read engine snapshot at byte %d: %w", d.info.Size, err)
	}
	return nil
}

func (d *bodyDecoder) header() error {
	var b [bodyHeaderSize]byte
	if err := d.read(b[:], true, "header"); err != nil {
		return err
	}
	if !bytes.Equal(b[:8], bodyMagic[:]) {
		return fmt.Errorf("%w: not an engine snapshot (magic %q)", ErrBodyCorrupt, b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != bodyVersion {
		return fmt.Errorf("%w: unsupported format version %d", ErrBodyCorrupt, v)
	}
	return nil
}

// next reads the next record. For a file record it returns the file's name
// and size and more = true; the contents follow (copyTo, or skipped by the
// next call). For the end record it checks the trailer and that the body
// ends there, and returns more = false.
func (d *bodyDecoder) next() (name string, size int64, more bool, err error) {
	if d.left > 0 {
		if err := d.copyTo(context.Background(), io.Discard); err != nil {
			return "", 0, false, err
		}
	}
	var b [8]byte
	if err := d.read(b[:1], true, "record type"); err != nil {
		return "", 0, false, err
	}
	switch b[0] {
	case recFile:
		if err := d.read(b[:2], true, "file record"); err != nil {
			return "", 0, false, err
		}
		n := binary.LittleEndian.Uint16(b[:2])
		if n == 0 || n > maxNameLen {
			return "", 0, false, fmt.Errorf("%w: file name of %d bytes", ErrBodyCorrupt, n)
		}
		nb := make([]byte, n)
		if err := d.read(nb, true, "file name"); err != nil {
			return "", 0, false, err
		}
		name = string(nb)
		if !validName(name) {
			return "", 0, false, fmt.Errorf("%w: invalid file name %q", ErrBodyCorrupt, name)
		}
		if d.info.Files > 0 && name <= d.prev {
			return "", 0, false, fmt.Errorf("%w: file %q follows %q (duplicate or out of order)", ErrBodyCorrupt, name, d.prev)
		}
		if err := d.read(b[:8], true, "file size"); err != nil {
			return "", 0, false, err
		}
		sz := binary.LittleEndian.Uint64(b[:8])
		if sz > math.MaxInt64-uint64(d.info.FileBytes) {
			return "", 0, false, fmt.Errorf("%w: file %q of %d bytes", ErrBodyCorrupt, name, sz)
		}
		d.prev, d.left = name, int64(sz)
		d.info.Files++
		d.info.FileBytes += int64(sz)
		return name, int64(sz), true, nil
	case recEnd:
		if err := d.read(b[:8], true, "end record"); err != nil {
			return "", 0, false, err
		}
		var sum [sha256.Size]byte
		if err := d.read(sum[:], false, "trailer"); err != nil {
			return "", 0, false, err
		}
		if got := d.h.Sum(nil); !bytes.Equal(got, sum[:]) {
			return "", 0, false, fmt.Errorf("%w: trailer says %x, body hashes to %x", ErrBodyChecksum, sum, got)
		}
		if n := binary.LittleEndian.Uint64(b[:8]); n != uint64(d.info.Files) {
			return "", 0, false, fmt.Errorf("%w: end record counts %d files, body holds %d", ErrBodyCorrupt, n, d.info.Files)
		}
		if d.info.Files == 0 {
			// storage.Open would quietly create an empty engine in it.
			return "", 0, false, fmt.Errorf("%w: no files", ErrBodyCorrupt)
		}
		switch _, err := d.r.ReadByte(); {
		case err == nil:
			return "", 0, false, fmt.Errorf("%w: data after the trailer", ErrBodyCorrupt)
		case err != io.EOF:
			return "", 0, false, fmt.Errorf("snap: read engine snapshot after its trailer: %w", err)
		}
		d.info.SHA256 = sum
		return "", 0, false, nil
	default:
		return "", 0, false, fmt.Errorf("%w: unknown record type %d at byte %d", ErrBodyCorrupt, b[0], d.info.Size-1)
	}
}

// copyTo writes the rest of the current file's contents to w.
func (d *bodyDecoder) copyTo(ctx context.Context, w io.Writer) error {
	if d.left > 0 && len(d.buf) < copyBufSize && int64(len(d.buf)) < d.left {
		d.buf = make([]byte, min(d.left, copyBufSize))
	}
	for d.left > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := d.buf[:min(d.left, int64(len(d.buf)))]
		if err := d.read(chunk, true, fmt.Sprintf("contents of %s", d.prev)); err != nil {
			return err
		}
		d.left -= int64(len(chunk))
		if _, err := w.Write(chunk); err != nil {
			return fmt.Errorf("snap: write %s: %w", d.prev, err)
		}
	}
	return nil
}
