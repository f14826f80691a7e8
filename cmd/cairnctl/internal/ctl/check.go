package ctl

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// "check perf" and "check datascale" load the cluster as etcdctl's do,
// with the same workloads, flags, progress bar (on stderr), result lines
// (on stdout) and exit codes.
//
// check perf writes 256-byte random keys with 1 KiB values under --prefix
// at the load's rate, spread over the load's clients, for 60 seconds; it
// passes when the rate reached 90% of the target, no request took over
// 500 ms and the standard deviation of latencies stayed under 100 ms.
// Afterwards it deletes the prefix (then compacts with --auto-compact
// and defragments every --endpoints with --auto-defrag). An interrupt
// (Ctrl-C) ends the run early: the keys are deleted and the results so far
// printed.
//
// check datascale writes the load's number of 512-byte keys with 512-byte
// values under --prefix as fast as its clients can, and prints how much
// the resident memory of the first endpoint grew (process_resident_memory_bytes
// from its /metrics), then deletes the prefix, compacting and
// defragmenting as check perf does.
//
// Both refuse a prefix that already holds keys (exit 3) and an unknown
// load (exit 4).
//
// Test-only knobs, read from the invocation's environment: check perf runs
// for CAIRNCTL_CHECK_PERF_SECONDS seconds instead of 60, and check
// datascale writes CAIRNCTL_CHECK_DATASCALE_KEYS keys instead of the
// load's count. They exist so that tests exercise the whole command in
// a second or two; etcdctl has no such knob.

// Test-only environment variables; see above.
const (
	envCheckPerfSeconds    = "CAIRNCTL_CHECK_PERF_SECONDS"
	envCheckDatascaleKeys  = "CAIRNCTL_CHECK_DATASCALE_KEYS"
	defaultCheckPerfPrefix = "/etcdctl-check-perf/"
	defaultDatascalePrefix = "/etcdctl-check-datascale/"
)

// perfLoad is a check perf workload: a target rate of writes per second,
// the clients that share it, and the duration in seconds.
type perfLoad struct {
	limit, clients, seconds int
}

var perfLoads = map[string]perfLoad{
	"s":  {limit: 150, clients: 50, seconds: 60},
	"m":  {limit: 1000, clients: 200, seconds: 60},
	"l":  {limit: 8000, clients: 500, seconds: 60},
	"xl": {limit: 15000, clients: 1000, seconds: 60},
}

// datascaleLoad is a check datascale workload: keys written, bytes per
// key-value pair, clients writing them.
type datascaleLoad struct {
	limit, kvSize, clients int
}

var datascaleLoads = map[string]datascaleLoad{
	"s":  {limit: 10000, kvSize: 1024, clients: 50},
	"m":  {limit: 100000, kvSize: 1024, clients: 200},
	"l":  {limit: 1000000, kvSize: 1024, clients: 500},
	"xl": {limit: 3000000, kvSize: 1024, clients: 1000},
}

// loadNames maps every accepted --load value to its model.
var loadNames = map[string]string{
	"s": "s", "small": "s",
	"m": "m", "medium": "m",
	"l": "l", "large": "l",
	"xl": "xl", "xLarge": "xl",
}

type checkOptions struct {
	load, prefix            string
	autoCompact, autoDefrag bool
}

