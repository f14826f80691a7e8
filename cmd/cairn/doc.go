// Command cairn runs one Cairn member.
//
// It accepts etcd's flag names and defaults; every flag --foo-bar may also
// come from the environment as ETCD_FOO_BAR, the command line winning. With
// no arguments it starts a single member named "default" with data in
// ./default.cairn, serving clients on localhost:2379. It logs "ready to serve
// client requests" once it serves, and stops cleanly on SIGINT or SIGTERM.
//
// Each client URL serves gRPC and HTTP on the same port, as etcd does
// (internal/connmux tells them apart by the first bytes of a connection):
// the HTTP side has /health, /livez, /readyz, /version, /metrics and
// /debug/vars, plus /debug/pprof/ with --enable-pprof or --log-level debug
// (see server/httpapi). --listen-metrics-urls adds listeners for /metrics,
// /health, /livez and /readyz only, each logged as "serving metrics".
package main
