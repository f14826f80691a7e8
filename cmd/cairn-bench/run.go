package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/internal/tlsinfo"
)

// connect opens o.conns clients (one gRPC connection each) and completes one
// serializable read on each, so that connection set-up stays out of the
// measurements and an unreachable endpoint is reported before the run.
func connect(ctx context.Context, o *options) ([]*clientv3.Client, error) {
	clients := make([]*clientv3.Client, 0, o.conns)
	fail := func(err error) ([]*clientv3.Client, error) {
		closeAll(clients)
		return nil, err
	}
	tlsCfg, err := o.tls()
	if err != nil {
		return nil, err
	}
	for i := range o.conns {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   o.endpoints,
			TLS:         tlsCfg,
			DialTimeout: o.dialTimeout,
			Context:     ctx,
			// The client logs every retry; failures reach the report instead.
			Logger: zap.NewNop(),
		})
		if err != nil {
			return fail(fmt.Errorf("connection %d to %v: %w", i, o.endpoints, err))
		}
		clients = append(clients, cli)
		wctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
		_, err = cli.Get(wctx, "cairn-bench-warmup", clientv3.WithSerializable(), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			return fail(fmt.Errorf("connection %d to %v: first request: %w", i, o.endpoints, err))
		}
	}
	return clients, nil
}

// tls is the client TLS of the flags; nil when none is given (https
// endpoints then fail to connect).
func (o *options) tls() (*tls.Config, error) {
	if o.cacert == "" && o.cert == "" && o.key == "" && !o.insecureSkipTLS {
		return nil, nil
	}
	info := tlsinfo.Info{CertFile: o.cert, KeyFile: o.key, TrustedCAFile: o.cacert, SelfSigned: o.insecureSkipTLS}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("TLS flags: %w", err)
	}
	return cfg, nil
}

func closeAll(clients []*clientv3.Client) {
	for _, c := range clients {
		c.Close()
	}
}

// errorSamples keeps the first few distinct error messages of a run.
type errorSamples struct {
	mu struct {
		sync.Mutex
		msgs []string
	}
}

const maxErrorSamples = 5

func (s *errorSamples) add(err error) {
	msg := err.Error()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.msgs) >= maxErrorSamples {
		return
	}
	for _, m := range s.mu.msgs {
		if m == msg {
			return
		}
	}
	s.mu.msgs = append(s.mu.msgs, msg)
}

func (s *errorSamples) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.mu.msgs...)
}

// tally collects the outcome of a run's requests: the latency of each
// success, and each failure with a few distinct messages. Past o.maxErrors
// failures it aborts the run. Safe for concurrent use.
type tally struct {
	lat       *histogram
	failed    atomic.Uint64
	samples   errorSamples
	maxErrors uint64 // 0 = never abort
	abort     context.CancelFunc
}

func newTally(o *options, abort context.CancelFunc) *tally {
	return &tally{lat: newHistogram(), maxErrors: o.maxErrors, abort: abort}
}

// fail counts one failed request.
func (t *tally) fail(err error) {
	t.samples.add(err)
	if t.failed.Add(1) > t.maxErrors && t.maxErrors > 0 {
		t.abort()
	}
}

// result reports a run of workload name that took elapsed. parent is the
// caller's context (done: interrupted), ctx the run's own (done besides:
// aborted).
func (t *tally) result(o *options, name string, parent, ctx context.Context, elapsed time.Duration) *result {
	return &result{
		Workload:     name,
		Endpoints:    o.endpoints,
		Clients:      o.clients,
		Conns:        o.conns,
		Total:        o.total,
		Rate:         o.rate,
		Seed:         o.seed,
		Succeeded:    t.lat.total(),
		Errors:       t.failed.Load(),
		ErrorSamples: t.samples.list(),
		Interrupted:  parent.Err() != nil,
		Aborted:      parent.Err() == nil && ctx.Err() != nil,
		Duration:     elapsed,
		Latency:      summarize(t.lat),
	}
}

// startProgress prints the tally's progress towards total once a second.
func (t *tally) startProgress(w io.Writer, name string, total uint64, start time.Time) *progressLine {
	return startProgress(w, name, total, t.lat, &t.failed, start)
}

// run connects, sends o.total requests of workload w from o.clients workers,
// and reports. Progress goes to progress once a second. Cancelling ctx, or
// more than o.maxErrors failures, stops the run early; the report then covers
// the requests completed so far.
func run(parent context.Context, o *options, w workload, progress io.Writer) (*result, error) {
	clients, err := connect(parent, o)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	ctx, abort := context.WithCancel(parent)
	defer abort()

	var (
		t       = newTally(o, abort)
		next    atomic.Uint64 // next request number to claim
		workers sync.WaitGroup
		start   = time.Now()
	)
	for i := range o.clients {
		kv := clients[i%len(clients)].KV
		r := rand.New(rand.NewPCG(o.seed, uint64(i)+1))
		workers.Go(func() {
			for {
				n := next.Add(1) - 1
				if n >= o.total || ctx.Err() != nil {
					return
				}
				if o.rate > 0 && !waitUntil(ctx, scheduled(start, n, o.rate)) {
					return
				}
				rctx, cancel := withTimeout(ctx, o.requestTimeout)
				t0 := time.Now()
				err := w.do(rctx, kv, r, n)
				lat := time.Since(t0)
				cancel()
				switch {
				case err == nil:
					t.lat.record(lat)
				case ctx.Err() != nil:
					return // interrupted: neither a success nor the server's failure
				default:
					t.fail(err)
				}
			}
		})
	}
	p := t.startProgress(progress, w.name(), o.total, start)
	workers.Wait()
	elapsed := time.Since(start)
	p.stop()
	return t.result(o, w.name(), parent, ctx, elapsed), nil
}

// withTimeout bounds one request by d; 0 means no bound.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return ctx, func() {}
}

// scheduled is when request n is due at rate requests per second (rate > 0)
// from start.
func scheduled(start time.Time, n uint64, rate float64) time.Time {
	return start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
}

// waitUntil blocks until t or until ctx is done, reporting whether t came.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// progressLine prints one status line a second until stopped. On a terminal
// it rewrites the line in place; elsewhere (a log file) it appends lines.
type progressLine struct {
	done chan struct{}
	quit chan struct{}
}

func startProgress(w io.Writer, name string, total uint64, h *histogram, failed *atomic.Uint64, start time.Time) *progressLine {
	var last uint64
	lastAt := start
	return startProgressFunc(w, func(now time.Time) string {
		ok, bad := h.total(), failed.Load()
		rate := float64(ok-last) / now.Sub(lastAt).Seconds()
		last, lastAt = ok, now
		return fmt.Sprintf("%s: %d/%d (%.0f%%) %.0f req/s, %d errors, %s elapsed",
			name, ok+bad, total, 100*float64(ok+bad)/float64(total), rate, bad, now.Sub(start).Truncate(time.Second))
	})
}

// startProgressFunc prints line(now) once a second until stopped; line is
// only ever called from the progress goroutine.
func startProgressFunc(w io.Writer, line func(now time.Time) string) *progressLine {
	p := &progressLine{done: make(chan struct{}), quit: make(chan struct{})}
	inPlace := isTerminal(w)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				if inPlace {
					fmt.Fprintln(w)
				}
				return
			case now := <-tick.C:
				if inPlace {
					fmt.Fprintf(w, "\r%s\x1b[K", line(now))
				} else {
					fmt.Fprintln(w, line(now))
				}
			}
		}
	}()
	return p
}

func (p *progressLine) stop() {
	close(p.quit)
	<-p.done
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
