// Package v3rpc exposes a server.Server as etcd's v3 gRPC services.
//
// Handlers are thin: validate the request exactly as etcd does (same checks,
// same order, same gRPC code and message), call the server, fill the
// response header (cluster ID, member ID, raft term, and the revision when
// the server left it zero), and map errors to etcd's status values in one
// table (errors.go), matched with errors.Is so wrapping never turns an
// error into codes.Unknown.
//
// Every call is counted, before any other interceptor, in etcd's
// grpc_server_* Prometheus metrics (metrics.go), which NewServer registers
// with the member (server.Server.RegisterMetrics) so they reach its
// /metrics; all gRPC servers of one member share them.
//
// KV, Watch, Lease, Cluster and Maintenance are served whole. Auth
// answers as etcd does with authentication disabled and no user or role,
// the one state Cairn can be in: UserAdd and RoleAdd answer
// codes.Unimplemented (docs/compatibility.md). Lock and Election are
// served by server/recipes, registered on the same gRPC server by the
// caller.
package v3rpc
