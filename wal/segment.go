package wal

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/internal/fsutil"
)

const (
	segmentExt = ".wal"
	// tmpExt marks a segment (or, for Create, a directory) that is still being
	// built. It becomes visible under its final name only once its contents
	// are durable.
	tmpExt   = ".tmp"
	lockName = "LOCK"
)

// segment identifies one segment file by the two numbers in its name.
type segment struct {
	seq   uint64 // position in the log; consecutive segments differ by one
	first uint64 // index of the first entry the segment may hold
}

func (s segment) name() string {
	return fmt.Sprintf("%016x-%016x%s", s.seq, s.first, segmentExt)
}

// parseSegmentName accepts exactly the names produced by segment.name.
func parseSegmentName(name string) (segment, bool) {
	const n = 16 + 1 + 16 + len(segmentExt)
	if len(name) != n || name[16] != '-' || name[33:] != segmentExt {
		return segment{}, false
	}
	seq, ok1 := parseHex16(name[:16])
	first, ok2 := parseHex16(name[17:33])
	return segment{seq: seq, first: first}, ok1 && ok2
}

func parseHex16(s string) (uint64, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// listSegments returns the segments in dir ordered by sequence number. A
// missing directory yields an error wrapping os.ErrNotExist.
func listSegments(fs vfs.FS, dir string) ([]segment, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, name := range names {
		if s, ok := parseSegmentName(name); ok {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b segment) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return segs, nil
}

// startSegment returns the position in segs of the segment where reading
// for a snapshot at index must begin: the last segment whose first index is
// at most index. Every entry above index and the marker of any snapshot at
// index were written at or after that segment was cut (see doc.go), so
// nothing before it is needed. If no segment qualifies, reading starts at
// the oldest one.
func startSegment(segs []segment, index uint64) int {
	start := 0
	for i, s := range segs {
		if s.first <= index {
			start = i
		}
	}
	return start
}

// preallocate writes zeros over the first size bytes of f. Writing them,
// rather than only reserving space (fallocate), matters: appending into
// reserved-but-unwritten extents makes every fdatasync also commit extent
// metadata, which measured about five times slower per Save. Afterwards
// appends inside the range change no file-size metadata and unwritten space
// reads as zeros.
func preallocate(f vfs.File, size int64) error {
	_ = f.Preallocate(0, size) // a hint: fewer, larger extents
	buf := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		clear(buf[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// mkdirAllDurable creates dir and any missing parents, syncing the parent of
// each directory it creates so that the new entries survive a crash.
func mkdirAllDurable(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	} else if !isNotExist(err) {
		return err
	}
	parent := fs.PathDir(dir)
	if parent != dir {
		if err := mkdirAllDurable(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fsutil.SyncDir(fs, parent)
}

func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist)
}
