package main

import "math/rand/v2"

// valuePoolSize is the random prefix of the pool --distinct-values draws
// from: each value starts at a random offset in it, so two values share
// bytes only if their offsets lie within --val-size of each other. A
// compressing engine (Pebble compresses blocks of a few KiB) then finds
// nothing to compress, as with real data, whereas one value repeated in
// every key would compress away the copies that share a block.
const valuePoolSize = 1 << 20

// newValuePool returns valuePoolSize + valSize random bytes.
func newValuePool(r *rand.Rand, valSize int) string {
	b := make([]byte, valuePoolSize+valSize)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// valueFor returns the value of one put: w.value, or with --distinct-values
// valSize bytes of the pool from a random offset (no copy).
func (w *putWorkload) valueFor(r *rand.Rand) string {
	if w.pool == "" {
		return w.value
	}
	off := r.IntN(len(w.pool) - w.k.valSize + 1)
	return w.pool[off : off+w.k.valSize]
}
