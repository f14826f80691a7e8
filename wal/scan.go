package wal

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// corruptf builds an error wrapping ErrCorrupt that names the damaged file
// and the offset of the record at fault.
func corruptf(path string, off int64, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d: %s", ErrCorrupt, path, off, fmt.Sprintf(format, args...))
}

// scanResult says where a scan stopped in the last segment it read.
type scanResult struct {
	end  int64  // offset just past the last valid record
	crc  uint32 // chain value after that record
	torn bool   // the segment ended in a record that failed verification
}

// visitFunc sees every verified record except carry records, in log order.
// rec.payload is only valid during the call.
type visitFunc func(path string, seg segment, rec record) error

// scan reads segs, which must be consecutive, verifying the CRC chain
// within and across segments. Only the last segment may end in a record
// that fails verification, and only when no verifiable record follows it;
// that torn tail is reported in the result, never modified. Any other
// failure is an error wrapping ErrCorrupt.
func scan(fs vfs.FS, dir string, segs []segment, visit visitFunc) (scanResult, error) {
	var res scanResult
	for i, s := range segs {
		path := fs.PathJoin(dir, s.name())
		if i > 0 && s.seq != segs[i-1].seq+1 {
			return res, corruptf(path, 0, "segment %d follows segment %d: a segment is missing", s.seq, segs[i-1].seq)
		}
		f, err := fs.Open(path)
		if err != nil {
			return res, fmt.Errorf("wal: %w", err)
		}
		res, err = scanSegment(f, path, s, i > 0, res.crc, i == len(segs)-1, visit)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: close %s: %w", path, cerr)
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func scanSegment(f vfs.File, path string, s segment, chained bool, crc uint32, last bool, visit visitFunc) (scanResult, error) {
	r, err := newReader(f)
	if err != nil {
		return scanResult{}, fmt.Errorf("wal: stat %s: %w", path, err)
	}
	rec, st, reason, err := r.next(0, true)
	if err != nil {
		return scanResult{}, fmt.Errorf("wal: read %s: %w", path, err)
	}
	// A segment becomes visible only after its first records are durable,
	// so a bad start is damage, never a torn write.
	if st != readOK {
		if reason == "" {
			reason = "segment holds no records"
		}
		return scanResult{}, corruptf(path, 0, "%s", reason)
	}
	c, _ := decodeCarry(rec.payload)
	switch {
	case c.version != formatVersion:
		return scanResult{}, corruptf(path, 0, "unsupported format version %d", c.version)
	case c.seg != s:
		return scanResult{}, corruptf(path, 0, "segment header names %s: file was renamed or misplaced", c.seg.name())
	case chained && c.prevCRC != crc:
		return scanResult{}, corruptf(path, 0, "crc chain broken: segment expects %08x, previous segment ended with %08x", c.prevCRC, crc)
	}
	crc = rec.crc
	for {
		rec, st, reason, err := r.next(crc, false)
		if err != nil {
			return scanResult{}, fmt.Errorf("wal: read %s at offset %d: %w", path, rec.off, err)
		}
		switch st {
		case readEnd:
			return scanResult{end: rec.off, crc: crc}, nil
		case readBad:
			if !last || r.validAfter(rec) {
				return scanResult{}, corruptf(path, rec.off, "%s", reason)
			}
			return scanResult{end: rec.off, crc: crc, torn: true}, nil
		}
		if rec.typ == typeCarry {
			return scanResult{}, corruptf(path, rec.off, "crc-carry record inside a segment")
		}
		if err := visit(path, s, rec); err != nil {
			return scanResult{}, err
		}
		crc = rec.crc
	}
}
