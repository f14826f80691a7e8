package snap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/storage"
)

// Snapshot files (backups): what Maintenance.Snapshot streams, "cairnctl
// snapshot save" writes and cairnutl reads. Layout (integers
// little-endian):
//
//	header    8 bytes    magic "cairnbak"
//	          uint32     format version (1)
//	          uint32     reserved, 0
//	          uint64     body length b
//	body      b bytes    an engine snapshot body (see doc.go), with its
//	                     own SHA-256 trailer
//	padding   zero bytes up to the next multiple of 512 of the file offset
//	trailer   32 bytes   SHA-256 of every byte before it
//
// The shape is etcd's: a payload whose length is a multiple of 512,
// followed by its SHA-256, so etcdctl's "snapshot save" (which checks
// that the length is 32 more than a multiple of 512) accepts the stream.
// The contents are not etcd's: etcd's payload is a bbolt database, so
// neither tool restores the other's files.
const (
	// BackupAlign is the multiple of the payload (header, body, padding)
	// length.
	BackupAlign = 512

	backupVersion    = 1
	backupHeaderSize = 8 + 4 + 4 + 8
)

var backupMagic = [8]byte{'c', 'a', 'i', 'r', 'n', 'b', 'a', 'k'}

// ErrNotBackup means a file is not a Cairn snapshot file at all (another
// magic number). It wraps ErrBodyCorrupt.
var ErrNotBackup = fmt.Errorf("%w: not a Cairn snapshot file", ErrBodyCorrupt)

// ErrEtcdSnapshot means a file is an etcd snapshot (a bbolt database),
// which Cairn cannot read. It wraps ErrNotBackup.
var ErrEtcdSnapshot = fmt.Errorf("%w: it is an etcd snapshot (a bbolt database)", ErrNotBackup)

// backupPayloadSize returns the length of header, body and padding for a
// body of bodySize bytes.
func backupPayloadSize(bodySize int64) int64 {
	n := backupHeaderSize + bodySize
	return (n + BackupAlign - 1) / BackupAlign * BackupAlign
}

// Backup streams a snapshot file of an engine: a point-in-time engine
// snapshot (OpenEngineSnapshot) framed as described above. Read and
// Close follow EngineSnapshot's rules: Close may run concurrently with a
// Read.
type Backup struct {
	body    *EngineSnapshot
	payload io.Reader // header, body, padding
	size    int64     // payload length
	h       hash.Hash
	read    int64  // payload bytes returned so far
	trailer []byte // trailer bytes still to return, once computed
	done    bool   // the trailer was computed
}

// OpenBackup takes a consistent point-in-time checkpoint of eng (see
// OpenEngineSnapshot, whose rules on scratchDir apply) and returns the
// snapshot file of it. The caller must Close it.
func OpenBackup(eng *storage.Engine, scratchDir string) (*Backup, error) {
	body, err := OpenEngineSnapshot(eng, scratchDir)
	if err != nil {
		return nil, err
	}
	return newBackup(body), nil
}

func newBackup(body *EngineSnapshot) *Backup {
	size := backupPayloadSize(body.Size())
	hdr := make([]byte, 0, backupHeaderSize)
	hdr = append(hdr, backupMagic[:]...)
	hdr = binary.LittleEndian.AppendUint32(hdr, backupVersion)
	hdr = binary.LittleEndian.AppendUint32(hdr, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(body.Size()))
	pad := make([]byte, size-backupHeaderSize-body.Size())
	return &Backup{
		body:    body,
		payload: io.MultiReader(bytes.NewReader(hdr), body, bytes.NewReader(pad)),
		size:    size,
		h:       sha256.New(),
	}
}

// PayloadSize returns the length of the file without its trailer: a
// multiple of BackupAlign.
func (b *Backup) PayloadSize() int64 { return b.size }

// Size returns the length of the whole file.
func (b *Backup) Size() int64 { return b.size + sha256.Size }

