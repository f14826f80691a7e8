package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Key prefixes of the defrag workload: the history it compacts, and the
// load that runs meanwhile.
const (
	fillKeyPrefix = "fill/"
	loadKeyPrefix = "load/"
)

// defragOptions are the flags of the defrag workload.
type defragOptions struct {
	fillKeys     uint64 // distinct keys of the history; default 100000
	fillVersions uint64 // versions written of each; default 10
	fillTxnOps   int    // puts per fill request (1: a plain Put); default 1
	fillClients  int    // goroutines writing the history; default 100
	fillConns    int    // connections they share; default 10
	fillValSize  int    // default 256
	keySize      int    // digits of the key numbers; default 8
	valSize      int    // value of the load's puts; default 256
	loadKeys     uint64 // keys the load writes round-robin; default 1000
	warmup       time.Duration
	baseline     time.Duration // each window of load alone; default 5s
	opTimeout    time.Duration // of the compaction and the defragment; default 10m
	noCompact    bool
	noDefrag     bool
}

func (d *defragOptions) validate(o *options) error {
	switch {
	case d.fillTxnOps < 1:
		return fmt.Errorf("--fill-txn-ops %d: must be at least 1", d.fillTxnOps)
	case d.fillKeys > 0 && d.fillKeys%uint64(d.fillTxnOps) != 0:
		return fmt.Errorf("--fill-keys %d: must be a multiple of --fill-txn-ops %d", d.fillKeys, d.fillTxnOps)
	case d.fillClients < 1:
		return fmt.Errorf("--fill-clients %d: must be at least 1", d.fillClients)
	case d.fillConns < 1 || d.fillConns > d.fillClients:
		return fmt.Errorf("--fill-conns %d: must be between 1 and --fill-clients %d", d.fillConns, d.fillClients)
	case d.fillValSize < 0 || d.valSize < 0:
		return errors.New("--fill-val-size and --val-size must not be negative")
	case d.keySize < 1:
		return fmt.Errorf("--key-size %d: must be at least 1", d.keySize)
	case d.fillKeys > maxKeys(d.keySize) || d.loadKeys > maxKeys(d.keySize):
		return fmt.Errorf("--key-size %d holds only %d distinct keys", d.keySize, maxKeys(d.keySize))
	case d.loadKeys < 1:
		return fmt.Errorf("--load-keys %d: must be at least 1", d.loadKeys)
	case d.baseline <= 0:
		return fmt.Errorf("--baseline %v: must be positive", d.baseline)
	case d.warmup < 0:
		return fmt.Errorf("--warmup %v: must not be negative", d.warmup)
	case d.opTimeout <= 0:
		return fmt.Errorf("--op-timeout %v: must be positive", d.opTimeout)
	case len(o.endpoints) != 1:
		return errors.New("--endpoints: the defrag workload needs exactly one endpoint (Defragment and Status are per member)")
	}
	return nil
}

