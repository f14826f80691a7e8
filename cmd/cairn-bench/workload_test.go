package main

import (
	"math/rand/v2"
	"testing"
)

func TestFormatKey(t *testing.T) {
	tests := []struct {
		i    uint64
		size int
		want string
	}{
		{0, 8, "00000000"},
		{42, 8, "00000042"},
		{99999999, 8, "99999999"},
		{7, 1, "7"},
		{123, 5, "00123"},
	}
	for _, tt := range tests {
		if got := formatKey(tt.i, tt.size); got != tt.want {
			t.Errorf("formatKey(%d, %d) = %q, want %q", tt.i, tt.size, got, tt.want)
		}
	}
}

// TestPrefixedKey: the keys of the defrag and watch workloads, built with
// one allocation since every request makes one.
func TestPrefixedKey(t *testing.T) {
	if got := prefixedKey("load/", 42, 8); got != "load/00000042" {
		t.Fatalf("prefixedKey = %q", got)
	}
	if got := prefixedKey("w/", 123456, 3); got != "w/123456" {
		t.Fatalf("prefixedKey past the size = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = prefixedKey("load/", 12345, 8) }); n > 1 {
		t.Fatalf("%v allocations per key, want 1", n)
	}
}

func TestKeyOptionsValidate(t *testing.T) {
	ok := keyOptions{keySize: 8, valSize: 256, keySpaceSize: 1}
	tests := []struct {
		name    string
		edit    func(*keyOptions)
		ops     int
		wantErr bool
	}{
		{"defaults", func(*keyOptions) {}, 1, false},
		{"1e8 keys fit in 8 digits", func(k *keyOptions) { k.keySpaceSize = 100_000_000 }, 1, false},
		{"1e8+1 keys do not", func(k *keyOptions) { k.keySpaceSize = 100_000_001 }, 1, true},
		{"huge key size", func(k *keyOptions) { k.keySize = 64; k.keySpaceSize = 1<<64 - 1 }, 1, false},
		{"zero key size", func(k *keyOptions) { k.keySize = 0 }, 1, true},
		{"negative value size", func(k *keyOptions) { k.valSize = -1 }, 1, true},
		{"empty value", func(k *keyOptions) { k.valSize = 0 }, 1, false},
		{"zero key space", func(k *keyOptions) { k.keySpaceSize = 0 }, 1, true},
		{"txn needs distinct keys", func(k *keyOptions) { k.keySpaceSize = 3 }, 4, true},
		{"txn with enough keys", func(k *keyOptions) { k.keySpaceSize = 4 }, 4, false},
	}
	for _, tt := range tests {
		k := ok
		tt.edit(&k)
		if err := k.validate(tt.ops); (err != nil) != tt.wantErr {
			t.Errorf("%s: validate = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := options{endpoints: []string{"127.0.0.1:2379"}, clients: 10, conns: 2, total: 1}
	tests := []struct {
		name    string
		edit    func(*options)
		wantErr bool
	}{
		{"defaults", func(*options) {}, false},
		{"no endpoints", func(o *options) { o.endpoints = nil }, true},
		{"no clients", func(o *options) { o.clients = 0 }, true},
		{"no conns", func(o *options) { o.conns = 0 }, true},
		{"more conns than clients", func(o *options) { o.conns = 11 }, true},
		{"no requests", func(o *options) { o.total = 0 }, true},
		{"negative rate", func(o *options) { o.rate = -1 }, true},
		{"negative timeout", func(o *options) { o.requestTimeout = -1 }, true},
	}
	for _, tt := range tests {
		o := ok
		tt.edit(&o)
		if err := o.validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: validate = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestTxnKeysDistinct checks that a txn's keys never repeat, including where
// they wrap around the end of the key space.
func TestTxnKeysDistinct(t *testing.T) {
	for _, sequential := range []bool{false, true} {
		k := keyOptions{keySize: 4, keySpaceSize: 5, sequentialKeys: sequential}
		w := newPutWorkload(&k, 5, true, 1)
		r := rand.New(rand.NewPCG(1, 2))
		for n := range uint64(50) {
			first := w.firstKey(r, n)
			seen := map[uint64]bool{}
			for i := range w.ops {
				key := w.txnKey(first, i)
				if seen[key] {
					t.Fatalf("sequential=%v request %d: key %d twice", sequential, n, key)
				}
				seen[key] = true
			}
		}
	}
}
