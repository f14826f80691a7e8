package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

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
// hold whole versions, and looks up in the key index only the versions at
// or below compactRev, to tell which of them a compaction keeps.
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
	h := crc32.New(castagnoli)
	h.Write([]byte("key")) // etcd hashes its bucket's name first
	var seek, ek, kvb []byte
	var kv mvccpb.KeyValue
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
		if main <= compact {
			// A tombstone at or below the compact revision is never
			// hashed; any other version only while it is the key's newest
			// version ≤ keepBound.
			if hd.tomb {
				continue
			}
			prefix := appendIndexPrefix(seek[:0], key)
			plen := len(prefix)
			seek = storage.AppendUint64(storage.AppendUint64(prefix, storage.Invert(keepBound)), 0)
			if !idxIt.SeekPrefixGE(seek) || !bytes.HasPrefix(idxIt.Key(), seek[:plen]) {
				if err := idxIt.Error(); err != nil {
					return 0, err
				}
				return 0, fmt.Errorf("revision %d_%d of %q is missing from the key index: %w", main, sub, key, errCorrupt)
			}
			if m, sb := indexRev(idxIt.Key()); m != main || sb != sub {
				continue
			}
		}
		ek = binary.BigEndian.AppendUint64(ek[:0], uint64(main))
		ek = append(ek, '_')
		ek = binary.BigEndian.AppendUint64(ek, uint64(sub))
		kv.Reset()
		kv.Key = key
		if hd.tomb {
			ek = append(ek, 't')
		} else {
			kv.CreateRevision, kv.ModRevision, kv.Version, kv.Value, kv.Lease = hd.create, main, hd.version, value, hd.lease
		}
		if kvb, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(kvb[:0], &kv); err != nil {
			return 0, err
		}
		h.Write(ek)
		h.Write(kvb)
	}
	if err := logIt.Error(); err != nil {
		return 0, err
	}
	return h.Sum32(), idxIt.Error()
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
