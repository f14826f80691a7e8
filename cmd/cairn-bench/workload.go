package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// workload sends one request. do is called concurrently by every worker, each
// with its own random source; n is the request number, 0 ≤ n < --total.
type workload interface {
	name() string
	do(ctx context.Context, kv clientv3.KV, r *rand.Rand, n uint64) error
}

// formatKey writes key number i in decimal, zero-padded to size bytes.
// keyOptions.validate ensures i fits.
func formatKey(i uint64, size int) string { return prefixedKey("", i, size) }

// prefixedKey is prefix followed by formatKey(i, size), built with one
// allocation: it runs once per request, inside the measured loop.
func prefixedKey(prefix string, i uint64, size int) string {
	var buf [20]byte // the longest uint64
	digits := strconv.AppendUint(buf[:0], i, 10)
	var b strings.Builder
	b.Grow(len(prefix) + max(size, len(digits)))
	b.WriteString(prefix)
	for range size - len(digits) {
		b.WriteByte('0')
	}
	b.Write(digits)
	return b.String()
}

// putWorkload writes ops keys per request: a plain Put (ops is then 1) or a
// Txn with ops puts in its Then branch.
type putWorkload struct {
	k     keyOptions
	ops   int
	txn   bool
	value string
	pool  string // with --distinct-values: values are slices of it
}

func newPutWorkload(k *keyOptions, ops int, txn bool, seed uint64) *putWorkload {
	r := rand.New(rand.NewPCG(seed, 0))
	v := make([]byte, k.valSize)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	w := &putWorkload{k: *k, ops: ops, txn: txn, value: string(v)}
	if k.distinctValues {
		w.pool = newValuePool(r, k.valSize)
	}
	return w
}

func (w *putWorkload) name() string {
	if w.txn {
		return "txn-put"
	}
	return "put"
}

// firstKey picks the first key number of request n. A txn's keys are the ops
// consecutive numbers from there, wrapping around the key space, so they are
// distinct as etcd requires.
func (w *putWorkload) firstKey(r *rand.Rand, n uint64) uint64 {
	if w.k.sequentialKeys {
		return (n * uint64(w.ops)) % w.k.keySpaceSize
	}
	return r.Uint64N(w.k.keySpaceSize)
}

// txnKey is the number of the i-th key of a request starting at first.
func (w *putWorkload) txnKey(first uint64, i int) uint64 {
	return (first + uint64(i)) % w.k.keySpaceSize
}

func (w *putWorkload) do(ctx context.Context, kv clientv3.KV, r *rand.Rand, n uint64) error {
	first := w.firstKey(r, n)
	if !w.txn {
		_, err := kv.Put(ctx, formatKey(first, w.k.keySize), w.valueFor(r))
		return err
	}
	ops := make([]clientv3.Op, w.ops)
	for i := range ops {
		key := formatKey(w.txnKey(first, i), w.k.keySize)
		ops[i] = clientv3.OpPut(key, w.valueFor(r))
	}
	resp, err := kv.Txn(ctx).Then(ops...).Commit()
	if err == nil && !resp.Succeeded {
		// An empty If always succeeds; anything else is a server bug.
		return fmt.Errorf("txn with no comparisons reported Succeeded=false")
	}
	return err
}

type rangeWorkload struct {
	key  string
	opts []clientv3.OpOption
	desc string
}

func newRangeWorkload(key, end string, serializable bool) *rangeWorkload {
	w := &rangeWorkload{key: key, desc: "range linearizable"}
	if end != "" {
		w.opts = append(w.opts, clientv3.WithRange(end))
	}
	if serializable {
		w.opts = append(w.opts, clientv3.WithSerializable())
		w.desc = "range serializable"
	}
	return w
}

func (w *rangeWorkload) name() string { return w.desc }

func (w *rangeWorkload) do(ctx context.Context, kv clientv3.KV, _ *rand.Rand, _ uint64) error {
	_, err := kv.Get(ctx, w.key, w.opts...)
	return err
}
