package mvcc

import (
	"bytes"
	"fmt"

	"github.com/cairn-kv/cairn/storage"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TxnWrite is one etcd transaction inside the open group. Only the apply
// goroutine uses it, between Store.Write and End.
type TxnWrite struct {
	s        *Store
	beginRev int64
	changes  []*mvccpb.KeyValue
	ended    bool
}

// Write begins a transaction in the open group, opening a group if none is
// open. At most one transaction is open at a time.
func (s *Store) Write() *TxnWrite {
	s.openGroup()
	if s.g.txn != nil {
		panic("mvcc: Write while another transaction is open")
	}
	t := &TxnWrite{s: s, beginRev: s.g.rev}
	s.g.txn = t
	return t
}

func (t *TxnWrite) checkActive() {
	if t.ended {
		panic("mvcc: use of an ended transaction")
	}
}

// Rev returns the revision as this transaction sees it: the revision it
// began at, plus one once it changed something.
func (t *TxnWrite) Rev() int64 {
	if len(t.changes) > 0 {
		return t.beginRev + 1
	}
	return t.beginRev
}

// Changes returns the versions this transaction wrote, in sub-revision
// order. Deletes appear as KeyValues with only Key and ModRevision set. The
// slice and the KeyValues must not be modified; their Key and Value alias
// the slices passed to Put.
func (t *TxnWrite) Changes() []*mvccpb.KeyValue { return t.changes }

// End finishes the transaction; the group's revision advances if it
// changed anything.
func (t *TxnWrite) End() {
	t.checkActive()
	t.ended = true
	if len(t.changes) > 0 {
		t.s.g.rev = t.beginRev + 1
	}
	t.s.g.txn = nil
}

// Put writes a new version of key. The store keeps key and value (the
// returned Changes alias them): the caller must not modify them afterwards.
func (t *TxnWrite) Put(key, value []byte, lease int64) {
	t.checkActive()
	s := t.s
	rev, sub := t.beginRev+1, int64(len(t.changes))
	prev := s.latest(key)
	create, version := rev, int64(1)
	if prev.live {
		create, version = prev.create, prev.version+1
	} else {
		s.g.keys++
	}
	t.writeVersion(key, value, rev, sub, header{create: create, version: version, lease: lease})
	if prev.lease != lease {
		t.detach(prev.lease, key)
		t.attach(lease, key)
	}
	s.g.latest[string(key)] = keyState{create: create, version: version, lease: lease, live: true}
	t.changes = append(t.changes, &mvccpb.KeyValue{
		Key:            key,
		Value:          value,
		CreateRevision: create,
		ModRevision:    rev,
		Version:        version,
		Lease:          lease,
	})
}

// DeleteRange tombstones every key of [key, end) live as this transaction
// sees it and returns how many it deleted.
func (t *TxnWrite) DeleteRange(key, end []byte) (deleted int64) {
	t.checkActive()
	s := t.s
	if len(end) == 0 {
		prev := s.latest(key)
		if !prev.live {
			return 0
		}
		t.delete(key, prev.lease)
		return 1
	}
	keys, leases, err := liveKeys(s.g.batch, key, end)
	if err != nil {
		s.groupErr(fmt.Errorf("mvcc: delete range: %w", err))
		return 0
	}
	for i, k := range keys {
		t.delete(k, leases[i])
	}
	return int64(len(keys))
}

// delete tombstones key, which is live and whose newest version is
// attached to lease.
func (t *TxnWrite) delete(key []byte, lease int64) {
	rev, sub := t.beginRev+1, int64(len(t.changes))
	t.writeVersion(key, nil, rev, sub, header{tomb: true})
	t.detach(lease, key)
	t.s.g.keys--
	t.s.g.latest[string(key)] = keyState{}
	t.changes = append(t.changes, &mvccpb.KeyValue{Key: key, ModRevision: rev})
}

// writeVersion adds the key-index entry (the header) and the revision-log
// entry (header, key and value) of one version to the group batch,
// encoding straight into the batch.
func (t *TxnWrite) writeVersion(key, value []byte, rev, sub int64, h header) {
	b := t.s.g.batch
	op := b.SetDeferred(1+storage.EscapedLen(key)+suffixLen, h.len())
	k := appendIndexPrefix(op.Key[:0], key)
	appendRevSuffix(k, rev, sub)
	h.appendTo(op.Value[:0])
	t.s.groupErr(op.Finish())
	op = b.SetDeferred(revLogKeyLen, logRecordLen(h, key, value))
	appendRevLogKey(op.Key[:0], rev, sub)
	appendLogRecord(op.Value[:0], h, key, value)
	t.s.groupErr(op.Finish())
}

// latest returns the newest state of key as the open group sees it.
func (s *Store) latest(key []byte) keyState {
	g := &s.g
	if st, ok := g.latest[string(key)]; ok {
		return st
	}
	if g.dbIter == nil {
		it, err := s.db.NewIter(&pebble.IterOptions{
			LowerBound: []byte{storage.PrefixKeyIndex},
			UpperBound: keyIndexUpper,
		})
		if err != nil {
			s.groupErr(err)
			return keyState{}
		}
		g.dbIter = it
	}
	it := g.dbIter
	g.seek = appendIndexPrefix(g.seek[:0], key)
	if !it.SeekPrefixGE(g.seek) || !bytes.HasPrefix(it.Key(), g.seek) {
		s.groupErr(it.Error())
		return keyState{}
	}
	rec, err := it.ValueAndErr()
	if err != nil {
		s.groupErr(err)
		return keyState{}
	}
	h, _, err := decodeHeader(rec)
	if err != nil {
		s.groupErr(fmt.Errorf("mvcc: record of %q: %w", key, err))
		return keyState{}
	}
	if h.tomb {
		return keyState{}
	}
	return keyState{create: h.create, version: h.version, lease: h.lease, live: true}
}

// readFailed records a failed read (IO or corruption) as the group's error
// and returns it. The apply loop decides what a request does from what it
// reads, so a read that fails on one member only must never become that
// member's answer: the group is lost instead, Commit fails, and the member
// stops, as for a failed write.
func (t *TxnWrite) readFailed(err error) error {
	t.s.groupErr(err)
	return err
}

// FirstRev is Store.FirstRev as this transaction sees it, including a
// compaction applied earlier in the open group.
func (t *TxnWrite) FirstRev() int64 {
	t.checkActive()
	return t.s.g.compactRev
}