func (a *app) checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "check <subcommand>",
		Short:   "Checks properties of the cluster; see `check --help`",
		Long:    "Commands that load the cluster to check its performance and memory use.",
		GroupID: groupUtility,
	}
	var perf checkOptions
	p := &cobra.Command{
		Use:   "perf [options]",
		Short: "Checks the write performance of the cluster (60 seconds)",
		Long: `Writes at the load's target rate for 60 seconds, then prints whether
throughput, slowest request and latency deviation pass. Loads: s (150
writes/s from 50 clients), m (1000/200), l (8000/500), xl (15000/1000).
The keys are deleted afterwards. Tests shorten the run with
` + envCheckPerfSeconds + `=N (seconds).`,
	}
	p.Flags().StringVar(&perf.load, "load", "s", "workload model: s(small), m(medium), l(large), xl(xLarge)")
	p.Flags().StringVar(&perf.prefix, "prefix", defaultCheckPerfPrefix, "prefix of the keys the check writes")
	p.Flags().BoolVar(&perf.autoCompact, "auto-compact", false, "compact the storage at the last revision afterwards")
	p.Flags().BoolVar(&perf.autoDefrag, "auto-defrag", false, "defragment the storage afterwards")
	p.Run = a.run(func(cmd *cobra.Command, _ []string) error { return a.checkPerf(cmd, perf) })

	var ds checkOptions
	d := &cobra.Command{
		Use:   "datascale [options]",
		Short: "Checks the memory a server uses to hold the load's data",
		Long: `Writes the load's key-value pairs and prints how much the resident
memory of the first endpoint grew. Loads: s (10,000 pairs of 1 KiB from 50
clients), m (100,000/200), l (1,000,000/500), xl (3,000,000/1000). The keys
are deleted afterwards. Tests shorten the run with
` + envCheckDatascaleKeys + `=N (keys).`,
	}
	d.Flags().StringVar(&ds.load, "load", "s", "workload model: s(small), m(medium), l(large), xl(xLarge)")
	d.Flags().StringVar(&ds.prefix, "prefix", defaultDatascalePrefix, "prefix of the keys the check writes")
	d.Flags().BoolVar(&ds.autoCompact, "auto-compact", false, "compact the storage at the last revision afterwards")
	d.Flags().BoolVar(&ds.autoDefrag, "auto-defrag", false, "defragment the storage afterwards")
	d.Run = a.run(func(cmd *cobra.Command, _ []string) error { return a.checkDatascale(cmd, ds) })

	cmd.AddCommand(p, d)
	return cmd
}

// positiveEnv returns the positive integer in the variable key, or def.
func (a *app) positiveEnv(key string, def int) int {
	if n, err := strconv.Atoi(a.getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// checkModel returns the model name ("s", "m", "l" or "xl") of a --load
// value.
func checkModel(load string) (string, error) {
	model, ok := loadNames[load]
	if !ok {
		return "", exitf(exitBadFeature, "unknown load option %v", load)
	}
	return model, nil
}

// checkClients resolves the global flags and dials n clients.
func (a *app) checkClients(cmd *cobra.Command, n int) ([]*clientv3.Client, func(), error) {
	spec, err := a.clientConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	clients := make([]*clientv3.Client, 0, n)
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for range n {
		c, err := a.newClient(spec, "etcd-client")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
	}
	return clients, closeAll, nil
}

// writeLoad puts value to random keys of keySize bytes under prefix (a
// random varint, zero-padded, as etcdctl's keys) from one worker per
// client, each request under reqCtx, for as long as next allows and stop
// has not ended. done, if not nil, is called after each request. It
// returns the requests' outcome.
func writeLoad(stop, reqCtx context.Context, clients []*clientv3.Client, prefix string, keySize int, value string, next func() bool, done func()) latencySummary {
	requests := make(chan clientv3.Op, len(clients))
	st := newLatencyStats()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for op := range requests {
				start := time.Now()
				_, err := c.Do(reqCtx, op)
				st.add(start, time.Now(), err)
				if done != nil {
					done()
				}
			}
		})
	}
	go func() {
		defer close(requests)
		k := make([]byte, keySize)
		for next() {
			binary.PutVarint(k, rand.Int64N(math.MaxInt64))
			select {
			case requests <- clientv3.OpPut(prefix+string(k), value):
			case <-stop.Done():
				return
			}
		}
	}()
	st.begin()
	wg.Wait()
	return st.end()
}

