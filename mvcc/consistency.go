package mvcc

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-kv/cairn/storage"
)

// What the corruption checks of package server need from the store: the
// hashes compactions recorded (etcd's compact hash check compares them
// between members), and a seam through which tests make one member's
// state diverge from what its log produced.

// CompactHash is the hash a compaction recorded: HashKV at the
// compaction's revision, taken before the compaction removed anything.
type CompactHash struct {
	Hash uint32
	// Revision is the compaction's revision; CompactRevision the previous
	// compaction's (-1: none), the compact revision the hash was taken
	// with, which HashKV at Revision answers with.
	Revision, CompactRevision int64
}

// CompactHashes returns the hashes of the last compactions (at most
// maxCompactHashes), newest first. A compaction applied from the log
// appears once the background compactor has hashed it, which it does
// before deleting anything for it; compactions resumed at Open and those of
// the contents a Restore replaced do not appear. Members that applied the
// same log record the same hash for the same compaction.
func (s *Store) CompactHashes() []CompactHash {
	s.comp.mu.Lock()
	defer s.comp.mu.Unlock()
	out := slices.Clone(s.comp.mu.hashes)
	slices.Reverse(out)
	return out
}

// CorruptValueForTesting is a fault-injection seam for tests: it
// overwrites, in the engine only, the value of key's newest version at
// revision rev (0: the current revision), keeping its revisions, version
// and lease, so that this store no longer holds what its log produced and
// its HashKV differs from its peers'. It writes outside the apply group,
// bypassing raft and every invariant of the store; production code never
// calls it. It fails when key has no live version at rev.
func (s *Store) CorruptValueForTesting(key []byte, rev int64, value []byte) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if rev <= 0 {
		rev = s.rev.Load()
	}
	prefix := appendIndexPrefix(nil, key)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{storage.PrefixKeyIndex}, UpperBound: keyIndexUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.SeekGE(appendSeekAtRev(nil, prefix, rev)) || !bytes.HasPrefix(it.Key(), prefix) {
		if err := it.Error(); err != nil {
			return err
		}
		return fmt.Errorf("mvcc: %q has no version at revision %d", key, rev)
	}
	rec, err := it.ValueAndErr()
	if err != nil {
		return err
	}
	if isTombstone(rec) {
		return fmt.Errorf("mvcc: %q is deleted at revision %d", key, rev)
	}
	h, _, err := decodeHeader(rec)
	if err != nil {
		return fmt.Errorf("mvcc: record of %q: %w", key, err)
	}
	main, sub := indexRev(it.Key())
	return s.db.Set(appendRevLogKey(nil, main, sub), appendLogRecord(nil, h, key, value), pebble.NoSync)
}