// Read returns the next bytes of the file: the payload, then the
// trailer, then io.EOF.
func (b *Backup) Read(p []byte) (int, error) {
	if b.read < b.size {
		if int64(len(p)) > b.size-b.read {
			p = p[:b.size-b.read]
		}
		n, err := b.payload.Read(p)
		b.h.Write(p[:n])
		b.read += int64(n)
		if err == io.EOF && b.read < b.size {
			return n, fmt.Errorf("snap: engine snapshot ended after %d of %d bytes", b.read, b.size)
		}
		if err == io.EOF {
			err = nil
		}
		return n, err
	}
	if !b.done {
		b.done = true
		b.trailer = b.h.Sum(nil)
	}
	if len(b.trailer) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.trailer)
	b.trailer = b.trailer[n:]
	return n, nil
}

// Close removes the checkpoint; see EngineSnapshot.Close.
func (b *Backup) Close() error { return b.body.Close() }

// BackupInfo describes a verified snapshot file.
type BackupInfo struct {
	// Body describes the engine snapshot inside.
	Body Info
	// Size is the number of bytes read, trailer included.
	Size int64
	// SHA256 is the file's trailer; zero when HasTrailer is false.
	SHA256 [sha256.Size]byte
	// HasTrailer is false only when the trailer check was skipped and
	// the file ended right after its padding.
	HasTrailer bool
}

// VerifyBackup reads a whole snapshot file from r and checks it: header,
// the engine snapshot body (format and its own checksum), the padding
// and the trailer, and that r ends right after it. Nothing is written.
// Errors wrap ErrBodyTruncated, ErrBodyCorrupt (ErrNotBackup,
// ErrEtcdSnapshot), ErrBodyChecksum, or r's own error.
func VerifyBackup(ctx context.Context, r io.Reader) (BackupInfo, error) {
	return readBackup(r, false, func(body io.Reader) (Info, error) {
		return VerifyEngineSnapshot(ctx, body)
	})
}

// ReceiveBackup unpacks the engine in the snapshot file read from r into
// the new directory dir (on fs), with ReceiveEngineSnapshot's guarantees:
// on any error nothing is left, on success storage.Open(dir, …) opens
// the engine. It checks everything VerifyBackup checks, except that with
// skipTrailer the file's trailer may be missing or wrong (the body's own
// checksum is always checked: without it nothing says the engine is
// complete).
func ReceiveBackup(ctx context.Context, fs vfs.FS, r io.Reader, dir string, skipTrailer bool) (BackupInfo, error) {
	received := false
	info, err := readBackup(r, skipTrailer, func(body io.Reader) (Info, error) {
		bi, err := receiveEngineSnapshot(ctx, fs, body, dir)
		received = err == nil
		return bi, err
	})
	if err != nil && received {
		if rerr := fs.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("snap: remove %s: %w", dir, rerr))
		}
	}
	return info, err
}

