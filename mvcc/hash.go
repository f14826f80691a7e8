package mvcc

import (
	"bytes"
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns a CRC-32C over the history visible at rev (0: current):
// every version with compactRev < mod_revision ≤ rev, plus each key's
// newest version ≤ compactRev unless it is a tombstone — the versions a
// finished compaction keeps. It depends only on the applied log, not on how
// far physical compaction has progressed, so members applying the same log
// agree. compactRev is -1 when the store was never compacted, as in etcd's
// HashKV response.
func (s *Store) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, 0, 0, err
	}
	opts := &pebble.IterOptions{LowerBound: []byte{'k'}, UpperBound: keyIndexUpper}
	for {
		cur := s.rev.Load()
		if rev > cur {
			return 0, 0, 0, ErrFutureRev
		}
		it, err := s.db.NewIter(opts)
		if err != nil {
			return 0, 0, 0, err
		}
		compact := s.compactRev.Load()
		at := rev
		if at <= 0 {
			at = cur
		}
		if at < compact {
			it.Close()
			if rev <= 0 {
				continue // see Range
			}
			return 0, 0, 0, ErrCompacted
		}
		h, err := hashIter(it, at, compact)
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("mvcc: hash: %w", err)
		}
		return h, at, compact, nil
	}
}

func hashIter(it *pebble.Iterator, rev, compact int64) (uint32, error) {
	h := crc32.New(castagnoli)
	var prefix []byte
	keptSeen := false
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) < minIndexKeyLen {
			return 0, fmt.Errorf("short key-index key %q: %w", k, errCorrupt)
		}
		if p := k[:len(k)-suffixLen]; !bytes.Equal(p, prefix) {
			prefix = append(prefix[:0], p...)
			keptSeen = false
		}
		main := indexMain(k)
		if main > rev {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		if main <= compact {
			if keptSeen {
				continue
			}
			keptSeen = true
			if isTombstone(v) {
				continue
			}
		}
		h.Write(k)
		h.Write(v)
	}
	return h.Sum32(), it.Error()
}
