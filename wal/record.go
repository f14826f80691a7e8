package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"
)

// recordType is the kind of a record; it is covered by the record's CRC.
type recordType uint8

const (
	typeCarry     recordType = 1 // first record of every segment
	typeMetadata  recordType = 2 // caller's opaque metadata
	typeEntry     recordType = 3 // proto-encoded raftpb.Entry
	typeHardState recordType = 4 // proto-encoded raftpb.HardState
	typeSnapshot  recordType = 5 // snapshot marker: index, term
)

func (t recordType) String() string {
	switch t {
	case typeCarry:
		return "crc-carry"
	case typeMetadata:
		return "metadata"
	case typeEntry:
		return "entry"
	case typeHardState:
		return "hard-state"
	case typeSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

const (
	// headerSize is the fixed record header: length (4), type (1),
	// reserved zeros (3), chained CRC (4).
	headerSize = 12
	// recordAlign keeps every header inside one 512-byte sector.
	recordAlign = 8
	// maxRecordSize bounds the length field so that a corrupt header can
	// never make a reader allocate an absurd buffer; it is far above any
	// entry raft will hand us.
	maxRecordSize = 1 << 30

	formatVersion    = 1
	carryPayloadSize = 8 + 4 + 8 + 8 + 4
	markerSize       = 16
)

// segmentMagic opens the payload of every carry record.
var segmentMagic = [8]byte{'c', 'a', 'i', 'r', 'n', 'w', 'a', 'l'}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func alignUp(n int64) int64 { return (n + recordAlign - 1) &^ (recordAlign - 1) }

// encoder builds a run of records in buf, continuing the CRC chain in crc.
// Nothing reaches the disk until the caller writes buf.
type encoder struct {
	buf []byte
	crc uint32
}

func (e *encoder) reset(crc uint32) {
	e.buf = e.buf[:0]
	e.crc = crc
}

// begin reserves a header and returns the record's start in buf; the
// payload is appended to buf by the caller, then finish seals the record.
func (e *encoder) begin() int {
	start := len(e.buf)
	e.buf = append(e.buf, make([]byte, headerSize)...)
	return start
}

func (e *encoder) finish(start int, typ recordType) error {
	n := len(e.buf) - start
	if n > maxRecordSize {
		e.buf = e.buf[:start]
		return fmt.Errorf("wal: %s record of %d bytes exceeds the limit of %d", typ, n, maxRecordSize)
	}
	h := e.buf[start : start+headerSize]
	binary.LittleEndian.PutUint32(h[0:4], uint32(n))
	h[4] = byte(typ)
	h[5], h[6], h[7] = 0, 0, 0
	crc := crc32.Update(e.crc, crcTable, h[0:8])
	crc = crc32.Update(crc, crcTable, e.buf[start+headerSize:])
	binary.LittleEndian.PutUint32(h[8:12], crc)
	e.crc = crc
	if pad := alignUp(int64(n)) - int64(n); pad > 0 {
		e.buf = append(e.buf, make([]byte, pad)...)
	}
	return nil
}

func (e *encoder) appendBytes(typ recordType, p []byte) error {
	start := e.begin()
	e.buf = append(e.buf, p...)
	return e.finish(start, typ)
}

// appendCarry starts a segment. Its CRC is seeded with prevCRC, the chain
// value at the end of the previous segment, so the chain runs unbroken
// through the whole log.
func (e *encoder) appendCarry(s segment, prevCRC uint32) error {
	var p [carryPayloadSize]byte
	copy(p[0:8], segmentMagic[:])
	binary.LittleEndian.PutUint32(p[8:12], formatVersion)
	binary.LittleEndian.PutUint64(p[12:20], s.seq)
	binary.LittleEndian.PutUint64(p[20:28], s.first)
	binary.LittleEndian.PutUint32(p[28:32], prevCRC)
	e.crc = prevCRC
	return e.appendBytes(typeCarry, p[:])
}

func (e *encoder) appendMarker(s Snapshot) error {
	var p [markerSize]byte
	binary.LittleEndian.PutUint64(p[0:8], s.Index)
	binary.LittleEndian.PutUint64(p[8:16], s.Term)
	return e.appendBytes(typeSnapshot, p[:])
}

type carry struct {
	version uint32
	seg     segment
	prevCRC uint32
}

func decodeCarry(p []byte) (carry, bool) {
	if len(p) != carryPayloadSize || !bytes.Equal(p[0:8], segmentMagic[:]) {
		return carry{}, false
	}
	return carry{
		version: binary.LittleEndian.Uint32(p[8:12]),
		seg: segment{
			seq:   binary.LittleEndian.Uint64(p[12:20]),
			first: binary.LittleEndian.Uint64(p[20:28]),
		},
		prevCRC: binary.LittleEndian.Uint32(p[28:32]),
	}, true
}

func decodeMarker(p []byte) (Snapshot, bool) {
	if len(p) != markerSize {
		return Snapshot{}, false
	}
	return Snapshot{
		Index: binary.LittleEndian.Uint64(p[0:8]),
		Term:  binary.LittleEndian.Uint64(p[8:16]),
	}, true
}

// record is one decoded record. payload aliases the reader's buffer and is
// valid only until the next read.
type record struct {
	off     int64 // offset of the header in the file
	length  int64 // header + payload, without padding
	typ     recordType
	crc     uint32 // CRC stored in the header
	sum     uint32 // CRC computed over the record as read
	payload []byte
}

type readStatus int

const (
	readOK  readStatus = iota
	readEnd            // zero length, or the end of the file, at a record boundary
	readBad            // a record that cannot be trusted: torn or corrupt
)

// readChunk is how much a reader fetches at a time.
const readChunk = 1 << 20

// reader decodes the records of one segment file.
type reader struct {
	f      vfs.File
	size   int64
	pos    int64 // offset of the next record
	buf    []byte
	bufOff int64
}

func newReader(f vfs.File) (*reader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return &reader{f: f, size: fi.Size()}, nil
}

// at returns the n bytes at off; off+n must not exceed r.size.
func (r *reader) at(off int64, n int) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		i := off - r.bufOff
		return r.buf[i : i+int64(n)], nil
	}
	want := max(int64(n), readChunk)
	want = min(want, r.size-off)
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, off)
	if m < len(r.buf) {
		r.buf, r.bufOff = r.buf[:0], 0
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.bufOff = off
	return r.buf[:n], nil
}

