package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/storage"
)

// The live key count (etcd's etcd_debugging_mvcc_keys_total) is kept by the
// apply loop: a Put adds one when the key had no live version, a delete
// takes one away. Both already know the key's newest version (Put reads it
// anyway, a delete only tombstones live keys), so counting costs no read.
// Commit writes the count under keyCountKey in the group's batch, stamped
// with the revision the group commits, and publishes it with the revision.
//
// The stamp says which state the record describes. A build that predates
// the record does not keep it: if one writes to the store (a downgrade),
// the state's revision moves past the stamp, and Open counts again, as it
// does for a store that never had the record.

// encodeKeyCount is the record under keyCountKey: n live keys at revision
// rev.
func encodeKeyCount(n, rev int64) [16]byte {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	binary.BigEndian.PutUint64(v[8:], uint64(rev))
	return v
}

// loadKeyCount returns the live key count recorded in r for the state at
// revision rev. ok is false when there is no record or it describes
// another revision; stamp is then the revision it describes (-1: none).
func loadKeyCount(r pebble.Reader, rev int64) (n, stamp int64, ok bool, err error) {
	v, c, err := r.Get(keyCountKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, -1, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("mvcc: read key count: %w", err)
	}
	defer c.Close()
	if len(v) != 16 {
		return 0, 0, false, fmt.Errorf("mvcc: key count record of %d bytes: %w", len(v), errCorrupt)
	}
	n, stamp = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
	return n, stamp, stamp == rev, nil
}

// countLiveKeys counts the keys whose newest version in r's key index is
// not a tombstone, and returns how many keys it visited besides. It walks
// the key index once, a few Next steps or one seek per key, and holds
// nothing per key.
func countLiveKeys(r reader) (live, visited int64, err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{storage.PrefixKeyIndex}, UpperBound: keyIndexUpper})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	// At the largest revision the scanner stops at each key's newest
	// version.
	sc := scanner{it: it, rev: math.MaxInt64}
	for valid := sc.settle(it.First()); valid; valid = sc.nextKey() {
		visited++
		rec, err := it.ValueAndErr()
		if err != nil {
			return 0, 0, err
		}
		if !isTombstone(rec) {
			live++
		}
	}
	if sc.err != nil {
		return 0, 0, sc.err
	}
	return live, visited, it.Error()
}

// loadKeys returns the live key count of the committed state, at revision
// rev. When the record is absent or stale it counts the keys once and
// records the count (without a flush: if that is lost, the next Open counts
// again). It logs the count and its cost unless the store is empty.
func (s *Store) loadKeys(rev int64) (int64, error) {
	n, stamp, ok, err := loadKeyCount(s.db, rev)
	if err != nil || ok {
		return n, err
	}
	start := time.Now()
	n, visited, err := countLiveKeys(s.db)
	if err != nil {
		return 0, fmt.Errorf("mvcc: count live keys: %w", err)
	}
	v := encodeKeyCount(n, rev)
	if err := s.db.Set(keyCountKey, v[:], pebble.NoSync); err != nil {
		return 0, fmt.Errorf("mvcc: record key count: %w", err)
	}
	if visited > 0 {
		s.lg.Info("counted the live keys, which the store had not recorded for its revision",
			zap.Int64("keys", n), zap.Int64("revision", rev), zap.Int64("recorded-revision", stamp),
			zap.Duration("took", time.Since(start)))
	}
	return n, nil
}
