package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cairn-kv/cairn/storage"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns etcd's HashKV over the history visible at rev (0:
// current), with etcd's rules: a CRC-32C over every version with
// compactRev < mod_revision ≤ rev, plus, of the versions at or below
// compactRev, those that are some key's newest version ≤ rev and not a
// tombstone (when no key is live at rev, each key's newest version ≤
// compactRev unless it is a tombstone: what a finished compaction leaves),
// hashed exactly as etcd hashes
// its bbolt "key" bucket: in revision order, each version as its etcd
// revision key (main, '_', sub, and 't' for a tombstone) followed by its
// protobuf-encoded KeyValue. So the hash equals etcd's for the same
// history. It depends only on the applied log, not on how far physical
// compaction has progressed, so members applying the same log agree.
// compactRev is -1 when the store was never compacted, as in etcd's
// response. Memory stays bounded: it walks the revision log, whose entries
// hold whole versions. To tell which versions at or below compactRev
// count, it collects the keys changed since a finished compaction
// (changedAbove), or, while the compaction is unfinished or when those
// keys would not fit in maxChangedKeyBytes, looks each version up in the
// key index.
//
// As in etcd, each compaction hashes the history at its revision just
// before it removes anything, with the previous compaction's revision, and
// HashKV at that revision answers with that hash while it is among the
// last maxCompactHashes compactions: members compare these to detect
// corruption (etcd's compact hash check).
func (s *Store) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, 0, 0, err
	}
	if ch, ok := s.comp.hashAt(rev); ok && rev > 0 {
		return ch.Hash, ch.Revision, ch.CompactRevision, nil
	}
	for {
		cur := s.rev.Load()
		if rev > cur {
			return 0, 0, 0, ErrFutureRev
		}
		// One snapshot serves both iterators, so they agree with each
		// other and with the compact revision loaded after it.
		snap := s.db.NewSnapshot()
		compact := s.compactRev.Load()
		at := rev
		if at <= 0 {
			at = cur
		}
		if at < compact {
			snap.Close()
			if rev <= 0 {
				continue // see Range
			}
			return 0, 0, 0, ErrCompacted
		}
		h, err := hashHistory(snap, at, compact, nil)
		if cerr := snap.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("mvcc: hash: %w", err)
		}
		return h, at, compact, nil
	}
}

// hashHistory computes HashKV at rev with compact revision compact from
// snap. pace, if not nil, is called between entries; its error ends the
// pass (the compactor paces its hash pass through it).
func hashHistory(snap *pebble.Snapshot, rev, compact int64, pace func() error) (uint32, error) {
	logIt, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: []byte{storage.PrefixRevLog},
		UpperBound: appendRevLogKey(nil, rev+1, 0),
	})
	if err != nil {
		return 0, err
	}
	defer logIt.Close()
	idxIt, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{storage.PrefixKeyIndex}, UpperBound: keyIndexUpper})
	if err != nil {
		return 0, err
	}
	defer idxIt.Close()
	// etcd keeps a version at or below the compact revision in the hash
	// when it is in the set a compaction at rev would keep; when that set
	// is empty, it keeps whatever compaction left on disk.
	keepBound := compact
	if compact > 0 {
		live, err := anyLive(snap, rev)
		if err != nil {
			return 0, err
		}
		if live {
			keepBound = rev
		}
	}
	changed, err := changedAbove(snap, compact, keepBound, pace)
	if err != nil {
		return 0, err
	}
	h := crc32.New(castagnoli)
	h.Write([]byte("key")) // etcd hashes its bucket's name first
	var seek, ek, kvb []byte
	for valid := logIt.First(); valid; valid = logIt.Next() {
		if pace != nil {
			if err := pace(); err != nil {
				return 0, err
			}
		}
		main, sub := revLogRev(logIt.Key())
		rec, err := logIt.ValueAndErr()
		if err != nil {
			return 0, err
		}
		hd, key, value, err := decodeLogRecord(rec)
		if err != nil {
			return 0, fmt.Errorf("mvcc: revision-log record %d_%d: %w", main, sub, err)
		}
		// A tombstone at or below the compact revision is never hashed;
		// any other version only while it is the key's newest version ≤
		// keepBound.
		if main <= compact {
			if hd.tomb {
				continue
			}
			if changed != nil {
				if _, ok := changed[string(key)]; ok {
					continue
				}
			} else if newest, err := newestAt(idxIt, key, keepBound, &seek); err != nil {
				return 0, fmt.Errorf("revision %d_%d of %q: %w", main, sub, key, err)
			} else if newest != [2]int64{main, sub} {
				continue
			}
		}
		ek = binary.BigEndian.AppendUint64(ek[:0], uint64(main))
		ek = append(ek, '_')
		ek = binary.BigEndian.AppendUint64(ek, uint64(sub))
		if hd.tomb {
			ek = append(ek, 't')
			kvb = appendKeyValue(kvb[:0], key, 0, 0, 0, nil, 0)
		} else {
			kvb = appendKeyValue(kvb[:0], key, hd.create, main, hd.version, value, hd.lease)
		}
		h.Write(ek)
		h.Write(kvb)
	}
	if err := logIt.Error(); err != nil {
		return 0, err
	}
	return h.Sum32(), idxIt.Error()
}

