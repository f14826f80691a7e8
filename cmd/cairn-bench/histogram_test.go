package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketIndexBounds(t *testing.T) {
	// Every bucket's bounds map back to it, and buckets tile the value range
	// without gaps.
	var next uint64
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if bucketIndex(lo) != i || bucketIndex(hi) != i {
			t.Fatalf("bucket %d [%d,%d] maps back to %d and %d", i, lo, hi, bucketIndex(lo), bucketIndex(hi))
		}
		if lo >= 2*subBuckets && float64(hi-lo+1) > float64(lo)/subBuckets {
			t.Fatalf("bucket %d [%d,%d] wider than lo/%d", i, lo, hi, subBuckets)
		}
		next = hi + 1
	}
	if next != math.MaxInt64+1 {
		t.Fatalf("buckets end at %d, want %d", next, uint64(math.MaxInt64)+1)
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	tests := []struct {
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{[]time.Duration{5}, 0.5, 5},
		{[]time.Duration{1, 2, 3, 4}, 0.5, 2},
		{[]time.Duration{1, 2, 3, 4}, 0.51, 3},
		{[]time.Duration{1, 2, 3, 4}, 0.99, 4},
		{[]time.Duration{1, 2, 3, 4}, 1, 4},
		{[]time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 0.9, 90},
		{[]time.Duration{0, 0, 255}, 0.5, 0},
		{[]time.Duration{-3, 7}, 0.5, 0},
	}
	for _, tt := range tests {
		h := newHistogram()
		for _, v := range tt.values {
			h.record(v)
		}
		if got := h.quantile(tt.q); got != tt.want {
			t.Errorf("quantile(%v) of %v = %v, want %v", tt.q, tt.values, got, tt.want)
		}
	}
}

func TestHistogramEmpty(t *testing.T) {
	h := newHistogram()
	if h.quantile(0.5) != 0 || h.mean() != 0 || h.minimum() != 0 || h.maximum() != 0 || h.total() != 0 {
		t.Fatalf("empty histogram reports non-zero figures")
	}
}

// TestHistogramMatchesSorted compares every reported figure with the exact
// nearest-rank value from a sorted copy of random, heavy-tailed latencies.
func TestHistogramMatchesSorted(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for range 20 {
		n := 1 + r.IntN(5000)
		h := newHistogram()
		vals := make([]time.Duration, n)
		var sum time.Duration
		for i := range vals {
			// Log-normal around 1ms with a long tail, up to minutes.
			vals[i] = time.Duration(math.Exp(r.NormFloat64()*2.5 + math.Log(float64(time.Millisecond))))
			sum += vals[i]
			h.record(vals[i])
		}
		slices.Sort(vals)
		if h.total() != uint64(n) || h.minimum() != vals[0] || h.maximum() != vals[n-1] || h.mean() != sum/time.Duration(n) {
			t.Fatalf("seed %d: count/min/max/mean = %d/%v/%v/%v, want %d/%v/%v/%v",
				seed, h.total(), h.minimum(), h.maximum(), h.mean(), n, vals[0], vals[n-1], sum/time.Duration(n))
		}
		for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
			rank := max(int(math.Ceil(q*float64(n))), 1)
			want := vals[rank-1]
			got := h.quantile(q)
			if diff := math.Abs(float64(got - want)); diff > float64(want)/256+1 {
				t.Fatalf("seed %d: n=%d quantile(%v) = %v, exact %v: error %.3f%% over 0.4%%",
					seed, n, q, got, want, 100*diff/float64(want))
			}
		}
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	h := newHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.record(time.Duration(g*1000 + i))
			}
		})
	}
	wg.Wait()
	if h.total() != 8000 || h.minimum() != 0 || h.maximum() != 7999 {
		t.Fatalf("count/min/max = %d/%v/%v, want 8000/0s/7.999µs", h.total(), h.minimum(), h.maximum())
	}
}
