package framework

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writers is a write load for fault tests: goroutines that each put fresh
// keys (prefix + "<writer>-<n>", the key as its value) through one client,
// and record the revision of every put that was acknowledged. A put that
// fails is indeterminate and not recorded; its writer goes on with its next
// key. Every key is written once, so the state at revision R holds exactly
// the keys put at or below R.
type Writers struct {
	t      testing.TB
	prefix string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		acked   map[string]int64 // key → revision of its acknowledgement
		lastErr error
	}
}

// writerPutTimeout bounds one put: one sent to a member that dies or is
// cut off under it must not hold its writer for long.
const writerPutTimeout = 2 * time.Second

// StartWriters starts n writers putting keys under prefix through c until
// ctx ends or Stop, which runs at the end of the test at the latest.
func StartWriters(ctx context.Context, t testing.TB, c *clientv3.Client, n int, prefix string) *Writers {
	ctx, cancel := context.WithCancel(ctx)
	w := &Writers{t: t, prefix: prefix, cancel: cancel}
	w.mu.acked = map[string]int64{}
	for i := range n {
		w.wg.Go(func() {
			for j := 0; ctx.Err() == nil; j++ {
				k := fmt.Sprintf("%s%d-%06d", prefix, i, j)
				pctx, pcancel := context.WithTimeout(ctx, writerPutTimeout)
				r, err := c.Put(pctx, k, k)
				pcancel()
				w.mu.Lock()
				if err == nil {
					w.mu.acked[k] = r.Header.Revision
				} else if ctx.Err() == nil {
					w.mu.lastErr = err
				}
				w.mu.Unlock()
				if err != nil {
					// Retry pacing: an unavailable cluster may fail puts at once.
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		})
	}
	t.Cleanup(w.Stop)
	return w
}

// Count returns how many puts have been acknowledged so far.
func (w *Writers) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.mu.acked)
}

// WaitCount waits until at least n puts have been acknowledged, and fails
// the test, with the last put error, if ctx ends first.
func (w *Writers) WaitCount(ctx context.Context, n int) {
	w.t.Helper()
	for w.Count() < n {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			defer w.mu.Unlock()
			w.t.Fatalf("%d of %d puts acknowledged (last error: %v): %v", len(w.mu.acked), n, w.mu.lastErr, ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling pace
		}
	}
}

// Stop stops the writers and waits for them. It may be called again.
func (w *Writers) Stop() {
	w.cancel()
	w.wg.Wait()
}

// Acked returns a copy of the acknowledged puts: key → revision.
func (w *Writers) Acked() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int64, len(w.mu.acked))
	for k, r := range w.mu.acked {
		out[k] = r
	}
	return out
}

// Verify reads the writers' keys through c (linearizably, so a member
// first applies everything committed before) and fails the test unless
// every put acknowledged at or below revision upTo is there at the
// revision of its acknowledgement, and no key is there past upTo. (A put
// past upTo, or one never acknowledged, may be missing.) Pass
// math.MaxInt64 for "every acknowledged put". name names c's member(s) in
// failures. It returns the revision of the read.
func (w *Writers) Verify(ctx context.Context, c *clientv3.Client, name string, upTo int64) int64 {
	w.t.Helper()
	g, err := c.Get(ctx, w.prefix, clientv3.WithPrefix())
	if err != nil {
		w.t.Fatalf("%s: reading the writers' keys: %v", name, err)
	}
	present := make(map[string]int64, len(g.Kvs))
	for _, kv := range g.Kvs {
		present[string(kv.Key)] = kv.ModRevision
	}
	var bad []string
	for k, rev := range w.Acked() {
		got, ok := present[k]
		switch {
		case rev <= upTo && !ok:
			bad = append(bad, fmt.Sprintf("%s acknowledged at revision %d is missing", k, rev))
		case rev <= upTo && got != rev:
			bad = append(bad, fmt.Sprintf("%s acknowledged at revision %d is there at %d", k, rev, got))
		case rev > upTo && ok:
			bad = append(bad, fmt.Sprintf("%s acknowledged at revision %d, past %d, is there", k, rev, upTo))
		}
	}
	for k, rev := range present {
		if rev > upTo {
			bad = append(bad, fmt.Sprintf("%s is there at revision %d, past %d", k, rev, upTo))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("… and %d more", len(bad)-10))
		}
		w.t.Fatalf("%s: %d acknowledged puts, %d keys read at revision %d:\n  %s",
			name, w.Count(), len(present), g.Header.Revision, strings.Join(bad, "\n  "))
	}
	return g.Header.Revision
}
