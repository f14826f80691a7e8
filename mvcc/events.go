package mvcc

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Events returns the committed changes whose main revision lies in
// [from, to], in revision order, as watch events: a put carries its full
// KeyValue, a delete a KeyValue with only Key and ModRevision (etcd's
// shape). It stops after the revision in which the number of events reached
// maxEvents or the size of their keys and values reached maxBytes (0: no
// limit), so one revision is never split; next is the first revision not
// returned (to+1 when everything was). It fails with
// ErrCompacted when from is below the first readable revision, and with
// ErrFutureRev when to is beyond the committed revision.
//
// It reads the revision log alone, whose entries hold whole versions, so
// its cost is proportional to the events returned, not to the key space.
func (s *Store) Events(ctx context.Context, from, to int64, maxEvents, maxBytes int) (evs []*mvccpb.Event, next int64, err error) {
	if err := s.checkOpen(); err != nil {
		return nil, 0, err
	}
	if to > s.rev.Load() {
		return nil, 0, ErrFutureRev
	}
	if from > to {
		return nil, from, nil
	}
	lower := appendRevLogKey(nil, from, 0)
	upper := appendRevLogKey(nil, to+1, 0)
	log, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, 0, fmt.Errorf("mvcc: events: %w", err)
	}
	defer log.Close()
	// The iterator sees one point in time. A compaction published after it
	// was created may delete what it needs only below its revision, so
	// checking the first readable revision now is enough.
	if from < s.compactRev.Load() {
		return nil, 0, ErrCompacted
	}
	var a arena
	last, size := int64(0), 0
	for valid := log.First(); valid; valid = log.Next() {
		main, _ := revLogRev(log.Key())
		if main != last && ((maxEvents > 0 && len(evs) >= maxEvents) || (maxBytes > 0 && size >= maxBytes)) {
			return evs, main, nil
		}
		last = main
		if n := len(evs); n&255 == 255 {
			if err := ctx.Err(); err != nil {
				return nil, 0, fmt.Errorf("mvcc: events: %w", err)
			}
		}
		rec, err := log.ValueAndErr()
		if err != nil {
			return nil, 0, fmt.Errorf("mvcc: events: %w", err)
		}
		h, key, value, err := decodeLogRecord(rec)
		if err != nil {
			return nil, 0, fmt.Errorf("mvcc: revision-log record %q: %w", log.Key(), err)
		}
		if h.tomb {
			kv := a.kv()
			kv.Key = append(a.bytes(len(key))[:0], key...)
			kv.ModRevision = main
			evs = append(evs, &mvccpb.Event{Type: mvccpb.DELETE, Kv: kv})
			size += len(key)
			continue
		}
		kv := buildKV(key, value, h, main, &a)
		evs = append(evs, &mvccpb.Event{Type: mvccpb.PUT, Kv: kv})
		size += len(kv.Key) + len(kv.Value)
	}
	if err := log.Error(); err != nil {
		return nil, 0, fmt.Errorf("mvcc: events: %w", err)
	}
	return evs, to + 1, nil
}
