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

// Record flags, the first byte of a version's header. Layout 1 (before
// the values moved into the revision log) used 0 and 1, with the value
// after a put's header in the key index; upgradeLayout rewrites them.
const (
	recPut         byte = 2
	recTombstone   byte = 3
	recPutV1       byte = 0
	recTombstoneV1 byte = 1
)

// Names of the metadata entries mvcc keeps under storage.PrefixMeta.
// Internal entries start with "i/", entries written through PutMeta with
// "u/", so callers cannot collide with the store's own bookkeeping.
var (
	stateKey            = storage.MetaKey("i/state")             // applied index, applied term, revision
	scheduledCompactKey = storage.MetaKey("i/scheduled_compact") // 8 B BE
	finishedCompactKey  = storage.MetaKey("i/finished_compact")  // 8 B BE
	layoutKey           = storage.MetaKey("i/layout")            // 8 B BE, see upgradeLayout
	keyCountKey         = storage.MetaKey("i/keys")              // live keys, revision (2×8 B BE), see keycount.go
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

// header is what a version records besides its key, revision and value:
// the key-index record of the version, which the revision-log record
// repeats.
type header struct {
	tomb                   bool
	create, version, lease int64
}

// len returns the encoded size of h.
func (h header) len() int {
	if h.tomb {
		return 1
	}
	return 1 + uvarintLen(uint64(h.create)) + uvarintLen(uint64(h.version)) + uvarintLen(zigzag(h.lease))
}

// appendTo appends the encoding of h: the flag, and for a put uvarint
// create revision, uvarint version and zigzag-varint lease.
func (h header) appendTo(dst []byte) []byte {
	if h.tomb {
		return append(dst, recTombstone)
	}
	dst = append(dst, recPut)
	dst = binary.AppendUvarint(dst, uint64(h.create))
	dst = binary.AppendUvarint(dst, uint64(h.version))
	return binary.AppendUvarint(dst, zigzag(h.lease))
}

func isTombstone(rec []byte) bool { return len(rec) > 0 && rec[0] == recTombstone }

// decodeHeader decodes the header at the start of rec, a key-index or
// revision-log record, and returns what follows it.
func decodeHeader(rec []byte) (header, []byte, error) {
	if len(rec) == 0 {
		return header{}, nil, errCorrupt
	}
	switch rec[0] {
	case recTombstone:
		return header{tomb: true}, rec[1:], nil
	case recPut:
		return decodePutHeader(rec)
	}
	return header{}, nil, errCorrupt
}

// decodePutHeader decodes a put's header, whatever its flag byte.
func decodePutHeader(rec []byte) (header, []byte, error) {
	var v [3]uint64
	n := 1
	for i := range v {
		x, m := binary.Uvarint(rec[n:])
		if m <= 0 {
			return header{}, nil, errCorrupt
		}
		v[i], n = x, n+m
	}
	return header{create: int64(v[0]), version: int64(v[1]), lease: unzigzag(v[2])}, rec[n:], nil
}

// logRecordLen returns the size of the revision-log record of a version.
func logRecordLen(h header, key, value []byte) int {
	return h.len() + uvarintLen(uint64(len(key))) + len(key) + len(value)
}

// appendLogRecord appends a version's revision-log record: its header,
// uvarint key length, key and value (empty for a tombstone).
func appendLogRecord(dst []byte, h header, key, value []byte) []byte {
	dst = h.appendTo(dst)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, value...)
}

// decodeLogRecord decodes a revision-log record; key and value alias rec.
func decodeLogRecord(rec []byte) (h header, key, value []byte, err error) {
	h, rest, err := decodeHeader(rec)
	if err != nil {
		return header{}, nil, nil, err
	}
	n, m := binary.Uvarint(rest)
	if m <= 0 || n > uint64(len(rest)-m) {
		return header{}, nil, nil, errCorrupt
	}
	rest = rest[m:]
	return h, rest[:n], rest[n:], nil
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

// buildKV builds the KeyValue of a put version of key at main revision
// mod, copying key and value into a.
func buildKV(key, value []byte, h header, mod int64, a *arena) *mvccpb.KeyValue {
	kv := a.kv()
	buf := a.bytes(len(key) + len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	kv.Key = buf[:len(key):len(key)]
	if len(value) > 0 {
		kv.Value = buf[len(key):]
	}
	kv.CreateRevision = h.create
	kv.ModRevision = mod
	kv.Version = h.version
	kv.Lease = h.lease
	return kv
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
