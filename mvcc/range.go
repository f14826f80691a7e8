package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/cairn-kv/cairn/storage"
	"github.com/cockroachdb/pebble/v2"
)

// nextsBeforeSeek is how many Next steps the scanner tries before it falls
// back to a seek: cheap when a key has few versions, bounded when it has
// many.
const nextsBeforeSeek = 3

// keyIndexUpper is the exclusive upper bound of the whole key index.
var keyIndexUpper = []byte{storage.PrefixKeyIndex + 1}

// Bounds of the whole revision log.
var (
	revLogLower = []byte{storage.PrefixRevLog}
	revLogUpper = []byte{storage.PrefixRevLog + 1}
)

// values reads versions' values from their revision-log entries through a
// clone of a key-index iterator, so that both see one point in time. The
// clone is made at the first lookup: count-only and keys-only ranges never
// make one.
type values struct {
	src  *pebble.Iterator
	it   *pebble.Iterator
	opts pebble.IterOptions
	seek []byte
}

// get returns the value of key's version (main, sub); it aliases the
// iterator's memory until the next call.
func (v *values) get(key []byte, main, sub int64) ([]byte, error) {
	if v.it == nil {
		v.opts = pebble.IterOptions{LowerBound: revLogLower, UpperBound: revLogUpper}
		it, err := v.src.Clone(pebble.CloneOptions{IterOptions: &v.opts})
		if err != nil {
			return nil, err
		}
		v.it = it
	}
	v.seek = appendRevLogKey(v.seek[:0], main, sub)
	if !v.it.SeekPrefixGE(v.seek) || !bytes.Equal(v.it.Key(), v.seek) {
		if err := v.it.Error(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("mvcc: revision %d_%d of %q is missing from the revision log: %w", main, sub, key, errCorrupt)
	}
	rec, err := v.it.ValueAndErr()
	if err != nil {
		return nil, err
	}
	h, k, val, err := decodeLogRecord(rec)
	if err != nil || h.tomb || !bytes.Equal(k, key) {
		return nil, fmt.Errorf("mvcc: revision-log record %d_%d of %q: %w", main, sub, key, errCorrupt)
	}
	return val, nil
}

// close closes the clone, if one was made.
func (v *values) close() error {
	if v.it == nil {
		return nil
	}
	err := v.it.Close()
	v.it = nil
	return err
}

// scanner walks a key-index iterator one user key at a time, stopping at
// each key's newest version whose main revision is ≤ rev (tombstones
// included; callers filter them).
type scanner struct {
	it  *pebble.Iterator
	rev int64
	// exact is set when the range is one user key: seeks then go through
	// SeekPrefixGE, which skips every table whose bloom filter rules the
	// key out (see storage.Comparer).
	exact  bool
	prefix []byte // index prefix of the key being skipped
	seek   []byte
	err    error
}

// seekGE positions the iterator at the first key ≥ k (of k's user key
// alone when the range is exact).
func (sc *scanner) seekGE(k []byte) bool {
	if sc.exact {
		return sc.it.SeekPrefixGE(k)
	}
	return sc.it.SeekGE(k)
}

// settle moves from the current position (valid tells whether there is
// one) to the newest version ≤ rev of the first key at or after it.
func (sc *scanner) settle(valid bool) bool {
	for valid {
		k := sc.it.Key()
		if len(k) < minIndexKeyLen {
			sc.err = fmt.Errorf("mvcc: short key-index key %q: %w", k, errCorrupt)
			return false
		}
		if indexMain(k) <= sc.rev {
			return true
		}
		sc.prefix = append(sc.prefix[:0], k[:len(k)-suffixLen]...)
		for i := 0; ; i++ {
			if i == nextsBeforeSeek {
				sc.seek = appendSeekAtRev(sc.seek[:0], sc.prefix, sc.rev)
				valid = sc.seekGE(sc.seek)
				break
			}
			valid = sc.it.Next()
			if !valid || !bytes.HasPrefix(sc.it.Key(), sc.prefix) {
				break
			}
			if indexMain(sc.it.Key()) <= sc.rev {
				return true
			}
		}
	}
	return false
}

// nextKey moves to the next user key and settles there.
func (sc *scanner) nextKey() bool {
	k := sc.it.Key()
	sc.prefix = append(sc.prefix[:0], k[:len(k)-suffixLen]...)
	for range nextsBeforeSeek {
		if !sc.it.Next() {
			return false
		}
		if !bytes.HasPrefix(sc.it.Key(), sc.prefix) {
			return sc.settle(true)
		}
	}
	// The prefix ends with the terminator 0x00 0x01; 0x00 0x02 is past
	// every version of this key and before the next key.
	sc.seek = append(sc.seek[:0], sc.prefix...)
	sc.seek[len(sc.seek)-1]++
	return sc.settle(sc.seekGE(sc.seek))
}

// bounds computes the key-index bounds of the user range [key, end) with
// etcd's conventions. ok is false when the range is empty by construction.
func appendBounds(lower, upper, key, end []byte) (lo, up []byte, ok bool) {
	switch {
	case len(end) == 0:
		lo = appendIndexPrefix(lower, key)
		up = append(upper, lo...)
		up[len(up)-1]++ // terminator 0x00 0x01 → 0x00 0x02
	case len(end) == 1 && end[0] == 0:
		lo = storage.AppendEscapedBound(append(lower, storage.PrefixKeyIndex), key)
		up = append(upper, keyIndexUpper...)
	default:
		if bytes.Compare(key, end) >= 0 {
			return nil, nil, false
		}
		lo = storage.AppendEscapedBound(append(lower, storage.PrefixKeyIndex), key)
		up = storage.AppendEscapedBound(append(upper, storage.PrefixKeyIndex), end)
	}
	return lo, up, true
}

// rangeScratch holds the buffers of one Range; pooled because the iterator
// bounds must stay put until the iterator is closed.
type rangeScratch struct {
	lower, upper []byte
	opts         pebble.IterOptions
	sc           scanner
	vals         values
}

var scratchPool = sync.Pool{New: func() any { return new(rangeScratch) }}

func getScratch() *rangeScratch { return scratchPool.Get().(*rangeScratch) }

func putScratch(s *rangeScratch) {
	s.opts = pebble.IterOptions{}
	s.sc.it, s.sc.err, s.sc.exact = nil, nil, false
	s.vals.src, s.vals.it, s.vals.opts = nil, nil, pebble.IterOptions{}
	scratchPool.Put(s)
}

// reader is what ranges read from: the DB or the open group's batch.
type reader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// collect reads the keys of [key, end) visible at rev through sc (and
// their values through vals) and builds the result (without Rev).
func collect(ctx context.Context, sc *scanner, vals *values, lower []byte, rev int64, o RangeOptions) (*RangeResult, error) {
	sc.rev = rev
	res := &RangeResult{}
	var a arena
	if o.Limit > 0 && o.Limit < 64 {
		a.next = int(o.Limit)
	}
	limit := int(o.Limit)
	n := 0
	for valid := sc.settle(sc.seekGE(lower)); valid; valid = sc.nextKey() {
		if n++; n&255 == 0 && ctx != nil {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("mvcc: range: %w", err)
			}
		}
		rec, err := sc.it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("mvcc: range: %w", err)
		}
		if isTombstone(rec) {
			continue
		}
		res.Count++
		if o.Count || (limit > 0 && len(res.KVs) >= limit) {
			continue
		}
		k := sc.it.Key()
		key, err := indexUserKey(k)
		if err != nil {
			return nil, err
		}
		h, _, err := decodeHeader(rec)
		if err != nil {
			return nil, fmt.Errorf("mvcc: record of %q: %w", key, err)
		}
		var value []byte
		main, sub := indexRev(k)
		if !o.KeysOnly {
			if value, err = vals.get(key, main, sub); err != nil {
				return nil, fmt.Errorf("mvcc: range: %w", err)
			}
		}
		res.KVs = append(res.KVs, buildKV(key, value, h, main, &a))
	}
	if sc.err != nil {
		return nil, sc.err
	}
	if err := sc.it.Error(); err != nil {
		return nil, fmt.Errorf("mvcc: range: %w", err)
	}
	return res, nil
}

