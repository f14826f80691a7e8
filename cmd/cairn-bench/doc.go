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
//	txn-put  Txn whose Then holds --txn-ops puts on distinct keys
//
// Keys are the key number in decimal, zero-padded to --key-size bytes
// ("00000042"), so they can be read back with etcdctl; --key-size must be
// large enough to hold --key-space-size distinct keys. With --sequential-keys
// request n writes key n mod key-space-size, otherwise a random one. Values
// are one random byte string reused by every request.
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
// More than --max-errors failed requests (default 100) abort the run, so that
// a dead server does not cost --total request timeouts. The exit status is 1
// when any request failed or the run was interrupted or aborted.
package main
