package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-kv/cairn/storage"
)

// The lease index maps each lease to the keys whose newest version is
// attached to it: 'i' lease(8 B BE) user key → empty. Put and delete keep it
// in step with the key index inside the same group, so it always describes
// the committed state; it holds no history and is never compacted.

func appendLeaseIndexKey(dst []byte, lease int64, key []byte) []byte {
	dst = append(dst, storage.PrefixLeaseIndex)
	dst = binary.BigEndian.AppendUint64(dst, uint64(lease))
	return append(dst, key...)
}

func (t *TxnWrite) attach(lease int64, key []byte) {
	if lease != 0 {
		t.s.groupErr(t.s.g.batch.Set(appendLeaseIndexKey(nil, lease, key), nil, nil))
	}
}

func (t *TxnWrite) detach(lease int64, key []byte) {
	if lease != 0 {
		t.s.groupErr(t.s.g.batch.Delete(appendLeaseIndexKey(nil, lease, key), nil))
	}
}

// LeaseKeys returns the keys attached to lease as this transaction sees
// them, in key order.
func (t *TxnWrite) LeaseKeys(lease int64) ([][]byte, error) {
	t.checkActive()
	keys, err := leaseKeys(t.s.g.batch, lease)
	if err != nil {
		return nil, t.readFailed(err)
	}
	return keys, nil
}

// LeaseKeys returns the keys attached to lease in the committed state, in
// key order.
func (s *Store) LeaseKeys(lease int64) ([][]byte, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	return leaseKeys(s.db, lease)
}

func leaseKeys(r reader, lease int64) ([][]byte, error) {
	lower := appendLeaseIndexKey(nil, lease, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: storage.PrefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()[len(lower):]))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("mvcc: keys of lease %x: %w", lease, err)
	}
	return keys, nil
}

// PutRaw writes key, which must lie outside the key spaces mvcc owns, into
// the open group (opening one if needed), so that another package's state
// commits atomically with the applied position. Readers see it after Commit,
// through the engine.
func (s *Store) PutRaw(key, value []byte) {
	checkRawKey(key)
	s.openGroup()
	s.groupErr(s.g.batch.Set(key, value, nil))
}

// DeleteRaw deletes key, under PutRaw's rules.
func (s *Store) DeleteRaw(key []byte) {
	checkRawKey(key)
	s.openGroup()
	s.groupErr(s.g.batch.Delete(key, nil))
}

func checkRawKey(key []byte) {
	if len(key) == 0 {
		panic("mvcc: raw write of an empty key")
	}
	switch key[0] {
	case storage.PrefixKeyIndex, storage.PrefixRevLog, storage.PrefixMeta, storage.PrefixLeaseIndex:
		panic(fmt.Sprintf("mvcc: raw write into mvcc's key space %q", key[0]))
	}
}
