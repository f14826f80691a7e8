// Package httpapi serves the HTTP endpoints an etcd v3.7 member serves next
// to its gRPC API: health probes, the version, Prometheus metrics and,
// optionally, pprof. Status codes, headers and bodies are etcd v3.7.3's
// byte for byte (tests/integration/http_test.go compares them with a real
// etcd), because load balancers, Kubernetes probes and monitoring match on
// them.
//
// # Mental model
//
// An API belongs to one member and owns that member's Prometheus registry:
// the member's own collector (server.Server.MetricsCollector), the health
// check counters of this package, and the standard go_* and process_*
// collectors operators expect from etcd. Nothing is package-global, so
// several members in one process (tests) keep their metrics apart.
//
// The API gives out two handlers:
//
//   - ClientHandler, for the client URLs (--listen-client-urls), where
//     cmd/cairn serves it and gRPC on the same port (see internal/connmux):
//     /health, /livez, /readyz and their per-check paths, /version,
//     /metrics, /debug/vars, and /debug/pprof/ when Options.EnablePprof is
//     set. Every answer carries etcd's permissive CORS headers (etcd's
//     default --cors "*") and OPTIONS answers 200 with an empty body.
//   - MetricsHandler, for --listen-metrics-urls: /metrics, /health, /livez,
//     /readyz and the per-check paths only (etcd serves neither /version
//     nor the debug endpoints there), without CORS headers.
//
// Unknown paths answer 404 "404 page not found"; the endpoints other than
// /metrics answer any method but GET with 405, "Allow: GET".
//
// # Endpoints
//
// /health runs, in order, stopping at the first failure: the alarm check
// (any active alarm not named in ?exclude=, e.g. exclude=NOSPACE), the
// leader check (skipped with ?serializable=true), and a one-key read
// (serializable with ?serializable=true, linearizable otherwise). It
// answers 200 {"health":"true","reason":""} or 503 with the reason: "ALARM
// NOSPACE", "ALARM CORRUPT", "RAFT NO LEADER" or "RANGE ERROR:<etcd error
// text>". Each answer counts in etcd_server_health_success or
// etcd_server_health_failures.
//
// /livez runs serializable_read; /readyz runs data_corruption (no CORRUPT
// alarm), serializable_read, linearizable_read and non_learner. Each check
// is also served alone at /livez/<name> or /readyz/<name>; the root paths
// skip the checks named in ?exclude= (unknown names are ignored). Success
// is 200 "ok\n", preceded with ?verbose by one "[+]<name> ok" line per
// check; failure is 503 with every check's line, failed ones as
// "[-]<name> failed: <error>", and a final empty line, as etcd writes it.
// etcd runs the checks in random order; Cairn in the order above. Results
// go to etcd_server_healthcheck and etcd_server_healthchecks_total.
//
// /version answers {"etcdserver":…,"etcdcluster":…,"storage":…,"cairn":…}:
// the etcd API version Cairn implements (server.EtcdAPIVersion, the same as
// Maintenance.Status reports), the cluster version derived from it, the
// storage version from Maintenance.Status, and Cairn's own version.
//
// # Alarms
//
// The health checks read active alarms through one accessor
// (activeAlarms). A member that keeps alarms exposes them with an
// Alarms() []*etcdserverpb.AlarmMember method and is asked directly.
// Until Cairn stores alarms, NOSPACE counts as active exactly while the
// database is over its quota, which is when puts fail with "database space
// exceeded"; no health code changes when real alarms land.
package httpapi
