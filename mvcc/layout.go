package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/storage"
)

// The on-disk layout of the versions, recorded under layoutKey.
//
// Layout 1 (no layoutKey): a key-index record held the version's header and
// its value; a revision-log entry held only the user key. Layout 2: the
// key-index record holds the header alone, and the revision-log entry the
// whole version (header, key, value). A put's read of the key's previous
// version then touches only the small key index, values move through
// Pebble's levels in revision order instead of with the index, and watch
// catch-up and hashing read the revision log alone.
const currentLayout = 2

// upgradeBatchBytes bounds the batches of a layout upgrade.
const upgradeBatchBytes = 4 << 20

// upgradeLogEvery is how many versions an upgrade rewrites between two
// progress lines.
const upgradeLogEvery = 1 << 20

// upgradeLayout brings the store in s.db to currentLayout, before anything
// reads it, and records the layout; a fresh store is only marked (without
// a flush: if that record is lost, the next Open writes it again). It walks
// the key index and rewrites every layout-1 version, its key-index record
// and its revision-log entry in one batch, so a crash leaves every version
// in one layout or the other and the next Open goes on where it stopped
// (layout-2 records are skipped). The layout is recorded in the last batch
// and the memtables are flushed: Pebble flushes memtables in order, so once
// the record is durable, so is every rewrite before it.
func (s *Store) upgradeLayout() error {
	v, closer, err := s.db.Get(layoutKey)
	switch {
	case err == nil:
		defer closer.Close()
		if len(v) != 8 {
			return fmt.Errorf("mvcc: layout record %x: %w", v, errCorrupt)
		}
		if l := binary.BigEndian.Uint64(v); l != currentLayout {
			return fmt.Errorf("mvcc: the data was written in layout %d, which this build does not read (it reads layout %d); run the Cairn version that wrote it", l, currentLayout)
		}
		return nil
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("mvcc: read layout: %w", err)
	}
	start := time.Now()
	n, err := s.rewriteLayout1(start)
	if err != nil {
		return fmt.Errorf("mvcc: upgrade layout: %w", err)
	}
	var rec [8]byte
	binary.BigEndian.PutUint64(rec[:], currentLayout)
	if err := s.db.Set(layoutKey, rec[:], pebble.NoSync); err != nil {
		return fmt.Errorf("mvcc: record layout: %w", err)
	}
	if n == 0 {
		return nil // nothing to make durable: lost, the record is written again
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("mvcc: record layout: %w", err)
	}
	s.lg.Info("upgraded the store's on-disk layout", zap.Int("layout", currentLayout),
		zap.Int("rewritten-versions", n), zap.Duration("took", time.Since(start)))
	return nil
}

// rewriteLayout1 rewrites the layout-1 versions to layout 2 and returns how
// many it rewrote.
func (s *Store) rewriteLayout1(start time.Time) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{storage.PrefixKeyIndex}, UpperBound: keyIndexUpper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	n := 0
	var rk [revLogKeyLen]byte
	var hrec, lrec []byte
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		rec, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		if len(rec) == 0 || (rec[0] != recPutV1 && rec[0] != recTombstoneV1) {
			continue // rewritten by an earlier, interrupted upgrade
		}
		if len(k) < minIndexKeyLen {
			return n, fmt.Errorf("short key-index key %q: %w", k, errCorrupt)
		}
		key, err := indexUserKey(k)
		if err != nil {
			return n, err
		}
		h, value := header{tomb: true}, []byte(nil)
		if rec[0] == recPutV1 {
			if h, value, err = decodePutHeader(rec); err != nil {
				return n, fmt.Errorf("record of %q: %w", key, err)
			}
		}
		main, sub := indexRev(k)
		hrec = h.appendTo(hrec[:0])
		lrec = appendLogRecord(lrec[:0], h, key, value)
		if err := b.Set(k, hrec, nil); err != nil {
			return n, err
		}
		if err := b.Set(appendRevLogKey(rk[:0], main, sub), lrec, nil); err != nil {
			return n, err
		}
		if n++; n%upgradeLogEvery == 0 {
			s.lg.Info("upgrading the store's on-disk layout", zap.Int("layout", currentLayout),
				zap.Int("rewritten-versions", n), zap.Duration("took", time.Since(start)))
		}
		if b.Len() >= upgradeBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return n, err
			}
			b.Close()
			b = s.db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	return n, b.Commit(pebble.NoSync)
}