func newDefragCommand(o *options) *cobra.Command {
	d := &defragOptions{}
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Measure puts while the server compacts away a long history and defragments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("total") {
				return errors.New("--total does not apply to defrag: the phases' lengths set the run's")
			}
			if err := o.validate(); err != nil {
				return err
			}
			if err := d.validate(o); err != nil {
				return err
			}
			res, err := runDefrag(cmd.Context(), o, d, os.Stderr)
			if err != nil {
				return err
			}
			return emit(o, res)
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&d.fillKeys, "fill-keys", 100000, "distinct keys of the history written before the load (0: none)")
	f.Uint64Var(&d.fillVersions, "fill-versions", 10, "versions of each history key: fill-keys × fill-versions revisions to compact")
	f.IntVar(&d.fillTxnOps, "fill-txn-ops", 1, "puts per request writing the history: 1 is a plain Put (one revision each), more a Txn (one revision for all)")
	f.IntVar(&d.fillClients, "fill-clients", 100, "goroutines writing the history")
	f.IntVar(&d.fillConns, "fill-conns", 10, "connections of their own the history writers share round-robin")
	f.IntVar(&d.fillValSize, "fill-val-size", 256, "value size of the history's puts, bytes")
	f.IntVar(&d.keySize, "key-size", 8, "digits of the key numbers (keys are fill/NNNNNNNN and load/NNNNNNNN)")
	f.IntVar(&d.valSize, "val-size", 256, "value size of the load's puts, bytes")
	f.Uint64Var(&d.loadKeys, "load-keys", 1000, "keys the load writes, round-robin")
	f.DurationVar(&d.warmup, "warmup", time.Second, "load before the first window, not measured")
	f.DurationVar(&d.baseline, "baseline", 5*time.Second, "length of each window of load alone (one before, one after)")
	f.DurationVar(&d.opTimeout, "op-timeout", 10*time.Minute, "timeout of the compaction and of the defragment")
	f.BoolVar(&d.noCompact, "no-compact", false, "skip the compaction")
	f.BoolVar(&d.noDefrag, "no-defrag", false, "skip the defragment")
	return cmd
}

// timedPut is one put of the load: when it was sent and when it was
// answered.
type timedPut struct{ start, end time.Time }

// phase is a window of the run's timeline.
type phase struct {
	name       string
	start, end time.Time
	note       string // what the phase did, e.g. the revision compacted
}

// defragResult is the report of one defrag run.
type defragResult struct {
	Endpoints    []string
	Clients      int
	Conns        int
	Rate         float64
	Seed         uint64
	Opts         defragOptions
	FillPuts     uint64        // key versions the history wrote (a txn writes several at one revision)
	FillDuration time.Duration // time to write it
	CompactRev   int64         // revision compacted at; 0 if none
	Sizes        []dbSizes     // Status before and after each operation
	Phases       []phaseStats
	Succeeded    uint64
	Errors       uint64
	ErrorSamples []string
	Interrupted  bool
	Aborted      bool
}

// dbSizes is a Status reading.
type dbSizes struct {
	When          string
	DBSize, InUse int64
}

// phaseStats sums up the load's puts during a phase.
type phaseStats struct {
	Name     string
	Note     string
	Duration time.Duration
	Puts     int // in flight at some time during the phase
	Latency  latencies
	// LongestGap is the longest time during the phase in which no put of
	// the load completed: how long writes stalled, whatever the number
	// of clients.
	LongestGap time.Duration
}