func (a *app) checkPerf(cmd *cobra.Command, o checkOptions) error {
	model, err := checkModel(o.load)
	if err != nil {
		return err
	}
	load := perfLoads[model]
	load.seconds = a.positiveEnv(envCheckPerfSeconds, load.seconds)

	clients, closeAll, err := a.checkClients(cmd, load.clients)
	if err != nil {
		return err
	}
	defer closeAll()
	cli := clients[0]

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(load.seconds)*time.Second)
	defer cancel()
	// An interrupt ends the run early: the keys written so far are
	// deleted, the workers drain, and the results are printed all the
	// same.
	interrupted := make(chan struct{})
	stopInterrupt := a.onInterrupt(func() {
		cancel()
		close(interrupted)
		_ = a.checkCleanup(cli, o.prefix, false)
	})
	defer stopInterrupt()

	gctx, gcancel := context.WithCancel(ctx)
	resp, err := cli.Get(gctx, o.prefix, clientv3.WithPrefix(), clientv3.WithLimit(1))
	gcancel()
	if err != nil {
		return exitWith(exitErr, err)
	}
	if len(resp.Kvs) > 0 {
		return exitf(exitInvalidInput, "prefix %q has keys. Delete with 'etcdctl del --prefix %s' first", o.prefix, o.prefix)
	}

	bar := newProgressBar(a.stderr, a.rawStderr, a.stdin, int64(load.seconds))
	bar.start()
	// The bar counts the seconds of the run, as etcdctl's does.
	barDone := make(chan struct{})
	go func() {
		defer close(barDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range load.seconds {
			select {
			case <-tick.C:
				bar.add(1)
			case <-interrupted:
				return
			}
		}
	}()

	// Requests in flight at the deadline complete, as etcdctl's do.
	pace := newPacer(load.limit)
	s := writeLoad(ctx, context.Background(), clients, o.prefix, 256, string(make([]byte, 1024)),
		func() bool { return pace.wait(ctx) }, nil)

	// The bar's last second ends with the run (a moment after the
	// deadline, the bar having started after it was set).
	select {
	case <-barDone:
	case <-interrupted:
	}
	bar.finish()

	if err := a.checkCleanup(cli, o.prefix, o.autoCompact); err != nil {
		return err
	}
	if o.autoDefrag {
		if err := a.checkDefrag(cli); err != nil {
			return err
		}
	}

	pass := true
	if len(s.errors) != 0 {
		s.printErrors(a.stdout)
		pass = false
	}
	if s.rps/float64(load.limit) <= 0.9 {
		fmt.Fprintf(a.stdout, "FAIL: Throughput too low: %d writes/s\n", int(s.rps)+1)
		pass = false
	} else {
		fmt.Fprintf(a.stdout, "PASS: Throughput is %d writes/s\n", int(s.rps)+1)
	}
	if s.slowest > 0.5 {
		fmt.Fprintf(a.stdout, "Slowest request took too long: %fs\n", s.slowest)
		pass = false
	} else {
		fmt.Fprintf(a.stdout, "PASS: Slowest request took %fs\n", s.slowest)
	}
	if s.stddev > 0.1 {
		fmt.Fprintf(a.stdout, "Stddev too high: %fs\n", s.stddev)
		pass = false
	} else {
		fmt.Fprintf(a.stdout, "PASS: Stddev is %fs\n", s.stddev)
	}
	if !pass {
		fmt.Fprintln(a.stdout, "FAIL")
		return &exitError{code: exitErr}
	}
	fmt.Fprintln(a.stdout, "PASS")
	return nil
}

