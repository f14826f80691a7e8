package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchRun is the shared state of one watch run.
type watchRun struct {
	o *options
	w *watchOptions

	puts       *tally     // put latency and failures; its samples hold the watchers' errors too
	eventLat   *histogram // send timestamp to receipt at the watcher
	putsPerKey []atomic.Uint64
	watchFail  atomic.Uint64 // watchers that ended early or were canceled

	received  atomic.Uint64 // unique events over all watchers
	expected  atomic.Uint64 // math.MaxUint64 until the puts are done
	lastEvent atomic.Int64  // unix nanos of the latest unique event
	allIn     chan struct{} // closed once received reaches expected
	allInOnce sync.Once
}

// countEvent adds one unique event and closes allIn when it is the last
// one expected.
func (r *watchRun) countEvent(now time.Time) {
	ns := now.UnixNano()
	for cur := r.lastEvent.Load(); ns > cur && !r.lastEvent.CompareAndSwap(cur, ns); cur = r.lastEvent.Load() {
	}
	if r.received.Add(1) >= r.expected.Load() {
		r.allInOnce.Do(func() { close(r.allIn) })
	}
}

// connectN opens n connections to o.endpoints the way connect does.
func connectN(ctx context.Context, o *options, n int) ([]*clientv3.Client, error) {
	c := *o
	c.conns = n
	return connect(ctx, &c)
}

// runWatch creates the watchers (and stalled watchers), sends the puts,
// waits until every watcher has had every event of its key or
// --drain-timeout passes, and reports.
func runWatch(parent context.Context, o *options, w *watchOptions, progress io.Writer) (*watchResult, error) {
	ctx, abort := context.WithCancel(parent)
	defer abort()
	r := &watchRun{
		o: o, w: w,
		puts:       newTally(o, abort),
		eventLat:   newHistogram(),
		putsPerKey: make([]atomic.Uint64, w.keySpace),
		allIn:      make(chan struct{}),
	}
	r.expected.Store(math.MaxUint64)

	var conns []*clientv3.Client
	defer func() { closeAll(conns) }()
	open := func(n int) ([]*clientv3.Client, error) {
		cs, err := connectN(ctx, o, n)
		conns = append(conns, cs...)
		return cs, err
	}
	writers, err := open(w.putClients)
	if err != nil {
		return nil, err
	}
	var streams []*clientv3.Client
	if w.watchers > 0 {
		if streams, err = open(w.streams); err != nil {
			return nil, err
		}
	}
	// Watch from the revision after the current one, so that every put of
	// the run is expected whatever the timing of the watch creation.
	resp, err := writers[0].Get(ctx, watchKeyPrefix, clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("reading the current revision: %w", err)
	}
	startRev := resp.Header.Revision + 1

	// Creating a thousand watchers takes many round trips; allow it several
	// request timeouts (a minute by default) before giving up.
	setupCtx, setupDone := ctx, context.CancelFunc(func() {})
	if o.requestTimeout > 0 {
		setupCtx, setupDone = context.WithTimeout(ctx, 6*o.requestTimeout)
	}
	defer setupDone()

	var stalled []*clientv3.Client
	if w.stallWatch > 0 {
		if stalled, err = open(w.stallStreams); err != nil {
			return nil, err
		}
		if err := r.stall(setupCtx, ctx, stalled); err != nil {
			return nil, err
		}
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	tallies := make([]watcherTally, w.watchers)
	var receivers, created sync.WaitGroup
	created.Add(w.watchers)
	for i := range w.watchers {
		opts := []clientv3.OpOption{clientv3.WithRev(startRev), clientv3.WithCreatedNotify()}
		if w.prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		key := watchKeyPrefix
		if !w.prefix {
			key = w.watchKey(w.watcherKey(i))
		}
		// One context for all watchers of a client: clientv3 puts watchers
		// with the same context metadata on one gRPC stream.
		wch := streams[streamOf(i, len(streams))].Watch(watchCtx, key, opts...)
		receivers.Go(func() { r.receive(watchCtx, wch, key, &tallies[i], created.Done) })
	}
	if err := waitGroup(setupCtx, &created); err != nil {
		return nil, fmt.Errorf("creating %d watchers: %w", w.watchers, err)
	}
	if n := r.watchFail.Load(); n > 0 {
		return nil, fmt.Errorf("%d of %d watchers failed on creation", n, w.watchers)
	}

	start := time.Now()
	p := startProgressFunc(progress, r.progress(start))
	putEnd := r.put(ctx, writers, start)
	counts := make([]uint64, w.keySpace)
	for k := range counts {
		counts[k] = r.putsPerKey[k].Load()
	}
	var want uint64
	for i := range w.watchers {
		want += w.expectedEvents(i, counts)
	}
	r.expected.Store(want)
	if r.received.Load() >= want {
		r.allInOnce.Do(func() { close(r.allIn) })
	}
	drained := false
	timer := time.NewTimer(w.drainTimeout)
	select {
	case <-r.allIn:
		drained = true
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	p.stop()
	stopWatch()
	receivers.Wait()

	var ec eventCounts
	for i := range tallies {
		ec.add(&tallies[i], w.expectedEvents(i, counts))
	}
	eventEnd := time.Unix(0, r.lastEvent.Load())
	if r.lastEvent.Load() == 0 {
		eventEnd = start
	}
	res := &watchResult{
		Endpoints:     o.endpoints,
		Opts:          *w,
		Seed:          o.seed,
		PutsSucceeded: r.puts.lat.total(),
		PutErrors:     r.puts.failed.Load(),
		ErrorSamples:  r.puts.samples.list(),
		WatchErrors:   r.watchFail.Load(),
		Events:        ec,
		Drained:       drained,
		Interrupted:   parent.Err() != nil,
		Aborted:       parent.Err() == nil && ctx.Err() != nil,
		PutDuration:   putEnd.Sub(start),
		EventDuration: eventEnd.Sub(start),
		PutLatency:    summarize(r.puts.lat),
		EventLatency:  summarize(r.eventLat),
	}
	return res, nil
}

func summarize(h *histogram) latencies {
	return latencies{
		Avg: h.mean(), Min: h.minimum(),
		P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99),
		Max: h.maximum(),
	}
}

// waitGroup waits for wg or ctx, whichever comes first. On ctx the
// goroutine waiting on wg lingers until wg is done; callers cancel what the
// group waits for.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receive reads one watcher's responses until its channel closes. The first
// response is the creation notice; created is called once whatever happens.
func (r *watchRun) receive(ctx context.Context, wch clientv3.WatchChan, key string, t *watcherTally, created func()) {
	var once sync.Once
	defer once.Do(created)
	for resp := range wch {
		if resp.Created {
			once.Do(created)
			continue
		}
		if err := resp.Err(); err != nil || resp.Canceled {
			if ctx.Err() == nil {
				r.watchFail.Add(1)
				if err == nil {
					err = errors.New("watch canceled by the server")
				}
				r.puts.samples.add(fmt.Errorf("watch %s: %w", key, err))
			}
			once.Do(created)
			continue // the channel closes next
		}
		now := time.Now()
		for _, ev := range resp.Events {
			kv := ev.Kv
			if !r.w.prefix && string(kv.Key) != key {
				t.foreign++
				continue
			}
			if !t.observe(kv.ModRevision) {
				continue
			}
			if sent, ok := readStamp(kv.Value); ok {
				r.eventLat.record(now.Sub(sent))
			}
			r.countEvent(now)
		}
	}
	if ctx.Err() == nil {
		r.watchFail.Add(1)
		r.puts.samples.add(fmt.Errorf("watch %s: channel closed early", key))
	}
}

// stall opens one raw gRPC watch stream per client, creates the stalled
// watchers on them round-robin, reads the creation responses so that the
// watchers exist before the first put, and never reads again. The streams
// live until ctx ends.
func (r *watchRun) stall(setupCtx, ctx context.Context, clients []*clientv3.Client) error {
	w := r.w
	for s, cli := range clients {
		stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
		if err != nil {
			return fmt.Errorf("stalled stream %d: %w", s, err)
		}
		n := 0
		for i := s; i < w.stallWatch; i += len(clients) {
			req := &pb.WatchCreateRequest{Key: []byte(w.watchKey(w.watcherKey(i)))}
			if w.prefix {
				req.Key = []byte(watchKeyPrefix)
				req.RangeEnd = []byte(clientv3.GetPrefixRangeEnd(watchKeyPrefix))
			}
			if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
				return fmt.Errorf("stalled stream %d: create: %w", s, err)
			}
			n++
		}
		recvErr := make(chan error, 1)
		go func() {
			for range n {
				resp, err := stream.Recv()
				if err == nil && !resp.Created {
					err = fmt.Errorf("expected a creation response, got %v", resp)
				}
				if err != nil {
					recvErr <- err
					return
				}
			}
			recvErr <- nil
		}()
		select {
		case err = <-recvErr:
		case <-setupCtx.Done():
			err = setupCtx.Err()
		}
		if err != nil {
			return fmt.Errorf("stalled stream %d: creating %d watchers: %w", s, n, err)
		}
	}
	return nil
}

