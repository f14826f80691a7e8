// Package httpapi serves the HTTP endpoints an etcd v3.7 member serves next
// to its gRPC API: the /v3/ JSON gateway, health probes, the version,
// Prometheus metrics and, optionally, pprof. Status codes, headers and
// bodies are etcd v3.7.3's byte for byte (tests/integration/http_test.go
// and tests/differential/gateway_test.go compare them with a real etcd),
// because load balancers, Kubernetes probes, monitoring and curl scripts
// match on them.
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
//     /metrics, /debug/vars, /debug/pprof/ when Options.EnablePprof is
//     set, and /v3/ when Options.Gateway is. Access control is etcd's
//     (withAccess): a plain-HTTP request whose Host is not in
//     Options.HostWhitelist is refused with 421; answers carry CORS
//     headers for the origins of Options.CORS ("*" by default, as etcd's
//     --cors); OPTIONS answers 200 with an empty body. Whether a request
//     came over TLS is what ConnContext, set as the http.Server's, records.
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
// # JSON gateway
//
// /v3/ is etcd's grpc-gateway: the generated handlers of
// go.etcd.io/etcd/api/v3/etcdserverpb/gw for KV, Watch, Lease, Cluster,
// Maintenance and Auth, and of api/v3lockpb and api/v3electionpb for Lock
// and Election, each decoding a JSON request body, calling the
// member's own gRPC server over Options.Gateway, and encoding the answer.
// Going through gRPC rather than calling the server directly is what etcd
// does, and it keeps one implementation of validation, error mapping and
// response headers: an answer over HTTP is the gRPC answer, in JSON. cmd/cairn
// dials the connection to its first client listener (DialSelf).
//
// The marshaling is etcd's: proto field names ("create_revision",
// "prev_kv"), unset fields left out, 64-bit integers as strings, bytes
// (keys, values) in standard base64, unknown request fields ignored. An
// empty body is an empty request. Errors are grpc-gateway's defaults, as in
// etcd: a {"code":…,"message":…} body (the gRPC code and etcd's message)
// with the HTTP status grpc-gateway maps the code to (InvalidArgument,
// OutOfRange and FailedPrecondition 400, NotFound 404, Unimplemented 501,
// Unavailable 503, …); a body that is not valid JSON for the request is
// 400 with the decoder's message; unknown paths under /v3/ are 404
// {"code":5,"message":"Not Found"}, other methods than POST 501
// {"code":12,"message":"Method Not Allowed"}. Streaming calls (watch,
// lease keep-alive, snapshot) read one JSON request after another from
// the body and answer one {"result":…} (or, at the end, {"error":…})
// object per line, flushed as it comes. /v3beta/ is /v3/, as etcd v3.7
// still rewrites it.
//
// The same paths also accept a WebSocket handshake (a GET with "Upgrade:
// websocket"), as etcd's do, for browsers, which cannot stream a request
// body: the answer is 101 Switching Protocols, then every text message the
// client sends is one line of the request body and every line of the
// answer comes back as one text message. Under the upgrade the call is
// always a POST to the gateway, whatever the handshake said; a "token"
// cookie, or a "Sec-WebSocket-Protocol: Bearer, <token>" header, is passed
// on as "Authorization: Bearer <token>"; an answer line may be up to
// 2 GiB - 1; the server sends no pings. What this serves in practice is
// the two bidirectional streams, watch and lease keep-alive, one
// {"result":…} message per answer: every other call reads its body to the
// end before calling gRPC, and a WebSocket body only ends when the
// connection closes, which also drops the answer, so those calls never
// answer, in etcd v3.7.3 as here. This is github.com/tmc/grpc-websocket-proxy
// with the options etcd gives it (see withWebSocket). Requests without the
// upgrade are served as above, untouched.
//
// Not served: the Lock and Election gateways (Cairn has neither service
// yet).
//
// # Alarms
//
// The health checks read the member's alarms (Member.Alarms), the
// cluster's replicated alarm set: /health fails on any active alarm not
// excluded, whichever member it was raised for, and /readyz's
// data_corruption on CORRUPT.
package httpapi