// rangeOver runs collect over it (a key-index iterator with scr's bounds)
// and closes it.
func rangeOver(ctx context.Context, scr *rangeScratch, it *pebble.Iterator, exact bool, rev int64, o RangeOptions) (*RangeResult, error) {
	scr.sc.it, scr.sc.exact = it, exact
	scr.vals.src = it
	res, err := collect(ctx, &scr.sc, &scr.vals, scr.lower, rev, o)
	if cerr := scr.vals.close(); err == nil && cerr != nil {
		err = fmt.Errorf("mvcc: range: %w", cerr)
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("mvcc: range: %w", cerr)
	}
	return res, err
}

// Range returns the keys of [key, end) at revision o.Rev (0: current), from
// committed groups only. It may run on any goroutine, concurrently with the
// apply loop and with physical compaction.
func (s *Store) Range(ctx context.Context, key, end []byte, o RangeOptions) (*RangeResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	scr := getScratch()
	defer putScratch(scr)
	var ok bool
	scr.lower, scr.upper, ok = appendBounds(scr.lower[:0], scr.upper[:0], key, end)
	for {
		// Order matters: the revision is loaded before the iterator is
		// created so the iterator holds every version ≤ cur; the compact
		// revision is loaded after, so no physical deletion beyond it can
		// be visible to the iterator.
		cur := s.rev.Load()
		if o.Rev > cur {
			return nil, ErrFutureRev
		}
		if !ok {
			if o.Rev > 0 && o.Rev < s.compactRev.Load() {
				return nil, ErrCompacted
			}
			return &RangeResult{Rev: cur}, nil
		}
		scr.opts.LowerBound, scr.opts.UpperBound = scr.lower, scr.upper
		it, err := s.db.NewIter(&scr.opts)
		if err != nil {
			return nil, fmt.Errorf("mvcc: range: %w", err)
		}
		rev := o.Rev
		if rev <= 0 {
			rev = cur
		}
		if rev < s.compactRev.Load() {
			it.Close()
			if o.Rev <= 0 {
				// A group that compacted past cur committed after cur
				// was loaded; its revision is published by now.
				continue
			}
			return nil, ErrCompacted
		}
		res, err := rangeOver(ctx, scr, it, len(end) == 0, rev, o)
		if err != nil {
			return nil, err
		}
		res.Rev = cur
		return res, nil
	}
}

