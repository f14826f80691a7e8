package storage

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ComparerName is the name Pebble records for Comparer in every database
// and sstable the engine writes.
const ComparerName = "cairn.bytewise-keyindex-split.v1"

// Comparer orders keys exactly as bytes.Compare, as Pebble's default
// comparer does, and differs from it only in Split: a key-index key
// (PrefixKeyIndex followed by an escaped component) splits just after the
// component's terminator, so every version of one user key shares one
// prefix. That prefix is what the engine's bloom filters hold and what
// pebble.Iterator.SeekPrefixGE looks up: a lookup of one user key skips
// every table whose filter says the key is not there instead of reading a
// block from it. Every other key (and a key-index key whose component is
// unterminated, such as a range bound) is its own prefix.
//
// Split meets Pebble's requirements because the escaped encoding is
// prefix-free: two keys that agree up to one's terminator split at the same
// place, so prefixes order keys before suffixes, and with equal prefixes
// the bytewise order of the suffixes is the order of the keys.
var Comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = ComparerName
	c.Split = splitKey
	return &c
}()

// legacyComparerName is the comparer of databases written before Comparer
// existed: Pebble's default, which orders keys the same way.
const legacyComparerName = "leveldb.BytewiseComparator"

// filterPolicy is the engine's bloom filter: 10 bits per prefix, about a
// 1% false-positive rate.
var filterPolicy = bloom.FilterPolicy(10)

// splitKey is Comparer's Split.
func splitKey(k []byte) int {
	if len(k) == 0 || k[0] != PrefixKeyIndex {
		return len(k)
	}
	for i := 1; ; {
		j := bytes.IndexByte(k[i:], escByte)
		if j < 0 || i+j+1 >= len(k) {
			return len(k)
		}
		i += j
		switch k[i+1] {
		case escTerminal:
			return i + 2
		case escEscaped:
			i += 2
		default:
			return len(k)
		}
	}
}

// comparerOf returns the comparer the database in dir was written with:
// Comparer, or Pebble's default for a database written by a build from
// before Comparer existed. Both order keys the same way, so either reads
// the other's keys in the same order. A directory without a database gets
// Comparer.
func comparerOf(fs vfs.FS, dir string) (*pebble.Comparer, error) {
	opts, err := pebbleOptions(fs, dir)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		return Comparer, nil
	}
	switch name, ok := opts["comparer"]; {
	case !ok:
		return nil, fmt.Errorf("storage: the OPTIONS file of %s names no comparer", dir)
	case name == ComparerName:
		return Comparer, nil
	case name == legacyComparerName:
		return pebble.DefaultComparer, nil
	default:
		return nil, fmt.Errorf("storage: %s was written with comparer %q, which Cairn does not know", dir, name)
	}
}

// pebbleOptions returns the key=value settings of the OPTIONS file Pebble
// wrote in dir (the first, [Options], section's value where a key repeats
// in a level's section), or nil if dir holds no database or no such file.
func pebbleOptions(fs vfs.FS, dir string) (map[string]string, error) {
	desc, err := pebble.Peek(dir, fs)
	if err != nil {
		return nil, fmt.Errorf("storage: inspect %s: %w", dir, err)
	}
	if !desc.Exists || desc.OptionsFilename == "" {
		return nil, nil
	}
	f, err := fs.Open(desc.OptionsFilename)
	if err != nil {
		return nil, fmt.Errorf("storage: inspect %s: %w", dir, err)
	}
	defer f.Close()
	opts := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if _, dup := opts[k]; ok && !dup {
			opts[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("storage: inspect %s: %w", desc.OptionsFilename, err)
	}
	return opts, nil
}