// next decodes the record at r.pos, whose CRC must chain from seed. For a
// carry record the seed is taken from its own payload (the previous
// segment's CRC), which lets a reader start at any segment. On readBad,
// reason says why and rec holds whatever of the header could be parsed.
// err reports IO failures only.
func (r *reader) next(seed uint32, isCarry bool) (rec record, st readStatus, reason string, err error) {
	rec.off = r.pos
	rest := r.size - r.pos
	if rest <= 0 {
		return rec, readEnd, "", nil
	}
	hn := int(min(rest, headerSize))
	h, err := r.at(r.pos, hn)
	if err != nil {
		return rec, readBad, "", err
	}
	if hn < headerSize {
		if allZero(h) {
			return rec, readEnd, "", nil
		}
		return rec, readBad, "truncated header", nil
	}
	n := int64(binary.LittleEndian.Uint32(h[0:4]))
	if n == 0 {
		return rec, readEnd, "", nil
	}
	rec.typ = recordType(h[4])
	rec.crc = binary.LittleEndian.Uint32(h[8:12])
	rec.length = n
	if n < headerSize || n > maxRecordSize || n > rest {
		return rec, readBad, fmt.Sprintf("invalid record length %d", n), nil
	}
	data, err := r.at(r.pos, int(n))
	if err != nil {
		return rec, readBad, "", err
	}
	rec.payload = data[headerSize:]
	if isCarry {
		c, ok := decodeCarry(rec.payload)
		if rec.typ != typeCarry || !ok {
			return rec, readBad, "segment does not start with a crc-carry record", nil
		}
		seed = c.prevCRC
	}
	rec.sum = crc32.Update(seed, crcTable, data[0:8])
	rec.sum = crc32.Update(rec.sum, crcTable, rec.payload)
	if rec.sum != rec.crc {
		return rec, readBad, fmt.Sprintf("crc mismatch in %s record", rec.typ), nil
	}
	r.pos += alignUp(n)
	return rec, readOK, "", nil
}

// validAfter reports whether the record following bad, a record that failed
// verification, verifies when chained from bad's stored CRC or from the CRC
// of bad as read. If it does, bad was a real record damaged after it was
// written (in its body or in its CRC field respectively), not a write cut
// short by a crash: the writer continued the chain from that value.
func (r *reader) validAfter(bad record) bool {
	if bad.length < headerSize || bad.length > r.size-bad.off {
		return false
	}
	for _, seed := range []uint32{bad.crc, bad.sum} {
		probe := &reader{f: r.f, size: r.size, pos: bad.off + alignUp(bad.length)}
		if _, st, _, err := probe.next(seed, false); err == nil && st == readOK {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// clearFrom overwrites every non-zero byte of f from off to its end with
// zeros and syncs if anything changed. After a crash the region past the
// last valid record may hold a torn record or the remains of records that
// were written but never synced; clearing it restores the invariant that
// the log ends at the first zero length, so that new appends can never be
// mistaken for (or be confused by) stale bytes.
func clearFrom(f vfs.File, off int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	buf := make([]byte, readChunk)
	dirty := false
	for off < size {
		n := min(int64(len(buf)), size-off)
		b := buf[:n]
		if m, err := f.ReadAt(b, off); int64(m) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if !allZero(b) {
			clear(b)
			if _, err := f.WriteAt(b, off); err != nil {
				return err
			}
			dirty = true
		}
		off += n
	}
	if dirty {
		return f.SyncData()
	}
	return nil
}

func (e *encoder) appendProto(typ recordType, m proto.Message) error {
	start := e.begin()
	var err error
	e.buf, err = proto.MarshalOptions{}.MarshalAppend(e.buf, m)
	if err != nil {
		e.buf = e.buf[:start]
		return fmt.Errorf("wal: encode %s: %w", typ, err)
	}
	return e.finish(start, typ)
}