// Range reads [key, end) as this transaction sees it: committed groups, the
// open group's earlier transactions and this transaction's own writes.
func (t *TxnWrite) Range(key, end []byte, o RangeOptions) (*RangeResult, error) {
	t.checkActive()
	s := t.s
	cur := t.Rev()
	if o.Rev > cur {
		return nil, ErrFutureRev
	}
	rev := o.Rev
	if rev <= 0 {
		rev = cur
	}
	if rev < s.g.compactRev {
		return nil, ErrCompacted
	}
	scr := getScratch()
	defer putScratch(scr)
	var ok bool
	scr.lower, scr.upper, ok = appendBounds(scr.lower[:0], scr.upper[:0], key, end)
	if !ok {
		return &RangeResult{Rev: cur}, nil
	}
	scr.opts.LowerBound, scr.opts.UpperBound = scr.lower, scr.upper
	it, err := s.g.batch.NewIter(&scr.opts)
	if err != nil {
		return nil, t.readFailed(fmt.Errorf("mvcc: txn range: %w", err))
	}
	res, err := rangeOver(nil, scr, it, len(end) == 0, rev, o)
	if err != nil {
		return nil, t.readFailed(err)
	}
	res.Rev = cur
	return res, nil
}

// liveKeys returns copies of the keys of [key, end) that are live in the
// newest state of r, and the lease each is attached to.
func liveKeys(r reader, key, end []byte) (keys [][]byte, leases []int64, err error) {
	scr := getScratch()
	defer putScratch(scr)
	var ok bool
	scr.lower, scr.upper, ok = appendBounds(scr.lower[:0], scr.upper[:0], key, end)
	if !ok {
		return nil, nil, nil
	}
	scr.opts.LowerBound, scr.opts.UpperBound = scr.lower, scr.upper
	it, err := r.NewIter(&scr.opts)
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	sc := &scr.sc
	sc.it, sc.rev = it, int64(^uint64(0)>>1)
	for valid := sc.settle(it.SeekGE(scr.lower)); valid; valid = sc.nextKey() {
		rec, err := it.ValueAndErr()
		if err != nil {
			return nil, nil, err
		}
		if isTombstone(rec) {
			continue
		}
		k, err := indexUserKey(it.Key())
		if err != nil {
			return nil, nil, err
		}
		h, _, err := decodeHeader(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("%w of %q", err, k)
		}
		keys = append(keys, bytes.Clone(k))
		leases = append(leases, h.lease)
	}
	if sc.err != nil {
		return nil, nil, sc.err
	}
	return keys, leases, it.Error()
}
