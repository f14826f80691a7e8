package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-kv/cairn/storage"
	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// compactBatchEntries bounds the revision-log entries one compaction batch
// scans, and compactBatchOps the deletes one commit holds, so a compaction
// never builds a large batch however much history it drops, and a commit
// of the apply loop never queues behind a long one of the compactor.
const (
	compactBatchEntries = 1000
	compactBatchOps     = 1000
)

// The compactor shares the machine with the apply loop and the readers: the
// CPU (its hash pass and scans read the whole history through the block
// cache) and the engine's write path (its deletes fill memtables, whose
// flushed tombstones make Pebble compact). So it works in slices: once it
// has worked for compactSlice since it last rested, it rests as long as it
// worked, at most compactMaxRest. A rest that oversleeps (a loaded machine
// wakes timers late) is credited to the next ones, up to compactMaxRest,
// so the compactor works about half the time, whatever the timers do: it
// takes at most about half of one core, spreads its deletes over about
// twice the time, and a compaction takes about twice its work time. A rest
// ends at once when the store closes (or a Restore stops the compactor).
const (
	compactSlice   = 10 * time.Millisecond
	compactMaxRest = 100 * time.Millisecond
)

// pacing is how the compactor rests. Open uses defaultPacing; tests use
// others.
type pacing struct {
	// slice is how long the compactor works before it rests.
	slice time.Duration
	// rest returns how long to rest after working for worked (≥ slice).
	rest func(worked time.Duration) time.Duration
}

var defaultPacing = pacing{
	slice: compactSlice,
	rest:  func(worked time.Duration) time.Duration { return min(worked, compactMaxRest) },
}

// pacer applies a pacing on the compactor goroutine.
type pacer struct {
	pacing
	stop  <-chan struct{}
	since time.Time // when the current slice of work began
	// credit is how much longer than asked the last rests lasted, at most
	// compactMaxRest; later rests are that much shorter.
	credit time.Duration
	timer  *time.Timer
}

func newPacer(p pacing, stop <-chan struct{}) *pacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pacer{pacing: p, stop: stop, since: time.Now(), timer: t}
}

// begin starts a slice: time spent idle between compactions is neither
// work nor rest.
func (p *pacer) begin() { p.since, p.credit = time.Now(), 0 }

// step is called between small units of work (one key, one entry, one
// commit). When the slice is used up it rests; it returns errStopped if
// the compactor is stopping.
func (p *pacer) step() error {
	now := time.Now()
	worked := now.Sub(p.since)
	if worked < p.slice {
		return nil
	}
	d := p.rest(worked)
	if d <= p.credit {
		p.credit -= d
		select {
		case <-p.stop:
			return errStopped
		default:
		}
		p.since = now
		return nil
	}
	d -= p.credit
	p.timer.Reset(d)
	select {
	case <-p.stop:
		p.timer.Stop()
		return errStopped
	case <-p.timer.C:
	}
	p.since = time.Now()
	p.credit = min(max(p.since.Sub(now)-d, 0), compactMaxRest)
	return nil
}

var errStopped = errors.New("mvcc: compaction interrupted by close")

// Compact schedules a compaction at rev inside the open group (opening one
// if needed). It takes effect at once for the apply loop's transactions and
// for readers when the group commits; the physical deletion starts after the
// commit, in the background, and done closes when it has finished (or the
// store closed first; it then resumes at the next Open). The background
// work is paced (see compactSlice): it leaves most of the machine to the
// apply loop and readers, and so takes about twice as long as it would
// flat out.
func (s *Store) Compact(rev int64) (done <-chan struct{}, err error) {
	s.openGroup()
	if rev <= s.g.compactRev {
		return nil, ErrCompacted
	}
	if rev > s.g.rev {
		return nil, ErrFutureRev
	}
	s.g.compactRev = rev
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(rev))
	s.groupErr(s.g.batch.Set(scheduledCompactKey, v[:], nil))
	ch := make(chan struct{})
	s.g.waiters = append(s.g.waiters, waiter{rev: rev, done: ch})
	return ch, nil
}

