package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cairn-kv/cairn/storage"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// suffixLen is the width of the revision suffix of a key-index key:
// inverted main revision and inverted sub revision, 8 bytes each.
const suffixLen = 16

// minIndexKeyLen is the shortest key-index key: prefix, empty escaped key
// (terminator only) and the suffix.
const minIndexKeyLen = 1 + 2 + suffixLen

// revLogKeyLen is the width of a revision-log key.
const revLogKeyLen = 1 + 16

// Record flags, the first byte of a version record.
const (
	recPut       byte = 0
	recTombstone byte = 1
)

// Names of the metadata entries mvcc keeps under storage.PrefixMeta.
// Internal entries start with "i/", entries written through PutMeta with
// "u/", so callers cannot collide with the store's own bookkeeping.
var (
	stateKey            = storage.MetaKey("i/state")             // applied index, applied term, revision
	scheduledCompactKey = storage.MetaKey("i/scheduled_compact") // 8 B BE
	finishedCompactKey  = storage.MetaKey("i/finished_compact")  // 8 B BE
)

var errCorrupt = errors.New("mvcc: corrupt record")

func userMetaKey(name string) []byte { return storage.MetaKey("u/" + name) }

// appendIndexPrefix appends the part of a key-index key that identifies the
// user key: prefix byte, escaped key and terminator.
func appendIndexPrefix(dst, key []byte) []byte {
	dst = append(dst, storage.PrefixKeyIndex)
	return storage.AppendEscaped(dst, key)
}

// appendRevSuffix appends the inverted (main, sub) revision suffix.
func appendRevSuffix(dst []byte, main, sub int64) []byte {
	dst = storage.AppendUint64(dst, storage.Invert(main))
	return storage.AppendUint64(dst, storage.Invert(sub))
}

// appendSeekAtRev appends the seek key of the newest version of the key with
// index prefix p whose main revision is ≤ rev: (rev, largest sub).
func appendSeekAtRev(dst, p []byte, rev int64) []byte {
	dst = append(dst, p...)
	dst = storage.AppendUint64(dst, storage.Invert(rev))
	return storage.AppendUint64(dst, 0)
}

// indexRev decodes the (main, sub) revision of a key-index key.
func indexRev(k []byte) (main, sub int64) {
	s := k[len(k)-suffixLen:]
	return int64(^binary.BigEndian.Uint64(s)), int64(^binary.BigEndian.Uint64(s[8:]))
}

// indexMain decodes the main revision of a key-index key.
func indexMain(k []byte) int64 {
	return int64(^binary.BigEndian.Uint64(k[len(k)-suffixLen:]))
}

// indexUserKey decodes the user key of a key-index key; it aliases k when
// the key holds no 0x00 byte.
func indexUserKey(k []byte) ([]byte, error) {
	key, rest, err := storage.DecodeEscaped(k[1 : len(k)-suffixLen])
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("mvcc: key-index key %q: %w", k, errCorrupt)
	}
	return key, nil
}

func appendRevLogKey(dst []byte, main, sub int64) []byte {
	dst = append(dst, storage.PrefixRevLog)
	dst = storage.AppendUint64(dst, uint64(main))
	return storage.AppendUint64(dst, uint64(sub))
}

func revLogRev(k []byte) (main, sub int64) {
	return int64(binary.BigEndian.Uint64(k[1:])), int64(binary.BigEndian.Uint64(k[9:]))
}

// putRecordLen returns the encoded size of a put record.
func putRecordLen(create, version, lease int64, valueLen int) int {
	return 1 + uvarintLen(uint64(create)) + uvarintLen(uint64(version)) +
		uvarintLen(zigzag(lease)) + valueLen
}

// encodePutRecord fills dst (exactly putRecordLen bytes) with a put record.
func encodePutRecord(dst []byte, create, version, lease int64, value []byte) {
	dst[0] = recPut
	n := 1
	n += binary.PutUvarint(dst[n:], uint64(create))
	n += binary.PutUvarint(dst[n:], uint64(version))
	n += binary.PutUvarint(dst[n:], zigzag(lease))
	copy(dst[n:], value)
}

func isTombstone(rec []byte) bool { return len(rec) > 0 && rec[0] == recTombstone }

// decodePutRecord decodes a put record. value aliases rec.
func decodePutRecord(rec []byte) (create, version, lease int64, value []byte, err error) {
	if len(rec) == 0 || rec[0] != recPut {
		return 0, 0, 0, nil, errCorrupt
	}
	n := 1
	c, m := binary.Uvarint(rec[n:])
	if m <= 0 {
		return 0, 0, 0, nil, errCorrupt
	}
	n += m
	v, m := binary.Uvarint(rec[n:])
	if m <= 0 {
		return 0, 0, 0, nil, errCorrupt
	}
	n += m
	l, m := binary.Uvarint(rec[n:])
	if m <= 0 {
		return 0, 0, 0, nil, errCorrupt
	}
	n += m
	return int64(c), int64(v), unzigzag(l), rec[n:], nil
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// decodeKV builds the KeyValue of a put version from its key-index key and
// record, copying key and value into a.
func decodeKV(k, rec []byte, a *arena) (*mvccpb.KeyValue, error) {
	key, err := indexUserKey(k)
	if err != nil {
		return nil, err
	}
	create, version, lease, value, err := decodePutRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("mvcc: record of %q: %w", key, err)
	}
	kv := a.kv()
	buf := a.bytes(len(key) + len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	kv.Key = buf[:len(key):len(key)]
	if len(value) > 0 {
		kv.Value = buf[len(key):]
	}
	kv.CreateRevision = create
	kv.ModRevision = indexMain(k)
	kv.Version = version
	kv.Lease = lease
	return kv, nil
}

// arena hands out KeyValues and byte slices from a few larger allocations,
// so a Range of n keys costs O(log n) allocations instead of 3n.
type arena struct {
	kvs  []mvccpb.KeyValue
	buf  []byte
	next int // size of the next KeyValue chunk
}

func (a *arena) kv() *mvccpb.KeyValue {
	if len(a.kvs) == cap(a.kvs) {
		if a.next == 0 {
			a.next = 1
		}
		a.kvs = make([]mvccpb.KeyValue, 0, a.next)
		a.next = min(a.next*2, 256)
	}
	a.kvs = a.kvs[:len(a.kvs)+1]
	return &a.kvs[len(a.kvs)-1]
}

func (a *arena) bytes(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		size := max(n, min(2*cap(a.buf), 64<<10))
		a.buf = make([]byte, 0, size)
	}
	b := a.buf[len(a.buf) : len(a.buf)+n : len(a.buf)+n]
	a.buf = a.buf[:len(a.buf)+n]
	return b
}
