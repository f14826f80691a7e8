package lincheck

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WorkloadConfig tunes Workload. The zero value is usable.
type WorkloadConfig struct {
	// Seed seeds the workers' choices of operations and keys; worker i
	// uses the PCG stream (Seed, i). Default 0. Print it in the test: the
	// interleaving is not reproducible, but the per-worker sequences are.
	Seed uint64
	// Workers is the number of concurrent workers; worker i issues its
	// operations through clients[i % len(clients)]. Default len(clients).
	Workers int
	// OpTimeout bounds each operation; an operation that exceeds it is
	// recorded as indeterminate. Default 1s. Keep it below the fault
	// durations of interest, or workers stall through the whole fault.
	OpTimeout time.Duration
	// KeyPrefix is prepended to the key names "k0", "k1", …; default
	// Recorder.KeyPrefix(), unique to the Recorder. The keys must not have
	// been written before the Recorder started (see KeyPrefix).
	KeyPrefix string
	// Recorder receives the operations; default a new Recorder. Pass one
	// to record other operations (your own, another Workload's) on the same
	// clock, into the same history.
	Recorder *Recorder
}

// The operation mix of Workload, in percent; the rest are deletes. Reads
// dominate so that most writes are observed; deletes are rare so that keys
// mostly exist and CASes on values get exercised.
const (
	getPercent = 40
	putPercent = 25
	casPercent = 25
)

// Workload runs cfg.Workers workers, each issuing a random mix of Get, Put,
// CAS and Delete on keys keys until ctx ends, and returns the Recorder's
// history (everything recorded in it so far, so including earlier
// operations when cfg.Recorder is shared). Every written value is unique
// within the Recorder. A CAS expects the value its worker last saw on the
// key (Absent if none), so under contention both outcomes occur. Workload
// never fails: errors are recorded as outcomes and the worker moves on.
func Workload(ctx context.Context, clients []*clientv3.Client, keys int, cfg WorkloadConfig) History {
	if len(clients) == 0 || keys <= 0 {
		panic(fmt.Sprintf("lincheck.Workload: %d clients, %d keys", len(clients), keys))
	}
	if cfg.Workers <= 0 {
		cfg.Workers = len(clients)
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = time.Second
	}
	if cfg.Recorder == nil {
		cfg.Recorder = NewRecorder()
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = cfg.Recorder.KeyPrefix()
	}
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("%sk%d", cfg.KeyPrefix, i)
	}
	var wg sync.WaitGroup
	for i := range cfg.Workers {
		w := worker{
			c:       cfg.Recorder.Client(clients[i%len(clients)]),
			rng:     rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			keys:    names,
			timeout: cfg.OpTimeout,
			seen:    make(map[string]Value),
		}
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	return cfg.Recorder.History()
}

type worker struct {
	c       *Client
	rng     *rand.Rand
	keys    []string
	timeout time.Duration
	seen    map[string]Value // last value this worker saw on each key
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		w.one(ctx)
	}
}

func (w *worker) one(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	key := w.keys[w.rng.IntN(len(w.keys))]
	p := w.rng.IntN(100)
	switch {
	case p < getPercent:
		if v, err := w.c.Get(ctx, key); err == nil {
			w.seen[key] = v
		}
	case p < getPercent+putPercent:
		v := w.c.r.uniqueValue()
		if _, err := w.c.Put(ctx, key, v); err == nil {
			w.seen[key] = Some(v)
		}
	case p < getPercent+putPercent+casPercent:
		v := w.c.r.uniqueValue()
		swapped, was, err := w.c.CAS(ctx, key, w.seen[key], v)
		switch {
		case err != nil:
		case swapped:
			w.seen[key] = Some(v)
		default:
			w.seen[key] = was
		}
	default:
		if _, err := w.c.Delete(ctx, key); err == nil {
			w.seen[key] = Absent
		}
	}
}
