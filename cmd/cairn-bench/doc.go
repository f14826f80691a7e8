// Command cairn-bench is a load generator for Cairn and any other server
// speaking etcd's v3 API. It drives the server through the real client,
// go.etcd.io/etcd/client/v3, so what it measures is what applications see.
//
// Model: --total requests are shared by --clients goroutines, each sending one
// request at a time (closed loop). The goroutines share --conns client
// connections round-robin: goroutine i uses connection i mod conns. With
// --rate R the requests are released on a fixed schedule, request n no
// earlier than n/R seconds after the start; a worker behind schedule sends at
// once, so latency is measured from the actual send, not from the scheduled
// time (no correction for coordinated omission).
//
// Workloads:
//
//	put      Put of --val-size bytes to keys drawn from --key-space-size keys
//	range    Range over KEY [END], linearizable (--consistency l) or
//	         serializable (s)
//	range-random  Range of one key drawn at random from the --key-space-size
//	         keys put and txn-put write; a key not found is a failed request
//	txn-put  Txn whose Then holds --txn-ops puts on distinct keys
//
// The watch and lease-keepalive workloads, described below, follow models
// of their own.
//
// Keys are the key number in decimal, zero-padded to --key-size bytes
// ("00000042"), so they can be read back with etcdctl; --key-size must be
// large enough to hold --key-space-size distinct keys. With --sequential-keys
// request n writes key n mod key-space-size, otherwise a random one. Values
// are one random byte string reused by every request; with --distinct-values
// each put gets its own, a random slice of a 1 MiB random pool, so that an
// engine that compresses blocks (Pebble) cannot shrink repeated values.
//
// Before timing starts every connection completes one serializable read, so
// connection set-up is not counted and an unreachable endpoint fails at once.
// A progress line goes to stderr every second. The report gives the total
// time, successful requests per second, latency average, p50, p90, p99 and
// max over successful requests, and the error count with a few distinct
// error messages; --json prints it as one JSON object on stdout for scripts
// (scripts/bench-compare.sh). Latency quantiles come from a log-linear
// histogram accurate to 0.4%.
//
// The watch workload measures Watch instead, with flags of its own
// (--clients, --conns, --total and --rate do not apply):
//
//	watch    --watchers W watchers share --streams S connections round-robin
//	         (one clientv3.Client each, so one gRPC watch stream each);
//	         watcher i watches key watch/NNNNNNNN number i mod
//	         --watch-key-space K, or the prefix watch/ with --prefix. Then
//	         --put-clients writers (one connection each) send --puts puts,
//	         put n to key n mod K, optionally at --put-rate.
//
// Every watcher starts at the revision after the current one and is created
// before the first put, so it must receive every acknowledged put to its
// key: the report counts events expected, received, missing, duplicate (a
// revision not above the last one the watcher saw) and extra, and any
// missing or duplicate event, failed put or failed watcher makes the exit
// status 1. The first 8 bytes of each value hold the send time in unix
// nanoseconds; the watcher subtracts it from the receipt time, giving the
// put-to-event latency (client and watchers share one clock). Event
// throughput is the events received over the time from the first put to the
// last event. After the last put the run waits up to --drain-timeout for
// missing events.
//
// --stall-watchers N adds N watchers on --stall-streams raw gRPC watch
// streams (etcdserverpb.Watch on their own connections) that read their N
// creation responses and then never read again, so the server must cope
// with clients that stop reading while the puts go on. The tool cannot see
// the server's memory; scripts/bench-compare.sh reads /proc/PID/status.
//
// The lease-keepalive workload measures LeaseKeepAlive. --clients
// goroutines first grant --leases leases of --ttl seconds (not timed), then
// each opens one raw etcdserverpb.Lease/LeaseKeepAlive stream on connection
// i mod --conns and keeps its share of the leases alive (every --clients-th
// lease, round-robin), with up to --in-flight keep-alives outstanding on
// the stream, until --total keep-alives are answered; --rate paces them as
// in the other workloads. (clientv3's KeepAlive helper sends one request
// per lease every TTL/3, so it cannot load a server.) The server answers a
// stream's requests in order, so each response is matched with the oldest
// keep-alive in flight; its latency runs from that request's send to its
// response, and includes the time it waited in the pipeline. A response
// with TTL 0 (lease not found or expired) or for another lease counts as a
// failed request. A stream that fails, or has a keep-alive outstanding for
// longer than --request-timeout, fails the keep-alives in flight on it and
// is replaced. At the end the leases are revoked by --clients goroutines
// unless --keep-leases; --existing-leases keeps alive the leases the server
// already has instead of granting (and keeps them), so that a script can
// grant in one step and measure the server's CPU over keep-alives alone in
// the next. The report is the common one with a "lease" object added.
//
// The defrag workload measures what a compaction and a defragment do to
// writes. It first writes a history, --fill-keys keys × --fill-versions
// versions of --fill-val-size bytes (keys fill/NNNNNNNN), --fill-txn-ops
// puts per request (1: a plain Put, so one revision per put) from
// --fill-clients goroutines on --fill-conns connections of their own. Then
// --clients workers on --conns connections put --val-size bytes to
// --load-keys keys (load/NNNNNNNN) at --rate puts/s in all, and the run
// goes through four phases: "baseline" (--baseline of load alone, after
// --warmup), "compaction" (Compact at the newest revision with physical
// set, which returns once the history is gone from the backend),
// "defragment" (Defragment of the one --endpoints member) and "after"
// (--baseline again); --no-compact and --no-defrag skip those. Each phase
// reports the puts in flight at some time during it, their latency
// quantiles, and the longest time in which no put completed: the stall,
// whatever the number of clients. Status's db size and size in use are
// read before the load and after each operation. --total does not apply.
//
// More than --max-errors failed requests (default 100) abort the run, so that
// a dead server does not cost --total request timeouts. The exit status is 1
// when any request failed or the run was interrupted or aborted.
package main