// put sends w.puts puts from one goroutine per writer and returns when the
// last one is answered.
func (r *watchRun) put(ctx context.Context, writers []*clientv3.Client, start time.Time) time.Time {
	var (
		next    atomic.Uint64
		workers sync.WaitGroup
		o, w    = r.o, r.w
	)
	for i, cli := range writers {
		rnd := rand.New(rand.NewPCG(o.seed, uint64(i)+1))
		value := make([]byte, w.valSize)
		for j := range value {
			value[j] = byte(rnd.Uint32())
		}
		workers.Go(func() {
			for {
				n := next.Add(1) - 1
				if n >= w.puts || ctx.Err() != nil {
					return
				}
				if w.putRate > 0 && !waitUntil(ctx, scheduled(start, n, w.putRate)) {
					return
				}
				rctx, cancel := withTimeout(ctx, o.requestTimeout)
				k := w.putKey(n)
				t0 := time.Now()
				putStamp(value, t0)
				_, err := cli.Put(rctx, w.watchKey(k), string(value))
				lat := time.Since(t0)
				cancel()
				switch {
				case err == nil:
					r.puts.lat.record(lat)
					r.putsPerKey[k].Add(1)
				case ctx.Err() != nil:
					return
				default:
					r.puts.fail(err)
				}
			}
		})
	}
	workers.Wait()
	return time.Now()
}

func (r *watchRun) progress(start time.Time) func(time.Time) string {
	var lastPuts, lastEvents uint64
	lastAt := start
	return func(now time.Time) string {
		puts, events := r.puts.lat.total(), r.received.Load()
		secs := now.Sub(lastAt).Seconds()
		line := fmt.Sprintf("watch: %d/%d puts %.0f/s, %d events %.0f/s, %d put errors, %s elapsed",
			puts+r.puts.failed.Load(), r.w.puts, float64(puts-lastPuts)/secs,
			events, float64(events-lastEvents)/secs, r.puts.failed.Load(), now.Sub(start).Truncate(time.Second))
		lastPuts, lastEvents, lastAt = puts, events, now
		return line
	}
}