// newestAt returns the revision of key's newest version ≤ rev in the key
// index it; seek is scratch.
func newestAt(it *pebble.Iterator, key []byte, rev int64, seek *[]byte) ([2]int64, error) {
	prefix := appendIndexPrefix((*seek)[:0], key)
	plen := len(prefix)
	*seek = storage.AppendUint64(storage.AppendUint64(prefix, storage.Invert(rev)), 0)
	if !it.SeekPrefixGE(*seek) || !bytes.HasPrefix(it.Key(), (*seek)[:plen]) {
		if err := it.Error(); err != nil {
			return [2]int64{}, err
		}
		return [2]int64{}, fmt.Errorf("missing from the key index: %w", errCorrupt)
	}
	m, sb := indexRev(it.Key())
	return [2]int64{m, sb}, nil
}

// maxChangedKeyBytes bounds the memory of changedAbove's set (keys plus
// an estimate of the map's own cost per key). A variable for tests.
var maxChangedKeyBytes = 16 << 20

// changedAbove returns the user keys with a version in (compact, upto] when
// a finished compaction at compact holds in snap and the set fits in
// maxChangedKeyBytes; otherwise nil. The compaction left, of the versions
// at or below compact, only each key's newest (and tombstones, never
// hashed), so such a version is its key's newest ≤ upto, and kept in the
// hash, exactly when its key is not in the set: the hash then needs no
// lookup in the key index per old version.
func changedAbove(snap *pebble.Snapshot, compact, upto int64, pace func() error) (map[string]struct{}, error) {
	if compact <= 0 {
		return nil, nil
	}
	finished, err := loadInt(snap, finishedCompactKey)
	if err != nil || finished < compact {
		return nil, err
	}
	it, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: appendRevLogKey(nil, compact+1, 0),
		UpperBound: appendRevLogKey(nil, upto+1, 0),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	changed := make(map[string]struct{})
	size := 0
	for valid := it.First(); valid; valid = it.Next() {
		if pace != nil {
			if err := pace(); err != nil {
				return nil, err
			}
		}
		rec, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		_, key, _, err := decodeLogRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("mvcc: revision-log record %q: %w", it.Key(), err)
		}
		if _, ok := changed[string(key)]; ok {
			continue
		}
		if size += len(key) + 64; size > maxChangedKeyBytes {
			return nil, nil
		}
		changed[string(key)] = struct{}{}
	}
	return changed, it.Error()
}

// appendKeyValue appends the protobuf encoding of an mvccpb.KeyValue with
// these fields, byte for byte what etcd stores and hashes: fields in
// number order, zero values left out.
func appendKeyValue(b, key []byte, create, mod, version int64, value []byte, lease int64) []byte {
	if len(key) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, key)
	}
	for i, v := range [...]int64{create, mod, version} {
		if v != 0 {
			b = protowire.AppendTag(b, protowire.Number(2+i), protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	if len(value) > 0 {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, value)
	}
	if lease != 0 {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(lease))
	}
	return b
}

// anyLive reports whether some key is live at rev.
func anyLive(r reader, rev int64) (bool, error) {
	scr := getScratch()
	defer putScratch(scr)
	scr.opts.LowerBound, scr.opts.UpperBound = []byte{storage.PrefixKeyIndex}, keyIndexUpper
	it, err := r.NewIter(&scr.opts)
	if err != nil {
		return false, err
	}
	defer it.Close()
	sc := &scr.sc
	sc.it, sc.rev = it, rev
	for valid := sc.settle(it.First()); valid; valid = sc.nextKey() {
		rec, err := it.ValueAndErr()
		if err != nil {
			return false, err
		}
		if !isTombstone(rec) {
			return true, nil
		}
	}
	if sc.err != nil {
		return false, sc.err
	}
	return false, it.Error()
}

// maxCompactHashes is how many compactions' hashes are remembered (etcd's
// hashStorage keeps 10).
const maxCompactHashes = 10

// recordHash hashes the history at c as it stands before compaction at c
// removes anything (prev is the previous compact revision, -1 if none) and
// remembers it. It reads the whole history, so it goes at p's pace; it
// returns errStopped, remembering nothing, when the compactor stops. Any
// other failure is logged and leaves no hash: the compaction goes on.
// Compactor goroutine only.
func (c *compactor) recordHash(prev, target int64, p *pacer) error {
	start := time.Now()
	snap := c.s.db.NewSnapshot()
	h, err := hashHistory(snap, target, prev, p.step)
	snap.Close()
	if errors.Is(err, errStopped) {
		return err
	}
	if err != nil {
		c.s.lg.Warn("could not hash the history before compaction", zap.Int64("compact-revision", target), zap.Error(err))
		return nil
	}
	c.s.lg.Info("hashed the history before compaction", zap.Int64("compact-revision", target),
		zap.Duration("took", time.Since(start)))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.hashes = append(c.mu.hashes, CompactHash{Hash: h, Revision: target, CompactRevision: prev})
	if len(c.mu.hashes) > maxCompactHashes {
		c.mu.hashes = c.mu.hashes[1:]
	}
	return nil
}

// hashAt returns the remembered compaction hash at rev, if any.
func (c *compactor) hashAt(rev int64) (CompactHash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.mu.hashes {
		if h.Revision == rev {
			return h, true
		}
	}
	return CompactHash{}, false
}