// runDefrag writes the history, then runs the put load through a window of
// load alone, the compaction, the defragment and a second window alone,
// and reports each phase.
func runDefrag(parent context.Context, o *options, d *defragOptions, progress io.Writer) (*defragResult, error) {
	clients, err := connect(parent, o)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	res := &defragResult{Endpoints: o.endpoints, Clients: o.clients, Conns: o.conns, Rate: o.rate, Seed: o.seed, Opts: *d}
	ctx, abort := context.WithCancel(parent)
	defer abort()
	t := newTally(o, abort)
	finish := func() *defragResult {
		res.Errors, res.ErrorSamples = t.failed.Load(), t.samples.list()
		res.Interrupted = parent.Err() != nil
		res.Aborted = parent.Err() == nil && ctx.Err() != nil
		return res
	}

	fillStart := time.Now()
	if err := fillHistory(ctx, o, d, progress); err != nil {
		if ctx.Err() != nil {
			return finish(), nil
		}
		return nil, err
	}
	res.FillPuts = d.fillKeys * d.fillVersions
	res.FillDuration = time.Since(fillStart)
	status := func(when string) error {
		sctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
		defer cancel()
		st, err := clients[0].Status(sctx, o.endpoints[0])
		if err != nil {
			return fmt.Errorf("status %s: %w", when, err)
		}
		res.Sizes = append(res.Sizes, dbSizes{When: when, DBSize: st.DbSize, InUse: st.DbSizeInUse})
		return nil
	}
	if err := status("before"); err != nil {
		return nil, err
	}

	l := startPutLoad(ctx, o, d, clients, t)
	var phases []phase
	// window runs f as phase name; a failure of f ends the run.
	window := func(name string, f func() (string, error)) error {
		fmt.Fprintf(progress, "defrag: %s\n", name)
		p := phase{name: name, start: time.Now()}
		note, err := f()
		p.end, p.note = time.Now(), note
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		phases = append(phases, p)
		return nil
	}
	alone := func() (string, error) {
		if !waitUntil(ctx, time.Now().Add(d.baseline)) {
			return "", ctx.Err()
		}
		return "", nil
	}
	run := func() error {
		if !waitUntil(ctx, time.Now().Add(d.warmup)) {
			return ctx.Err()
		}
		if err := window("baseline", alone); err != nil {
			return err
		}
		if !d.noCompact {
			err := window("compaction", func() (string, error) {
				octx, cancel := context.WithTimeout(ctx, d.opTimeout)
				defer cancel()
				// The newest revision: every fill and load put so far.
				r, err := clients[0].Get(octx, "cairn-bench-defrag", clientv3.WithCountOnly())
				if err != nil {
					return "", err
				}
				res.CompactRev = r.Header.Revision
				_, err = clients[0].Compact(octx, res.CompactRev, clientv3.WithCompactPhysical())
				return fmt.Sprintf("at revision %d", res.CompactRev), err
			})
			if err != nil {
				return err
			}
			if err := status("after compaction"); err != nil {
				return err
			}
		}
		if !d.noDefrag {
			err := window("defragment", func() (string, error) {
				octx, cancel := context.WithTimeout(ctx, d.opTimeout)
				defer cancel()
				_, err := clients[0].Defragment(octx, o.endpoints[0])
				return "", err
			})
			if err != nil {
				return err
			}
			if err := status("after defragment"); err != nil {
				return err
			}
		}
		return window("after", alone)
	}
	runErr := run()
	puts := l.stop()
	if runErr != nil && ctx.Err() == nil {
		return nil, runErr
	}
	res.Succeeded = uint64(len(puts))
	for _, p := range phases {
		res.Phases = append(res.Phases, summarizePhase(p, puts))
	}
	return finish(), nil
}

// fillHistory writes d.fillVersions versions of d.fillKeys keys from
// d.fillClients goroutines on d.fillConns connections of their own,
// d.fillTxnOps puts per request (a Put, or a Txn
// of several): request j writes keys (j × ops) mod fillKeys onwards, so each
// pass over the keys is fillKeys/ops requests and no txn names a key twice.
func fillHistory(ctx context.Context, o *options, d *defragOptions, progress io.Writer) error {
	if d.fillKeys == 0 || d.fillVersions == 0 {
		return nil
	}
	fo := *o
	fo.conns = d.fillConns
	clients, err := connect(ctx, &fo)
	if err != nil {
		return err
	}
	defer closeAll(clients)
	txns := d.fillKeys * d.fillVersions / uint64(d.fillTxnOps)
	value := randomValue(d.fillValSize, o.seed)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, done atomic.Uint64
		wg         sync.WaitGroup
		mu         sync.Mutex
		firstErr   error
	)
	start := time.Now()
	p := startProgressFunc(progress, func(now time.Time) string {
		return fmt.Sprintf("defrag: writing the history: %d/%d txns, %s elapsed", done.Load(), txns, now.Sub(start).Truncate(time.Second))
	})
	for i := range d.fillClients {
		kv := clients[i%len(clients)].KV
		wg.Go(func() {
			ops := make([]clientv3.Op, d.fillTxnOps)
			for {
				j := next.Add(1) - 1
				if j >= txns || ctx.Err() != nil {
					return
				}
				first := (j * uint64(d.fillTxnOps)) % d.fillKeys
				var err error
				if len(ops) == 1 {
					_, err = kv.Put(ctx, prefixedKey(fillKeyPrefix, first, d.keySize), value)
				} else {
					for k := range ops {
						ops[k] = clientv3.OpPut(prefixedKey(fillKeyPrefix, first+uint64(k), d.keySize), value)
					}
					_, err = kv.Txn(ctx).Then(ops...).Commit()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("writing the history: %w", err)
					}
					mu.Unlock()
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	p.stop()
	return firstErr
}

func randomValue(size int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 0))
	v := make([]byte, size)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return string(v)
}

// putLoad is the load that runs through the phases.
type putLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		puts []timedPut
	}
}

