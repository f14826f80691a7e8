// Command cairn runs one Cairn member.
//
// It accepts etcd's flag names and defaults; every flag --foo-bar may also
// come from the environment as ETCD_FOO_BAR, with etcd's rules (readEnv in
// main.go): empty is unset, a flag and its variable both given is an
// error, and variables no flag reads are logged.
// The options etcd 3.6 renamed are also accepted under their etcd 3.5
// --experimental- names (--experimental-watch-progress-notify-interval,
// --experimental-max-learners, --experimental-snapshot-catchup-entries,
// --experimental-peer-skip-client-san-verification,
// the warning durations, the lease checkpoint and corruption check
// options). With
// no arguments it starts a single member named "default" with data in
// ./default.cairn, serving clients on localhost:2379. It logs "ready to serve
// client requests" once it serves, and stops cleanly on SIGINT or SIGTERM.
//
// Each client URL serves gRPC and HTTP on the same port, as etcd does
// (internal/connmux tells them apart by the first bytes of a connection):
// the HTTP side has /health, /livez, /readyz, /version, /metrics and
// /debug/vars, plus /debug/pprof/ with --enable-pprof or --log-level debug
// (see server/httpapi). --listen-client-http-urls moves that HTTP side to
// listeners of its own, as in etcd: the client URLs then serve gRPC only
// (each listener logs "serving HTTP client requests"). --listen-metrics-urls
// adds listeners for /metrics,
// /health, /livez and /readyz only, each logged as "serving metrics".
//
// https:// client, peer and metrics URLs are served with etcd's security
// flags (tls.go, internal/tlsinfo): --cert-file, --trusted-ca-file,
// --client-cert-auth, --auto-tls, their --peer- twins, and the rest;
// in the config file they sit in client-transport-security and
// peer-transport-security, as in etcd.
//
// --config-file (or ETCD_CONFIG_FILE) reads etcd's YAML configuration file
// instead: its keys are the flag names, and as in etcd every other flag and
// ETCD_* variable is then ignored (configfile.go has the value types and
// the errors).
//
// Logs are etcd's zap configuration (logging.go): --logger zap,
// --log-level, --log-format json|console, --log-outputs
// stderr|stdout|file paths, --enable-log-rotation and
// --log-rotation-config-json (lumberjack, as etcd).
//
// --auto-compaction-mode and --auto-compaction-retention run package
// compactor against the member once it serves, as etcd does.
//
// etcd's corruption checks are on by default (server/corrupt.go):
// --initial-corrupt-check, --corrupt-check-time (1h; 0 turns it off),
// --compact-hash-check-enabled and --compact-hash-check-time, each also
// under etcd 3.5's --experimental- name.
//
// cairn runs two Go processors per CPU unless GOMAXPROCS is set in the
// environment (procs.go): reads that miss the block cache block their
// thread in pread.
//
// --feature-gates takes etcd 3.7's gates with etcd's parsing and errors
// (gates.go): InitialCorruptCheck and CompactHashCheck set the two
// corruption-check options, the others are accepted, have no effect and
// are logged once at start-up as such.
package main
