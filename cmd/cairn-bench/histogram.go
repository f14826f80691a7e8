package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram keeps latencies in log-linear buckets: every power of two is
// split into subBuckets equal parts, so a bucket is never wider than 1/128 of
// its lower bound. Reporting a bucket's midpoint is therefore within 1/256
// (0.4%) of the true value, values below 2*subBuckets ns are exact, and memory
// is fixed (about 58 KiB) whatever the number of requests.
const (
	subBucketBits = 7
	subBuckets    = 1 << subBucketBits
)

// numBuckets covers every non-negative int64 nanosecond count.
var numBuckets = bucketIndex(math.MaxInt64) + 1

// histogram records request latencies. Record may be called from many
// goroutines at once; the readers (quantile, mean, …) are meant for after the
// run, once recording has stopped.
type histogram struct {
	counts []atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Int64 // nanoseconds; overflows only after ~292 years in total
	min    atomic.Int64 // nanoseconds; math.MaxInt64 while empty
	max    atomic.Int64 // nanoseconds
}

func newHistogram() *histogram {
	h := &histogram{counts: make([]atomic.Uint64, numBuckets)}
	h.min.Store(math.MaxInt64)
	return h
}

// bucketIndex maps a value to its bucket. Values below 2*subBuckets get a
// bucket each; above, a value with bit length L lands among the subBuckets
// buckets of its power of two, chosen by its top subBucketBits+1 bits.
func bucketIndex(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBucketBits - 1
	top := v >> uint(shift) // in [subBuckets, 2*subBuckets)
	return subBuckets*shift + int(top)
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < 2*subBuckets {
		return uint64(i), uint64(i)
	}
	shift := i/subBuckets - 1
	top := uint64(i - subBuckets*shift)
	lo = top << uint(shift)
	return lo, lo + (1 << uint(shift)) - 1
}

// record adds one observation; negative durations count as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketIndex(uint64(v))].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
	for cur := h.min.Load(); v < cur && !h.min.CompareAndSwap(cur, v); cur = h.min.Load() {
	}
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
}

func (h *histogram) total() uint64 { return h.count.Load() }

func (h *histogram) mean() time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

func (h *histogram) minimum() time.Duration {
	if h.count.Load() == 0 {
		return 0
	}
	return time.Duration(h.min.Load())
}

func (h *histogram) maximum() time.Duration { return time.Duration(h.max.Load()) }

// quantile returns the nearest-rank q-quantile (0 < q ≤ 1): the value below
// or at which ⌈q·n⌉ of the n observations lie, as the midpoint of its bucket
// clamped to the observed minimum and maximum. It returns 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	if q >= 1 {
		return h.maximum()
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum < rank {
			continue
		}
		lo, hi := bucketBounds(i)
		mid := int64(lo + (hi-lo)/2)
		return time.Duration(min(max(mid, h.min.Load()), h.max.Load()))
	}
	return h.maximum() // unreachable while counts and count agree
}