// readBackup parses a snapshot file from r; body consumes the engine
// snapshot body, which ends where its reader returns io.EOF.
func readBackup(r io.Reader, skipTrailer bool, body func(io.Reader) (Info, error)) (BackupInfo, error) {
	var info BackupInfo
	h := sha256.New()
	cr := &countingReader{r: r}
	tr := io.TeeReader(cr, h)

	var hdr [backupHeaderSize]byte
	if n, err := io.ReadFull(tr, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if n >= 20 && isBolt(hdr[:n]) {
				return info, ErrEtcdSnapshot
			}
			if n >= 8 && !bytes.Equal(hdr[:8], backupMagic[:]) {
				return info, fmt.Errorf("%w (magic %q)", ErrNotBackup, hdr[:8])
			}
			return info, fmt.Errorf("%w: file of %d bytes ends in its header", ErrBodyTruncated, n)
		}
		return info, fmt.Errorf("snap: read snapshot file: %w", err)
	}
	if !bytes.Equal(hdr[:8], backupMagic[:]) {
		if isBolt(hdr[:]) {
			return info, ErrEtcdSnapshot
		}
		return info, fmt.Errorf("%w (magic %q)", ErrNotBackup, hdr[:8])
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != backupVersion {
		return info, fmt.Errorf("%w: unsupported snapshot file version %d", ErrBodyCorrupt, v)
	}
	bodySize := binary.LittleEndian.Uint64(hdr[16:])
	if bodySize > 1<<62 {
		return info, fmt.Errorf("%w: body length %d", ErrBodyCorrupt, bodySize)
	}
	lr := &io.LimitedReader{R: tr, N: int64(bodySize)}
	bi, err := body(lr)
	if err != nil {
		if errors.Is(err, ErrBodyTruncated) && lr.N == 0 {
			// The header's length cut the body short: the header is wrong.
			return info, fmt.Errorf("%w: the header's body length %d is too short: %w", ErrBodyCorrupt, bodySize, err)
		}
		return info, err
	}
	if lr.N != 0 {
		return info, fmt.Errorf("%w: the body ends %d bytes before the header's body length", ErrBodyCorrupt, lr.N)
	}
	info.Body = bi

	pad := make([]byte, backupPayloadSize(int64(bodySize))-backupHeaderSize-int64(bodySize))
	if _, err := io.ReadFull(tr, pad); err != nil {
		return info, readErr(err, cr.n, "padding")
	}
	if !allZero(pad) {
		return info, fmt.Errorf("%w: non-zero padding after the body", ErrBodyCorrupt)
	}
	want := h.Sum(nil)

	var sum [sha256.Size]byte
	n, err := io.ReadFull(cr, sum[:])
	switch {
	case skipTrailer && n == 0 && errors.Is(err, io.EOF):
		info.Size = cr.n
		return info, nil
	case err != nil:
		return info, readErr(err, cr.n, "trailer")
	}
	if !skipTrailer && !bytes.Equal(sum[:], want) {
		return info, fmt.Errorf("%w: the file's SHA-256 trailer says %x, its contents hash to %x", ErrBodyChecksum, sum, want)
	}
	var extra [1]byte
	switch n, err := cr.Read(extra[:]); {
	case n > 0:
		return info, fmt.Errorf("%w: data after the trailer", ErrBodyCorrupt)
	case err != nil && err != io.EOF:
		return info, fmt.Errorf("snap: read snapshot file after its trailer: %w", err)
	case err == nil:
		// A reader may return (0, nil); look once more.
		if _, err := io.ReadFull(cr, extra[:]); err == nil {
			return info, fmt.Errorf("%w: data after the trailer", ErrBodyCorrupt)
		} else if !errors.Is(err, io.EOF) {
			return info, fmt.Errorf("snap: read snapshot file after its trailer: %w", err)
		}
	}
	info.SHA256, info.HasTrailer, info.Size = sum, true, cr.n
	return info, nil
}

func readErr(err error, at int64, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends in its %s at byte %d", ErrBodyTruncated, what, at)
	}
	return fmt.Errorf("snap: read snapshot file at byte %d: %w", at, err)
}

// isBolt reports whether b starts like a bbolt database (etcd's backend
// and snapshot files): the first page's meta magic 0xED0CDAED at offset
// 16.
func isBolt(b []byte) bool {
	return len(b) >= 20 && binary.LittleEndian.Uint32(b[16:]) == 0xED0CDAED
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// CheckTrailer reads a whole file of any format that ends with the
// SHA-256 of everything before it (Cairn's snapshot files and etcd's
// alike) and checks that trailer, holding back only the last 32 bytes.
// It returns the number of bytes read. Errors wrap ErrBodyTruncated,
// ErrBodyChecksum or r's own error.
func CheckTrailer(r io.Reader) (int64, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	held := 0 // bytes at the front of buf not yet hashed (at most 32 at loop start)
	var total int64
	for {
		n, err := r.Read(buf[held:])
		total += int64(n)
		held += n
		if held > sha256.Size {
			h.Write(buf[:held-sha256.Size])
			copy(buf, buf[held-sha256.Size:held])
			held = sha256.Size
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	if held < sha256.Size {
		return total, fmt.Errorf("%w: %d bytes, too short to hold a SHA-256 trailer", ErrBodyTruncated, total)
	}
	if got := h.Sum(nil); !bytes.Equal(got, buf[:sha256.Size]) {
		return total, fmt.Errorf("%w: the SHA-256 trailer says %x, the contents hash to %x", ErrBodyChecksum, buf[:sha256.Size], got)
	}
	return total, nil
}

// IsBackupHeader reports whether b, the first bytes of a file (at least
// 8), start a Cairn snapshot file.
func IsBackupHeader(b []byte) bool {
	return len(b) >= len(backupMagic) && bytes.Equal(b[:len(backupMagic)], backupMagic[:])
}
