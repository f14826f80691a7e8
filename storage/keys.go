package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Key-space prefixes. See the package documentation for the owners.
const (
	PrefixKeyIndex   byte = 'k'
	PrefixRevLog     byte = 'r'
	PrefixMeta       byte = 'm'
	PrefixLeaseIndex byte = 'i'
	PrefixLease      byte = 'l'
	PrefixAuth       byte = 'a'
	PrefixMembership byte = 'c'
	PrefixAlarm      byte = 'w'
)

// Escape bytes of the order-preserving component encoding.
const (
	escByte     byte = 0x00
	escEscaped  byte = 0xFF // 0x00 0xFF stands for a 0x00 in the original
	escTerminal byte = 0x01 // 0x00 0x01 ends the component
)

// ErrCorruptKey reports an encoded key that does not decode.
var ErrCorruptKey = errors.New("storage: corrupt encoded key")

// AppendEscaped appends the self-delimiting, order-preserving encoding of s
// (escaped bytes plus terminator) to dst.
func AppendEscaped(dst, s []byte) []byte {
	dst = AppendEscapedBound(dst, s)
	return append(dst, escByte, escTerminal)
}

// AppendEscapedBound appends the encoding of s without its terminator: a seek
// bound that sorts at the position of s among all encoded strings.
func AppendEscapedBound(dst, s []byte) []byte {
	for {
		i := bytes.IndexByte(s, escByte)
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, escEscaped)
		s = s[i+1:]
	}
}

// EscapedLen returns len(AppendEscaped(nil, s)).
func EscapedLen(s []byte) int {
	return len(s) + bytes.Count(s, []byte{escByte}) + 2
}

// DecodeEscaped decodes a component written by AppendEscaped from the front
// of b. It returns the original string and the bytes after the terminator.
// When s contains no 0x00 byte, the returned string aliases b.
func DecodeEscaped(b []byte) (s, rest []byte, err error) {
	i := bytes.IndexByte(b, escByte)
	if i < 0 || i+1 >= len(b) {
		return nil, nil, ErrCorruptKey
	}
	if b[i+1] == escTerminal {
		return b[:i:i], b[i+2:], nil
	}
	var out []byte
	for {
		if i < 0 || i+1 >= len(b) {
			return nil, nil, ErrCorruptKey
		}
		switch b[i+1] {
		case escTerminal:
			return append(out, b[:i]...), b[i+2:], nil
		case escEscaped:
			out = append(out, b[:i+1]...)
			b = b[i+2:]
		default:
			return nil, nil, ErrCorruptKey
		}
		i = bytes.IndexByte(b, escByte)
	}
}

// AppendUint64 appends v as 8 big-endian bytes.
func AppendUint64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, v)
}

// Uint64 decodes 8 big-endian bytes from the front of b.
func Uint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// Invert maps v to a value whose unsigned order is the reverse of v's order
// for v ≥ 0: encode Invert(rev) to keep the newest revision first.
func Invert(v int64) uint64 { return ^uint64(v) }

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil when there is none (prefix is empty or all 0xFF).
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// MetaKey returns the key of the metadata entry name.
func MetaKey(name string) []byte {
	k := make([]byte, 0, 1+len(name))
	k = append(k, PrefixMeta)
	return append(k, name...)
}