// startPutLoad starts o.clients workers putting d.valSize bytes to
// d.loadKeys keys round-robin, paced at o.rate puts per second over all of
// them (a worker behind schedule sends at once), each with one put in
// flight, until stop. Failures count in t; successes are only recorded in
// the worker's own slice (no shared counter or lock per put), and summed
// up per phase once the load has stopped.
func startPutLoad(ctx context.Context, o *options, d *defragOptions, clients []*clientv3.Client, t *tally) *putLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &putLoad{cancel: cancel}
	value := randomValue(d.valSize, o.seed+1)
	var next atomic.Uint64
	start := time.Now()
	for i := range o.clients {
		kv := clients[i%len(clients)].KV
		l.wg.Go(func() {
			var mine []timedPut
			defer func() {
				l.mu.Lock()
				l.mu.puts = append(l.mu.puts, mine...)
				l.mu.Unlock()
			}()
			for {
				n := next.Add(1) - 1
				if ctx.Err() != nil {
					return
				}
				if o.rate > 0 && !waitUntil(ctx, scheduled(start, n, o.rate)) {
					return
				}
				rctx, rcancel := withTimeout(ctx, o.requestTimeout)
				t0 := time.Now()
				_, err := kv.Put(rctx, prefixedKey(loadKeyPrefix, n%d.loadKeys, d.keySize), value)
				t1 := time.Now()
				rcancel()
				switch {
				case err == nil:
					mine = append(mine, timedPut{t0, t1})
				case ctx.Err() != nil:
					return // stopped: neither a success nor the server's failure
				default:
					t.fail(err)
				}
			}
		})
	}
	return l
}

// stop ends the load and returns its successful puts, in no order.
func (l *putLoad) stop() []timedPut {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.puts
}

// summarizePhase sums up the puts in flight at some time during p: their
// latencies, and the longest stretch of p in which none completed.
func summarizePhase(p phase, puts []timedPut) phaseStats {
	s := phaseStats{Name: p.name, Note: p.note, Duration: p.end.Sub(p.start)}
	h := newHistogram()
	var ends []time.Time
	for _, q := range puts {
		if q.end.After(p.start) && q.start.Before(p.end) {
			h.record(q.end.Sub(q.start))
			s.Puts++
		}
		ends = append(ends, q.end)
	}
	s.Latency = summarize(h)
	s.LongestGap = longestGap(p.start, p.end, ends)
	return s
}

// longestGap returns the longest interval overlapping [from, to] that
// contains none of the times in ends: bounded by completions (possibly
// outside the window) or, when there are none beyond, by from or to.
func longestGap(from, to time.Time, ends []time.Time) time.Duration {
	ends = slices.Clone(ends)
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	prev := from
	if i, _ := slices.BinarySearchFunc(ends, from, func(e, t time.Time) int { return e.Compare(t) }); i > 0 {
		prev = ends[i-1] // the last completion before the window
	}
	for _, e := range ends {
		if !e.After(prev) {
			continue
		}
		longest = max(longest, e.Sub(prev))
		prev = e
		if !e.Before(to) {
			return longest
		}
	}
	return max(longest, to.Sub(prev))
}
