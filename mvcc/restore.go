package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-kv/cairn/storage"
)

// Offline access to a store's bookkeeping, for tools that work on an
// engine no Store has open: cairnutl reads it from a snapshot and
// rewrites it when it restores a snapshot into a new cluster.

// ErrBadRestore refuses restore parameters that cannot work.
var ErrBadRestore = errors.New("mvcc: invalid restore parameters")

// State is what a store's metadata says of its history.
type State struct {
	// Meta is the raft position the state was applied up to.
	Meta
	// Rev is the store's revision (1 for a fresh store).
	Rev int64
	// CompactRev is the compact revision, -1 when never compacted.
	CompactRev int64
}

// ReadState reads the state of the store kept in eng without opening it.
func ReadState(eng *storage.Engine) (State, error) {
	s := &Store{db: eng.DB()}
	m, rev, err := s.loadState()
	if err != nil {
		return State{}, err
	}
	scheduled, err := loadInt(s.db, scheduledCompactKey)
	if err != nil {
		return State{}, err
	}
	return State{Meta: m, Rev: max(rev, scheduled), CompactRev: scheduled}, nil
}

// RestoreOptions says how PrepareRestore rewrites a store.
type RestoreOptions struct {
	// Meta is the applied position the store starts from in its new raft
	// log.
	Meta Meta
	// BumpRevision, when positive, raises the revision by that much, so
	// the next write's revision is above every revision clients may have
	// seen of the store's copies (etcdutl's --bump-revision).
	BumpRevision int64
	// MarkCompacted compacts the store at its (bumped) revision: a watch
	// or a read from any older revision gets ErrCompacted (etcdutl's
	// --mark-compacted). The history below is removed physically in the
	// background once a Store opens the engine.
	MarkCompacted bool
}

// PrepareRestore rewrites the store in eng, which no Store may have open,
// for a member of a new cluster that starts from it: the applied raft
// position becomes o.Meta, and the revision and compaction change as o
// says. Keys, values, their revisions and lease attachments are kept. The
// change is one synced batch. It returns the state after the change.
func PrepareRestore(eng *storage.Engine, o RestoreOptions) (State, error) {
	if o.BumpRevision < 0 {
		return State{}, fmt.Errorf("%w: negative revision bump %d", ErrBadRestore, o.BumpRevision)
	}
	st, err := ReadState(eng)
	if err != nil {
		return State{}, err
	}
	if o.BumpRevision > 0 && st.Rev > (1<<63-1)-o.BumpRevision {
		return State{}, fmt.Errorf("%w: revision %d plus %d overflows", ErrBadRestore, st.Rev, o.BumpRevision)
	}
	// The keys stay as they are: a live key count recorded for the state
	// is restamped with the new revision, so Open need not count again.
	_, stateRev, err := (&Store{db: eng.DB()}).loadState()
	if err != nil {
		return State{}, err
	}
	keys, _, keysOK, err := loadKeyCount(eng.DB(), stateRev)
	if err != nil {
		return State{}, err
	}
	st.Meta = o.Meta
	st.Rev += o.BumpRevision
	b := eng.DB().NewBatch()
	defer b.Close()
	v := encodeState(st.Meta, st.Rev)
	if err := b.Set(stateKey, v[:], nil); err != nil {
		return State{}, err
	}
	if keysOK {
		kc := encodeKeyCount(keys, st.Rev)
		if err := b.Set(keyCountKey, kc[:], nil); err != nil {
			return State{}, err
		}
	}
	if o.MarkCompacted && st.CompactRev < st.Rev {
		// Scheduled above finished: the compactor of the next Store to
		// open the engine drops the hidden history, as after a crash.
		st.CompactRev = st.Rev
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], uint64(st.Rev))
		if err := b.Set(scheduledCompactKey, c[:], nil); err != nil {
			return State{}, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return State{}, fmt.Errorf("mvcc: prepare restore: %w", err)
	}
	return st, nil
}