// onInterrupt calls f once on the first interrupt of the run: SIGINT for
// the cairnctl process, the invocation's context otherwise. The returned
// function stops listening.
func (a *app) onInterrupt(f func()) func() {
	done := make(chan struct{})
	var sig chan os.Signal
	if a.proc {
		sig = make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if sig != nil {
			// Only the first interrupt is ours; a second one ends
			// the process.
			defer signal.Stop(sig)
		}
		select {
		case <-sig:
		case <-a.ctx.Done():
		case <-done:
			return
		}
		f()
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// checkCleanup deletes the check's keys, then with compact compacts the
// history up to the deletion. A failed deletion is reported on stdout
// and is not an error; a failed compaction is.
func (a *app) checkCleanup(cli *clientv3.Client, prefix string, compact bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Delete(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		fmt.Fprintf(a.stdout, "FAIL: Cleanup failed during key deletion: ERROR(%v)\n", err)
		return nil
	}
	if compact {
		return a.checkCompact(cli, resp.Header.Revision)
	}
	return nil
}

func (a *app) checkCompact(cli *clientv3.Client, rev int64) error {
	fmt.Fprintf(a.stdout, "Compacting with revision %d\n", rev)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	cancel()
	if err != nil {
		return exitWith(exitErr, err)
	}
	fmt.Fprintf(a.stdout, "Compacted with revision %d\n", rev)
	return nil
}

// checkDefrag defragments every endpoint of cli in turn (--auto-defrag).
func (a *app) checkDefrag(cli *clientv3.Client) error {
	for _, ep := range cli.Endpoints() {
		fmt.Fprintf(a.stdout, "Defragmenting %q\n", ep)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cli.Defragment(ctx, ep)
		cancel()
		if err != nil {
			return exitWith(exitErr, err)
		}
		fmt.Fprintf(a.stdout, "Defragmented %q\n", ep)
	}
	return nil
}

func (a *app) checkDatascale(cmd *cobra.Command, o checkOptions) error {
	model, err := checkModel(o.load)
	if err != nil {
		return err
	}
	load := datascaleLoads[model]
	load.limit = a.positiveEnv(envCheckDatascaleKeys, load.limit)

	clients, closeAll, err := a.checkClients(cmd, load.clients)
	if err != nil {
		return err
	}
	defer closeAll()
	cli := clients[0]
	// Resolved again, as etcdctl does (a discovery lookup runs twice).
	eps, err := a.endpoints(cmd)
	if err != nil {
		return exitWith(exitErr, err)
	}
	sec, err := secureConfig(cmd)
	if err != nil {
		return err
	}

	// No deadline, as etcdctl; an interrupt ends the run at once.
	ctx := a.ctx
	stopped := func(err error) error {
		if a.ctx.Err() != nil {
			return errSignaled
		}
		return exitWith(exitErr, err)
	}
	resp, err := cli.Get(ctx, o.prefix, clientv3.WithPrefix(), clientv3.WithLimit(1))
	if err != nil {
		return stopped(err)
	}
	if len(resp.Kvs) > 0 {
		return exitf(exitInvalidInput, "prefix %q has keys. Delete with etcdctl del --prefix %s first", o.prefix, o.prefix)
	}

	before := a.residentMemory(ctx, eps[0], sec)
	if before == 0 {
		fmt.Fprintln(a.stdout, "FAIL: Could not read process_resident_memory_bytes before the put operations.")
		return &exitError{code: exitErr}
	}
	fmt.Fprintf(a.stdout, "Start data scale check for work load [%v key-value pairs, %v bytes per key-value, %v concurrent clients].\n", load.limit, load.kvSize, load.clients)
	bar := newProgressBar(a.stderr, a.rawStderr, a.stdin, int64(load.limit))
	bar.start()

	sent := 0
	s := writeLoad(ctx, ctx, clients, o.prefix, 512, string(make([]byte, 512)),
		func() bool { sent++; return sent <= load.limit }, func() { bar.add(1) })
	if a.ctx.Err() != nil {
		bar.abandon()
		return errSignaled
	}
	bar.finish()

	after := a.residentMemory(ctx, eps[0], sec)
	if after == 0 {
		fmt.Fprintln(a.stdout, "FAIL: Could not read process_resident_memory_bytes after the put operations.")
		return &exitError{code: exitErr}
	}
	dresp, err := cli.Delete(ctx, o.prefix, clientv3.WithPrefix())
	if err != nil {
		return stopped(err)
	}
	if o.autoCompact {
		if err := a.checkCompact(cli, dresp.Header.Revision); err != nil {
			return err
		}
	}
	if o.autoDefrag {
		if err := a.checkDefrag(cli); err != nil {
			return err
		}
	}
	if len(s.errors) != 0 {
		s.printErrors(a.stdout)
		return &exitError{code: exitErr}
	}
	mb := (after - before) / (1024 * 1024)
	fmt.Fprintf(a.stdout, "PASS: Approximate system memory used : %v MB.\n", strconv.FormatFloat(mb, 'f', 2, 64))
	return nil
}

const residentMemoryMetric = "process_resident_memory_bytes"

// residentMemory reads process_resident_memory_bytes from the /metrics of
// the endpoint ep (plain http unless ep says https), or returns 0 after
// printing why it could not, as etcdctl does. Over https the client
// presents --cert/--key and verifies the server against the system's
// roots unless --insecure-skip-tls-verify.
func (a *app) residentMemory(ctx context.Context, ep string, sec *clientv3.SecureConfig) float64 {
	if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
		ep = "http://" + ep
	}
	url := ep + "/metrics"
	hc := &http.Client{}
	if strings.HasPrefix(ep, "https://") {
		cert, err := tls.LoadX509KeyPair(sec.Cert, sec.Key)
		if err != nil {
			fmt.Fprintf(a.stdout, "client certificate error: %v\n", err)
			return 0
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: sec.InsecureSkipVerify}
		hc.Transport = tr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(a.stdout, "fetch error: %v\n", err)
		return 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(a.stdout, "fetch error: %v\n", err)
		return 0
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		fmt.Fprintf(a.stdout, "fetch error: reading %s: %v\n", url, err)
		return 0
	}
	var value string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, residentMemoryMetric) {
			value = strings.TrimSpace(strings.TrimPrefix(line, residentMemoryMetric))
			break
		}
	}
	if value == "" {
		fmt.Fprintf(a.stdout, "could not find: %v\n", residentMemoryMetric)
		return 0
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil {
		fmt.Fprintf(a.stdout, "parse error: %v\n", err)
		return 0
	}
	return v
}