func (c *compactor) init(s *Store, finished, scheduled int64) {
	c.s = s
	c.kick = make(chan struct{}, 1)
	c.stop = make(chan struct{})
	c.mu.Lock()
	c.mu.target, c.mu.finished = finished, finished
	c.mu.lastLogical = scheduled
	c.mu.Unlock()
	c.wg.Add(1)
	go c.run(finished)
}

// schedule raises the target to rev; done (optional) closes once the
// physical compaction reached rev. logical is set for a compaction applied
// from the log (not one resumed at Open): its hash is recorded first.
func (c *compactor) schedule(rev int64, done chan struct{}, logical bool) {
	c.mu.Lock()
	if logical {
		c.mu.toHash = append(c.mu.toHash, CompactHash{Revision: rev, CompactRevision: c.mu.lastLogical})
		c.mu.lastLogical = rev
	}
	if c.mu.stopped {
		c.mu.Unlock()
		if done != nil {
			close(done)
		}
		return
	}
	if rev <= c.mu.finished {
		c.mu.Unlock()
		if done != nil {
			close(done)
		}
		return
	}
	c.mu.target = max(c.mu.target, rev)
	if done != nil {
		c.mu.waiters = append(c.mu.waiters, waiter{rev: rev, done: done})
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *compactor) close() {
	c.mu.Lock()
	if c.mu.stopped {
		c.mu.Unlock()
		return
	}
	c.mu.stopped = true
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	c.mu.Lock()
	for _, w := range c.mu.waiters {
		close(w.done)
	}
	c.mu.waiters = nil
	c.mu.Unlock()
}

// run is the compactor goroutine: it owns finished, the revision up to
// which history is physically compacted. When it is stopped, a hash or a
// compaction in progress is abandoned (a compaction resumes at the next
// Open; the hash is not taken, as after a crash).
func (c *compactor) run(finished int64) {
	defer c.wg.Done()
	p := newPacer(c.pacing, c.stop)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		c.mu.Lock()
		target := c.mu.target
		c.mu.Unlock()
		if target <= finished {
			continue
		}
		c.mu.Lock()
		toHash := c.mu.toHash
		c.mu.toHash = nil
		c.mu.Unlock()
		p.begin()
		for _, h := range toHash {
			if err := c.recordHash(h.CompactRevision, h.Revision, p); err != nil {
				return // stopped
			}
		}
		if err := c.s.compactHistory(finished, target, p); err != nil {
			if !errors.Is(err, errStopped) {
				c.s.lg.Error("compaction failed; it resumes at the next open",
					zap.Int64("compact-revision", target), zap.Error(err))
			}
			return
		}
		finished = target
		c.mu.Lock()
		c.mu.finished = finished
		kept := c.mu.waiters[:0]
		for _, w := range c.mu.waiters {
			if w.rev <= finished {
				close(w.done)
			} else {
				kept = append(kept, w)
			}
		}
		c.mu.waiters = kept
		c.mu.Unlock()
	}
}

// ObserveCompactions has f told of every physical compaction that
// finishes from now on: how long it took and how many versions it dropped.
// f runs on the compactor's goroutine; it must not block.
func (s *Store) ObserveCompactions(f func(took time.Duration, dropped int)) {
	s.compactionObserver.Store(&f)
}

// compactHistory physically drops the versions that compaction at c hides,
// for every key changed at a main revision in [prev, c]: all but the newest
// version ≤ c, and that one too when it is a tombstone below c. Keys not
// changed since prev were handled by the compaction at prev. (A tombstone
// exactly at the compact revision is kept, as etcd does, so a watch from
// that revision still sees the delete; the next compaction drops it, which
// is why the scan includes prev itself.) It ends by persisting c as the
// finished compact revision, in the batch of the last deletions. It works
// at p's pace and returns errStopped when the compactor stops.
func (s *Store) compactHistory(prev, c int64, p *pacer) error {
	lower := appendRevLogKey(nil, max(prev, 0), 0)
	upper := appendRevLogKey(nil, c+1, 0)
	dropped := 0
	start := time.Now()
	for {
		select {
		case <-p.stop:
			return errStopped
		default:
		}
		next, n, err := s.compactBatch(lower, upper, c, p)
		if err != nil {
			return err
		}
		dropped += n
		if next == nil {
			took := time.Since(start)
			s.lg.Info("finished compaction", zap.Int64("compact-revision", c),
				zap.Int("dropped-versions", dropped), zap.Duration("took", took))
			if f := s.compactionObserver.Load(); f != nil {
				(*f)(took, dropped)
			}
			return nil
		}
		lower = next
	}
}

// compactBatch handles up to compactBatchEntries revision-log entries from
// lower, committing every compactBatchOps deletes and resting between keys
// as p says. It returns where the next batch starts, nil when done. A
// stop leaves the deletes committed so far, which is safe: each commit
// leaves a state a reader at or above c cannot tell from the uncompacted
// one, and the compaction resumes at the next Open.
func (s *Store) compactBatch(lower, upper []byte, c int64, p *pacer) (next []byte, dropped int, err error) {
	keys, last, more, err := s.changedKeys(lower, upper)
	if err != nil {
		return nil, 0, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{storage.PrefixKeyIndex},
		UpperBound: keyIndexUpper,
	})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	flush := func() error {
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b = s.db.NewBatch()
		return nil
	}
	drop := func(k []byte) error {
		main, sub := indexRev(k)
		if err := b.Delete(k, nil); err != nil {
			return err
		}
		var rk [revLogKeyLen]byte
		if err := b.Delete(appendRevLogKey(rk[:0], main, sub), nil); err != nil {
			return err
		}
		dropped++
		if b.Count() < compactBatchOps {
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		return p.step() // a key with many versions takes many commits
	}
	var prefix, seek, tomb []byte
	for _, key := range keys {
		if err := p.step(); err != nil {
			return nil, 0, err
		}
		prefix = appendIndexPrefix(prefix[:0], key)
		seek = appendSeekAtRev(seek[:0], prefix, c)
		valid := it.SeekGE(seek)
		if !valid || !bytes.HasPrefix(it.Key(), prefix) {
			continue // already compacted by an earlier batch
		}
		// The newest version ≤ c. A tombstone below c is dropped after
		// the older versions: removing it first would let a reader see
		// the version it hides.
		tomb = tomb[:0]
		if rec, err := it.ValueAndErr(); err != nil {
			return nil, 0, err
		} else if isTombstone(rec) && indexMain(it.Key()) < c {
			tomb = append(tomb, it.Key()...)
		}
		for valid = it.Next(); valid && bytes.HasPrefix(it.Key(), prefix); valid = it.Next() {
			if err := drop(it.Key()); err != nil {
				return nil, 0, err
			}
		}
		if err := it.Error(); err != nil {
			return nil, 0, err
		}
		if len(tomb) > 0 {
			if err := drop(tomb); err != nil {
				return nil, 0, err
			}
		}
	}
	if !more {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(c))
		if err := b.Set(finishedCompactKey, v[:], nil); err != nil {
			return nil, 0, err
		}
		return nil, dropped, flush()
	}
	// Revision-log keys have a fixed width, so last+0x00 is the smallest
	// key after last.
	return append(last, 0), dropped, flush()
}

// changedKeys returns the user keys of up to compactBatchEntries
// revision-log entries from lower (duplicates removed), the last entry's key
// and whether entries may remain after it.
func (s *Store) changedKeys(lower, upper []byte) (keys [][]byte, last []byte, more bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, false, err
	}
	defer it.Close()
	seen := make(map[string]struct{})
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n == compactBatchEntries {
			more = true
			break
		}
		n++
		if len(it.Key()) != revLogKeyLen {
			return nil, nil, false, fmt.Errorf("mvcc: revision-log key %q: %w", it.Key(), errCorrupt)
		}
		last = append(last[:0], it.Key()...)
		rec, err := it.ValueAndErr()
		if err != nil {
			return nil, nil, false, err
		}
		_, key, _, err := decodeLogRecord(rec)
		if err != nil {
			return nil, nil, false, fmt.Errorf("mvcc: revision-log record %q: %w", it.Key(), err)
		}
		if _, ok := seen[string(key)]; ok {
			continue
		}
		seen[string(key)] = struct{}{}
		keys = append(keys, bytes.Clone(key))
	}
	return keys, last, more, it.Error()
}