// latencyStats collects the outcome of every request of a check, as
// etcd's benchmark report does: the rate counts successful requests over
// the time from begin to end, and latencies are those of successful
// requests.
type latencyStats struct {
	mu     sync.Mutex
	lats   []float64 // seconds
	errors map[string]int
	from   time.Time
}

type latencySummary struct {
	rps, slowest, stddev float64
	errors               map[string]int
}

func newLatencyStats() *latencyStats { return &latencyStats{errors: map[string]int{}} }

func (l *latencyStats) begin() { l.from = time.Now() }

func (l *latencyStats) add(start, end time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errors[err.Error()]++
		return
	}
	l.lats = append(l.lats, end.Sub(start).Seconds())
}

func (l *latencyStats) end() latencySummary {
	return summarize(l.lats, l.errors, time.Since(l.from))
}

// summarize computes the figures of a run of total duration with the
// given latencies: with none, the mean and deviation are NaN, as etcd's
// report has them.
func summarize(lats []float64, errors map[string]int, total time.Duration) latencySummary {
	s := latencySummary{errors: errors}
	s.rps = float64(len(lats)) / total.Seconds()
	var sum float64
	for _, v := range lats {
		sum += v
		s.slowest = max(s.slowest, v)
	}
	mean := sum / float64(len(lats))
	var dev float64
	for _, v := range lats {
		dev += (v - mean) * (v - mean)
	}
	s.stddev = math.Sqrt(dev / float64(len(lats)))
	return s
}

// printErrors writes etcdctl's lines for a run with failed requests: each
// distinct error with its count.
func (s latencySummary) printErrors(w io.Writer) {
	fmt.Fprintln(w, "FAIL: too many errors")
	for _, e := range s.sortedErrors() {
		fmt.Fprintf(w, "FAIL: ERROR(%v) -> %d\n", e, s.errors[e])
	}
}

func (s latencySummary) sortedErrors() []string {
	keys := make([]string, 0, len(s.errors))
	for k := range s.errors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pacer spaces requests evenly at rate per second, never bursting: a late
// caller is served at once and the next request comes one interval later.
type pacer struct {
	every time.Duration
	next  time.Time
}

func newPacer(rate int) *pacer {
	return &pacer{every: time.Second / time.Duration(rate)}
}

// wait blocks until the next request may go, or returns false once ctx is
// done or would be before then.
func (p *pacer) wait(ctx context.Context) bool {
	now := time.Now()
	if p.next.IsZero() || p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = at.Add(p.every)
	if dl, ok := ctx.Deadline(); ok && at.After(dl) {
		return false
	}
	if d := at.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil
}
